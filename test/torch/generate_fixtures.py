#!/usr/bin/python3
"""Generate the committed PyTorch fixtures for webgpu-batchnorm.

Regenerate (needs Debian python3-torch, i.e. /usr/bin/python3, NOT the python3
on PATH):

    /usr/bin/python3 test/torch/generate_fixtures.py

Writes test/fixtures/forward.json (module + functional cases, incl. error
cases) and test/fixtures/backward.json (cases whose focus is the gradients:
partial output masks, eval-mode backward, hard offsets).  Both files have the
format

    {"generated_by": "test/torch/generate_fixtures.py",
     "torch_version": "...",
     "cases":   [<input case,  see reference.py>],
     "results": [<result,      see reference.py>]}      (aligned by index)

Every case step carries a grad_output, so both files hold backward
references; the split is only by topic.  Output is deterministic: all data
comes from numpy's default_rng with fixed seeds, inputs are float32 values
written with their shortest round-tripping decimal form, and torch runs with
one thread.  Re-running produces byte-identical files (on the same machine
type; a different CPU ISA could in principle change the last bit of a float64
reduction).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, HERE)
import reference  # noqa: E402  (imports torch once)

REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "test", "fixtures")
GENERATED_BY = "test/torch/generate_fixtures.py"


# --------------------------------------------------------------------------
# float32 data helpers
# --------------------------------------------------------------------------

def f32_list(a: np.ndarray) -> List[float]:
    """float32 values as Python floats with the shortest decimal that maps
    back to the same float32 (both directly and via float64, which is how
    torch.tensor(..., dtype=float32) and Math.fround/Float32Array read them)."""
    out: List[float] = []
    for v in np.asarray(a, dtype=np.float32).reshape(-1):
        s = np.format_float_positional(v, unique=True, trim="-") if abs(v) >= 1e-4 or v == 0 else np.format_float_scientific(v, unique=True, trim="-")
        f = float(s)
        assert np.float32(f) == v and math.isfinite(f), (v, s)
        out.append(f)
    return out


class Data:
    """Seeded generator for one case (one seed per case, so cases are
    independent of each other's order)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def channel_params(self, c: int, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None):
        m = np.asarray(mean, dtype=np.float64) if mean is not None else self.rng.uniform(-2.0, 2.0, size=c)
        s = np.asarray(std, dtype=np.float64) if std is not None else self.rng.uniform(0.5, 2.0, size=c)
        return m, s

    def input(self, shape: Sequence[int], mean=None, std=None, const_channels: Sequence[int] = ()) -> List[float]:
        if len(shape) < 2:  # rank-error cases only
            return f32_list(self.rng.standard_normal(size=shape).astype(np.float32))
        c = shape[1]
        m, s = self.channel_params(c, mean, std)
        bshape = [1, c] + [1] * (len(shape) - 2)
        x = self.rng.standard_normal(size=shape) * s.reshape(bshape) + m.reshape(bshape)
        x = x.astype(np.float32)
        for k in const_channels:
            # a non-trivial constant (not exactly representable in decimal)
            x[:, k, ...] = np.float32(m[k] + 0.123456789)
        return f32_list(x)

    def grad(self, shape: Sequence[int]) -> List[float]:
        return f32_list(self.rng.standard_normal(size=shape).astype(np.float32))

    def vec(self, c: int, lo: float, hi: float) -> List[float]:
        return f32_list(self.rng.uniform(lo, hi, size=c).astype(np.float32))


# --------------------------------------------------------------------------
# case builders
# --------------------------------------------------------------------------

_seed_counter = [1000]


def case(
    name: str,
    module: str,
    c: int,
    steps: Sequence[Dict[str, Any]],
    *,
    eps: float = 1e-5,
    momentum: Optional[float] = 0.1,
    affine: bool = True,
    track: bool = True,
    init: Optional[Dict[str, Any]] = None,
    seed: Optional[int] = None,
) -> Dict[str, Any]:
    """steps: dicts with keys training, shape and optionally mean, std,
    const (constant channel indices), mask (output_mask), grad (False =
    grad_output null)."""
    if seed is None:
        _seed_counter[0] += 1
        seed = _seed_counter[0]
    d = Data(seed)
    out_steps = []
    init_out = None
    if init is not None:
        init_out = {}
        for key, val in init.items():
            if val == "random":
                lo, hi = {"weight": (0.5, 2.0), "bias": (-1.0, 1.0), "running_mean": (-1.0, 1.0), "running_var": (0.5, 3.0)}[key]
                init_out[key] = d.vec(c, lo, hi)
            elif isinstance(val, np.ndarray):
                init_out[key] = f32_list(val.astype(np.float32))
            else:
                init_out[key] = val
    for st in steps:
        shape = list(st["shape"])
        s: Dict[str, Any] = {
            "training": st["training"],
            "shape": shape,
            "input": d.input(shape, st.get("mean"), st.get("std"), st.get("const", ())),
            "grad_output": d.grad(shape) if st.get("grad", True) else None,
        }
        if "mask" in st:
            s["output_mask"] = list(st["mask"])
        out_steps.append(s)
    out: Dict[str, Any] = {
        "name": name,
        "module": module,
        "num_features": c,
        "eps": eps,
        "momentum": momentum,
        "affine": affine,
        "track_running_stats": track,
    }
    if init_out is not None:
        out["init"] = init_out
    out["steps"] = out_steps
    return out


def T(shape, **kw):
    return dict(training=True, shape=shape, **kw)


def E(shape, **kw):
    return dict(training=False, shape=shape, **kw)


def std_steps(shapes_train: Sequence[Sequence[int]], shapes_eval: Sequence[Sequence[int]], **kw):
    return [T(s, **kw) for s in shapes_train] + [E(s, **kw) for s in shapes_eval]


RANDOM_INIT = {"weight": "random", "bias": "random", "running_mean": "random", "running_var": "random", "num_batches_tracked": 5}


def forward_cases() -> List[Dict[str, Any]]:
    cs: List[Dict[str, Any]] = []
    # ---------------- BatchNorm1d, 2-D input (N, C) ----------------
    cs.append(case("bn1d_2d_C3_basic_mom0.1", "BatchNorm1d", 3, std_steps([[4, 3], [4, 3], [4, 3]], [[2, 3], [4, 3]])))
    cs.append(case("bn1d_2d_C4_mom_none_varying_N", "BatchNorm1d", 4, std_steps([[2, 4], [5, 4], [3, 4]], [[3, 4], [1, 4]]), momentum=None))
    cs.append(case("bn1d_2d_C5_mom0", "BatchNorm1d", 5, std_steps([[3, 5], [4, 5], [2, 5]], [[3, 5], [2, 5]]), momentum=0.0))
    cs.append(case("bn1d_2d_C2_mom1", "BatchNorm1d", 2, std_steps([[4, 2], [3, 2], [5, 2]], [[2, 2], [3, 2]]), momentum=1.0))
    cs.append(case("bn1d_2d_C6_noaffine", "BatchNorm1d", 6, std_steps([[3, 6], [3, 6], [4, 6]], [[2, 6], [3, 6]]), affine=False))
    cs.append(case("bn1d_2d_C3_notrack", "BatchNorm1d", 3, std_steps([[4, 3], [2, 3], [5, 3]], [[3, 3], [2, 3]]), track=False))
    cs.append(case("bn1d_2d_C4_noaffine_notrack", "BatchNorm1d", 4, std_steps([[3, 4], [5, 4], [2, 4]], [[4, 4], [2, 4]]), affine=False, track=False))
    cs.append(case("bn1d_2d_C3_eps1e-3", "BatchNorm1d", 3, std_steps([[4, 3], [4, 3], [3, 3]], [[2, 3], [3, 3]]), eps=1e-3))
    cs.append(case("bn1d_2d_C2_eps0.1_mom_none", "BatchNorm1d", 2, std_steps([[3, 2], [4, 2], [5, 2]], [[2, 2], [3, 2]]), eps=0.1, momentum=None))
    cs.append(case("bn1d_2d_C1", "BatchNorm1d", 1, std_steps([[5, 1], [2, 1], [4, 1]], [[3, 1], [1, 1]])))
    cs.append(case("bn1d_2d_C4_offset_1e4_std0.1_mom_none", "BatchNorm1d", 4,
                   std_steps([[5, 4], [4, 4], [5, 4]], [[3, 4], [2, 4]], mean=[1e4] * 4, std=[0.1] * 4), momentum=None))
    cs.append(case("bn1d_2d_C3_zero_var_channel1", "BatchNorm1d", 3,
                   [T([4, 3], const=[1]), T([3, 3], const=[1]), T([5, 3]), E([2, 3]), E([3, 3], const=[1])]))
    cs.append(case("bn1d_2d_C5_random_init_nbt5_mom_none", "BatchNorm1d", 5,
                   std_steps([[4, 5], [3, 5], [2, 5]], [[3, 5], [2, 5]]), momentum=None, init=RANDOM_INIT))
    cs.append(case("bn1d_2d_C3_random_init_nbt5_mom0.1", "BatchNorm1d", 3,
                   std_steps([[4, 3], [3, 3], [4, 3]], [[3, 3], [2, 3]]), init=RANDOM_INIT))
    cs.append(case("bn1d_2d_C3_eval_first_then_train", "BatchNorm1d", 3,
                   [E([3, 3]), T([4, 3]), E([2, 3]), T([3, 3]), E([4, 3])], init=RANDOM_INIT))
    # ---------------- BatchNorm1d, 3-D input (N, C, L) ----------------
    cs.append(case("bn1d_3d_C3_L5_basic", "BatchNorm1d", 3, std_steps([[2, 3, 5], [3, 3, 5], [2, 3, 5]], [[2, 3, 5], [1, 3, 5]])))
    cs.append(case("bn1d_3d_C4_L8_mom_none", "BatchNorm1d", 4, std_steps([[2, 4, 8], [3, 4, 8], [2, 4, 8]], [[2, 4, 8], [1, 4, 8]]), momentum=None))
    cs.append(case("bn1d_3d_C2_varying_L", "BatchNorm1d", 2,
                   [T([2, 2, 4]), T([3, 2, 7]), T([2, 2, 1]), E([2, 2, 3]), E([1, 2, 5])]))
    cs.append(case("bn1d_3d_C4_L1", "BatchNorm1d", 4, std_steps([[3, 4, 1], [5, 4, 1], [2, 4, 1]], [[1, 4, 1], [3, 4, 1]])))
    cs.append(case("bn1d_3d_C3_L6_noaffine_notrack", "BatchNorm1d", 3, std_steps([[2, 3, 6], [3, 3, 6], [2, 3, 6]], [[2, 3, 6], [1, 3, 6]]), affine=False, track=False))
    cs.append(case("bn1d_3d_C2_L5_offset_-3e3_std1e-2", "BatchNorm1d", 2,
                   std_steps([[3, 2, 5], [2, 2, 5], [4, 2, 5]], [[2, 2, 5], [1, 2, 5]], mean=[-3e3, -3e3], std=[1e-2, 1e-2]), momentum=1.0))
    cs.append(case("bn1d_3d_C3_L4_zero_var_channel0", "BatchNorm1d", 3,
                   [T([2, 3, 4], const=[0]), T([3, 3, 4], const=[0]), T([2, 3, 4], const=[0]), E([2, 3, 4]), E([1, 3, 4], const=[0])]))
    cs.append(case("bn1d_3d_C5_L3_random_init_eps0.1", "BatchNorm1d", 5,
                   std_steps([[2, 5, 3], [3, 5, 3], [2, 5, 3]], [[2, 5, 3], [1, 5, 3]]), eps=0.1, init=RANDOM_INIT))
    # ---------------- BatchNorm2d (N, C, H, W) ----------------
    cs.append(case("bn2d_C3_4x5_basic", "BatchNorm2d", 3, std_steps([[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 5]], [[1, 3, 4, 5], [2, 3, 4, 5]])))
    cs.append(case("bn2d_C4_2x2_mom_none_varying_N", "BatchNorm2d", 4, std_steps([[3, 4, 2, 2], [2, 4, 2, 2], [5, 4, 2, 2]], [[1, 4, 2, 2], [4, 4, 2, 2]]), momentum=None))
    cs.append(case("bn2d_C6_3x3_mom0", "BatchNorm2d", 6, std_steps([[2, 6, 3, 3], [3, 6, 3, 3], [2, 6, 3, 3]], [[2, 6, 3, 3], [1, 6, 3, 3]]), momentum=0.0))
    cs.append(case("bn2d_C2_3x5_mom1", "BatchNorm2d", 2, std_steps([[3, 2, 3, 5], [2, 2, 3, 5], [3, 2, 3, 5]], [[2, 2, 3, 5], [1, 2, 3, 5]]), momentum=1.0))
    cs.append(case("bn2d_C5_4x4_noaffine", "BatchNorm2d", 5, std_steps([[2, 5, 4, 4], [2, 5, 4, 4], [2, 5, 4, 4]], [[1, 5, 4, 4], [2, 5, 4, 4]]), affine=False))
    cs.append(case("bn2d_C3_2x3_notrack", "BatchNorm2d", 3, std_steps([[3, 3, 2, 3], [2, 3, 2, 3], [4, 3, 2, 3]], [[2, 3, 2, 3], [1, 3, 2, 3]]), track=False))
    cs.append(case("bn2d_C4_1x3_noaffine_notrack_mom_none", "BatchNorm2d", 4, std_steps([[3, 4, 1, 3], [2, 4, 1, 3], [3, 4, 1, 3]], [[2, 4, 1, 3], [1, 4, 1, 3]]), affine=False, track=False, momentum=None))
    cs.append(case("bn2d_C3_3x3_eps1e-3", "BatchNorm2d", 3, std_steps([[2, 3, 3, 3], [3, 3, 3, 3], [2, 3, 3, 3]], [[2, 3, 3, 3], [1, 3, 3, 3]]), eps=1e-3))
    cs.append(case("bn2d_C2_2x4_eps0.1", "BatchNorm2d", 2, std_steps([[2, 2, 2, 4], [4, 2, 2, 4], [3, 2, 2, 4]], [[2, 2, 2, 4], [1, 2, 2, 4]]), eps=0.1))
    cs.append(case("bn2d_C4_2x4_offset_1e4_std0.1_mom_none", "BatchNorm2d", 4,
                   std_steps([[3, 4, 2, 4], [2, 4, 2, 4], [3, 4, 2, 4]], [[2, 4, 2, 4], [1, 4, 2, 4]], mean=[1e4] * 4, std=[0.1] * 4), momentum=None))
    cs.append(case("bn2d_C3_3x3_offset_-3e3_std1e-2_mom0.1", "BatchNorm2d", 3,
                   std_steps([[2, 3, 3, 3], [3, 3, 3, 3], [2, 3, 3, 3]], [[2, 3, 3, 3], [1, 3, 3, 3]], mean=[-3e3] * 3, std=[1e-2] * 3)))
    cs.append(case("bn2d_C3_2x5_zero_var_channel2", "BatchNorm2d", 3,
                   [T([2, 3, 2, 5], const=[2]), T([3, 3, 2, 5], const=[2]), T([2, 3, 2, 5], const=[2]), E([2, 3, 2, 5], const=[2]), E([1, 3, 2, 5])]))
    cs.append(case("bn2d_C4_3x2_random_init_nbt5", "BatchNorm2d", 4,
                   std_steps([[2, 4, 3, 2], [3, 4, 3, 2], [2, 4, 3, 2]], [[2, 4, 3, 2], [1, 4, 3, 2]]), init=RANDOM_INIT))
    cs.append(case("bn2d_C2_random_init_mom_none_varying_HW", "BatchNorm2d", 2,
                   [T([2, 2, 3, 4]), T([3, 2, 1, 5]), T([2, 2, 4, 4]), E([1, 2, 2, 3]), E([2, 2, 4, 5])], momentum=None, init=RANDOM_INIT))
    cs.append(case("bn2d_C1_4x4", "BatchNorm2d", 1, std_steps([[3, 1, 4, 4], [2, 1, 4, 4], [4, 1, 4, 4]], [[2, 1, 4, 4], [1, 1, 4, 4]])))
    cs.append(case("bn2d_C3_1x1_N4", "BatchNorm2d", 3, std_steps([[4, 3, 1, 1], [2, 3, 1, 1], [5, 3, 1, 1]], [[1, 3, 1, 1], [3, 3, 1, 1]])))
    cs.append(case("bn2d_C2_N1_2x2_train_ok", "BatchNorm2d", 2, std_steps([[1, 2, 2, 2], [1, 2, 3, 1], [1, 2, 2, 2]], [[1, 2, 2, 2], [1, 2, 1, 1]])))
    # ---------------- BatchNorm3d (N, C, D, H, W) ----------------
    cs.append(case("bn3d_C3_2x3x4_basic", "BatchNorm3d", 3, std_steps([[2, 3, 2, 3, 4], [2, 3, 2, 3, 4], [2, 3, 2, 3, 4]], [[1, 3, 2, 3, 4], [2, 3, 2, 3, 4]])))
    cs.append(case("bn3d_C4_1x2x2_mom_none_varying_N", "BatchNorm3d", 4, std_steps([[2, 4, 1, 2, 2], [3, 4, 1, 2, 2], [4, 4, 1, 2, 2]], [[2, 4, 1, 2, 2], [1, 4, 1, 2, 2]]), momentum=None))
    cs.append(case("bn3d_C2_3x3x4_noaffine", "BatchNorm3d", 2, std_steps([[2, 2, 3, 3, 4], [2, 2, 3, 3, 4], [2, 2, 3, 3, 4]], [[1, 2, 3, 3, 4], [2, 2, 3, 3, 4]]), affine=False))
    cs.append(case("bn3d_C5_2x2x3_notrack", "BatchNorm3d", 5, std_steps([[2, 5, 2, 2, 3], [2, 5, 2, 2, 3], [3, 5, 2, 2, 3]], [[2, 5, 2, 2, 3], [1, 5, 2, 2, 3]]), track=False))
    cs.append(case("bn3d_C3_2x2x2_offset_1e4_std0.1_mom1", "BatchNorm3d", 3,
                   std_steps([[2, 3, 2, 2, 2], [3, 3, 2, 2, 2], [2, 3, 2, 2, 2]], [[2, 3, 2, 2, 2], [1, 3, 2, 2, 2]], mean=[1e4] * 3, std=[0.1] * 3), momentum=1.0))
    cs.append(case("bn3d_C4_1x2x3_zero_var_channel3_mom0", "BatchNorm3d", 4,
                   [T([2, 4, 1, 2, 3], const=[3]), T([3, 4, 1, 2, 3], const=[3]), T([2, 4, 1, 2, 3], const=[3]), E([2, 4, 1, 2, 3]), E([1, 4, 1, 2, 3], const=[3])], momentum=0.0))
    cs.append(case("bn3d_C2_random_init_eps1e-3_mom_none", "BatchNorm3d", 2,
                   std_steps([[2, 2, 2, 3, 3], [3, 2, 2, 3, 3], [2, 2, 2, 3, 3]], [[2, 2, 2, 3, 3], [1, 2, 2, 3, 3]]), eps=1e-3, momentum=None, init=RANDOM_INIT))
    cs.append(case("bn3d_C1_varying_DHW", "BatchNorm3d", 1,
                   [T([2, 1, 2, 2, 2]), T([2, 1, 3, 1, 4]), T([3, 1, 1, 1, 1]), E([1, 1, 2, 3, 4]), E([2, 1, 1, 2, 2])]))
    # ---------------- functional F.batch_norm ----------------
    cs.append(case("functional_4d_C3_stats_affine_train_then_eval", "functional", 3,
                   std_steps([[2, 3, 2, 3], [3, 3, 2, 3], [2, 3, 2, 3]], [[2, 3, 2, 3], [1, 3, 2, 3]])))
    cs.append(case("functional_2d_C4_stats_affine_random_init_mom0.3", "functional", 4,
                   std_steps([[3, 4], [5, 4], [2, 4]], [[3, 4], [1, 4]]), momentum=0.3,
                   init={"weight": "random", "bias": "random", "running_mean": "random", "running_var": "random"}))
    cs.append(case("functional_3d_C2_nostats_noaffine_train", "functional", 2,
                   [T([2, 2, 5]), T([3, 2, 4]), T([2, 2, 6])], affine=False, track=False))
    cs.append(case("functional_5d_C3_nostats_affine_train", "functional", 3,
                   [T([2, 3, 2, 2, 2]), T([2, 3, 1, 2, 3])], track=False, init={"weight": "random", "bias": "random"}))
    cs.append(case("functional_4d_C5_eval_only_stats_random", "functional", 5,
                   [E([2, 5, 2, 2]), E([1, 5, 3, 1])],
                   init={"weight": "random", "bias": "random", "running_mean": "random", "running_var": "random"}))
    cs.append(case("functional_2d_C3_stats_noaffine_mom1_eps0.1", "functional", 3,
                   [T([4, 3]), E([2, 3]), T([3, 3]), E([2, 3])], momentum=1.0, eps=0.1, affine=False))
    cs.append(case("functional_2d_C2_stats_mom0", "functional", 2,
                   [T([4, 2]), T([3, 2]), E([2, 2])], momentum=0.0))
    cs.append(case("functional_4d_C4_offset_1e4_std0.1_stats_mom1", "functional", 4,
                   [T([2, 4, 2, 3], mean=[1e4] * 4, std=[0.1] * 4), E([2, 4, 2, 3], mean=[1e4] * 4, std=[0.1] * 4)], momentum=1.0))
    # ---------------- error cases (torch rejects; error recorded) ----------------
    cs.append(case("error_bn1d_train_one_value_per_channel_N1_C3", "BatchNorm1d", 3, [T([1, 3])]))
    cs.append(case("error_bn1d_3d_train_one_value_per_channel_N1_C3_L1", "BatchNorm1d", 3, [T([1, 3, 1])]))
    cs.append(case("error_bn2d_train_one_value_per_channel_N1_C3_1x1", "BatchNorm2d", 3, [T([1, 3, 1, 1])]))
    cs.append(case("error_bn3d_train_one_value_per_channel_N1_C2_1x1x1", "BatchNorm3d", 2, [T([1, 2, 1, 1, 1])]))
    cs.append(case("error_bn1d_notrack_eval_one_value_per_channel", "BatchNorm1d", 3, [E([1, 3])], track=False))
    cs.append(case("error_after_steps_bn1d_train_N1", "BatchNorm1d", 3, [T([3, 3]), E([1, 3]), T([1, 3]), E([2, 3])]))
    cs.append(case("error_bn1d_wrong_rank_4d", "BatchNorm1d", 3, [T([2, 3, 2, 2])]))
    cs.append(case("error_bn1d_wrong_rank_1d", "BatchNorm1d", 3, [T([3])]))
    cs.append(case("error_bn2d_wrong_rank_3d", "BatchNorm2d", 3, [T([2, 3, 4])]))
    cs.append(case("error_bn2d_wrong_rank_5d", "BatchNorm2d", 3, [E([2, 3, 1, 2, 2])]))
    cs.append(case("error_bn3d_wrong_rank_4d", "BatchNorm3d", 2, [T([2, 2, 3, 3])]))
    cs.append(case("error_bn1d_channel_mismatch_C4_vs_3", "BatchNorm1d", 3, [T([2, 4])]))
    cs.append(case("error_bn2d_channel_mismatch_eval_C2_vs_3", "BatchNorm2d", 3, [E([2, 2, 2, 2])]))
    cs.append(case("error_functional_train_one_value_per_channel", "functional", 3, [T([1, 3, 1, 1])], track=False))
    cs.append(case("error_functional_eval_without_running_stats", "functional", 3, [E([2, 3])], track=False))
    return cs


def backward_cases() -> List[Dict[str, Any]]:
    cs: List[Dict[str, Any]] = []
    cs.append(case("bwd_bn1d_2d_C4_output_masks", "BatchNorm1d", 4,
                   [T([4, 4], mask=[True, False, False]), T([3, 4], mask=[False, True, True]),
                    T([5, 4], mask=[False, False, False]), E([3, 4], mask=[True, True, False]), E([2, 4], mask=[False, False, True])],
                   init={"weight": "random", "bias": "random"}))
    cs.append(case("bwd_bn2d_C3_3x4_output_masks_random_init", "BatchNorm2d", 3,
                   [T([2, 3, 3, 4], mask=[True, True, False]), T([2, 3, 3, 4], mask=[False, True, False]),
                    T([3, 3, 3, 4], mask=[True, False, True]), E([2, 3, 3, 4], mask=[True, False, False]), E([1, 3, 3, 4])],
                   init=RANDOM_INIT))
    cs.append(case("bwd_bn2d_C8_2x2_noaffine_mask", "BatchNorm2d", 8,
                   [T([2, 8, 2, 2]), T([3, 8, 2, 2], mask=[True, True, True]), T([2, 8, 2, 2], mask=[False, True, True]), E([2, 8, 2, 2])],
                   affine=False))
    cs.append(case("bwd_bn3d_C3_1x3x3_notrack_eval_batch_stats", "BatchNorm3d", 3,
                   [T([2, 3, 1, 3, 3]), E([3, 3, 1, 3, 3]), E([2, 3, 1, 3, 3], mask=[True, False, True])], track=False,
                   init={"weight": "random", "bias": "random"}))
    cs.append(case("bwd_bn1d_3d_C6_L3_offset_1e4", "BatchNorm1d", 6,
                   std_steps([[2, 6, 3], [3, 6, 3], [2, 6, 3]], [[2, 6, 3], [1, 6, 3]], mean=[1e4] * 6, std=[0.1] * 6), momentum=None,
                   init={"weight": "random", "bias": "random"}))
    cs.append(case("bwd_bn2d_C2_2x3_offset_-3e3_zero_var_channel", "BatchNorm2d", 2,
                   [T([3, 2, 2, 3], mean=[-3e3, -3e3], std=[1e-2, 1e-2], const=[1]),
                    T([2, 2, 2, 3], mean=[-3e3, -3e3], std=[1e-2, 1e-2], const=[1]),
                    T([3, 2, 2, 3], mean=[-3e3, -3e3], std=[1e-2, 1e-2]),
                    E([2, 2, 2, 3], mean=[-3e3, -3e3], std=[1e-2, 1e-2]),
                    E([1, 2, 2, 3], mean=[-3e3, -3e3], std=[1e-2, 1e-2], const=[0])],
                   momentum=None, init={"weight": "random", "bias": "random"}))
    cs.append(case("bwd_bn1d_2d_C8_N2_minimal_batch", "BatchNorm1d", 8,
                   [T([2, 8]), T([2, 8]), T([2, 8]), E([2, 8]), E([1, 8])], eps=1e-3, init=RANDOM_INIT))
    cs.append(case("bwd_functional_4d_C4_affine_stats_masks", "functional", 4,
                   [T([2, 4, 2, 2], mask=[True, True, False]), T([3, 4, 2, 2], mask=[False, True, True]), E([2, 4, 2, 2])],
                   init={"weight": "random", "bias": "random"}))
    cs.append(case("bwd_functional_3d_C3_affine_nostats_eps0.1", "functional", 3,
                   [T([2, 3, 4]), T([3, 3, 5], mask=[True, False, False])], track=False, eps=0.1,
                   init={"weight": "random", "bias": "random"}))
    cs.append(case("bwd_functional_2d_C5_eval_stats_grad", "functional", 5,
                   [E([3, 5]), E([2, 5], mask=[False, True, True])],
                   init={"weight": "random", "bias": "random", "running_mean": "random", "running_var": "random"}))
    return cs


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def dump_fixture(path: str, cases: List[Dict[str, Any]]) -> int:
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    results = reference.compute_cases(cases)
    # One case / result per line keeps diffs readable.
    parts = [
        "{",
        '"generated_by": ' + json.dumps(GENERATED_BY) + ",",
        '"torch_version": ' + json.dumps(reference.torch_version()) + ",",
        '"cases": [',
        ",\n".join(json.dumps(c, allow_nan=False, separators=(",", ":")) for c in cases),
        "],",
        '"results": [',
        ",\n".join(json.dumps(r, allow_nan=False, separators=(",", ":")) for r in results),
        "]",
        "}",
    ]
    text = "\n".join(parts) + "\n"
    json.loads(text)  # sanity
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return len(text.encode("utf-8"))


def main() -> int:
    os.makedirs(FIXTURES, exist_ok=True)
    _seed_counter[0] = 1000
    fwd = forward_cases()
    _seed_counter[0] = 5000
    bwd = backward_cases()
    total = 0
    for fname, cases in (("forward.json", fwd), ("backward.json", bwd)):
        path = os.path.join(FIXTURES, fname)
        size = dump_fixture(path, cases)
        total += size
        n_err = 0
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        n_err = sum(1 for r in doc["results"] if r["error"] is not None)
        print(f"{os.path.relpath(path, REPO)}: {len(cases)} cases ({n_err} error cases), {size} bytes")
    print(f"total: {len(fwd) + len(bwd)} cases, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
