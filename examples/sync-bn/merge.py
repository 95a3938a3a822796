"""mergeMoments / mergeGradSums of webgpu-batchnorm, in plain Python floats (IEEE float64).

For a Python peer (e.g. a torch.distributed rank bridged to JS workers) that must reach the SAME
merged statistics, bit for bit, as the JS shards: same canonical order, same operations in the same
order. Partials use the library's packing: moments [count | mean | m2] (3*C float64), gradient
sums [sum_dy | sum_dy_xhat] (2*C float64), e.g. torch.cat([...]).double() on the torch side.
Checked against the JS merges by test/sync-batch-norm-example.test.ts.
"""
import math
import struct


def _key(v):
    # A total order on float64 values matching the JS one: -0 before +0, NaN last.
    if math.isnan(v):
        return (2, 0.0, 0)
    return (1, v, 0 if math.copysign(1.0, v) < 0 else 1)


def merge_moments(partials, channels):
    """partials: list of sequences of 3*channels floats. Returns [count | mean | m2]."""
    out = [0.0] * (3 * channels)
    for c in range(channels):
        items = [(p[c], p[channels + c], p[2 * channels + c]) for p in partials]
        items.sort(key=lambda t: (_key(t[0]), _key(t[1]), _key(t[2])))
        n = 0.0
        mu = 0.0
        s = 0.0
        for nb, mb, sb in items:
            if nb == 0:
                continue
            total = n + nb
            d = mb - mu
            mu += (d * nb) / total
            s += sb + (d * d * n * nb) / total
            n = total
        out[c] = n
        out[channels + c] = mu if n else math.nan
        out[2 * channels + c] = s if n else math.nan
    return out


def merge_grad_sums(partials, channels):
    """partials: list of sequences of 2*channels floats. Returns [sum_dy | sum_dy_xhat]."""
    out = [0.0] * (2 * channels)
    for i in range(2 * channels):
        total = 0.0
        for v in sorted((p[i] for p in partials), key=_key):
            total += v
        out[i] = total
    return out


if __name__ == "__main__":
    # stdin: JSON {"channels": C, "moments": [[hex float64...], ...], "grads": [[...], ...]}
    # (values as 16-hex-digit big-endian bit patterns, so nothing is lost in transit)
    import json
    import sys

    req = json.load(sys.stdin)
    dec = lambda h: struct.unpack(">d", bytes.fromhex(h))[0]
    enc = lambda v: struct.pack(">d", v).hex()
    ch = req["channels"]
    m = merge_moments([[dec(h) for h in p] for p in req["moments"]], ch)
    g = merge_grad_sums([[dec(h) for h in p] for p in req["grads"]], ch)
    json.dump({"moments": [enc(v) for v in m], "grads": [enc(v) for v in g]}, sys.stdout)
