"""Batch norm's training passes (csrc/batchnorm_passes.h: AVX-512 where the CPU has it, the
portable twin under YOLO9000_PORTABLE_KERNELS, which the portable slice of test_portable.py
runs these tests with) against float64 NumPy, on runs of values that leave the vector loops
and the sums' 256-value blocks tails."""
import numpy as np
import pytest

from yolo9000.kernels import core

ACTS = {"leaky": core.ACT_LEAKY, "relu": core.ACT_RELU, "linear": core.ACT_LINEAR,
        "logistic": core.ACT_LOGISTIC}


def activate(v, act):
    if act == "leaky":
        return np.where(v > 0, v, 0.1 * v)
    if act == "relu":
        return np.maximum(v, 0)
    if act == "logistic":
        return 1 / (1 + np.exp(-v))
    return v


def act_slope(pre, y, act):
    """act' at the pre-activation (logistic's from its output, as darknet's)."""
    if act == "logistic":
        return y * (1 - y)
    return np.where(pre > 0, 1.0, {"leaky": 0.1, "relu": 0.0, "linear": 1.0}[act])


@pytest.mark.parametrize("s", [1, 7, 9, 255, 257, 600])
@pytest.mark.parametrize("act", list(ACTS))
def test_batchnorm_passes_against_float64(act, s):
    rng = np.random.default_rng(s)
    n, c = 3, 4
    z = (rng.standard_normal((n, c, s)) * 2 + 5).astype(np.float32)   # a mean far from 0
    mean, var = np.empty(c), np.empty(c)
    core.batchnorm_statistics(z, mean, var)
    z64 = z.astype(np.float64)
    assert np.allclose(mean, z64.mean(axis=(0, 2)), rtol=1e-6, atol=0)
    assert np.allclose(var, z64.var(axis=(0, 2), ddof=1), rtol=1e-5, atol=0)

    std = np.sqrt(var)
    mean32 = mean.astype(np.float32)
    inv = (1 / (std + 1e-6)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, c).astype(np.float32) * np.float32(-1) ** np.arange(c)
    scale = scale.astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32) * 0.5
    y = np.empty_like(z)
    core.batchnorm_activate(z, mean32, inv, scale, bias, ACTS[act], y)
    xh = (z64 - mean32[:, None]) * inv[:, None]
    pre = scale[:, None] * xh + bias[:, None]
    want_y = activate(pre, act)
    assert np.abs(y - want_y).max() <= 1e-5 * (1 + np.abs(want_y).max())

    dy = rng.standard_normal(z.shape).astype(np.float32)
    g = np.empty_like(z)
    bias_grad, scale_grad = np.full(c, 1, np.float32), np.full(c, -2, np.float32)
    core.batchnorm_activate_backward(dy, y, ACTS[act], g, bias_grad, z, mean32, inv, std, scale,
                                     bias, scale_grad)
    t = dy * act_slope(pre, y.astype(np.float64), act)
    m = n * s
    st, stx = t.sum(axis=(0, 2)), (t * xh).sum(axis=(0, 2))
    cx = np.where(std > 0, scale * stx / (std * max(m - 1, 1)), 0) if m > 1 else 0 * std
    want_g = ((scale[:, None] * t - (scale * st / m)[:, None]) * inv[:, None]
              - cx[:, None] * xh)
    assert np.abs(g - want_g).max() <= 1e-5 * (1 + np.abs(want_g).max())
    assert np.allclose(bias_grad, 1 + st, rtol=1e-5, atol=1e-4)
    assert np.allclose(scale_grad, -2 + stx, rtol=1e-5, atol=1e-4)


def test_batchnorm_activate_keeps_each_values_roundings():
    """The activate pass computes each value alone (no sums): the same bits wherever its run
    starts and however long it is, the vector loops' tails included."""
    rng = np.random.default_rng(9)
    z = rng.standard_normal((2, 3, 301)).astype(np.float32)
    args = [rng.standard_normal(3).astype(np.float32) for _ in range(4)]
    whole = np.empty_like(z)
    core.batchnorm_activate(z, *args, core.ACT_LEAKY, whole)
    for cut in (1, 17, 300):
        part = np.ascontiguousarray(z[:, :, cut:])
        out = np.empty_like(part)
        core.batchnorm_activate(part, *args, core.ACT_LEAKY, out)
        assert np.array_equal(out, whole[:, :, cut:])
