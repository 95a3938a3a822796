#!/usr/bin/python3
"""PyTorch ground truth for webgpu-batchnorm.

Library + CLI.  Run ONLY with the interpreter that has torch
(Debian python3-torch 1.13 lives in /usr/bin/python3):

    /usr/bin/python3 test/torch/reference.py IN.json OUT.json

IN.json  = {"cases": [case, ...]}
OUT.json = {"torch_version": "...", "results": [result, ...]}  (aligned by index)

Case format (see test/helpers/torch-reference.ts for the TypeScript types):

    {"name": str,
     "module": "BatchNorm1d" | "BatchNorm2d" | "BatchNorm3d" | "functional",
     "num_features": int, "eps": float, "momentum": float | null,
     "affine": bool, "track_running_stats": bool,
     "init": {"weight", "bias", "running_mean", "running_var": [float],
              "num_batches_tracked": int}        (optional, every key optional)
     "steps": [{"training": bool, "shape": [N, C, ...],
                "input": [float32 values, logical row-major (N, C, ...)],
                "grad_output": [...] | null,
                "output_mask": [bool, bool, bool]}]}   (optional, default all true)

Steps run in order on ONE module instance (state carries over); for
"functional" the running-stat tensors carry over (F.batch_norm updates them in
place).  Two independent instances are run side by side:

  * the float64 reference: module built in float32, init loaded (so init values
    are rounded to float32 exactly like the library stores them), then
    ``.double()``; input = float32 values cast to float64.  Gives "output",
    the grads (autograd of sum(output * grad_output)) and "state".
  * PyTorch's own float32 path (same init), forward only: "output_f32".

If torch raises on a step, the steps completed so far are kept and
``error = {"type": <exception class name>, "message": str(exc)}`` is recorded;
the case stops there.

Non-finite numbers are not valid JSON: in the input and the output they are
written as the strings "NaN", "Infinity", "-Infinity" (inside number arrays).
Malformed cases (harness bugs, not torch behaviour) abort the whole run with
exit status 2.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

# Deterministic reductions regardless of the machine's core count.
torch.set_num_threads(1)

MODULES = {
    "BatchNorm1d": torch.nn.BatchNorm1d,
    "BatchNorm2d": torch.nn.BatchNorm2d,
    "BatchNorm3d": torch.nn.BatchNorm3d,
}
FUNCTIONAL = "functional"
_NONFINITE_IN = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class CaseFormatError(Exception):
    """The case JSON itself is malformed (not a torch error)."""


# --------------------------------------------------------------------------
# (de)serialisation helpers
# --------------------------------------------------------------------------

def decode_numbers(values: Sequence[Any], what: str) -> List[float]:
    out: List[float] = []
    for v in values:
        if isinstance(v, bool):
            raise CaseFormatError(f"{what}: booleans are not numbers")
        if isinstance(v, (int, float)):
            out.append(float(v))
        elif isinstance(v, str) and v in _NONFINITE_IN:
            out.append(_NONFINITE_IN[v])
        else:
            raise CaseFormatError(f"{what}: not a number: {v!r}")
    return out


def encode_float(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def encode_tensor(t: Optional[torch.Tensor]) -> Optional[List[Any]]:
    if t is None:
        return None
    return [encode_float(float(v)) for v in t.detach().double().reshape(-1).tolist()]


def f32_tensor(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.float32)


# --------------------------------------------------------------------------
# case validation
# --------------------------------------------------------------------------

def _req(d: Dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise CaseFormatError(f"{where}: missing key {key!r}")
    return d[key]


def validate_case(case: Dict[str, Any]) -> None:
    name = _req(case, "name", "case")
    where = f"case {name!r}"
    module = _req(case, "module", where)
    if module not in MODULES and module != FUNCTIONAL:
        raise CaseFormatError(f"{where}: unknown module {module!r}")
    c = _req(case, "num_features", where)
    if not isinstance(c, int) or isinstance(c, bool):
        raise CaseFormatError(f"{where}: num_features must be an int")
    for key in ("eps", "momentum", "affine", "track_running_stats", "steps"):
        _req(case, key, where)
    init = case.get("init") or {}
    for key in init:
        if key not in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            raise CaseFormatError(f"{where}: unknown init key {key!r}")
    for key in ("weight", "bias"):
        if key in init and init[key] is not None:
            if not case["affine"]:
                raise CaseFormatError(f"{where}: init.{key} given but affine is false")
            if len(init[key]) != c:
                raise CaseFormatError(f"{where}: init.{key} must have num_features values")
    for key in ("running_mean", "running_var"):
        if key in init and init[key] is not None:
            if not case["track_running_stats"]:
                raise CaseFormatError(f"{where}: init.{key} given but track_running_stats is false")
            if len(init[key]) != c:
                raise CaseFormatError(f"{where}: init.{key} must have num_features values")
    for i, step in enumerate(case["steps"]):
        sw = f"{where} step {i}"
        shape = _req(step, "shape", sw)
        n = 1
        for s in shape:
            n *= int(s)
        if len(_req(step, "input", sw)) != n:
            raise CaseFormatError(f"{sw}: input has {len(step['input'])} values, shape needs {n}")
        go = step.get("grad_output")
        if go is not None and len(go) != n:
            raise CaseFormatError(f"{sw}: grad_output length != input length")
        mask = step.get("output_mask")
        if mask is not None and (len(mask) != 3 or not all(isinstance(m, bool) for m in mask)):
            raise CaseFormatError(f"{sw}: output_mask must be 3 booleans")
        _req(step, "training", sw)


# --------------------------------------------------------------------------
# state holders: a module, or the tensors handed to F.batch_norm
# --------------------------------------------------------------------------

class _Runner:
    """One instance (module or functional tensors) in a given dtype."""

    def __init__(self, case: Dict[str, Any], dtype: torch.dtype) -> None:
        self.case = case
        self.dtype = dtype
        init = case.get("init") or {}
        c = case["num_features"]
        affine = bool(case["affine"])
        track = bool(case["track_running_stats"])
        self.functional = case["module"] == FUNCTIONAL
        if self.functional:
            self.module = None
            w = f32_tensor(decode_numbers(init["weight"], "init.weight")) if init.get("weight") is not None else torch.ones(c)
            b = f32_tensor(decode_numbers(init["bias"], "init.bias")) if init.get("bias") is not None else torch.zeros(c)
            rm = f32_tensor(decode_numbers(init["running_mean"], "init.running_mean")) if init.get("running_mean") is not None else torch.zeros(c)
            rv = f32_tensor(decode_numbers(init["running_var"], "init.running_var")) if init.get("running_var") is not None else torch.ones(c)
            self.weight = w.to(dtype).requires_grad_(True) if affine else None
            self.bias = b.to(dtype).requires_grad_(True) if affine else None
            self.running_mean = rm.to(dtype) if track else None
            self.running_var = rv.to(dtype) if track else None
        else:
            m = MODULES[case["module"]](
                c,
                eps=case["eps"],
                momentum=case["momentum"],
                affine=affine,
                track_running_stats=track,
            )
            with torch.no_grad():
                if affine:
                    if init.get("weight") is not None:
                        m.weight.copy_(f32_tensor(decode_numbers(init["weight"], "init.weight")))
                    if init.get("bias") is not None:
                        m.bias.copy_(f32_tensor(decode_numbers(init["bias"], "init.bias")))
                if track:
                    if init.get("running_mean") is not None:
                        m.running_mean.copy_(f32_tensor(decode_numbers(init["running_mean"], "init.running_mean")))
                    if init.get("running_var") is not None:
                        m.running_var.copy_(f32_tensor(decode_numbers(init["running_var"], "init.running_var")))
                    if init.get("num_batches_tracked") is not None:
                        m.num_batches_tracked.fill_(int(init["num_batches_tracked"]))
            if dtype == torch.float64:
                m = m.double()
            self.module = m

    def zero_grad(self) -> None:
        if self.module is not None:
            self.module.zero_grad(set_to_none=True)
        else:
            for p in (self.weight, self.bias):
                if p is not None:
                    p.grad = None

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if self.module is not None:
            self.module.train(training)
            return self.module(x)
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training,
            self.case["momentum"],
            self.case["eps"],
        )

    def params(self):
        if self.module is not None:
            return self.module.weight, self.module.bias
        return self.weight, self.bias

    def state(self) -> Dict[str, Any]:
        if self.module is not None:
            m = self.module
            nbt = m.num_batches_tracked
            return {
                "weight": encode_tensor(m.weight),
                "bias": encode_tensor(m.bias),
                "running_mean": encode_tensor(m.running_mean),
                "running_var": encode_tensor(m.running_var),
                "num_batches_tracked": int(nbt.item()) if nbt is not None else None,
            }
        return {
            "weight": encode_tensor(self.weight),
            "bias": encode_tensor(self.bias),
            "running_mean": encode_tensor(self.running_mean),
            "running_var": encode_tensor(self.running_var),
            "num_batches_tracked": None,
        }


# --------------------------------------------------------------------------
# computation
# --------------------------------------------------------------------------

def compute_case(case: Dict[str, Any]) -> Dict[str, Any]:
    """Run one case; returns the result dict (see module docstring)."""
    validate_case(case)
    steps_out: List[Dict[str, Any]] = []
    error: Optional[Dict[str, str]] = None
    try:
        r64 = _Runner(case, torch.float64)
        r32 = _Runner(case, torch.float32)
    except (CaseFormatError, KeyError):
        raise
    except Exception as exc:  # torch rejected the construction itself
        return {"name": case["name"], "steps": [], "error": {"type": type(exc).__name__, "message": str(exc)}}

    for step in case["steps"]:
        shape = [int(s) for s in step["shape"]]
        x32 = f32_tensor(decode_numbers(step["input"], "input")).reshape(shape)
        go_raw = step.get("grad_output")
        mask = step.get("output_mask") or [True, True, True]
        try:
            r64.zero_grad()
            x64 = x32.double().clone()
            want_grad = go_raw is not None
            if want_grad:
                x64.requires_grad_(True)
            y64 = r64.forward(x64, bool(step["training"]))
            gi = gw = gb = None
            if want_grad:
                go = f32_tensor(decode_numbers(go_raw, "grad_output")).double().reshape(shape)
                (y64 * go).sum().backward()
                w, b = r64.params()
                gi = x64.grad if mask[0] else None
                gw = (w.grad if w is not None else None) if mask[1] else None
                gb = (b.grad if b is not None else None) if mask[2] else None
            with torch.no_grad():
                y32 = r32.forward(x32.clone(), bool(step["training"]))
        except (CaseFormatError, KeyError):
            raise
        except Exception as exc:
            error = {"type": type(exc).__name__, "message": str(exc)}
            break
        steps_out.append({
            "output": encode_tensor(y64),
            "output_f32": encode_tensor(y32),
            "grad_input": encode_tensor(gi),
            "grad_weight": encode_tensor(gw),
            "grad_bias": encode_tensor(gb),
            "state": r64.state(),
        })
    return {"name": case["name"], "steps": steps_out, "error": error}


def compute_cases(cases: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [compute_case(c) for c in cases]


def torch_version() -> str:
    return str(torch.__version__)


def compute_document(doc: Dict[str, Any]) -> Dict[str, Any]:
    return {"torch_version": torch_version(), "results": compute_cases(doc["cases"])}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: /usr/bin/python3 test/torch/reference.py IN.json OUT.json\n")
        return 2
    with open(argv[1], "r", encoding="utf-8") as fh:
        doc = json.load(fh)
    try:
        out = compute_document(doc)
    except (CaseFormatError, KeyError) as exc:
        sys.stderr.write(f"reference.py: malformed case: {exc}\n")
        return 2
    with open(argv[2], "w", encoding="utf-8") as fh:
        json.dump(out, fh, allow_nan=False, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
