"""PyTorch statistics for a large raw float32 input (the seed example: BatchNorm3d(100) on
(20, 100, 35, 45, 55), 693 MB), too large to pass through JSON.

    /usr/bin/python3 test/torch/seed_stats.py INPUT.f32 N,C,D,H,W OUT.json [INDICES.u32]

Runs one training forward of a float64 nn.BatchNorm3d (default options) on the float32 values and
writes the batch mean / biased variance, running_mean / running_var after the step, and the
float64 outputs at the given flat indices (logical NCDHW order).
"""
import json
import sys

import numpy as np
import torch


def main() -> None:
    path, shape_text, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    shape = [int(s) for s in shape_text.split(",")]
    x32 = np.fromfile(path, dtype=np.float32).reshape(shape)
    x = torch.from_numpy(x32).double()
    del x32
    bn = torch.nn.BatchNorm3d(shape[1]).double().train()
    with torch.no_grad():
        y = bn(x)
        dims = [0] + list(range(2, len(shape)))
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
    result = {
        "mean": mean.tolist(),
        "biased_var": var.tolist(),
        "running_mean": bn.running_mean.tolist(),
        "running_var": bn.running_var.tolist(),
        "num_batches_tracked": int(bn.num_batches_tracked),
    }
    if len(sys.argv) > 4:
        idx = torch.from_numpy(np.fromfile(sys.argv[4], dtype=np.uint32).astype(np.int64))
        result["sample_indices"] = idx.tolist()
        result["sample_output"] = y.reshape(-1)[idx].tolist()
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
