"""Gradient checks and semantics of every layer type (region: see test_region.py)."""
import numpy as np
import pytest

from gradcheck import check_layer
from yolo9000.layers.batchnorm import BatchNormLayer
from yolo9000.layers.avgpool import AvgpoolLayer
from yolo9000.layers.softmax import SoftmaxLayer
from yolo9000.layers.convolutional import ConvolutionalLayer
from yolo9000.layers.maxpool import MaxpoolLayer
from yolo9000.layers.reorg import ReorgLayer
from yolo9000.layers.route import RouteLayer


def randomise(layer, rng):
    for name, p in layer.params.items():
        if name == "rolling_variance":
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        elif name == "scales":
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        else:
            p[...] = rng.standard_normal(p.shape) * 0.3


@pytest.mark.parametrize("size,stride,pad,bn,act,shape,batch", [
    (3, 1, 1, True, "leaky", (3, 7, 5), 2),
    (3, 2, 1, True, "leaky", (4, 9, 7), 2),
    (3, 2, 1, False, "linear", (3, 7, 9), 1),
    (1, 1, 0, True, "leaky", (5, 5, 3), 3),
    (1, 1, 0, False, "logistic", (4, 3, 5), 2),
    (2, 2, 0, False, "relu", (3, 6, 5), 2),
    (5, 1, 1, False, "linear", (2, 5, 7), 1),
])
def test_convolutional_gradients(size, stride, pad, bn, act, shape, batch):
    layer = ConvolutionalLayer(shape, filters=4, size=size, stride=stride, pad=pad,
                               batch_normalize=bn, activation=act)
    # Finite differences are meaningless across the kink of leaky/relu: draw inputs until no
    # pre-activation lies within 0.02 of it (the analytic gradient is not affected by this).
    for seed in range(1, 50):
        rng = np.random.default_rng(seed)
        randomise(layer, rng)
        x = rng.standard_normal((batch,) + shape).astype(np.float32)
        linear = ConvolutionalLayer(shape, filters=4, size=size, stride=stride, pad=pad,
                                    batch_normalize=bn, activation="linear")
        for name, p in layer.params.items():
            linear.params[name][...] = p
        if act not in ("leaky", "relu") or np.abs(linear.forward(x, train=True)).min() > 0.02:
            break
    params = ["weights", "biases"] + (["scales"] if bn else [])
    check_layer(layer, x, params=params, eps=3e-3, seed=seed)


def test_convolution_matches_direct_sum():
    """im2col + GEMM against a literal 7-nested-loop convolution (stride 2, padding 1)."""
    rng = np.random.default_rng(2)
    layer = ConvolutionalLayer((2, 5, 6), filters=3, size=3, stride=2, pad=1, activation="linear")
    randomise(layer, rng)
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
    y = layer.forward(x)
    f, oh, ow = layer.out_shape
    ref = np.zeros((f, oh, ow))
    for o in range(f):
        for i in range(oh):
            for j in range(ow):
                acc = layer.biases[o]
                for c in range(2):
                    for a in range(3):
                        for b in range(3):
                            r, s = i * 2 + a - 1, j * 2 + b - 1
                            if 0 <= r < 5 and 0 <= s < 6:
                                acc += layer.weights[o, c, a, b] * x[0, c, r, s]
                ref[o, i, j] = acc
    assert (oh, ow) == (3, 3)
    np.testing.assert_allclose(y[0], ref, rtol=1e-5, atol=1e-5)


def test_batchnorm_training_statistics_and_inference_formula():
    rng = np.random.default_rng(3)
    layer = ConvolutionalLayer((2, 4, 4), filters=3, size=1, batch_normalize=True, activation="linear")
    randomise(layer, rng)
    x = rng.standard_normal((5, 2, 4, 4)).astype(np.float32)
    z = np.einsum("fc,nchw->nfhw", layer.weights[:, :, 0, 0].astype(np.float64), x)
    mean = z.mean(axis=(0, 2, 3))
    var = z.var(axis=(0, 2, 3), ddof=1)            # darknet: unbiased variance
    rm0, rv0 = layer.bn.rolling_mean.copy(), layer.bn.rolling_variance.copy()
    y = layer.forward(x, train=True)
    xhat = (z - mean[None, :, None, None]) / (np.sqrt(var)[None, :, None, None] + 1e-6)
    expected = xhat * layer.bn.scales[None, :, None, None] + layer.biases[None, :, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bn.rolling_mean, .99 * rm0 + .01 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bn.rolling_variance, .99 * rv0 + .01 * var, rtol=1e-5, atol=1e-6)
    y = layer.forward(x, train=False)
    rm, rv = layer.bn.rolling_mean[None, :, None, None], layer.bn.rolling_variance[None, :, None, None]
    expected = ((z - rm) / (np.sqrt(rv) + 1e-6) * layer.bn.scales[None, :, None, None]
                + layer.biases[None, :, None, None])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)



@pytest.mark.parametrize("hw", [(24, 24), (13, 13)])
def test_pointwise_inference_image_by_image_or_side_by_side(monkeypatch, hw):
    """A 1x1 convolution's inference at batch 3: maps of 512 positions or more multiply image
    by image, smaller ones side by side (conv_layer.POINTWISE_IMAGE_POSITIONS); either way
    darknet's formula (float64 sums, rolling statistics, leaky), image by image each image's
    bits alone; the other grouping forced gives the same within the tolerance."""
    from yolo9000.layers import convolutional as conv_layer
    rng = np.random.default_rng(9)
    layer = ConvolutionalLayer((40, *hw), filters=24, size=1, batch_normalize=True,
                               activation="leaky")
    randomise(layer, rng)
    x = rng.standard_normal((3, 40, *hw)).astype(np.float32)
    z = np.einsum("fc,nchw->nfhw", layer.weights[:, :, 0, 0].astype(np.float64), x)
    rm = layer.bn.rolling_mean[None, :, None, None].astype(np.float64)
    rv = layer.bn.rolling_variance[None, :, None, None].astype(np.float64)
    ref = ((z - rm) / (np.sqrt(rv) + 1e-6) * layer.bn.scales[None, :, None, None]
           + layer.biases[None, :, None, None])
    ref = np.where(ref > 0, ref, 0.1 * ref)
    by_image = hw[0] * hw[1] >= conv_layer.POINTWISE_IMAGE_POSITIONS
    groups = []
    grouping = layer._chunks
    monkeypatch.setattr(layer, "_chunks", lambda n: groups.append(n) or grouping(n))
    y = layer.forward(x)
    assert groups == ([] if by_image else [3])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    if by_image:
        assert all(np.array_equal(y[i], layer.forward(x[i:i + 1])[0]) for i in range(3))
    monkeypatch.setattr(conv_layer, "POINTWISE_IMAGE_POSITIONS", 10**9 if by_image else 1)
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-5, atol=1e-5)

def test_standalone_batchnorm_gradients():
    rng = np.random.default_rng(4)
    layer = BatchNormLayer((3, 5, 3))
    randomise(layer, rng)
    x = rng.standard_normal((2, 3, 5, 3)).astype(np.float32)
    check_layer(layer, x, params=["scales", "biases"])


@pytest.mark.parametrize("size,stride,shape,out_hw", [
    (2, 2, (3, 8, 6), (4, 3)),
    (2, 2, (2, 7, 5), (4, 3)),     # odd: the padded tap on the right/bottom is ignored
    (2, 1, (2, 5, 5), (5, 5)),     # darknet's size=2 stride=1 keeps the size
    (3, 2, (2, 7, 9), (4, 5)),
])
def test_maxpool_shapes_and_gradients(size, stride, shape, out_hw):
    rng = np.random.default_rng(5)
    layer = MaxpoolLayer(shape, size=size, stride=stride)
    assert layer.out_shape[1:] == out_hw
    x = rng.standard_normal((2,) + shape).astype(np.float32)
    check_layer(layer, x, eps=1e-3)


def test_maxpool_matches_darknet_definition():
    rng = np.random.default_rng(6)
    shape = (2, 5, 7)
    layer = MaxpoolLayer(shape, size=3, stride=2)          # padding defaults to 2, offset −1
    x = rng.standard_normal((1,) + shape).astype(np.float32)
    y = layer.forward(x)
    c, oh, ow = layer.out_shape
    for k in range(c):
        for i in range(oh):
            for j in range(ow):
                window = [x[0, k, r, s] for r in range(i * 2 - 1, i * 2 + 2)
                          for s in range(j * 2 - 1, j * 2 + 2) if 0 <= r < 5 and 0 <= s < 7]
                assert y[0, k, i, j] == max(window)


def darknet_reorg_reference(x, stride):
    """A literal transcription of darknet's reorg index arithmetic (forward=0), flat buffers."""
    n, c, h, w = x.shape
    out_c = c // (stride * stride)
    src = x.reshape(-1)
    dst = np.empty_like(src)
    for b in range(n):
        for k in range(c):
            for j in range(h):
                for i in range(w):
                    in_index = i + w * (j + h * (k + c * b))
                    c2 = k % out_c
                    offset = k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
                    dst[in_index] = src[out_index]
    return dst.reshape(n, c * stride * stride, h // stride, w // stride)


def test_reorg_matches_darknet_index_arithmetic():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 8, 6, 4)).astype(np.float32)
    layer = ReorgLayer((8, 6, 4), stride=2)
    np.testing.assert_array_equal(layer.forward(x), darknet_reorg_reference(x, 2))


def test_reorg_backward_is_adjoint():
    rng = np.random.default_rng(8)
    layer = ReorgLayer((12, 6, 10), stride=2)
    x = rng.standard_normal((3, 12, 6, 10)).astype(np.float32)
    y = rng.standard_normal((3,) + layer.out_shape).astype(np.float32)
    lhs = np.sum(layer.forward(x).astype(np.float64) * y)
    rhs = np.sum(x.astype(np.float64) * layer.backward(y))
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))
    check_layer(layer, x, eps=1e-2)


def test_route_concatenates_and_splits_gradients():
    rng = np.random.default_rng(9)
    layer = RouteLayer([(2, 3, 5), (4, 3, 5)], sources=[0, 1])
    a = rng.standard_normal((2, 2, 3, 5)).astype(np.float32)
    b = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    y = layer.forward([a, b])
    assert layer.out_shape == (6, 3, 5)
    np.testing.assert_array_equal(y[:, :2], a)
    np.testing.assert_array_equal(y[:, 2:], b)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    da, db = layer.backward(dy)
    np.testing.assert_array_equal(da, dy[:, :2])
    np.testing.assert_array_equal(db, dy[:, 2:])
    with pytest.raises(ValueError):
        RouteLayer([(2, 3, 5), (2, 4, 5)], sources=[0, 1])


def test_avgpool_and_softmax_gradients():
    rng = np.random.default_rng(10)
    check_layer(AvgpoolLayer((3, 5, 7)), rng.standard_normal((2, 3, 5, 7)), eps=1e-2)
    check_layer(SoftmaxLayer((6, 1, 1)), rng.standard_normal((2, 6, 1, 1)), eps=1e-2)
    check_layer(SoftmaxLayer((6, 3, 1), groups=2), rng.standard_normal((2, 6, 3, 1)), eps=1e-2)


def test_tree_softmax_values_and_gradient():
    from yolo9000.model.wordtree import WordTree
    # groups of sizes 2 (roots), 3, 1 (a singleton: always 1), 2 along the channels
    tree = WordTree([-1, -1, 0, 0, 0, 1, 2, 2])
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 8, 3, 1)).astype(np.float32) * 2
    for temperature in (1.0, 2.5):
        layer = SoftmaxLayer((8, 3, 1), temperature=temperature, tree=tree)
        y = layer.forward(x)
        for lo, hi in ((0, 2), (2, 5), (6, 8)):
            e = np.exp(x[:, lo:hi].astype(np.float64) / temperature)
            np.testing.assert_allclose(y[:, lo:hi], e / e.sum(axis=1, keepdims=True), rtol=1e-5)
        np.testing.assert_array_equal(y[:, 5], 1)
        check_layer(layer, x, eps=1e-2)
    with pytest.raises(ValueError, match="tree has 8 nodes but the input has 9 channels"):
        SoftmaxLayer((9, 1, 1), tree=tree)


def test_resize_keeps_weights():
    layer = ConvolutionalLayer((3, 32, 32), filters=4, size=3, stride=2, pad=1, batch_normalize=True)
    w = layer.weights
    layer.resize((3, 64, 48))
    assert layer.out_shape == (4, 32, 24)
    assert layer.weights is w


def test_batchnorm_statistics_one_pass_keeps_precision():
    """One pass of shifted sums: a mean far from zero does not cancel the variance away, and
    channels summed by different threads do not mix (several channels, uneven sizes)."""
    from yolo9000.kernels import core
    rng = np.random.default_rng(7)
    x = (1000 + rng.standard_normal((3, 7, 1001)) * np.arange(1, 8)[None, :, None] * 1e-2)
    x = x.astype(np.float32)
    mean, var = np.empty(7), np.empty(7)
    core.batchnorm_statistics(x, mean, var)
    ref = x.astype(np.float64).transpose(1, 0, 2).reshape(7, -1)
    np.testing.assert_allclose(mean, ref.mean(axis=1), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(var, ref.var(axis=1, ddof=1), rtol=1e-6)
