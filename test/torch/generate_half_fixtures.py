#!/usr/bin/python3
"""Generate test/fixtures/half.json: PyTorch references for float16 / bfloat16 batch norm.

Regenerate (needs Debian python3-torch, i.e. /usr/bin/python3):

    /usr/bin/python3 test/torch/generate_half_fixtures.py

What torch 1.13 offers on the CPU decides the reference per dtype:

- bfloat16: torch's own CPU batch norm on bfloat16 input with float32 weight, bias and running
  statistics (its mixed-precision path: float32 statistics and accumulation, outputs rounded to
  bfloat16), forward in training and eval mode and the backward (grad_input bfloat16,
  grad_weight / grad_bias float32).
- float16: torch 1.13 raises "batch_norm not implemented for 'Half'" on the CPU, so the reference
  is torch's float64 batch norm on the float16-rounded input, rounded to float16 by torch
  (Tensor.half(), round to nearest even); grad_weight / grad_bias stay float64.

"conversions" holds torch's float64 → float16 / bfloat16 rounding of 500 values (ties, overflow
thresholds, subnormals, random magnitudes), the oracle of the library's own conversions.

Inputs and half outputs are written as 16-bit patterns (logical row-major (N, C, ...) order),
float outputs as float64 numbers. Deterministic: numpy default_rng with fixed seeds, one thread.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "test", "fixtures", "half.json")
EPS = 1e-5
MOMENTUM = 0.1

CASES = [
    {"name": "bn1d (4, 3, 5)", "shape": [4, 3, 5], "seed": 1},
    {"name": "bn2d (3, 6, 2, 2)", "shape": [3, 6, 2, 2], "seed": 2},
    {"name": "bn1d (9, 4)", "shape": [9, 4], "seed": 3},
]


def bits(t: torch.Tensor) -> list:
    """16-bit patterns of a float16 / bfloat16 tensor, logical order."""
    return (t.contiguous().view(torch.int16).to(torch.int32) & 0xFFFF).reshape(-1).tolist()


def floats(t: torch.Tensor) -> list:
    return [float(v) for v in t.double().reshape(-1).tolist()]


def run(case: dict, dtype: torch.dtype) -> dict:
    rng = np.random.default_rng(case["seed"])
    shape = case["shape"]
    c = shape[1]
    bshape = [1, c] + [1] * (len(shape) - 2)
    mean = rng.uniform(-2.0, 2.0, size=c).reshape(bshape)
    std = rng.uniform(0.5, 3.0, size=c).reshape(bshape)
    x = torch.tensor(rng.standard_normal(size=shape) * std + mean).to(dtype)
    dy = torch.tensor(rng.standard_normal(size=shape)).to(dtype)
    weight = torch.tensor(rng.uniform(0.5, 1.5, size=c), dtype=torch.float32)
    bias = torch.tensor(rng.uniform(-1.0, 1.0, size=c), dtype=torch.float32)
    native = dtype == torch.bfloat16
    compute = dtype if native else torch.float64
    pdtype = torch.float32 if native else torch.float64

    rm = torch.zeros(c, dtype=pdtype)
    rv = torch.ones(c, dtype=pdtype)
    xx = x.to(compute).clone().requires_grad_()
    w = weight.to(pdtype).clone().requires_grad_()
    b = bias.to(pdtype).clone().requires_grad_()
    y = torch.nn.functional.batch_norm(xx, rm, rv, w, b, True, MOMENTUM, EPS)
    y.backward(dy.to(compute))
    eval_y = torch.nn.functional.batch_norm(x.to(compute), rm, rv, w.detach(), b.detach(), False, MOMENTUM, EPS)
    return {
        "name": f"{dtype_name(dtype)} {case['name']}",
        "dtype": dtype_name(dtype),
        "reference": "torch bfloat16 (CPU)" if native else "torch float64 on float16 inputs, rounded by torch",
        "shape": shape,
        "eps": EPS,
        "momentum": MOMENTUM,
        "weight": floats(weight),
        "bias": floats(bias),
        "input": bits(x),
        "grad_output": bits(dy),
        "output": bits(y.detach().to(dtype)),
        "running_mean": floats(rm),
        "running_var": floats(rv),
        "eval_output": bits(eval_y.to(dtype)),
        "grad_input": bits(xx.grad.to(dtype)),
        "grad_weight": floats(w.grad),
        "grad_bias": floats(b.grad),
    }


def dtype_name(dtype: torch.dtype) -> str:
    return "bfloat16" if dtype == torch.bfloat16 else "float16"


def conversions() -> dict:
    """torch's float64 → float16 / bfloat16 rounding of values spread over both formats' ranges:
    ties, overflow thresholds, subnormals, and random magnitudes from 2^-30 to 2^20."""
    rng = np.random.default_rng(7)
    special = [0.0, 1.0, -2.5, 65504.0, 65519.99, 65520.0, 1e5, 6e-8, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 2.0 ** -24 * 1.5,
               6.103515625e-05, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 3.4e38, 3.3961e38, 1e-40, 0.1]
    values = special + [float(v) for v in np.sign(rng.standard_normal(480)) * 2.0 ** rng.uniform(-30, 20, 480)]
    t = torch.tensor(values, dtype=torch.float64)
    return {"values": values, "float16": bits(t.to(torch.float16)), "bfloat16": bits(t.to(torch.bfloat16))}


def main() -> int:
    results = [run(case, dtype) for dtype in (torch.float16, torch.bfloat16) for case in CASES]
    with open(OUT, "w") as f:
        f.write("{\n")
        f.write('"generated_by": "test/torch/generate_half_fixtures.py",\n')
        f.write('"torch_version": ' + json.dumps(torch.__version__) + ",\n")
        f.write('"conversions": ' + json.dumps(conversions(), allow_nan=False, separators=(",", ":")) + ",\n")
        f.write('"cases": [\n' + ",\n".join(json.dumps(r, allow_nan=False, separators=(",", ":")) for r in results) + "\n]\n}\n")
    print(f"wrote {OUT}: {len(results)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
