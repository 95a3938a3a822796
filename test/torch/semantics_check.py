#!/usr/bin/python3
"""Verify, against real PyTorch, every BatchNorm behaviour webgpu-batchnorm
claims to reproduce (or deliberately deviates from).

    /usr/bin/python3 test/torch/semantics_check.py

Each check uses plain asserts.  A markdown table of findings is printed to
stdout and, when every check passes, written to test/torch/SEMANTICS.md (the
source for the README semantics table).  Exit status 1 if any check fails.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS: List[Tuple[str, str, str, str]] = []  # (area, behaviour, observed, status)
FAILED: List[str] = []


def check(area: str, behaviour: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    def deco(fn: Callable[[], str]) -> Callable[[], str]:
        try:
            observed = fn()
            ROWS.append((area, behaviour, observed, "ok"))
        except Exception as exc:  # AssertionError or unexpected torch behaviour
            traceback.print_exc()
            ROWS.append((area, behaviour, f"{type(exc).__name__}: {exc}", "FAIL"))
            FAILED.append(behaviour)
        return fn
    return deco


def raises(fn: Callable[[], object]) -> Tuple[str, str]:
    try:
        fn()
    except Exception as exc:
        return type(exc).__name__, str(exc)
    raise AssertionError("expected an exception, none raised")


def err_text(t: Tuple[str, str]) -> str:
    return f"{t[0]} `{t[1]!r}`" if "\n" in t[1] else f"{t[0]} `{t[1]}`"


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-12) -> bool:
    return bool(torch.allclose(a, b, rtol=tol, atol=tol))


def data(*shape: int, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, dtype=torch.float64) * std + mean)


D = torch.float64

# ---------------------------------------------------------------- statistics


@check("stats", "Normalization uses the biased (1/n) batch variance; stats over N and all spatial dims per channel")
def _():
    m = nn.BatchNorm2d(3, dtype=D)
    x = data(4, 3, 2, 5)
    y = m(x)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var_b = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    var_u = x.var(dim=(0, 2, 3), unbiased=True, keepdim=True)
    assert close(y, (x - mean) / torch.sqrt(var_b + 1e-5), 1e-10)
    assert not close(y, (x - mean) / torch.sqrt(var_u + 1e-5), 1e-6)
    return "y = (x - mean) / sqrt(var_biased + eps) * w + b"


@check("stats", "running_var is updated with the unbiased (1/(n-1)) variance, running_mean with the mean")
def _():
    m = nn.BatchNorm1d(3, momentum=0.25, dtype=D)
    x = data(5, 3, 4)
    m(x)
    n = 5 * 4
    mean = x.mean(dim=(0, 2))
    var_u = x.var(dim=(0, 2), unbiased=True)
    assert close(m.running_mean, 0.75 * 0 + 0.25 * mean)
    assert close(m.running_var, 0.75 * 1 + 0.25 * var_u)
    assert close(var_u, x.var(dim=(0, 2), unbiased=False) * n / (n - 1))
    return "r = (1 - momentum) * r + momentum * stat, stat_var = var_biased * n / (n - 1)"


@check("stats", "momentum=None: cumulative average, factor 1 / num_batches_tracked (after the increment)")
def _():
    m = nn.BatchNorm1d(2, momentum=None, dtype=D)
    xs = [data(k + 2, 2) for k in range(4)]
    for x in xs:
        m(x)
    assert close(m.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))
    assert close(m.running_var, torch.stack([x.var(0, unbiased=True) for x in xs]).mean(0))
    # from a loaded num_batches_tracked = 5: factor 1/6
    m = nn.BatchNorm1d(2, momentum=None, dtype=D)
    with torch.no_grad():
        m.running_mean.fill_(3.0)
        m.running_var.fill_(2.0)
        m.num_batches_tracked.fill_(5)
    x = data(3, 2)
    m(x)
    assert int(m.num_batches_tracked) == 6
    assert close(m.running_mean, 3.0 * 5 / 6 + x.mean(0) / 6)
    assert close(m.running_var, 2.0 * 5 / 6 + x.var(0, unbiased=True) / 6)
    return "first step replaces the init stats (factor 1/1); with nbt=5 loaded the next factor is 1/6"


@check("stats", "momentum=0: running stats frozen; momentum=1: running stats = last batch (unbiased var)")
def _():
    m0 = nn.BatchNorm1d(3, momentum=0.0, dtype=D)
    m1 = nn.BatchNorm1d(3, momentum=1.0, dtype=D)
    for _ in range(2):
        x = data(4, 3)
        m0(x)
        m1(x)
    assert torch.equal(m0.running_mean, torch.zeros(3, dtype=D)) and torch.equal(m0.running_var, torch.ones(3, dtype=D))
    assert close(m1.running_mean, x.mean(0)) and close(m1.running_var, x.var(0, unbiased=True))
    return "as the formula says; num_batches_tracked still increments"


@check("stats", "num_batches_tracked += 1 on every training forward (momentum 0.1, None, 0, 1); eval forwards never increment")
def _():
    for mom in (0.1, None, 0.0, 1.0):
        m = nn.BatchNorm2d(2, momentum=mom)
        x = torch.randn(2, 2, 3, 3)
        m(x)
        m(x)
        m(x)
        m.eval()
        m(x)
        m(x)
        assert int(m.num_batches_tracked) == 3, (mom, m.num_batches_tracked)
    return "3 train + 2 eval forwards -> 3 for every momentum"


@check("stats", "eps is inside the sqrt: 1/sqrt(var + eps)")
def _():
    m = nn.BatchNorm1d(2, eps=0.5, dtype=D).eval()
    with torch.no_grad():
        m.running_mean.copy_(torch.tensor([1.0, -2.0]))
        m.running_var.copy_(torch.tensor([4.0, 0.25]))
        m.weight.copy_(torch.tensor([2.0, 3.0]))
        m.bias.copy_(torch.tensor([0.5, -1.0]))
    x = data(3, 2)
    y = m(x)
    assert close(y, (x - m.running_mean) / torch.sqrt(m.running_var + 0.5) * m.weight + m.bias)
    assert not close(y, (x - m.running_mean) / (torch.sqrt(m.running_var) + 0.5) * m.weight + m.bias, 1e-6)
    return "y = (x - rm) / sqrt(rv + eps) * w + b (eval), batch stats in training"


@check("stats", "Eval uses running stats; backward in eval treats them as constants")
def _():
    m = nn.BatchNorm1d(3, dtype=D)
    with torch.no_grad():
        m.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        m.running_var.copy_(torch.tensor([2.0, 0.5, 1.5]))
        m.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
    m.eval()
    x = data(4, 3).requires_grad_(True)
    go = data(4, 3)
    (m(x) * go).sum().backward()
    assert close(x.grad, go * m.weight.detach() / torch.sqrt(m.running_var + 1e-5))
    return "grad_input = grad_out * w / sqrt(rv + eps)"


@check("stats", "Training with N=1 but >1 spatial value per channel is allowed; eval with N=1 is allowed")
def _():
    m = nn.BatchNorm2d(2)
    m(torch.randn(1, 2, 2, 1))
    m.eval()
    m(torch.randn(1, 2, 1, 1))
    nn.BatchNorm1d(2).eval()(torch.randn(1, 2))
    return "only the number of values per channel (N * spatial) matters, and only in training"


@check("stats", "Empty batch (N=0) in training")
def _():
    m = nn.BatchNorm1d(3)
    y = m(torch.randn(0, 3))
    assert y.shape == (0, 3)
    assert torch.equal(m.running_mean, torch.zeros(3)) and torch.equal(m.running_var, torch.ones(3))
    assert int(m.num_batches_tracked) == 1
    return "no error, empty output, running stats unchanged, but num_batches_tracked still increments"

# ---------------------------------------------------------------- state


@check("state", "Defaults: weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0, eps 1e-5, momentum 0.1")
def _():
    for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        m = cls(4)
        assert torch.equal(m.weight.detach(), torch.ones(4)) and torch.equal(m.bias.detach(), torch.zeros(4))
        assert torch.equal(m.running_mean, torch.zeros(4)) and torch.equal(m.running_var, torch.ones(4))
        assert int(m.num_batches_tracked) == 0 and m.eps == 1e-5 and m.momentum == 0.1
        assert m.affine and m.track_running_stats and m.training
    return "same for 1d/2d/3d; modules start in training mode"


@check("state", "state_dict keys, order, dtypes, shapes")
def _():
    sd = nn.BatchNorm2d(3).state_dict()
    assert list(sd.keys()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for k in ("weight", "bias", "running_mean", "running_var"):
        assert sd[k].dtype == torch.float32 and tuple(sd[k].shape) == (3,)
    assert sd["num_batches_tracked"].dtype == torch.int64 and sd["num_batches_tracked"].dim() == 0
    return "weight, bias, running_mean, running_var: float32 [C]; num_batches_tracked: int64 0-dim scalar"


@check("state", "affine=False")
def _():
    m = nn.BatchNorm1d(3, affine=False)
    assert m.weight is None and m.bias is None
    assert list(m.state_dict().keys()) == ["running_mean", "running_var", "num_batches_tracked"]
    return "weight/bias are None; state_dict = running_mean, running_var, num_batches_tracked"


@check("state", "track_running_stats=False")
def _():
    m = nn.BatchNorm1d(3, track_running_stats=False, dtype=D)
    assert m.running_mean is None and m.running_var is None and m.num_batches_tracked is None
    assert list(m.state_dict().keys()) == ["weight", "bias"]
    assert list(nn.BatchNorm1d(3, affine=False, track_running_stats=False).state_dict().keys()) == []
    x = data(4, 3, mean=5.0, std=3.0)
    m.eval()
    y_eval = m(x)
    m.train()
    y_train = m(x)
    assert torch.equal(y_eval, y_train)
    assert close(y_eval, (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5), 1e-10)
    e = raises(lambda: m.eval()(torch.randn(1, 3, dtype=D)))
    assert e[0] == "ValueError"
    return ("running_mean/running_var/num_batches_tracked are None; state_dict = weight, bias (empty if also affine=False); "
            "eval uses batch stats (identical to training), so eval with 1 value per channel raises the training ValueError")


@check("state", "Eval forward (and its backward) never changes any state")
def _():
    m = nn.BatchNorm2d(3, dtype=D)
    m(data(2, 3, 2, 2))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.eval()
    x = data(2, 3, 2, 2).requires_grad_(True)
    m(x).sum().backward()
    m(data(1, 3, 1, 1))
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    return "state_dict bit-identical before/after"

# ---------------------------------------------------------------- input checks


@check("errors", "Rank checks (ValueError, raised in train and eval)")
def _():
    nn.BatchNorm1d(3)(torch.randn(2, 3))
    nn.BatchNorm1d(3)(torch.randn(2, 3, 4))
    nn.BatchNorm2d(3)(torch.randn(2, 3, 2, 2))
    nn.BatchNorm3d(3)(torch.randn(2, 3, 1, 2, 2))
    msgs = []
    for cls, shape, want in (
        (nn.BatchNorm1d, (3,), "expected 2D or 3D input (got 1D input)"),
        (nn.BatchNorm1d, (2, 3, 2, 2), "expected 2D or 3D input (got 4D input)"),
        (nn.BatchNorm2d, (2, 3, 4), "expected 4D input (got 3D input)"),
        (nn.BatchNorm2d, (2, 3, 1, 2, 2), "expected 4D input (got 5D input)"),
        (nn.BatchNorm3d, (2, 3, 4, 4), "expected 5D input (got 4D input)"),
    ):
        for mode in (True, False):
            e = raises(lambda: cls(3).train(mode)(torch.randn(*shape)))
            assert e == ("ValueError", want), e
        msgs.append(f"`{want}`")
    return "1d: 2-D or 3-D, 2d: 4-D, 3d: 5-D. Messages: " + ", ".join(msgs)


@check("errors", "Channel mismatch (input C != num_features)")
def _():
    e1 = raises(lambda: nn.BatchNorm1d(3)(torch.randn(2, 4)))
    e2 = raises(lambda: nn.BatchNorm2d(3).eval()(torch.randn(2, 2, 2, 2)))
    e3 = raises(lambda: nn.BatchNorm1d(3, track_running_stats=False)(torch.randn(2, 4)))
    assert e1 == ("RuntimeError", "running_mean should contain 4 elements not 3"), e1
    assert e2 == ("RuntimeError", "running_mean should contain 2 elements not 3"), e2
    assert e3 == ("RuntimeError", "weight should contain 4 elements not 3"), e3
    y = nn.BatchNorm1d(3, affine=False, track_running_stats=False)(torch.randn(2, 4))
    assert y.shape == (2, 4)
    m = nn.BatchNorm1d(3)
    raises(lambda: m(torch.randn(2, 4)))
    assert int(m.num_batches_tracked) == 1  # bumped before the failing check
    m = nn.BatchNorm1d(3)
    raises(lambda: m(torch.randn(2, 3, 2, 2)))
    assert int(m.num_batches_tracked) == 0  # rank check comes first: no bump
    return (f"{err_text(e1)} (input C first, then num_features); without running stats {err_text(e3)}; "
            "with affine=False AND track_running_stats=False torch does NOT check C at all (normalizes any C). "
            "A failed C check in training has already incremented num_batches_tracked (a failed rank check has not)")


@check("errors", "Training with one value per channel")
def _():
    out = []
    for m, shape in ((nn.BatchNorm1d(3), (1, 3)), (nn.BatchNorm1d(3), (1, 3, 1)), (nn.BatchNorm2d(3), (1, 3, 1, 1)), (nn.BatchNorm3d(3), (1, 3, 1, 1, 1))):
        before = {k: v.clone() for k, v in m.state_dict().items()}
        e = raises(lambda: m(torch.randn(*shape)))
        assert e[0] == "ValueError"
        assert e[1] == f"Expected more than 1 value per channel when training, got input size {torch.Size(shape)}", e
        after = m.state_dict()
        # running stats untouched, BUT the module bumped num_batches_tracked before F.batch_norm raised
        assert all(torch.equal(before[k], after[k]) for k in ("weight", "bias", "running_mean", "running_var"))
        assert int(after["num_batches_tracked"]) == int(before["num_batches_tracked"]) + 1
        out.append(e)
    e = raises(lambda: F.batch_norm(torch.randn(1, 3), None, None, training=True))
    assert e[0] == "ValueError"
    return (f"{err_text(out[2])} (size printed as torch.Size([...])); F.batch_norm raises the same. "
            "Running stats untouched, but the failed module forward has already incremented num_batches_tracked")


@check("errors", "num_features <= 0")
def _():
    nn.BatchNorm1d(0)
    e = raises(lambda: nn.BatchNorm1d(-1))
    assert e[0] == "RuntimeError"
    return f"0 is accepted; -1: {err_text(e)}"

# ---------------------------------------------------------------- functional


@check("functional", "F.batch_norm(training=False) with running stats None")
def _():
    x = torch.randn(4, 3)
    e1 = raises(lambda: F.batch_norm(x, None, None, training=False))
    e2 = raises(lambda: F.batch_norm(x, torch.zeros(3), None, training=False))
    assert e1 == ("RuntimeError", "running_mean must be defined in evaluation mode"), e1
    assert e2 == ("RuntimeError", "running_var must be defined in evaluation mode"), e2
    return f"{err_text(e1)} / {err_text(e2)}"


@check("functional", "F.batch_norm(momentum=None)")
def _():
    x = torch.randn(4, 3)
    e1 = raises(lambda: F.batch_norm(x, torch.zeros(3), torch.ones(3), training=True, momentum=None))
    e2 = raises(lambda: F.batch_norm(x, None, None, training=True, momentum=None))
    assert e1[0] == "TypeError" and e2 == e1, (e1, e2)
    assert e1[1] == "batch_norm(): argument 'momentum' (position 7) must be float, not NoneType", e1
    return f"{err_text(e1)} (even without running stats); cumulative averaging exists only in the modules"


@check("functional", "F.batch_norm(training=True) updates running stats in place; nothing else")
def _():
    x = data(5, 3)
    rm, rv = torch.zeros(3, dtype=D), torch.ones(3, dtype=D)
    w, b = torch.ones(3, dtype=D), torch.zeros(3, dtype=D)
    F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3)
    assert close(rm, 0.3 * x.mean(0)) and close(rv, 0.7 + 0.3 * x.var(0, unbiased=True))
    assert torch.equal(w, torch.ones(3, dtype=D)) and torch.equal(b, torch.zeros(3, dtype=D))
    y = F.batch_norm(x, None, None, training=True)
    assert close(y, (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5), 1e-10)
    F.batch_norm(torch.randn(2, 3, 2, 2, 2, 2), None, None, training=True)  # any rank >= 2
    e = raises(lambda: F.batch_norm(torch.randn(3), None, None, training=True))
    assert e[0] == "IndexError", e
    return ("same update formula as the module (unbiased var), no num_batches_tracked; running stats may be None in training; "
            f"any rank >= 2 accepted (6-D works); 1-D input: {err_text(e)}")

# ---------------------------------------------------------------- odd hyper-parameters


@check("hyper", "eps = 0")
def _():
    m = nn.BatchNorm1d(2, eps=0.0, dtype=D)
    x = torch.full((3, 2), 1.25, dtype=D).requires_grad_(True)
    y = m(x)
    y.sum().backward()
    assert torch.equal(y, torch.zeros_like(y)) and torch.equal(x.grad, torch.zeros_like(x))
    _, _, invstd = torch.native_batch_norm(torch.tensor([[1.25, 1.0], [1.25, 3.0]], dtype=D), None, None, None, None, True, 0.1, 0.0)
    assert invstd.tolist() == [0.0, 1.0], invstd
    m.eval()
    with torch.no_grad():
        m.running_var.zero_()
        m.running_mean.zero_()
    ye = m(torch.tensor([[1.0, 0.0], [2.0, -3.0]], dtype=D))
    assert bool(torch.isnan(ye).all())
    with torch.no_grad():
        m.running_mean.fill_(1.0)
    ye = m(torch.tensor([[0.0, 1.0], [2.0, -3.0]], dtype=D))
    # eval computes x * alpha + beta, alpha = w / sqrt(rv + eps) = inf, beta = b - rm * alpha = -inf:
    # x = 2 (same sign as rm) gives inf - inf = NaN although (x - rm) / 0 would be +inf; x = -3 gives -inf
    assert bool(torch.isnan(ye.flatten()[:3]).all()) and float(ye[1, 1]) == float("-inf"), ye
    return ("accepted. Training, constant channel: output = bias exactly (0), grads 0 — the saved invstd is 0 "
            "(not inf) when var == 0 and eps == 0, so no NaN. Eval with running_var 0: evaluated as x * alpha + beta (alpha = inf, beta = b - rm * inf), so NaN for every x when rm = 0, and with rm = 1: NaN for x = 0 and x = 2 (inf - inf), -inf for x = -3")


@check("hyper", "eps < 0")
def _():
    m = nn.BatchNorm1d(2, eps=-1.0, dtype=D)
    x = torch.tensor([[0.0, 0.0], [4.0, 0.2]], dtype=D)  # biased var 4 and 0.01
    y = m(x)
    assert bool(torch.isfinite(y[:, 0]).all()) and bool(torch.isnan(y[:, 1]).all())
    return "accepted, no error; NaN in channels where var + eps < 0, finite elsewhere"


@check("hyper", "momentum outside [0, 1]")
def _():
    x = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], dtype=D)  # mean 2,3,4; unbiased var 2
    m = nn.BatchNorm1d(3, momentum=2.0, dtype=D)
    m(x)
    assert close(m.running_mean, torch.tensor([4.0, 6.0, 8.0], dtype=D)) and close(m.running_var, torch.full((3,), 3.0, dtype=D))
    m = nn.BatchNorm1d(3, momentum=-1.0, dtype=D)
    m(x)
    assert close(m.running_mean, torch.tensor([-2.0, -3.0, -4.0], dtype=D)) and close(m.running_var, torch.zeros(3, dtype=D))
    return "accepted silently; the plain formula extrapolates (momentum 2: rm = 2*mean - rm, momentum -1: rv = 2*rv - var)"

# ---------------------------------------------------------------- precision


@check("precision", "PyTorch's own float32 CPU path on offset data (per-channel mean 1e4, std 0.1), vs the float64 path")
def _():
    g = torch.Generator().manual_seed(1234)
    x32 = (torch.randn(8, 4, 4, 4, generator=g, dtype=D) * 0.1 + 1e4).float()
    y32 = nn.BatchNorm2d(4)(x32)
    xd = x32.double()
    y64 = nn.BatchNorm2d(4).double()(xd)
    train_err = float((y32.double() - y64).abs().max())
    # float64 path agrees with the textbook formula
    mean = xd.mean(dim=(0, 2, 3), keepdim=True)
    inv = 1 / torch.sqrt(xd.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert close(y64, (xd - mean) * inv, 1e-9)
    # the f32 error is about what rounding the exact mean to float32 alone costs
    mean_rounding_err = float((((x32 - mean.float()) * inv.float()).double() - y64).abs().max())
    assert 1e-3 < train_err < 3 * mean_rounding_err, (train_err, mean_rounding_err)
    return (f"max |y_f32 - y_f64| = {train_err:.1e} in training (outputs have unit std), about what rounding the "
            f"exact mean to float32 alone costs ({mean_rounding_err:.1e}; ulp(1e4)/2 / std = 4.9e-3). "
            "Tests therefore compare against the float64 reference; torch's float32 output is only for reporting")


# ---------------------------------------------------------------- load_state_dict


@check("load", "load_state_dict errors (strict=True)")
def _():
    src = nn.BatchNorm1d(3)
    m = nn.BatchNorm1d(3)
    sd = src.state_dict()
    del sd["running_mean"]
    e1 = raises(lambda: m.load_state_dict(sd))
    sd = src.state_dict()
    sd["foo"] = torch.zeros(1)
    e2 = raises(lambda: m.load_state_dict(sd))
    sd = src.state_dict()
    sd["weight"] = torch.zeros(4)
    e3 = raises(lambda: m.load_state_dict(sd))
    assert e1 == ("RuntimeError", 'Error(s) in loading state_dict for BatchNorm1d:\n\tMissing key(s) in state_dict: "running_mean". '), e1
    assert e2 == ("RuntimeError", 'Error(s) in loading state_dict for BatchNorm1d:\n\tUnexpected key(s) in state_dict: "foo". '), e2
    assert e3 == ("RuntimeError", "Error(s) in loading state_dict for BatchNorm1d:\n\tsize mismatch for weight: copying a param with "
                  "shape torch.Size([4]) from checkpoint, the shape in current model is torch.Size([3])."), e3
    e4 = raises(lambda: nn.BatchNorm1d(3, track_running_stats=False).load_state_dict(src.state_dict()))
    assert "Unexpected key(s)" in e4[1] and '"running_mean", "running_var", "num_batches_tracked"' in e4[1]
    r = nn.BatchNorm1d(3).load_state_dict({"weight": torch.ones(3)}, strict=False)
    # plain dict without version metadata: num_batches_tracked is silently filled with 0, so not "missing"
    assert r.missing_keys == ["bias", "running_mean", "running_var"] and r.unexpected_keys == [], r
    return (f"missing: {err_text(e1)}; unexpected: {err_text(e2)}; shape: {err_text(e3)}; "
            "all problems are collected into one RuntimeError; strict=False returns (missing_keys, unexpected_keys)")


@check("load", "load_state_dict lenient corners")
def _():
    src = nn.BatchNorm1d(3)
    src(torch.randn(4, 3))
    src(torch.randn(4, 3))
    # missing num_batches_tracked: error with version metadata, silently 0 without
    sd = src.state_dict()
    del sd["num_batches_tracked"]
    e = raises(lambda: nn.BatchNorm1d(3).load_state_dict(sd))
    assert "Missing key(s) in state_dict: \"num_batches_tracked\"" in e[1]
    plain = dict(sd)  # drops the _metadata (version) attribute -> treated as a pre-v2 checkpoint
    m = nn.BatchNorm1d(3)
    m.num_batches_tracked.fill_(7)
    m.load_state_dict(plain)
    assert int(m.num_batches_tracked) == 0
    # dtype casts
    sd = src.state_dict()
    sd["running_mean"] = sd["running_mean"].double()
    sd["num_batches_tracked"] = torch.tensor(3.7)
    m.load_state_dict(sd)
    assert m.running_mean.dtype == torch.float32 and int(m.num_batches_tracked) == 3
    # shape [1] accepted for the 0-dim num_batches_tracked (BC with torch 0.3)
    sd = src.state_dict()
    sd["num_batches_tracked"] = torch.tensor([9])
    m.load_state_dict(sd)
    assert int(m.num_batches_tracked) == 9 and m.num_batches_tracked.dim() == 0
    return ("missing num_batches_tracked is an error for a real state_dict() but is filled with 0 for a plain dict "
            "without version metadata; values are cast to the module dtype (float64->float32, float nbt 3.7->3 truncated); "
            "a 1-element [1] tensor is accepted for the 0-dim num_batches_tracked")


# ---------------------------------------------------------------- output

def table() -> str:
    lines = ["| # | Area | Behaviour | PyTorch 1.13 (verified) | |", "|---|---|---|---|---|"]
    for i, (area, beh, obs, status) in enumerate(ROWS, 1):
        obs = obs.replace("|", "\\|")
        lines.append(f"| {i} | {area} | {beh} | {obs} | {status} |")
    return "\n".join(lines)


def main() -> int:
    t = table()
    print(f"torch {torch.__version__}\n")
    print(t)
    if FAILED:
        print(f"\n{len(FAILED)} check(s) FAILED: {FAILED}", file=sys.stderr)
        return 1
    md = [
        "# PyTorch BatchNorm semantics (verified)",
        "",
        f"Generated by `/usr/bin/python3 test/torch/semantics_check.py` against torch {torch.__version__} "
        "(Debian python3-torch). Every row is an assert in that script; do not edit by hand.",
        "",
        t,
        "",
    ]
    with open(os.path.join(HERE, "SEMANTICS.md"), "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(md))
    print(f"\nall {len(ROWS)} checks passed; wrote test/torch/SEMANTICS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
