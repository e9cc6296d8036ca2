"""A convolution and the 2x2/2 maxpool after it run as one at inference (the maxima taken in
the direct or Winograd kernel's epilogue): the bits of the two layers."""
import numpy as np
import pytest

from convolution_reference import MINI_CFG, randomise
from yolo9000 import Network
from yolo9000 import _kernels
from yolo9000.kernels import threads, winograd
from yolo9000.layers.convolutional import ConvolutionalLayer
from yolo9000.layers.maxpool import MaxpoolLayer


@pytest.mark.parametrize("act", ["linear", "leaky", "logistic"])
@pytest.mark.parametrize("c,f,size,batch,path", [
    (3, 6, 20, 2, "direct"), (3, 5, 130, 1, "direct"), (16, 32, 40, 2, "banded"),
    (70, 24, 12, 3, "chunked"), (80, 40, 8, 2, "blocks"),
])
def test_convolution_with_its_maxpool_fused_equals_the_two(monkeypatch, act, c, f, size, batch,
                                                           path):
    """forward_pooled (the 2x2/2 maxpool in the direct or Winograd kernel's epilogue) gives
    the bits of forward then the maxpool layer, negative batch-norm scales included (the
    maximum must be taken after the epilogue)."""
    if path == "direct" and not _kernels.direct_conv_available():
        pytest.skip("needs AVX2 and FMA")
    if path == "blocks" and not winograd.PRODUCTS_KERNEL:
        pytest.skip("needs AVX-512")
    if path == "banded" and not threads.sgemm_address():
        pytest.skip("needs OpenBLAS's ILP64 cblas_sgemm")
    if path == "chunked":
        monkeypatch.setattr(winograd, "BANDED_MAX_CHANNELS", 0)
        monkeypatch.setattr(winograd, "CHUNK_FLOATS", 1)          # several chunks
        monkeypatch.setattr(winograd, "MIN_COLUMNS", 1)
    rng = np.random.default_rng(c * 10 + f)
    layer = ConvolutionalLayer((c, size, size), filters=f, size=3, stride=1, pad=1,
                               batch_normalize=True, activation=act)
    randomise(layer, rng)
    layer.bn.scales[::2] *= -1
    pool = MaxpoolLayer(layer.out_shape, size=2, stride=2)
    assert pool.tiles
    x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
    fused = layer.forward_pooled(x)
    assert fused is not None
    assert {"direct": layer.use_direct, "blocks": layer._uses_weight_blocks()}.get(path, True)
    assert np.array_equal(fused, pool.forward(layer.forward(x)))


def test_networks_pool_in_the_convolutions_at_inference():
    """Network.forward runs each convolution + 2x2/2 maxpool pair as one at inference (not
    a pair whose convolution output something else reads, not in training): the bits of
    running every layer (forward_all)."""
    net = Network.from_cfg(MINI_CFG.replace("width=20", "width=24").replace(
        "height=18", "height=16"))
    rng = np.random.default_rng(4)
    for layer in net.layers:
        if isinstance(layer, ConvolutionalLayer):
            randomise(layer, rng)
    assert net._pooled_pairs == {1}
    x = rng.standard_normal((2, 3, 16, 24)).astype(np.float32)
    calls = []
    original = ConvolutionalLayer.forward_pooled

    def spy(self, inp):
        out = original(self, inp)
        calls.append((self, out is not None))
        return out

    ConvolutionalLayer.forward_pooled = spy
    try:
        y = net.forward(x)
    finally:
        ConvolutionalLayer.forward_pooled = original
    assert calls == [(net.layers[1], True)]
    assert np.array_equal(y, net.forward_all(x)[-1])
