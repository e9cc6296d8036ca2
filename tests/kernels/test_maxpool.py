"""darknet's maxpool kernels: inference without argmax, and the 2x2 windowings whose backward
finds the winners again, against the generic routing."""
import numpy as np
import pytest

from yolo9000 import _kernels
from yolo9000.layers.maxpool import MaxpoolLayer


@pytest.mark.parametrize("shape,size,stride", [((4, 8, 8), 2, 2), ((3, 7, 5), 2, 2),
                                               ((5, 13, 13), 2, 1), ((2, 9, 9), 3, 2)])
def test_maxpool_inference_skips_argmax_with_the_same_values(shape, size, stride):
    layer = MaxpoolLayer(shape, size, stride)
    x = np.random.default_rng(13).standard_normal((2,) + shape).astype(np.float32)
    x[0, 0, 0, :3] = np.nan
    x[1, 1, 2, 2] = x[1, 1, 2, 3]        # ties
    assert np.array_equal(layer.forward(x, train=False), layer.forward(x, train=True),
                          equal_nan=True)


@pytest.mark.parametrize("shape", [(3, 8, 6), (2, 4, 10), (5, 4, 4), (3, 2, 2)])
def test_maxpool_backward_writes_every_input_position(shape):
    """2x2/2 windows that tile the input: backward finds the winners again and writes dx
    whole (its buffer starts as garbage), the window's gradient at the winner, 0 elsewhere."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2,) + shape).astype(np.float32)
    layer = MaxpoolLayer(shape, 2, 2)
    y = layer.forward(x, train=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert layer.recomputed_backward is _kernels.maxpool_2x2_s2_backward
    assert layer._argmax is None
    dx = np.full(x.shape, np.nan, np.float32)
    _kernels.maxpool_2x2_s2_backward(x, y, dy, dx)
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // 2, 2, w // 2, 2)
    winner = windows == windows.max(axis=(3, 5), keepdims=True)
    expected = np.where(winner, dy[:, :, :, None, :, None], 0).reshape(x.shape)
    assert np.array_equal(dx, expected)
    # ties: the first of the window's inputs (row by row) wins, as in the forward's
    # strict comparisons and darknet's
    x[...] = 1.0
    dx[...] = np.nan
    _kernels.maxpool_2x2_s2_backward(x, layer.forward(x, train=True), dy, dx)
    first = np.zeros((2, 2), bool)
    first[0, 0] = True
    expected = np.where(first[None, None, None, :, None, :], dy[:, :, :, None, :, None], 0)
    assert np.array_equal(dx, expected.reshape(x.shape))


@pytest.mark.parametrize("shape,stride", [((3, 13, 13), 1), ((2, 6, 9), 1), ((4, 1, 1), 1),
                                          ((3, 8, 6), 2), ((2, 12, 4), 2), ((6, 4, 4), 2)])
def test_maxpool_recomputed_backward_equals_argmax_routing(shape, stride):
    """darknet's 2x2 windowings (stride 1 keeping the size, stride 2 tiling) find their
    winners again in backward; against the generic kernel's argmax routing, with many ties
    (small integers) so that the first-maximum rule is exercised."""
    rng = np.random.default_rng(17)
    layer = MaxpoolLayer(shape, 2, stride)
    assert layer.recomputed_backward is not None
    x = rng.integers(0, 3, (2,) + shape).astype(np.float32)
    y = layer.forward(x, train=True)
    assert layer._argmax is None
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    y_ref = np.empty_like(y)
    argmax = np.empty(y.shape, np.int32)
    _kernels.maxpool_forward(x, 2, stride, 1, y_ref, argmax)      # the generic loop
    dx_ref = np.full(x.shape, np.nan, np.float32)
    _kernels.maxpool_backward(dy, argmax, dx_ref)
    assert np.array_equal(y, y_ref) and np.array_equal(dx, dx_ref)
