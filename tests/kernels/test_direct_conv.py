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
