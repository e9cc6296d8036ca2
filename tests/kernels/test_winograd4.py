"""Winograd F(4x4, 3x3) (filters4, convolve4, input_gradient4, weight_gradient4): the same
function as the literal float64 sums, on odd and even sizes, with the fused epilogue and
maxpool; each transform matrix broken in one coefficient is caught."""
import numpy as np
import pytest

from convolution_reference import (close4, direct_conv, direct_input_grad, direct_weight_grad,
                                   randomise)
from gradcheck import check_layer
from yolo9000.kernels import core, winograd
from yolo9000.layers import convolutional
from yolo9000.layers.convolutional import ConvolutionalLayer



SHAPES = [(1, 1, 1, 1, 1), (2, 3, 5, 7, 5), (3, 8, 6, 4, 9), (1, 16, 4, 2, 3),
          (2, 9, 7, 26, 26), (1, 5, 2, 1, 6), (2, 16, 8, 13, 13), (1, 12, 10, 18, 10)]


def case(n, c, f, h, w):
    rng = np.random.default_rng(n * 1000 + c * 100 + h * 10 + w)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    dz = rng.standard_normal((n, f, h, w)).astype(np.float32)
    return x, wt, dz


def forward(x, wt, scale=None, bias=None, act=0, pool=False):
    n, _, h, w = x.shape
    f = wt.shape[0]
    scale = np.ones(f, np.float32) if scale is None else scale
    bias = np.zeros(f, np.float32) if bias is None else bias
    shape = (n, f, h // 2, w // 2) if pool else (n, f, h, w)
    z = np.full(shape, np.nan, np.float32)
    return winograd.convolve4(x, winograd.filters4(wt), z, scale, bias, act, pool=pool)


@pytest.mark.parametrize("n,c,f,h,w", SHAPES)
def test_f4_forward_matches_direct_sum(n, c, f, h, w):
    """Sizes not multiples of 4 (the last tile partly outside), 1x1, non-square."""
    x, wt, _ = case(n, c, f, h, w)
    assert close4(forward(x, wt), direct_conv(x, wt))


@pytest.mark.parametrize("n,c,f,h,w", SHAPES)
def test_f4_input_gradient_matches_direct_sum(n, c, f, h, w):
    x, wt, dz = case(n, c, f, h, w)
    dx = np.full(x.shape, np.nan, np.float32)
    winograd.input_gradient4(dz, winograd.flipped_filters4(wt), dx)
    assert close4(dx, direct_input_grad(dz, wt))


@pytest.mark.parametrize("n,c,f,h,w", SHAPES)
def test_f4_weight_gradient_adds_the_direct_sum(n, c, f, h, w):
    x, wt, dz = case(n, c, f, h, w)
    before = np.random.default_rng(1).standard_normal(wt.shape).astype(np.float32)
    dw = before.copy()
    winograd.weight_gradient4(x, dz, dw)
    assert close4(dw - before, direct_weight_grad(x, dz))


@pytest.mark.parametrize("n,c,f,h,w", SHAPES)
def test_f4_weight_gradient_writes_over_a_lazily_zero_gradient(n, c, f, h, w):
    x, wt, dz = case(n, c, f, h, w)
    dw = np.full(wt.shape, np.nan, np.float32)
    winograd.weight_gradient4(x, dz, dw, accumulate=False)
    assert close4(dw, direct_weight_grad(x, dz))


def test_f4_epilogue_and_fused_maxpool():
    """act(scale·conv + bias) (leaky), and its 2x2/2 maxpool on sizes 0 and 2 mod 4."""
    x, wt, _ = case(2, 6, 5, 14, 12)
    rng = np.random.default_rng(8)
    a = rng.uniform(0.5, 2, 5).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    ref = a[None, :, None, None] * direct_conv(x, wt) + b[None, :, None, None]
    ref = np.where(ref > 0, ref, 0.1 * ref)
    assert close4(forward(x, wt, a, b, 1), ref)
    pooled = ref.reshape(2, 5, 7, 2, 6, 2).max(axis=(3, 5))
    assert close4(forward(x, wt, a, b, 1, pool=True), pooled)


@pytest.mark.parametrize("chunk_floats,min_columns", [(1, 1), (4000, 8), (10**9, 512)])
def test_f4_chunks_give_the_same_result(monkeypatch, chunk_floats, min_columns):
    """Tile-row bands of one image, several images in one product, one chunk: all three
    functions; several weight-gradient chunks add up to what dw held plus their sum."""
    monkeypatch.setattr(winograd, "CHUNK_FLOATS", chunk_floats)
    monkeypatch.setattr(winograd, "MIN_COLUMNS", min_columns)
    x, wt, dz = case(3, 4, 5, 17, 14)
    assert close4(forward(x, wt), direct_conv(x, wt))
    dx = winograd.input_gradient4(dz, winograd.flipped_filters4(wt), np.empty_like(x))
    assert close4(dx, direct_input_grad(dz, wt))
    dw = np.full(wt.shape, 0.5, np.float32)
    winograd.weight_gradient4(x, dz, dw)
    assert close4(dw - np.float32(0.5), direct_weight_grad(x, dz))


@pytest.mark.parametrize("n,c,f,h,w,band_floats", [
    (1, 3, 5, 17, 14, 1), (2, 8, 6, 26, 26, 1), (1, 16, 32, 40, 36, 2**15),
    (3, 2, 7, 9, 30, 3000), (1, 32, 64, 50, 52, 2**17), (1, 64, 128, 30, 28, 2**16),
])
def test_f4_bands_match_direct_sum(monkeypatch, n, c, f, h, w, band_floats):
    """convolve4 by bands (banded4): one tile row a band, several, a last band shorter than
    the others, sizes 0..3 mod 4, batches; the epilogue (leaky) and the fused maxpool on even
    sizes; the weight gradient by the same bands (banded_weight_gradient4); against the
    float64 sums (the weight gradient's channel rule lifted: the kernel is under test here)."""
    monkeypatch.setattr(winograd, "BAND4_FLOATS", band_floats)
    monkeypatch.setattr(winograd, "BANDED4_WEIGHT_MAX_CHANNELS", 10**9)
    x, wt, _ = case(n, c, f, h, w)
    rng = np.random.default_rng(c + f)
    a = rng.uniform(0.5, 2, f).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    ref = a[None, :, None, None] * direct_conv(x, wt) + b[None, :, None, None]
    ref = np.where(ref > 0, ref, 0.1 * ref)
    u = winograd.filters4(wt)
    z = np.full((n, f, h, w), np.nan, np.float32)
    assert winograd.banded4(x, u, z, a, b, core.ACT_LEAKY)
    assert close4(z, ref)
    if h % 2 == 0 and w % 2 == 0:
        pooled = np.full((n, f, h // 2, w // 2), np.nan, np.float32)
        assert winograd.banded4(x, u, pooled, a, b, core.ACT_LEAKY, pool=True)
        assert close4(pooled, ref.reshape(n, f, h // 2, 2, w // 2, 2).max(axis=(3, 5)))
    # the weight gradient by bands, added to what dw held
    dz = rng.standard_normal((n, f, h, w)).astype(np.float32)
    before = rng.standard_normal(wt.shape).astype(np.float32)
    dw = before.copy()
    assert winograd.banded_weight_gradient4(x, dz, dw)
    assert close4(dw - before, direct_weight_grad(x, dz))


def test_f4_bands_take_few_channels_only():
    """The forward (and input gradient) up to 192 input + output channels, the weight
    gradient up to 96, and enough bands for the threads; otherwise banded4 and
    banded_weight_gradient4 decline, writing nothing, and the chunks take the layer."""
    rng = np.random.default_rng(3)
    for c, f, n, h in [(128, 256, 1, 52), (96, 97, 1, 104), (16, 32, 1, 12)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        z = np.full((n, f, h, h), np.nan, np.float32)
        u = winograd.filters4(rng.standard_normal((f, c, 3, 3)).astype(np.float32))
        assert not winograd.banded4(x, u, z, np.ones(f, np.float32), np.zeros(f, np.float32), 0)
        assert np.isnan(z).all()
    for c, f in [(32, 64), (64, 128)]:
        x = rng.standard_normal((1, c, 104, 104)).astype(np.float32)
        u = winograd.filters4(rng.standard_normal((f, c, 3, 3)).astype(np.float32))
        z = np.empty((1, f, 104, 104), np.float32)
        assert winograd.banded4(x, u, z, np.ones(f, np.float32), np.zeros(f, np.float32), 0)
        dw = np.zeros((f, c, 3, 3), np.float32)       # the gradient is added to it
        dz = rng.standard_normal((1, f, 104, 104)).astype(np.float32)
        assert winograd.banded_weight_gradient4(x, dz, dw) == (c + f <= 96)
        assert dw.any() == (c + f <= 96)


def test_f4_chunks_cover_every_tile_once():
    for n, h, w, c, f in [(1, 416, 416, 128, 256), (8, 26, 26, 512, 256), (3, 7, 5, 2, 2)]:
        th, _ = winograd.tile_grid(h, w, 4)
        seen = np.zeros((n, th), int)
        for n0, n1, r0, r1 in winograd.chunks(n, h, w, c, f, 4):
            seen[n0:n1, r0:r1] += 1
        assert (seen == 1).all()


@pytest.mark.parametrize("band_floats", [None, 1])
@pytest.mark.parametrize("matrix,row,col", [("F4_BT", 1, 2), ("F4_BT", 5, 0), ("F4_G", 3, 1),
                                            ("F4_G", 0, 0), ("F4_AT", 2, 3), ("F4_AT", 3, 5)])
def test_a_broken_coefficient_is_caught(monkeypatch, matrix, row, col, band_floats):
    """Each transform (Bᵀ of the inputs, G of the filters, Aᵀ of the outputs and output
    gradients) with one coefficient changed by 1/8 (zeros too) no longer gives the
    convolution or its gradients: the tests above would fail. (Through the general loops,
    which read the matrices; the transforms with them in code are held against those loops
    below.) With band_floats, the forward and both gradients go by bands (one tile row
    each), which pass the matrices to the same loops."""
    monkeypatch.setattr(winograd, "F4_TRANSFORMS_IN_CODE", False)
    if band_floats is not None:
        monkeypatch.setattr(winograd, "BAND4_FLOATS", band_floats)
    broken = getattr(winograd, matrix).copy()
    broken[row, col] += 0.125
    monkeypatch.setattr(winograd, matrix, broken)
    x, wt, dz = case(2, 9, 7, 26, 26)
    dw = np.zeros(wt.shape, np.float32)
    winograd.weight_gradient4(x, dz, dw)
    dx = winograd.input_gradient4(dz, winograd.flipped_filters4(wt), np.empty_like(x))
    assert not close4(forward(x, wt), direct_conv(x, wt))
    assert not close4(dx, direct_input_grad(dz, wt))
    assert not close4(dw, direct_weight_grad(x, dz))


# The input and output transforms with Bᵀ and Aᵀ written into their code
# (csrc/winograd4_transforms.h), against the general loops over F4_BT and F4_AT: the same
# sums in another order, so equal to float32 rounding (measured up to 2.1e-7 of the largest
# value)
IN_CODE_TOLERANCE = 1e-6
# widths: one tile, the narrow AVX-512 input kernel's (up to 15: 1, 9, 13, 14, 15), the other
# AVX-512 kernel's partial block (16, 26x26, 52x52), a whole block of 16 tiles (64) and one
# more, two blocks and a partial one (70, 129)
TRANSFORM_SHAPES = [(1, 3, 1, 1), (2, 5, 7, 9), (1, 4, 13, 13), (1, 2, 6, 14), (2, 2, 11, 15),
                    (1, 2, 5, 16), (2, 3, 26, 26), (1, 2, 52, 52), (1, 2, 9, 64), (1, 3, 4, 61),
                    (1, 2, 5, 70), (2, 2, 6, 129)]


def agree(fast, reference):
    reference = np.asarray(reference, np.float64)
    return np.abs(fast - reference).max() <= IN_CODE_TOLERANCE * np.abs(reference).max()


def input_transforms(x, bt):
    """winograd4_input of every tile of x through bt (None: the Bᵀ in code)."""
    n, c, h, w = x.shape
    th, tw = winograd.tile_grid(h, w, 4)
    v = winograd.stacked(c, n * th * tw, planes=winograd.TILES4)
    v[:] = np.nan
    core.winograd4_input(x, 0, n, 0, th, bt, v)
    return v


def output_transforms(m, shape, at, act=1, pool=False):
    """winograd4_output of the tiles m of an (N, F, H, W) output through at (None: the Aᵀ in
    code), with a leaky epilogue."""
    n, f, h, w = shape
    th, _ = winograd.tile_grid(h, w, 4)
    rng = np.random.default_rng(f)
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    z = np.full((n, f, h // 2, w // 2) if pool else shape, np.nan, np.float32)
    core.winograd4_output(m, z, 0, n, 0, th, at, scale, bias, act, pool)
    return z


def tiles_of(shape, seed):
    n, c, h, w = shape
    th, tw = winograd.tile_grid(h, w, 4)
    m = winograd.stacked(c, n * th * tw, planes=winograd.TILES4)
    m[:] = np.random.default_rng(seed).standard_normal(m.shape).astype(np.float32)
    return m


@pytest.mark.parametrize("shape", TRANSFORM_SHAPES)
def test_input_transform_in_code_matches_the_general_loops(shape):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    fast = input_transforms(x, None)
    assert not np.isnan(fast).any()
    assert agree(fast, input_transforms(x, winograd.F4_BT))


@pytest.mark.parametrize("shape", TRANSFORM_SHAPES)
def test_output_transform_in_code_matches_the_general_loops(shape):
    m = tiles_of(shape, sum(shape))
    fast = output_transforms(m, shape, None)
    assert not np.isnan(fast).any()
    assert agree(fast, output_transforms(m, shape, winograd.F4_AT))
    n, f, h, w = shape
    if h % 2 == 0 and w % 2 == 0:
        assert agree(output_transforms(m, shape, None, pool=True),
                     output_transforms(m, shape, winograd.F4_AT, pool=True))


@pytest.mark.parametrize("row,col", [(0, 1), (1, 2), (3, 0), (4, 4), (5, 5), (2, 3)])
def test_input_transform_in_code_differs_from_a_broken_bt(row, col):
    """Bᵀ with one coefficient changed by 1/8 (zeros too) is told apart: a wrong coefficient
    in the code would fail the comparison above."""
    broken = winograd.F4_BT.copy()
    broken[row, col] += 0.125
    x = np.random.default_rng(3).standard_normal((2, 3, 26, 70)).astype(np.float32)
    assert not agree(input_transforms(x, None), input_transforms(x, broken))


@pytest.mark.parametrize("row,col", [(0, 0), (1, 4), (2, 3), (3, 5), (0, 5), (2, 1)])
def test_output_transform_in_code_differs_from_a_broken_at(row, col):
    broken = winograd.F4_AT.copy()
    broken[row, col] += 0.125
    shape = (2, 3, 26, 70)
    m = tiles_of(shape, 4)
    assert not agree(output_transforms(m, shape, None), output_transforms(m, shape, broken))


def output_grad_transforms(dz, at):
    """winograd4_output_grad of every tile of dz through at (None: the Aᵀ in code)."""
    n, f, h, w = dz.shape
    th, tw = winograd.tile_grid(h, w, 4)
    dm = winograd.stacked(f, n * th * tw, planes=winograd.TILES4)
    dm[:] = np.nan
    core.winograd4_output_grad(dz, 0, n, 0, th, at, dm)
    return dm


@pytest.mark.parametrize("shape", TRANSFORM_SHAPES)
def test_output_gradient_transform_in_code_matches_the_general_loops(shape):
    dz = np.random.default_rng(sum(shape) + 1).standard_normal(shape).astype(np.float32)
    fast = output_grad_transforms(dz, None)
    assert not np.isnan(fast).any()
    assert agree(fast, output_grad_transforms(dz, winograd.F4_AT))


@pytest.mark.parametrize("row,col", [(0, 0), (1, 4), (2, 3), (3, 5), (0, 5), (2, 1)])
def test_output_gradient_transform_in_code_differs_from_a_broken_at(row, col):
    broken = winograd.F4_AT.copy()
    broken[row, col] += 0.125
    dz = np.random.default_rng(5).standard_normal((2, 3, 26, 70)).astype(np.float32)
    assert not agree(output_grad_transforms(dz, None), output_grad_transforms(dz, broken))


def test_f4_matrices_hold_the_chosen_points():
    """Aᵀ's columns are the powers of the points 0, 1, -1, 2, -1/2 (and ∞): the choice the
    module's comment measured."""
    points = np.array([0, 1, -1, 2, -0.5])
    powers = np.stack([points ** i for i in range(4)])
    assert np.array_equal(winograd.F4_AT[:, :5], powers.astype(np.float32))
    assert np.array_equal(winograd.F4_AT[:, 5], [0, 0, 0, 1])


@pytest.fixture
def f4_layers(monkeypatch):
    """Layers of any channels and map take F(4x4, 3x3) (it is off by default)."""
    monkeypatch.setattr(winograd, "F4_ENABLED", True)
    monkeypatch.setattr(winograd, "F4_MIN_TILES", 0)
    monkeypatch.setattr(winograd, "BANDED_MAX_CHANNELS", 0)
    monkeypatch.setattr(winograd, "PRODUCTS_MAX_COLUMNS", 0)
    monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_TRAINING", 0)
    monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_TRAINING_DENSE", 0)
    monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_UNCACHED", 0)


def test_f4_takes_the_layers_it_was_measured_faster_on():
    """Maps of 49 tiles (26x26) and more, the few-channel ones too; not 13x13 (the products
    from weight blocks in inference, too many tiles half outside the map in training)."""
    for c, f, size in [(128, 256, 52), (256, 512, 26), (16, 32, 208), (64, 128, 104)]:
        layer = ConvolutionalLayer((c, size, size), filters=f, size=3, stride=1, pad=1)
        assert layer.use_winograd and layer._uses_f4(), (c, f, size)
    for c, f, size in [(512, 1024, 13), (256, 512, 13), (32, 32, 13), (64, 64, 24)]:
        layer = ConvolutionalLayer((c, size, size), filters=f, size=3, stride=1, pad=1)
        assert layer.use_winograd and not layer._uses_f4(), (c, f, size)


@pytest.mark.parametrize("bn,act,shape,batch", [
    (True, "leaky", (8, 13, 13), 1), (False, "linear", (9, 7, 5), 3), (True, "relu", (16, 4, 6), 2),
])
def test_layer_f4_equals_im2col(f4_layers, bn, act, shape, batch):
    """Inference (cached and uncached filters, the fused maxpool) and training forwards."""
    rng = np.random.default_rng(4)
    layer = ConvolutionalLayer(shape, filters=6, size=3, stride=1, pad=1,
                               batch_normalize=bn, activation=act)
    assert layer._uses_f4()
    randomise(layer, rng)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    for train, cache in ((False, True), (False, False), (True, False)):
        layer.use_winograd = True
        layer.set_winograd_cache(cache)
        fast = layer.forward(x, train=train)
        assert (layer._u is not None) == (cache and not train)
        assert layer._u is None or layer._u.shape[0] == winograd.TILES4
        layer.use_winograd = False
        slow = layer.forward(x, train=train)
        assert close4(fast, slow.astype(np.float64)), (train, cache)
    layer.use_winograd = True
    if shape[1] % 2 == 0 and shape[2] % 2 == 0:
        pooled = layer.forward_pooled(x)
        full = layer.forward(x)
        n, f, h, w = full.shape
        assert np.array_equal(pooled, full.reshape(n, f, h // 2, 2, w // 2, 2).max(axis=(3, 5)))


@pytest.mark.parametrize("bn,act,shape,filters,batch", [
    (True, "linear", (8, 5, 7), 8, 2), (False, "leaky", (9, 6, 6), 10, 1),
])
def test_f4_layer_gradients(f4_layers, bn, act, shape, filters, batch):
    """Training forward and backward (both gradients) through F(4x4, 3x3): finite
    differences at the tolerance of F(2x2, 3x3)'s check."""
    layer = ConvolutionalLayer(shape, filters=filters, size=3, stride=1, pad=1,
                               batch_normalize=bn, activation=act)
    assert layer._uses_f4()
    rng = np.random.default_rng(5)
    randomise(layer, rng)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    layer.forward(x, train=True)
    assert layer._winograd_backward(batch, True) == (True, True)
    params = ["weights", "biases"] + (["scales"] if bn else [])
    check_layer(layer, x, params=params, eps=3e-3)


def test_f4_backward_equals_im2col(f4_layers):
    shape, batch = (12, 9, 10), 3
    layer = ConvolutionalLayer(shape, filters=16, size=3, stride=1, pad=1, batch_normalize=True,
                               activation="leaky")
    rng = np.random.default_rng(16)
    randomise(layer, rng)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    dy = rng.standard_normal((batch, 16, 9, 10)).astype(np.float32)

    def gradients(through_winograd):
        layer.use_winograd = through_winograd
        layer.zero_grads()
        layer.forward(x, train=True)
        assert layer._uses_f4() == through_winograd
        dx = layer.backward(dy)
        return dx, layer.weight_grad.copy(), layer.bias_grad.copy(), layer.bn.scale_grad.copy()

    for fast, slow in zip(gradients(True), gradients(False)):
        assert close4(fast, slow.astype(np.float64))


def test_f4_without_cache_goes_through_f4_at_batch_1():
    """169 2x2 tiles, short of F(2x2, 3x3)'s 400 without a cache: F(4x4, 3x3) transforms its
    filters on the call instead of falling back to im2col (measured 13.7 ms against 18.2 at
    256 -> 512 channels, 26x26)."""
    layer = ConvolutionalLayer((32, 26, 26), filters=16, size=3, stride=1, pad=1)
    assert layer._uses_f4()
    layer.set_winograd_cache(False)
    assert layer._winograd_applies(1, False) == (True, False, False)
    layer.set_winograd_cache(True)
    assert layer._winograd_applies(1, False) == (True, True, False)


def test_f4_trains_the_layers_inference_takes_it_on(monkeypatch):
    """Training takes F(4x4, 3x3) wherever inference does, few channels too (their forward,
    input and weight gradients by bands): forward, weight and input gradients."""
    for c, f, size in [(16, 32, 32), (32, 64, 48), (32, 64, 104), (16, 32, 208), (64, 128, 32),
                       (128, 256, 52)]:
        layer = ConvolutionalLayer((c, size, size), filters=f, size=3, stride=1, pad=1)
        assert layer._uses_f4(), (c, f, size)
    calls = []
    for name in ("convolve", "convolve4", "weight_gradient", "weight_gradient4",
                 "input_gradient", "input_gradient4", "banded4", "banded_weight_gradient4"):
        def spy(*args, _real=getattr(winograd, name), _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)
        monkeypatch.setattr(winograd, name, spy)
    rng = np.random.default_rng(17)
    layer = ConvolutionalLayer((16, 32, 32), filters=32, size=3, stride=1, pad=1,
                               batch_normalize=True, activation="leaky")
    x = rng.standard_normal((4, 16, 32, 32)).astype(np.float32)
    layer.forward(x, train=True)
    layer.backward(rng.standard_normal((4, 32, 32, 32)).astype(np.float32))
    # (input_gradient4 is convolve4 with the flipped filters; each goes by bands)
    assert calls == ["convolve4", "banded4", "weight_gradient4", "banded_weight_gradient4",
                     "input_gradient4", "convolve4", "banded4"]
    calls.clear()
    layer.forward(x[:1])
    assert calls == ["convolve4", "banded4"]


@pytest.mark.skipif(not winograd.PLANES_KERNEL, reason="the planes kernel needs AVX-512")
def test_f4_layer_of_few_columns_multiplies_through_the_planes_kernel(monkeypatch):
    """A 26x26 F(4x4, 3x3) layer of many channels (chunked, 49 columns at batch 1) takes the
    planes kernel, batch 8's 392 columns BLAS; both within the tolerance of the float64
    convolution, and of the BLAS products at batch 1."""
    rng = np.random.default_rng(12)
    c, f = 160, 96
    x = rng.standard_normal((8, c, 26, 26)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    a = rng.uniform(0.5, 2, f).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    u = winograd.filters4(wt)
    calls = []
    real = core.winograd_products_planes
    monkeypatch.setattr(core, "winograd_products_planes",
                        lambda *args: calls.append(args[1].shape[2]) or real(*args))
    ref = a[None, :, None, None] * direct_conv(x[:1], wt) + b[None, :, None, None]
    z1 = winograd.convolve4(x[:1], u, np.empty((1, f, 26, 26), np.float32), a, b, 0)
    assert calls == [49] and close4(z1, ref)
    z8 = winograd.convolve4(x, u, np.empty((8, f, 26, 26), np.float32), a, b, 0)
    assert calls == [49] and close4(z8[:1], ref)
    monkeypatch.setattr(winograd, "PLANES_MAX_COLUMNS", 0)
    through_blas = winograd.convolve4(x[:1], u, np.empty((1, f, 26, 26), np.float32), a, b, 0)
    assert calls == [49] and close4(z1, through_blas.astype(np.float64))
