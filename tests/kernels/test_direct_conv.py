"""The direct 3x3 convolution for few input channels (the RGB input layer): the literal sums,
at inference and in training."""
import numpy as np
import pytest

from convolution_reference import close, direct_conv, direct_weight_grad, randomise
from yolo9000 import _kernels
from yolo9000.layers.convolutional import ConvolutionalLayer


@pytest.mark.skipif(not _kernels.direct_conv_available(), reason="needs AVX2 and FMA")
@pytest.mark.parametrize("act", ["linear", "leaky", "relu", "logistic"])
@pytest.mark.parametrize("c,h,w,batch", [(3, 13, 13, 1), (1, 1, 1, 2), (3, 5, 130, 2),
                                         (7, 9, 64, 1)])
def test_direct_kernel_for_few_channels(act, c, h, w, batch):
    """The RGB-input kernel: against the direct sum, at inference and in training."""
    rng = np.random.default_rng(14)
    layer = ConvolutionalLayer((c, h, w), filters=5, size=3, stride=1, pad=1,
                               batch_normalize=True, activation=act)
    assert layer.use_direct and not layer.use_winograd
    randomise(layer, rng)
    x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
    a, b = layer._inference_affine()
    ref = a[None, :, None, None] * direct_conv(x, layer.weights) + b[None, :, None, None]
    ref = {"linear": ref, "leaky": np.where(ref > 0, ref, 0.1 * ref),
           "relu": np.maximum(ref, 0), "logistic": 1 / (1 + np.exp(-ref))}[act]
    assert close(layer.forward(x), ref)
    fast = layer.forward(x, train=True)
    layer.use_direct = False
    assert close(fast, layer.forward(x, train=True).astype(np.float64))


@pytest.mark.skipif(not _kernels.direct_conv_available(), reason="needs AVX2 and FMA")
@pytest.mark.parametrize("filters", [1, 4, 6, 10, 12, 13, 16, 32, 35])
def test_direct_kernel_filters_in_groups_give_each_filters_bits(filters):
    """Filters six or four at a time (AVX-512) or one by one (AVX2) add each output's taps in
    the same order: every filter of a layer gives, bit for bit, what it gives alone (the
    one-filter kernel), leaky epilogue included; 32 filters go 6 x 4 + 4 x 2."""
    rng = np.random.default_rng(filters)
    c, h, w = 3, 7, 70                       # a row of 64 outputs and a partial block
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    xp = np.zeros((2, c, h + 2, w + 2 + _kernels.DIRECT_BLOCK), np.float32)
    xp[:, :, 1:h + 1, 1:w + 1] = x
    wt = rng.standard_normal((filters, c * 9)).astype(np.float32)
    a = rng.uniform(0.5, 2, filters).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    leaky = _kernels.ACT_LEAKY
    together = np.empty((2, filters, h, w), np.float32)
    _kernels.conv3x3_direct(xp, wt, together, a, b, leaky)
    for f in range(filters):
        alone = np.empty((2, 1, h, w), np.float32)
        _kernels.conv3x3_direct(xp, wt[f:f + 1], alone, a[f:f + 1], b[f:f + 1], leaky)
        assert np.array_equal(together[:, f], alone[:, 0]), f
    ref = a[None, :, None, None] * direct_conv(x, wt.reshape(filters, c, 3, 3)) \
        + b[None, :, None, None]
    assert close(together, np.where(ref > 0, ref, 0.1 * ref))


@pytest.mark.skipif(not _kernels.direct_conv_available(), reason="needs AVX2 and FMA")
@pytest.mark.parametrize("filters", [5, 16])
@pytest.mark.parametrize("c,h,w,batch", [(3, 13, 13, 3), (1, 1, 1, 2), (3, 5, 130, 2),
                                         (7, 9, 21, 1), (2, 6, 9, 5), (3, 10, 300, 2),
                                         (1, 3, 1100, 1)])
def test_direct_kernel_weight_gradient(c, h, w, batch, filters):
    """The RGB-input layer's weight gradient against the literal sum: per-thread sums of row
    dot products, 8 taps at a time, and row tails past the last 8 (AVX2); with AVX-512 by
    bands of rows, 4 filters by 6 taps at a time (filters and taps past the last whole group:
    5 filters, 9, 18, 27 and 63 taps), masked row tails, bands of one row (1100 wide), of
    several with a shorter last one (300 wide: 3 + 3 + 3 + 1) and whole images."""
    rng = np.random.default_rng(15)
    layer = ConvolutionalLayer((c, h, w), filters=filters, size=3, stride=1, pad=1,
                               activation="linear")
    assert layer.use_direct
    randomise(layer, rng)
    x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
    layer.forward(x, train=True)
    g = rng.standard_normal((batch, filters, h, w)).astype(np.float32)
    layer.zero_grads()
    assert layer.backward(g, need_input_grad=False) is None
    ref = direct_weight_grad(x, g)
    assert close(layer.weight_grad, ref)
    assert close(layer.bias_grad, g.sum(axis=(0, 2, 3)).astype(np.float64))
