"""Winograd for few tiles: the products with the filters transformed inside them from weight
blocks (winograd_products.pxi, the AVX-512 kernel of winograd_x86.h)."""
import numpy as np
import pytest

from convolution_reference import close, close4, direct_conv, direct_input_grad, randomise
from yolo9000.kernels import core, winograd
from yolo9000.layers.convolutional import ConvolutionalLayer


needs_products_kernel = pytest.mark.skipif(not winograd.PRODUCTS_KERNEL,
                                           reason="the products kernel needs AVX-512")


@needs_products_kernel
@pytest.mark.parametrize("n,c,f,h,w", [
    (1, 5, 1, 3, 3), (1, 7, 17, 13, 13), (2, 3, 33, 5, 9), (1, 70, 64, 7, 30), (3, 2, 45, 6, 6),
    (1, 1, 96, 28, 2), (1, 300, 70, 3, 4),
])
def test_products_from_weight_blocks_equal_the_direct_sum(monkeypatch, n, c, f, h, w):
    """Forward and input gradient through WeightBlocks: blocks of 32 rows with a partial last
    one (1, 17, 33, 45, 70 rows), jobs of two blocks and an odd one, reductions over several
    chunks (300 channels), passes of every width up to 14, images in groups side by side;
    against the float64 direct sums (the 13x13 forward through F(4x4, 3x3): its tolerance)."""
    rng = np.random.default_rng(f * 7 + c)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    dz = rng.standard_normal((n, f, h, w)).astype(np.float32)
    a = rng.uniform(0.5, 2, f).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    ref = a[None, :, None, None] * direct_conv(x, wt) + b[None, :, None, None]
    blocks = winograd.WeightBlocks(wt)
    flipped = winograd.WeightBlocks(wt, transposed=True)
    assert blocks.data.shape == (-(-f // 32), c, 9, 32)
    assert flipped.data.shape == (-(-c // 32), f, 9, 32)
    for group_columns in (10**9, 1):        # all images in one product, or one by one
        monkeypatch.setattr(winograd, "PRODUCTS_MAX_COLUMNS", group_columns)
        z = np.full((n, f, h, w), np.nan, np.float32)
        winograd.convolve(x, blocks, z, a, b, 0)
        assert (close4 if winograd.f4_from_weights_applies(h, w) else close)(z, ref)
        dx = np.full(x.shape, np.nan, np.float32)
        winograd.input_gradient(dz, flipped, dx)
        assert close(dx, direct_input_grad(dz, wt))


@needs_products_kernel
@pytest.mark.parametrize("n,c,f,h,w", [
    (1, 5, 1, 3, 3), (1, 7, 17, 13, 13), (2, 3, 33, 5, 9), (1, 70, 64, 7, 30), (3, 2, 45, 6, 6),
    (1, 1, 96, 28, 2), (1, 300, 70, 3, 4), (2, 128, 48, 13, 13),
])
def test_products_from_the_weights_in_place_equal_the_direct_sum(monkeypatch, n, c, f, h, w):
    """The forward from the (F, C, 3, 3) weights themselves: filters past a 16-row half
    (1, 17, 33, 45, 70), channels past a group of 16 (1, 2, 3, 5, 7, 70, 300: masked loads)
    and over several chunks; against the float64 direct sums, and bit for bit the forward
    from WeightBlocks (the same transforms and sums, only the taps read another way)."""
    rng = np.random.default_rng(f * 5 + c)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    a = rng.uniform(0.5, 2, f).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    ref = a[None, :, None, None] * direct_conv(x, wt) + b[None, :, None, None]
    for group_columns in (10**9, 1):
        monkeypatch.setattr(winograd, "PRODUCTS_MAX_COLUMNS", group_columns)
        z = np.full((n, f, h, w), np.nan, np.float32)
        winograd.convolve(x, wt, z, a, b, 0)
        assert (close4 if winograd.f4_from_weights_applies(h, w) else close)(z, ref)
        from_blocks = np.full((n, f, h, w), np.nan, np.float32)
        winograd.convolve(x, winograd.WeightBlocks(wt), from_blocks, a, b, 0)
        assert np.array_equal(z, from_blocks)
        # weights in another memory order (an assigned layer.weights) are read as well
        other_order = np.full((n, f, h, w), np.nan, np.float32)
        winograd.convolve(x, np.asfortranarray(wt), other_order, a, b, 0)
        assert np.array_equal(z, other_order)


@needs_products_kernel
@pytest.mark.parametrize("n,c,f,h,w", [
    (1, 7, 17, 13, 13), (2, 70, 33, 11, 11), (3, 5, 64, 14, 15), (1, 130, 96, 13, 13),
    (2, 33, 1, 16, 12),
])
def test_f4_from_weights_equals_f4_from_its_matrices(monkeypatch, n, c, f, h, w):
    """F(4x4, 3x3) with the filters transformed inside the products (G in code,
    winograd_x86.h) against convolve4 from filters4 (G the F4_G matrix, general loops): the
    same function, to F(4x4, 3x3)'s rounding; from blocks and in place the same bits, and a
    batch the bits of its images one by one."""
    monkeypatch.setattr(winograd, "F4_TRANSFORMS_IN_CODE", False)
    rng = np.random.default_rng(f * 3 + c + h)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    a = rng.uniform(0.5, 2, f).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    assert winograd.f4_from_weights_applies(h, w)
    matrices = np.full((n, f, h, w), np.nan, np.float32)
    winograd.convolve4(x, winograd.filters4(wt), matrices, a, b, 1)
    in_place = np.full((n, f, h, w), np.nan, np.float32)
    winograd.convolve(x, wt, in_place, a, b, 1)
    from_blocks = np.full((n, f, h, w), np.nan, np.float32)
    winograd.convolve(x, winograd.WeightBlocks(wt), from_blocks, a, b, 1)
    assert np.array_equal(in_place, from_blocks)
    assert close4(in_place, matrices.astype(np.float64))
    one_by_one = np.full((n, f, h, w), np.nan, np.float32)
    for i in range(n):
        winograd.convolve(x[i:i + 1], wt, one_by_one[i:i + 1], a, b, 1)
    assert np.array_equal(in_place, one_by_one)


def test_f4_from_weights_takes_the_maps_it_was_measured_faster_on(monkeypatch):
    """11x11 to 20x20 (at least 9 tiles of 4x4, at most 0.75x F(2x2, 3x3)'s products); not
    4x4, 7x7, 9x9 (where it measured 1.05-1.61x F(2x2, 3x3)'s time at batch 1); off with the
    switch."""
    assert [s for s in range(1, 21) if winograd.f4_from_weights_applies(s, s)] == [
        11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    assert not winograd.f4_from_weights_applies(13, 9)
    monkeypatch.setattr(winograd, "F4_FROM_WEIGHTS", False)
    assert not winograd.f4_from_weights_applies(13, 13)


@needs_products_kernel
def test_products_in_place_refuse_other_weights():
    """Weights of another convolution, or an input gradient's (transposed) use, are refused:
    the kernel reads the weights as (F, C, 3, 3) of this forward only."""
    x = np.zeros((1, 5, 4, 4), np.float32)
    z = np.zeros((1, 36, 4, 4), np.float32)
    ones, zeros = np.ones(36, np.float32), np.zeros(36, np.float32)
    with pytest.raises(ValueError):
        winograd.convolve(x, np.zeros((36, 6, 3, 3), np.float32), z, ones, zeros, 0)
    with pytest.raises(ValueError):
        winograd.convolve(x, np.zeros((36, 5, 3, 3), np.float32), z, ones, zeros, 0,
                          transposed=True)


@needs_products_kernel
def test_weight_blocks_hold_each_weight_once_in_its_place():
    """WeightBlocks' layout, element by element, both ways round (zeros past the rows)."""
    rng = np.random.default_rng(2)
    wt = rng.standard_normal((37, 5, 3, 3)).astype(np.float32)
    blocks = winograd.WeightBlocks(wt).data
    for f in (0, 31, 32, 36):
        for c in (0, 4):
            assert np.array_equal(blocks[f // 32, c, :, f % 32], wt[f, c].reshape(9))
    assert not blocks[1, :, :, 5:].any()
    flipped = winograd.WeightBlocks(wt, transposed=True).data
    assert np.array_equal(flipped[0, 36, :, 4], wt[36, 4].reshape(9))
    assert not flipped[0, :, :, 5:].any()
    with pytest.raises(ValueError):
        winograd.convolve(np.zeros((1, 5, 4, 4), np.float32), winograd.WeightBlocks(wt),
                          np.zeros((1, 36, 4, 4), np.float32), np.ones(36, np.float32),
                          np.zeros(36, np.float32), 0)


@needs_products_kernel
def test_inference_uses_the_products_kernel_for_13x13_maps_at_any_batch():
    """A 13x13 layer of many channels caches WeightBlocks (the plan counts their bytes) and
    multiplies every batch through them in groups of images: a batch gives the bits of its
    images one by one, all equal to im2col's within F(4x4, 3x3)'s tolerance; with its cache
    off it reads the weights in place instead, the same bits."""
    rng = np.random.default_rng(11)
    layer = ConvolutionalLayer((96, 13, 13), filters=40, size=3, stride=1, pad=1,
                               batch_normalize=True, activation="leaky")
    randomise(layer, rng)
    assert layer.winograd_filter_bytes() == 4 * 64 * 96 * 9
    assert not ConvolutionalLayer((96, 26, 26), 40, 3, 1, 1)._uses_weight_blocks()      # 169 tiles
    x = rng.standard_normal((5, 96, 13, 13)).astype(np.float32)
    y = layer.forward(x)
    assert isinstance(layer._u, winograd.WeightBlocks)
    layer.set_winograd_cache(False)
    assert layer.inference_path(1) == "fp32 winograd"
    assert np.array_equal(layer.forward(x), y)
    assert layer._u is None
    assert all(np.array_equal(y[i], layer.forward(x[i:i + 1])[0]) for i in range(5))
    layer.use_winograd = False
    reference = layer.forward(x)
    assert close4(y, reference.astype(np.float64))


# -- the products of transformed filters on few columns (F(4x4, 3x3) at 26x26) ---------------
def _planes_scratch(columns):
    """A 64-byte aligned row of scratch per thread for winograd_products_planes."""
    per_thread = -(-core.winograd_planes_scratch_floats(columns) // 16) * 16
    threads = core.get_max_threads()
    flat = np.empty(threads * per_thread + 16, np.float32)
    start = (-(flat.ctypes.data // 4)) % 16
    return flat[start:start + threads * per_thread].reshape(threads, per_thread)


def _planes_case(planes, f, r, n, seed):
    rng = np.random.default_rng(seed)
    u = winograd.stacked(f, r, planes=planes)
    v = winograd.stacked(r, n, planes=planes)
    u[...] = rng.standard_normal(u.shape)
    v[...] = rng.standard_normal(v.shape)
    expected = np.einsum("kfr,krn->kfn", u.astype(np.float64), v.astype(np.float64))
    return u, v, expected


@pytest.mark.parametrize("planes,f,r,n", [
    (36, 512, 256, 49), (3, 17, 5, 1), (2, 33, 70, 14), (36, 100, 129, 98), (1, 64, 64, 6),
    (4, 130, 300, 13), (2, 8, 16, 100),
])
def test_planes_products_portable_twin_equals_float64_sums(planes, f, r, n):
    """The portable twin: every plane's product within float32 rounding of the float64 sums
    (rows past a job of 64 and a half one, reductions past chunks of 64 and of 16)."""
    u, v, expected = _planes_case(planes, f, r, n, f + r + n)
    m = winograd.stacked(f, n, planes=planes)
    m[...] = np.nan
    core.winograd_products_planes(u, v, m, _planes_scratch(n), True)
    bound = 4e-7 * r * np.abs(u).max() * np.abs(v).max()
    assert np.abs(m - expected).max() <= bound


@needs_products_kernel
@pytest.mark.parametrize("planes,f,r,n", [
    (36, 512, 256, 49), (3, 17, 5, 1), (2, 33, 70, 14), (36, 100, 129, 98), (1, 64, 64, 6),
    (4, 130, 300, 13), (2, 8, 16, 100), (2, 96, 64, 7),
])
def test_planes_products_kernel_gives_its_twins_bits(planes, f, r, n):
    """The AVX-512 kernel adds each sum's terms in the twin's order, one fused multiply-add
    each: the same bits, on rows past a 16-row quarter and a 32-row half (17, 33, 100, 130),
    reductions past a 16-float mask and over several chunks (5, 70, 129, 300), passes of
    every width."""
    u, v, expected = _planes_case(planes, f, r, n, 3 * f + r + n)
    kernel = winograd.stacked(f, n, planes=planes)
    twin = winograd.stacked(f, n, planes=planes)
    kernel[...] = np.nan
    twin[...] = np.nan
    core.winograd_products_planes(u, v, kernel, _planes_scratch(n))
    core.winograd_products_planes(u, v, twin, _planes_scratch(n), True)
    assert np.array_equal(kernel, twin)
    assert np.abs(kernel - expected).max() <= 4e-7 * r * np.abs(u).max() * np.abs(v).max()



def test_images_go_in_groups_of_one_size():
    """Groups of whole images all of one size, the largest up to the limit that divides the
    batch: batch 8 with room for 6 (13x13 through F(4x4, 3x3)) goes 4 + 4, not 6 + 2, which
    left one of two threads idle two thirds of the time."""
    assert winograd.image_groups(8, 6, 4) == [(0, 4, 0, 4), (4, 8, 0, 4)]
    assert winograd.image_groups(5, 6, 7) == [(0, 5, 0, 7)]
    assert winograd.image_groups(7, 3, 2) == [(a, a + 1, 0, 2) for a in range(7)]
    assert winograd.image_groups(3, 0, 1) == [(0, 1, 0, 1), (1, 2, 0, 1), (2, 3, 0, 1)]
