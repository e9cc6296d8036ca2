"""3x3 convolutions on maps of at most 2x2 (darknet-mini's last layers) through one dense
matrix of (filter, position) x (channel, position) (im2col.pxi's small_map_weights and
small_map_weight_grad, ConvolutionalLayer's dense path): the literal float64 sums, forward
and both gradients, in training and at inference."""
import numpy as np
import pytest

from convolution_reference import (close, direct_conv, direct_input_grad, direct_weight_grad,
                                   randomise)
from yolo9000.kernels import core
from yolo9000.layers.convolutional import ConvolutionalLayer


def literal_dense(w, pad, h, wd):
    """The dense matrix element by element, from the definition."""
    f, c, k, _ = w.shape
    p = h * wd
    out = np.zeros((f * p, c * p), np.float32)
    for fi in range(f):
        for ci in range(c):
            for py in range(h):
                for px in range(wd):
                    for qy in range(h):
                        for qx in range(wd):
                            out[fi * p + py * wd + px, ci * p + qy * wd + qx] = \
                                w[fi, ci, pad + qy - py, pad + qx - px]
    return out


@pytest.mark.parametrize("h,w", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_dense_matrix_and_its_fold(h, w):
    """small_map_weights puts each weight where the definition does; small_map_weight_grad
    gives each tap the sum of its pairs' entries (and 0 to taps no pair reaches: a 1x1 map's
    eight outer taps)."""
    rng = np.random.default_rng(h * 10 + w)
    weights = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    p = h * w
    dense = np.full((5 * p, 3 * p), np.nan, np.float32)
    core.small_map_weights(weights, 1, h, w, dense)
    assert np.array_equal(dense, literal_dense(weights, 1, h, w))
    d = rng.standard_normal((5 * p, 3 * p)).astype(np.float32)
    dw = np.full(weights.shape, np.nan, np.float32)
    core.small_map_weight_grad(d, 1, h, w, dw)
    expected = np.zeros(weights.shape)
    for fi in range(5):
        for ci in range(3):
            for py in range(h):
                for px in range(w):
                    for qy in range(h):
                        for qx in range(w):
                            expected[fi, ci, 1 + qy - py, 1 + qx - px] += \
                                d[fi * p + py * w + px, ci * p + qy * w + qx]
    assert np.allclose(dw, expected, rtol=1e-6, atol=1e-6)


def test_maps_too_large_for_the_kernel_are_refused():
    weights = np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(ValueError):
        core.small_map_weights(weights, 1, 3, 2, np.zeros((12, 12), np.float32))
    with pytest.raises(ValueError):
        core.small_map_weight_grad(np.zeros((12, 12), np.float32), 1, 2, 3, weights)
    assert ConvolutionalLayer((4, 2, 2), 3, 3, 1, 1)._dense_applies()
    assert not ConvolutionalLayer((4, 3, 2), 3, 3, 1, 1)._dense_applies()
    assert not ConvolutionalLayer((4, 2, 2), 3, 1, 1, 0)._dense_applies()      # pointwise
    assert not ConvolutionalLayer((4, 2, 2), 3, 3, 2, 1)._dense_applies()      # stride 2
    # a 9x9 "same" kernel reaches every pair of a 5x5 map, but 25 positions are more than the
    # kernels' tap table holds: im2col then
    assert core.SMALL_MAP_MAX_POSITIONS < 25
    assert not ConvolutionalLayer((4, 5, 5), 3, 9, 1, 1)._dense_applies()
    assert ConvolutionalLayer((4, 4, 4), 3, 7, 1, 1)._dense_applies()


@pytest.mark.parametrize("n,c,f,h,w", [(3, 9, 5, 2, 2), (2, 8, 9, 1, 1), (4, 16, 3, 1, 2),
                                       (64, 40, 70, 2, 2)])
def test_layer_on_small_maps_gives_the_literal_sums(n, c, f, h, w):
    """The layer's training forward (before batch norm: its z), its weight gradient added to
    what the gradient held, and its input gradient, against the float64 sums; inference
    through the same matrix (the Winograd cache off)."""
    rng = np.random.default_rng(n + c + f)
    layer = ConvolutionalLayer((c, h, w), filters=f, size=3, stride=1, pad=1,
                               batch_normalize=True, activation="leaky")
    randomise(layer, rng)
    assert layer._dense_applies()
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    layer.forward(x, train=True)
    assert layer._train_dense is not None          # the dense path, not Winograd or direct
    z = layer._z.reshape(n, f, h, w)
    assert close(z, direct_conv(x, layer.weights))
    dy = rng.standard_normal((n, f, h, w)).astype(np.float32)
    layer.zero_grads()
    before = rng.standard_normal(layer.weights.shape).astype(np.float32)
    layer.weight_grad[...] = before
    layer._weight_grad_is_zero = False
    dx = layer.backward(dy)
    # the gradient at the convolution's output, through batch norm and leaky, from the
    # im2col path on the same layer (its bits are im2col's business; the products here)
    g = np.empty((n, f, h * w), np.float32)
    layer.bn.backward(layer._z, layer._y, dy.reshape(n, f, -1), layer.biases, layer.act,
                      np.zeros(f, np.float32), g)
    g = g.reshape(n, f, h, w).astype(np.float64)
    assert close(layer.weight_grad - before, direct_weight_grad(x, g))
    assert close(dx, direct_input_grad(g, layer.weights))
    layer.set_winograd_cache(False)
    layer.use_winograd = False
    a, b = layer._inference_affine()
    ref = a[None, :, None, None] * direct_conv(x, layer.weights) + b[None, :, None, None]
    assert close(layer.forward(x), np.where(ref > 0, ref, 0.1 * ref))


def test_larger_kernels_on_maps_they_cover_equal_im2col(monkeypatch):
    """A 5x5 'same' kernel on a 3x3 map (every pair within reach): forward and both gradients
    equal im2col's (which multiplies the padding too) within float32 rounding."""
    rng = np.random.default_rng(21)
    layer = ConvolutionalLayer((10, 3, 3), filters=6, size=5, stride=1, pad=1,
                               activation="leaky")
    randomise(layer, rng)
    assert layer._dense_applies()
    x = rng.standard_normal((4, 10, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)

    def step():
        layer.zero_grads()
        y = layer.forward(x, train=True)
        return y, layer.backward(dy.copy()), layer.weight_grad.copy()

    dense = step()
    monkeypatch.setattr(ConvolutionalLayer, "_dense_applies", lambda self: False)
    reference = step()
    for got, want in zip(dense, reference):
        assert close(got, want.astype(np.float64))
