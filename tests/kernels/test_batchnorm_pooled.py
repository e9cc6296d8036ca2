"""The training pair of a batch-normalised convolution and the 2x2/2 maxpool after it
(csrc/batchnorm.pxi: batchnorm_activate_pooled, batchnorm_unpool) against float64 NumPy:
the pooled forward, and the unpooled gradient on each window's winner, ties included (the
first of the window's values, row by row, equal to its maximum: the maxpool's rule). .ci/run
runs them again under YOLO9000_PORTABLE_KERNELS (the portable twins of the passes)."""
import numpy as np
import pytest

from yolo9000.kernels import core

ACTS = {"leaky": core.ACT_LEAKY, "relu": core.ACT_RELU, "linear": core.ACT_LINEAR}


def activate(v, act):
    if act == "leaky":
        return np.where(v > 0, v, 0.1 * v)
    if act == "relu":
        return np.maximum(v, 0)
    return v


def parameters(rng, c):
    """mean, inv, scale (signs mixed: a negative scale turns the order of a window's values
    around), bias; float32 as the layer keeps them"""
    mean = rng.standard_normal(c).astype(np.float32)
    inv = rng.uniform(0.5, 2, c).astype(np.float32)
    scale = (rng.uniform(0.5, 1.5, c) * (-1.0) ** np.arange(c)).astype(np.float32)
    bias = (rng.standard_normal(c) * 0.3).astype(np.float32)
    return mean, inv, scale, bias


def scratch(width):
    return np.empty((core.get_max_threads(), core.batchnorm_pooled_scratch_floats(width)),
                    np.float32)


def windows(a, n, c, h, w):
    """(N, C, H/2, W/2, 4): each 2x2 window's values, row by row."""
    a = a.reshape(n, c, h // 2, 2, w // 2, 2)
    return a.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)


# widths whose pooled rows leave the 4-window vector loop a tail (W/2 = 1, 3, 5, 19); maps
# activated in several blocks of row pairs (120 x 38: 53 pairs a block) and a pair a block
# (2050 wide: 4100 values)
SHAPES = [(1, 1, 2, 2), (2, 3, 4, 6), (1, 2, 6, 10), (2, 2, 4, 38), (1, 2, 120, 38),
          (1, 1, 4, 2050)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", list(ACTS))
def test_pooled_forward_against_float64(shape, act):
    n, c, h, w = shape
    rng = np.random.default_rng(h * w)
    z = (rng.standard_normal((n, c, h * w)) * 2).astype(np.float32)
    mean, inv, scale, bias = parameters(rng, c)
    pooled = np.full((n, c, h // 2, w // 2), np.nan, np.float32)
    core.batchnorm_activate_pooled(z, h, w, mean, inv, scale, bias, ACTS[act], pooled,
                                   scratch(w))
    pre = (scale[:, None] * ((z.astype(np.float64) - mean[:, None]) * inv[:, None])
           + bias[:, None])
    want = windows(activate(pre, act), n, c, h, w).max(axis=-1)
    assert np.abs(pooled - want).max() <= 1e-5 * (1 + np.abs(want).max())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", list(ACTS))
def test_unpooled_gradient_goes_to_each_windows_first_winner(shape, act):
    """z on a coarse grid: equal values in a window tie exactly, distinct ones lie far apart
    in any rounding (and relu ties every window of negatives at 0), so the winners are
    known without the kernels' arithmetic."""
    n, c, h, w = shape
    rng = np.random.default_rng(7 + h * w)
    z = (rng.integers(-2, 3, (n, c, h * w)) * 0.5).astype(np.float32)
    z[0, 0, [0, 1, w, w + 1]] = 0.5       # a four-way tie at least
    mean, inv, scale, bias = parameters(rng, c)
    pooled = np.empty((n, c, h // 2, w // 2), np.float32)
    core.batchnorm_activate_pooled(z, h, w, mean, inv, scale, bias, ACTS[act], pooled,
                                   scratch(w))
    dpooled = rng.standard_normal(pooled.shape).astype(np.float32)
    dy = np.full((n, c, h * w), np.nan, np.float32)
    core.batchnorm_unpool(dpooled, pooled, z, mean, inv, scale, bias, ACTS[act], dy,
                          scratch(w))

    pre = (scale[:, None] * ((z.astype(np.float64) - mean[:, None]) * inv[:, None])
           + bias[:, None])
    values = windows(activate(pre, act), n, c, h, w)
    first = np.argmax(values >= values.max(axis=-1, keepdims=True) - 1e-9, axis=-1)
    want = np.zeros(values.shape)
    np.put_along_axis(want, first[..., None], dpooled[..., None].astype(np.float64), axis=-1)
    got = windows(dy, n, c, h, w)
    np.testing.assert_array_equal(got, want)
    ties = (values >= values.max(axis=-1, keepdims=True) - 1e-9).sum(axis=-1) > 1
    assert ties.any()       # the rule under test was exercised


def test_pooled_kernels_refuse_what_they_cannot_do():
    z = np.zeros((1, 1, 12), np.float32)
    p = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="even"):
        core.batchnorm_activate_pooled(z, 3, 4, p, p, p, p, core.ACT_LEAKY,
                                       np.zeros((1, 1, 1, 2), np.float32), scratch(4))
    z = np.zeros((1, 1, 16), np.float32)
    with pytest.raises(ValueError, match="logistic"):
        core.batchnorm_activate_pooled(z, 4, 4, p, p, p, p, core.ACT_LOGISTIC,
                                       np.zeros((1, 1, 2, 2), np.float32), scratch(4))
    with pytest.raises(ValueError, match="scratch"):
        core.batchnorm_activate_pooled(z, 4, 4, p, p, p, p, core.ACT_LEAKY,
                                       np.zeros((1, 1, 2, 2), np.float32),
                                       np.zeros((core.get_max_threads(), 3), np.float32))
