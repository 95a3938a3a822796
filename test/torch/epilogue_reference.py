#!/usr/bin/python3
"""PyTorch float64 ground truth for fused batch-norm epilogues, y = act(bn(x) + z).

    /usr/bin/python3 test/torch/epilogue_reference.py IN.json OUT.json

IN.json  = {"cases": [case, ...]}, each case
    {"shape": [N, C, ...], "training": bool, "eps": float, "momentum": float,
     "input": [...], "residual": [...] | null, "grad_output": [...],
     "weight": [...], "bias": [...], "running_mean": [...], "running_var": [...],
     "activation": {"kind": "none" | "relu" | "relu6" | "clamp" | "leakyRelu" | "silu" | "gelu" |
                             "geluTanh" | "hardswish" | "sigmoid" | "tanh" | "elu" | "prelu",
                    "min": float, "max": float, "slope": float (leakyRelu slope, ELU alpha),
                    "prelu_weight": [...] (prelu: [C] or [1])}}
(all arrays float32 values in logical row-major (N, C, ...) order).
OUT.json = {"torch_version": str, "results": [{"output", "pre_activation", "grad_t",
    "grad_input", "grad_weight", "grad_bias", "grad_residual" (null without residual),
    "running_mean", "running_var", "grad_prelu_weight" (null without prelu)}]}

Everything runs in float64 on the float32 inputs through torch's own functions and autograd:
F.batch_norm, then + z, then F.relu / F.relu6 / F.hardtanh / F.leaky_relu / F.silu / F.gelu
(approximate 'none' or 'tanh') / F.hardswish / torch.sigmoid / torch.tanh / F.elu / F.prelu, and
backward of sum(y * grad_output). grad_t is dL/d(bn(x) + z), the gradient at the pre-activation.
"""

import json
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def f64(values, shape=None):
    t = torch.tensor(values, dtype=torch.float32).double()
    return t.reshape(shape) if shape is not None else t


def activate(t, a, prelu_weight):
    kind = a["kind"]
    if kind == "none":
        return t
    if kind == "relu":
        return F.relu(t)
    if kind == "relu6":
        return F.relu6(t)
    if kind == "clamp":
        return F.hardtanh(t, a["min"], a["max"])
    if kind == "leakyRelu":
        return F.leaky_relu(t, a["slope"])
    if kind == "silu":
        return F.silu(t)
    if kind == "gelu":
        return F.gelu(t, approximate="none")
    if kind == "geluTanh":
        return F.gelu(t, approximate="tanh")
    if kind == "hardswish":
        return F.hardswish(t)
    if kind == "sigmoid":
        return torch.sigmoid(t)
    if kind == "tanh":
        return torch.tanh(t)
    if kind == "elu":
        return F.elu(t, a["slope"])
    if kind == "prelu":
        return F.prelu(t, prelu_weight)
    raise ValueError(f"unknown activation {kind!r}")


def run(case):
    shape = case["shape"]
    x = f64(case["input"], shape).requires_grad_(True)
    w = f64(case["weight"]).requires_grad_(True)
    b = f64(case["bias"]).requires_grad_(True)
    rm = f64(case["running_mean"])
    rv = f64(case["running_var"])
    bn = F.batch_norm(x, rm, rv, w, b, case["training"], case["momentum"], case["eps"])
    z = None
    t = bn
    if case["residual"] is not None:
        z = f64(case["residual"], shape).requires_grad_(True)
        t = bn + z
    t.retain_grad()
    pw = None
    if case["activation"]["kind"] == "prelu":
        pw = f64(case["activation"]["prelu_weight"]).requires_grad_(True)
    y = activate(t, case["activation"], pw)
    dy = f64(case["grad_output"], shape)
    (y * dy).sum().backward()
    flat = lambda v: v.detach().reshape(-1).tolist()
    return {
        "output": flat(y),
        "pre_activation": flat(t),
        "grad_t": flat(t.grad),
        "grad_input": flat(x.grad),
        "grad_weight": flat(w.grad),
        "grad_bias": flat(b.grad),
        "grad_residual": flat(z.grad) if z is not None else None,
        "running_mean": flat(rm),
        "running_var": flat(rv),
        "grad_prelu_weight": flat(pw.grad) if pw is not None else None,
    }


def main():
    with open(sys.argv[1], encoding="utf8") as f:
        cases = json.load(f)["cases"]
    out = {"torch_version": torch.__version__, "results": [run(c) for c in cases]}
    with open(sys.argv[2], "w", encoding="utf8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
