"""Winograd F(2x2, 3x3) convolutions (the transforms and the chunked products): the same
function as im2col + GEMM and as the literal sums, whatever the chunks and threads."""
import numpy as np
import pytest

from convolution_reference import (close, direct_conv, direct_input_grad, direct_weight_grad,
                                   randomise)
from gradcheck import check_layer
from yolo9000 import _kernels
from yolo9000.kernels import core, gemm, winograd
from yolo9000.layers import convolutional
from yolo9000.layers.convolutional import ConvolutionalLayer


@pytest.mark.parametrize("n,c,f,h,w", [
    (1, 1, 1, 1, 1), (1, 1, 3, 13, 13), (2, 3, 5, 7, 5), (3, 8, 6, 4, 9), (1, 16, 4, 2, 3),
    (2, 9, 7, 26, 26), (1, 5, 2, 1, 6),
])
def test_winograd_matches_direct_sum(n, c, f, h, w):
    """Odd and even sizes (13x13: a half-outside last tile), 1 channel, batches, non-square."""
    rng = np.random.default_rng(n * 1000 + c * 100 + h)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    z = np.full((n, f, h, w), np.nan, np.float32)
    winograd.convolve(x, winograd.filters(wt), z, np.ones(f, np.float32),
                      np.zeros(f, np.float32), 0)
    assert close(z, direct_conv(x, wt))


@pytest.mark.parametrize("chunk_floats,min_columns", [(1, 1), (4000, 8), (10**9, 512)])
def test_winograd_chunks_give_the_same_result(monkeypatch, chunk_floats, min_columns):
    """Tile-row bands of one image, and several images side by side in one product."""
    monkeypatch.setattr(winograd, "CHUNK_FLOATS", chunk_floats)
    monkeypatch.setattr(winograd, "MIN_COLUMNS", min_columns)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 11, 14)).astype(np.float32)
    wt = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    a = rng.uniform(0.5, 2, 5).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    z = np.full((3, 5, 11, 14), np.nan, np.float32)
    winograd.convolve(x, winograd.filters(wt), z, a, b, 1)
    ref = a[None, :, None, None] * direct_conv(x, wt) + b[None, :, None, None]
    ref = np.where(ref > 0, ref, 0.1 * ref)
    assert close(z, ref)


BACKWARD_SHAPES = [(1, 1, 1, 1, 1), (1, 1, 3, 13, 13), (2, 3, 5, 7, 5), (3, 8, 6, 4, 9),
                   (1, 16, 4, 2, 3), (2, 9, 7, 26, 26), (1, 5, 2, 1, 6), (8, 12, 10, 13, 13)]


def backward_case(n, c, f, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    dz = rng.standard_normal((n, f, h, w)).astype(np.float32)
    return x, wt, dz


@pytest.mark.parametrize("n,c,f,h,w", BACKWARD_SHAPES)
def test_winograd_input_gradient_matches_direct_sum(n, c, f, h, w):
    x, wt, dz = backward_case(n, c, f, h, w, seed=n * 1000 + c * 100 + h)
    dx = np.full((n, c, h, w), np.nan, np.float32)
    winograd.input_gradient(dz, winograd.filters(wt), dx)
    assert close(dx, direct_input_grad(dz, wt))


@pytest.mark.parametrize("n,c,f,h,w", BACKWARD_SHAPES)
def test_winograd_weight_gradient_matches_direct_sum(n, c, f, h, w):
    """Accumulates: what dw held before is kept."""
    x, wt, dz = backward_case(n, c, f, h, w, seed=n * 1000 + c * 100 + h + 1)
    before = np.random.default_rng(1).standard_normal((f, c, 3, 3)).astype(np.float32)
    dw = before.copy()
    winograd.weight_gradient(x, dz, dw)
    assert close(dw - before, direct_weight_grad(x, dz))


@pytest.mark.parametrize("chunk_floats,min_columns", [(1, 1), (4000, 8), (10**9, 512)])
def test_winograd_backward_chunks_give_the_same_result(monkeypatch, chunk_floats, min_columns):
    monkeypatch.setattr(winograd, "CHUNK_FLOATS", chunk_floats)
    monkeypatch.setattr(winograd, "MIN_COLUMNS", min_columns)
    x, wt, dz = backward_case(3, 4, 5, 11, 14, seed=15)
    dx = np.full(x.shape, np.nan, np.float32)
    winograd.input_gradient(dz, winograd.filters(wt), dx)
    assert close(dx, direct_input_grad(dz, wt))
    dw = np.zeros(wt.shape, np.float32)
    winograd.weight_gradient(x, dz, dw)
    assert close(dw, direct_weight_grad(x, dz))


@pytest.mark.parametrize("chunk_floats,min_columns,several", [(1, 1, True), (10**9, 512, False)])
def test_winograd_weight_gradient_adds_the_calls_own_sum(monkeypatch, chunk_floats, min_columns,
                                                         several):
    """dw + (this call's sum over all chunks), bit for bit: parallel subdivisions add a
    replica's gradient to the main network's afterwards and must round as a sequential run
    (one chunk adds its transform straight into dw, several sum apart first)."""
    monkeypatch.setattr(winograd, "CHUNK_FLOATS", chunk_floats)
    monkeypatch.setattr(winograd, "MIN_COLUMNS", min_columns)
    x, wt, dz = backward_case(2, 3, 4, 9, 8, seed=17)
    assert (len(winograd.chunks(2, 9, 8, 3, 4)) > 2) == several
    alone = winograd.weight_gradient(x, dz, np.zeros(wt.shape, np.float32))
    before = np.random.default_rng(2).standard_normal(wt.shape).astype(np.float32)
    dw = before.copy()
    winograd.weight_gradient(x, dz, dw)
    assert np.array_equal(dw, before + alone)


@pytest.mark.parametrize("chunk_floats,min_columns", [(1, 1), (10**9, 512)])
@pytest.mark.parametrize("n,c,f,h,w", [(2, 3, 4, 9, 8), (2, 70, 40, 10, 12)])
def test_winograd_weight_gradient_writes_over_a_lazily_zero_gradient(monkeypatch, chunk_floats,
                                                                   min_columns, n, c, f, h, w):
    """accumulate=False (the layer's gradient lazily zero): dw is the call's sum whatever it
    held, by bands (few channels), one chunk or several."""
    monkeypatch.setattr(winograd, "CHUNK_FLOATS", chunk_floats)
    monkeypatch.setattr(winograd, "MIN_COLUMNS", min_columns)
    x, wt, dz = backward_case(n, c, f, h, w, seed=19)
    dw = np.full(wt.shape, np.nan, np.float32)
    winograd.weight_gradient(x, dz, dw, accumulate=False)
    assert close(dw, direct_weight_grad(x, dz))


def test_winograd_chunks_cover_every_tile_once():
    for n, h, w, c, f in [(1, 416, 416, 32, 64), (8, 13, 13, 1024, 1024), (3, 7, 5, 2, 2)]:
        th, tw = winograd.tile_grid(h, w)
        seen = np.zeros((n, th), int)
        for n0, n1, r0, r1 in winograd.chunks(n, h, w, c, f):
            seen[n0:n1, r0:r1] += 1
        assert (seen == 1).all()


def test_filter_planes_do_not_share_cache_sets():
    u = winograd.stacked(64, 256)
    assert u.shape == (16, 64, 256) and u[0].flags.c_contiguous
    lines = u.strides[0] // 64
    assert u.strides[0] % 64 == 0 and lines % 2 == 1


@pytest.mark.parametrize("bn,act,shape,batch", [
    (True, "leaky", (8, 13, 13), 1), (False, "linear", (9, 7, 5), 3),
    (True, "relu", (16, 4, 6), 2), (False, "logistic", (8, 1, 1), 2),
])
def test_layer_winograd_equals_im2col(bn, act, shape, batch):
    rng = np.random.default_rng(4)
    layer = ConvolutionalLayer(shape, filters=6, size=3, stride=1, pad=1,
                               batch_normalize=bn, activation=act)
    assert layer.use_winograd
    randomise(layer, rng)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    for train in (False, True):
        layer.use_winograd = True
        fast = layer.forward(x, train=train)
        layer.use_winograd = False
        slow = layer.forward(x, train=train)
        assert fast.shape == slow.shape
        assert close(fast, slow.astype(np.float64)), train


@pytest.mark.parametrize("bn,act,shape,filters,batch", [
    (True, "linear", (8, 5, 7), 8, 2), (False, "leaky", (9, 6, 6), 10, 1),
    (True, "logistic", (8, 1, 1), 8, 3),
])
def test_winograd_layer_gradients(monkeypatch, bn, act, shape, filters, batch):
    """Training forward and backward (both gradients) through Winograd: finite differences."""
    monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_TRAINING", 0)
    monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_TRAINING_DENSE", 0)
    layer = ConvolutionalLayer(shape, filters=filters, size=3, stride=1, pad=1,
                               batch_normalize=bn, activation=act)
    assert layer.use_winograd
    rng = np.random.default_rng(5)
    randomise(layer, rng)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    layer.forward(x, train=True)
    assert layer._train_u is not None
    assert layer._winograd_backward(batch, True) == (True, True)
    params = ["weights", "biases"] + (["scales"] if bn else [])
    check_layer(layer, x, params=params, eps=3e-3)


@pytest.mark.parametrize("forward_u", [True, False])
def test_winograd_backward_equals_im2col(monkeypatch, forward_u):
    """With the forward's U, and with one made in backward (the forward went through im2col)."""
    shape, batch = (12, 9, 10), 3
    layer = ConvolutionalLayer(shape, filters=16, size=3, stride=1, pad=1, batch_normalize=True,
                               activation="leaky")
    rng = np.random.default_rng(16)
    randomise(layer, rng)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    dy = rng.standard_normal((batch, 16, 9, 10)).astype(np.float32)

    def gradients(winograd_backward):
        monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_TRAINING",
                            0 if forward_u else 10**9)
        layer.zero_grads()
        layer.forward(x, train=True)
        assert (layer._train_u is not None) == forward_u
        # the backward then goes through Winograd whatever the tiles (or through im2col)
        monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_UNCACHED", 0)
        monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_TRAINING", 0)
        layer.use_winograd = winograd_backward
        assert layer._winograd_backward(batch, True) == (winograd_backward, winograd_backward)
        dx = layer.backward(dy)
        layer.use_winograd = True
        assert layer._train_u is None            # not kept past the backward
        return dx, layer.weight_grad.copy(), layer.bias_grad.copy(), layer.bn.scale_grad.copy()

    for fast, slow in zip(gradients(True), gradients(False)):
        assert close(fast, slow.astype(np.float64))
    layer.forward(x, train=True)
    assert layer.backward(dy, need_input_grad=False) is None


def test_uncached_winograd_only_when_it_pays():
    layer = ConvolutionalLayer((8, 13, 13), filters=4, size=3, stride=1, pad=1)
    layer.set_winograd_cache(False)
    assert layer._winograd_applies(1, False) == (False, False, False)   # 49 tiles: im2col
    assert layer._winograd_applies(64, False) == (True, False, False)   # enough tiles
    layer.set_winograd_cache(True)
    assert layer._winograd_applies(1, False)[:2] == (True, True)
    assert layer._winograd_applies(1, True) == (False, False, False)    # training: no cache
    assert layer._winograd_applies(2, True) == (True, False, False)     # U serves backward
    assert not ConvolutionalLayer((3, 8, 8), 4, 3, 1, 1).use_winograd          # RGB input
    assert not ConvolutionalLayer((8, 8, 8), 4, 3, 2, 1).use_winograd          # stride 2
    assert not ConvolutionalLayer((8, 8, 8), 4, 1, 1, 0).use_winograd          # 1x1


@pytest.mark.skipif(gemm.blas_thread_functions() is None,
                    reason="needs OpenBLAS's thread controls to run chunks side by side")
def test_chunks_side_by_side_give_the_bits_of_one_after_another(monkeypatch):
    """Many chunks on two threads (whole chunks side by side, each single-threaded) against
    one thread: forward, input and weight gradients identical to the bit, the weight gradient
    added to a non-zero one as in parallel subdivisions."""
    from yolo9000.kernels import core
    monkeypatch.setattr(winograd, "CHUNK_FLOATS", 3000)
    monkeypatch.setattr(winograd, "MIN_COLUMNS", 8)
    rng = np.random.default_rng(18)
    x = rng.standard_normal((3, 6, 13, 10)).astype(np.float32)
    wt = rng.standard_normal((9, 6, 3, 3)).astype(np.float32)
    dz = rng.standard_normal((3, 9, 13, 10)).astype(np.float32)
    assert len(winograd.chunks(3, 13, 10, 6, 9)) > 4
    u = winograd.filters(wt)
    start = rng.standard_normal(wt.shape).astype(np.float32)
    results = []
    saved = core.get_max_threads()
    try:
        for threads in (1, 2):
            core.set_num_threads(threads)
            z = winograd.convolve(x, u, np.empty((3, 9, 13, 10), np.float32),
                                  np.ones(9, np.float32), np.zeros(9, np.float32), 1)
            dx = winograd.input_gradient(dz, u, np.empty_like(x))
            dw = winograd.weight_gradient(x, dz, start.copy())
            results.append((z, dx, dw))
    finally:
        core.set_num_threads(saved)
    for one, two in zip(*results):
        assert np.array_equal(one, two)
    assert close(results[0][2] - start, direct_weight_grad(x, dz), scale=np.abs(dz).max() * 30)


def test_thin_weight_gradients_stay_with_im2col():
    """13x13 at batch 1 (49 tiles): the weight gradient through im2col (Winograd's 16 thin
    products lose there), from the training threshold on through Winograd."""
    layer = ConvolutionalLayer((16, 13, 13), filters=16, size=3, stride=1, pad=1)
    assert layer._winograd_backward(1, False) == (False, False)
    assert layer._winograd_backward(2, False) == (True, False)


def winograd_input_reference(x, tw, th):
    """V (16, C, N·th·tw) by the transform's own additions in float32, in its order: rows
    first (Bᵀ d), then columns."""
    n, c, h, w = x.shape
    padded = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), np.float32)
    padded[:, :, 1:h + 1, 1:w + 1] = x
    v = np.empty((16, c, n, th, tw), np.float32)
    for ti in range(th):
        d = padded[:, :, 2 * ti:2 * ti + 4, :]
        a = [d[:, :, 0] - d[:, :, 2], d[:, :, 1] + d[:, :, 2], d[:, :, 2] - d[:, :, 1],
             d[:, :, 1] - d[:, :, 3]]
        for r in range(4):
            q = a[r]
            e, o = q[..., 0:2 * tw:2], q[..., 1:2 * tw + 1:2]
            e2, o2 = q[..., 2:2 * tw + 2:2], q[..., 3:2 * tw + 3:2]
            for k, plane in enumerate((e - e2, o + e2, e2 - o, o - o2)):
                v[4 * r + k, :, :, ti] = plane.transpose(1, 0, 2)
    return v.reshape(16, c, -1)


@pytest.mark.parametrize("h,w", [(1, 1), (13, 13), (4, 14), (15, 2), (7, 9), (26, 26)])
def test_input_transform_gives_the_bits_of_its_additions(h, w):
    """winograd_input (the AVX-512 rows for widths up to 14, the loops above) against the
    same additions in numpy float32: bit for bit, edges and odd sizes included."""
    rng = np.random.default_rng(h * 31 + w)
    x = rng.standard_normal((2, 5, h, w)).astype(np.float32)
    th, tw = winograd.tile_grid(h, w)
    v = winograd.stacked(5, 2 * th * tw)
    v[...] = np.nan
    _kernels.winograd_input(x, 0, 2, 0, th, v)
    assert np.array_equal(v, winograd_input_reference(x, tw, th))


def winograd_output_grad_reference(dz, tw, th):
    """dM (16, F, N·th·tw) by the transform's own additions and negations in float32: rows
    first (A dY), then columns; plane 9 ((a − c) + (b − d)) as ((a − c) + b) − d, the order
    GCC gives the loops under -ffast-math and the AVX-512 rows copy."""
    n, f, h, w = dz.shape
    padded = np.zeros((n, f, 2 * th, 2 * tw), np.float32)
    padded[:, :, :h, :w] = dz
    dm = np.empty((16, f, n, th, tw), np.float32)
    for ti in range(th):
        r0, r1 = padded[:, :, 2 * ti], padded[:, :, 2 * ti + 1]
        t = [r0, r0 + r1, r0 - r1, -r1]
        for i in range(4):
            left, right = t[i][..., 0::2], t[i][..., 1::2]
            for k, plane in enumerate((left, left + right, left - right, -right)):
                dm[4 * i + k, :, :, ti] = plane.transpose(1, 0, 2)
        a, b = r0[..., 0::2], r0[..., 1::2]
        c, d = r1[..., 0::2], r1[..., 1::2]
        dm[9, :, :, ti] = (((a - c) + b) - d).transpose(1, 0, 2)
    return dm.reshape(16, f, -1)


@pytest.mark.parametrize("h,w", [(1, 1), (13, 13), (4, 14), (15, 2), (7, 9), (8, 8), (26, 26)])
def test_output_grad_transform_gives_its_additions(h, w):
    """winograd_output_grad against the same additions in numpy float32, edges and odd sizes
    included: the AVX-512 rows (widths up to 14, where the CPU has AVX-512) value for value,
    so that training's roundings do not depend on the path; the loops within an ulp of the
    inputs' size (their order is the compiler's under -ffast-math)."""
    rng = np.random.default_rng(h * 37 + w)
    dz = rng.standard_normal((2, 5, h, w)).astype(np.float32)
    dz[:, :, ::3] = 0.0            # exact zeros, as a maxpool's losers give
    th, tw = winograd.tile_grid(h, w)
    dm = winograd.stacked(5, 2 * th * tw)
    dm[...] = np.nan
    _kernels.winograd_output_grad(dz, 0, 2, 0, th, dm)
    want = winograd_output_grad_reference(dz, tw, th)
    if w <= 14 and core.cpu_features()["avx512f"]:
        assert np.array_equal(dm, want)
    else:
        assert np.abs(dm - want).max() <= 4 * np.finfo(np.float32).eps * np.abs(dz).max()
