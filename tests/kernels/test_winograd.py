"""Winograd F(2x2, 3x3) convolutions: the same function as im2col + GEMM, and a filter cache
that never outlives the weights it was made from."""
import numpy as np
import pytest

from gradcheck import check_layer
from yolo9000 import Network
from yolo9000 import _kernels
from yolo9000.kernels import gemm, threads, winograd
from yolo9000.layers import convolutional
from yolo9000.layers.convolutional import ConvolutionalLayer
from yolo9000.layers.maxpool import MaxpoolLayer
from yolo9000.training.optim import SGD

MINI_CFG = """
[net]
width=20
height=18
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=12
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=10
size=3
stride=1
pad=1
activation=linear
"""


def direct_conv(x, w):
    """3x3 stride-1 padding-1 convolution as a literal sum over the 9 taps, in float64."""
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    out = np.zeros((n, w.shape[0], h, wd))
    for kh in range(3):
        for kw in range(3):
            out += np.einsum("fc,nchw->nfhw", w[:, :, kh, kw].astype(np.float64),
                             xp[:, :, kh:kh + h, kw:kw + wd])
    return out


def randomise(layer, rng):
    for name, p in layer.params.items():
        if name in ("rolling_variance", "scales"):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        else:
            p[...] = rng.standard_normal(p.shape) * 0.3
    layer.weights_changed()


def close(a, b, scale=None):
    scale = np.abs(b).max() if scale is None else scale
    return np.abs(np.asarray(a, np.float64) - b).max() <= 2e-6 * (1 + scale)


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


def direct_input_grad(dz, w):
    """dL/dx of direct_conv given dL/dz, in float64: every output scatters dz·w back over the
    9 inputs it read (the adjoint of direct_conv's gather)."""
    n, f, h, wd = dz.shape
    dxp = np.zeros((n, w.shape[1], h + 2, wd + 2))
    for kh in range(3):
        for kw in range(3):
            dxp[:, :, kh:kh + h, kw:kw + wd] += np.einsum(
                "fc,nfhw->nchw", w[:, :, kh, kw].astype(np.float64), dz)
    return dxp[:, :, 1:-1, 1:-1]


def direct_weight_grad(x, dz):
    """dL/dw of direct_conv given dL/dz, in float64: each tap sums dz times the input it saw."""
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    dw = np.zeros((dz.shape[1], c, 3, 3))
    for kh in range(3):
        for kw in range(3):
            dw[:, :, kh, kw] = np.einsum("nfhw,nchw->fc", dz, xp[:, :, kh:kh + h, kw:kw + wd])
    return dw


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


def test_weights_changed_drops_the_training_filters(monkeypatch):
    monkeypatch.setattr(convolutional, "WINOGRAD_MIN_TILES_TRAINING", 0)
    layer = ConvolutionalLayer((8, 30, 30), filters=8, size=3, stride=1, pad=1)
    layer.forward(np.zeros((1, 8, 30, 30), np.float32), train=True)
    assert layer._train_u is not None
    layer.weights_changed()
    assert layer._train_u is None


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


def reference_output(layer, x):
    """The layer's inference output through im2col (no cache involved)."""
    saved = layer.use_winograd
    layer.use_winograd = False
    try:
        return layer.forward(x).astype(np.float64)
    finally:
        layer.use_winograd = saved


def test_cache_follows_weights_changed():
    rng = np.random.default_rng(6)
    layer = ConvolutionalLayer((16, 9, 9), filters=16, size=3, stride=1, pad=1,
                               activation="leaky")
    randomise(layer, rng)
    x = rng.standard_normal((1, 16, 9, 9)).astype(np.float32)
    before = layer.forward(x)
    assert layer._u is not None                       # cached by the inference forward
    assert close(before, reference_output(layer, x))
    # one weight changed in place: invisible to the sample check, announced by the caller
    layer.weights[2, 3, 1, 1] += 5.0
    assert np.array_equal(layer._u_sample, layer._weights_sample())
    layer.weights_changed()
    after = layer.forward(x)
    assert not close(after, before.astype(np.float64))
    assert close(after, reference_output(layer, x))


def test_cache_safety_net_catches_unannounced_rewrites():
    rng = np.random.default_rng(7)
    layer = ConvolutionalLayer((8, 6, 6), filters=4, size=3, stride=1, pad=1, activation="linear")
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    layer.forward(x)
    layer.weights[...] = rng.standard_normal(layer.weights.shape)    # no weights_changed()
    assert close(layer.forward(x), reference_output(layer, x))
    layer.weights = layer.weights.copy() * 2                        # a new array altogether
    layer.params["weights"] = layer.weights
    assert close(layer.forward(x), reference_output(layer, x))


def test_training_forward_does_not_use_or_keep_the_cache():
    layer = ConvolutionalLayer((8, 30, 30), filters=4, size=3, stride=1, pad=1)
    x = np.random.default_rng(8).standard_normal((2, 8, 30, 30)).astype(np.float32)
    layer.forward(x, train=True)
    assert layer._u is None
    layer.forward(x)
    assert layer._u is not None
    layer.weights[...] *= -1        # as a test harness perturbing weights might (no call)
    y = layer.forward(x, train=True)
    layer.use_winograd = False
    assert close(y, layer.forward(x, train=True).astype(np.float64))


def network_reference(net, x):
    convs = [l for l in net.layers if isinstance(l, ConvolutionalLayer)]
    saved = [l.use_winograd for l in convs]
    for l in convs:
        l.use_winograd = False
    try:
        return net.forward(x).astype(np.float64)
    finally:
        for l, s in zip(convs, saved):
            l.use_winograd = s


def mini_network(seed=0):
    net = Network.from_cfg(MINI_CFG)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if isinstance(layer, ConvolutionalLayer):
            randomise(layer, rng)
    return net


def test_optimizer_step_invalidates_the_cache():
    net = mini_network()
    x = np.random.default_rng(9).random((2,) + net.input_shape, dtype=np.float32)
    assert sum(isinstance(l, ConvolutionalLayer) and l.use_winograd for l in net.layers) == 2
    y0 = net.forward(x)
    net.zero_grads()
    out = net.forward(x, train=True)
    net.backward(np.ones_like(out))
    SGD(net, momentum=0.9, decay=0.0005).step(0.05, 2)
    y1 = net.forward(x)
    assert not close(y1, y0.astype(np.float64))
    assert close(y1, network_reference(net, x))


def test_loading_weights_invalidates_the_cache(tmp_path):
    source = mini_network(seed=1)
    source.save_weights(tmp_path / "a.weights")
    source.save(tmp_path / "a.h5")
    x = np.random.default_rng(10).random((1,) + source.input_shape, dtype=np.float32)
    expected = source.forward(x).astype(np.float64)
    for path in (tmp_path / "a.weights", tmp_path / "a.h5"):
        net = mini_network(seed=2)
        net.forward(x)                          # caches filters of the seed-2 weights
        net.load_weights(path)
        assert close(net.forward(x), expected)


def test_network_plan_respects_the_cache_budget(monkeypatch):
    import yolo9000.model.network as network
    monkeypatch.setattr(network, "WINOGRAD_CACHE_HEADROOM", 0)
    net = Network.from_cfg("yolov2-tiny-voc", width=64, height=64)
    weights = 4 * sum(p.size for _, _, p, _ in net.parameters())
    assert 0 < net.winograd_cache_bytes <= 0.5 * weights
    convs = [l for l in net.layers if isinstance(l, ConvolutionalLayer) and l.use_winograd]
    cached = [l for l in convs if l.cache_winograd]
    assert 0 < len(cached) < len(convs)
    assert sum(l.winograd_filter_bytes() for l in cached) == net.winograd_cache_bytes
    # larger maps first: nothing uncached has more tiles than something cached
    tiles = lambda l: l.out_shape[1] * l.out_shape[2]
    assert min(tiles(l) for l in cached) >= max(tiles(l) for l in convs if not l.cache_winograd)
    x = np.random.default_rng(11).random((1,) + net.input_shape, dtype=np.float32)
    assert close(net.forward(x), network_reference(net, x))


def test_threaded_products_equal_numpy():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((16, 7, 33)).astype(np.float32)
    b = rng.standard_normal((16, 33, 300)).astype(np.float32)
    out = winograd.stacked(7, 300)
    gemm.batched_matmul(a, b, out)
    assert np.allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    for rows, inner, cols in [(9, 40, 1000), (1000, 40, 9), (300, 20, 200)]:
        m = rng.standard_normal((rows, inner)).astype(np.float32)
        n = rng.standard_normal((inner, cols)).astype(np.float32)
        z = np.empty((rows, cols), np.float32)
        gemm.matmul(m, n, z)
        assert np.allclose(z, m @ n, rtol=1e-5, atol=1e-5)
    if _kernels.openmp_enabled():
        assert _kernels.get_max_threads() >= 1


@pytest.mark.parametrize("shape,size,stride", [((4, 8, 8), 2, 2), ((3, 7, 5), 2, 2),
                                               ((5, 13, 13), 2, 1), ((2, 9, 9), 3, 2)])
def test_maxpool_inference_skips_argmax_with_the_same_values(shape, size, stride):
    layer = MaxpoolLayer(shape, size, stride)
    x = np.random.default_rng(13).standard_normal((2,) + shape).astype(np.float32)
    x[0, 0, 0, :3] = np.nan
    x[1, 1, 2, 2] = x[1, 1, 2, 3]        # ties
    assert np.array_equal(layer.forward(x, train=False), layer.forward(x, train=True),
                          equal_nan=True)


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
@pytest.mark.parametrize("c,h,w,batch", [(3, 13, 13, 3), (1, 1, 1, 2), (3, 5, 130, 2),
                                         (7, 9, 21, 1), (2, 6, 9, 5)])
def test_direct_kernel_weight_gradient(c, h, w, batch):
    """The RGB-input layer's weight gradient (per-thread sums of row dot products, 8 taps at
    a time, and row tails past the last 8) against the literal sum."""
    rng = np.random.default_rng(15)
    layer = ConvolutionalLayer((c, h, w), filters=5, size=3, stride=1, pad=1,
                               activation="linear")
    assert layer.use_direct
    randomise(layer, rng)
    x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
    layer.forward(x, train=True)
    g = rng.standard_normal((batch, 5, h, w)).astype(np.float32)
    layer.zero_grads()
    assert layer.backward(g, need_input_grad=False) is None
    ref = direct_weight_grad(x, g)
    assert close(layer.weight_grad, ref)
    assert close(layer.bias_grad, g.sum(axis=(0, 2, 3)).astype(np.float64))


@pytest.mark.parametrize("shape", [(3, 8, 6), (2, 4, 10)])
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


def test_block_pool_reuses_blocks_and_keeps_contents_apart():
    """The NumPy allocator of keep_freed_memory: freed large blocks come back for requests of
    about their size, zeros() is zero even from a dirty block, small and odd sizes work."""
    import subprocess
    import sys
    code = """
import numpy as np
from yolo9000.kernels import core
core.use_block_pool(64 * 2**20)
a = np.full(2**20, 7.0)          # 8 MB
address = a.ctypes.data
del a
assert core.block_pool_bytes() >= 8 * 2**20
b = np.zeros(2**20 - 1000)       # slightly smaller: the same block, zeroed
assert b.ctypes.data == address and not b.any()
c = np.ones(2**20)               # the pool is empty now: a new block
assert c.ctypes.data != address and core.block_pool_bytes() == 0
del b
d = np.empty(2**18)              # 2 MB: far smaller than the 8 MB block, not given it
assert d.ctypes.data != address
big = [np.full(2**21, float(i)) for i in range(6)]      # 6 x 16 MB > 64 MB limit when freed
del big
assert core.block_pool_bytes() <= 64 * 2**20
small = np.arange(10.0)
grown = np.resize(np.arange(5.0), 3_000_000)
assert grown[-1] == (3_000_000 - 1) % 5 and small.sum() == 45
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("shape,stride", [((3, 13, 13), 1), ((2, 6, 9), 1), ((4, 1, 1), 1),
                                          ((3, 8, 6), 2), ((2, 12, 4), 2)])
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


@pytest.mark.skipif(not threads.sgemm_address(), reason="needs OpenBLAS's ILP64 cblas_sgemm")
@pytest.mark.parametrize("n,c,f,h,w", [(2, 5, 7, 33, 17), (3, 3, 9, 13, 40), (2, 8, 4, 12, 5)])
def test_banded_winograd_equals_the_direct_sum(monkeypatch, n, c, f, h, w):
    """The few-channel kernels (bands of tile rows, sgemm called directly): forward, input and
    weight gradient against the float64 direct sums, the forward and input gradient against
    the chunked products too (BLAS may round a product of other width differently, so not to
    the bit)."""
    monkeypatch.setattr(winograd, "BAND_FLOATS", 1)      # bands of one tile row
    rng = np.random.default_rng(19)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    dz = rng.standard_normal((n, f, h, w)).astype(np.float32)
    u = winograd.filters(wt)
    ones, zeros = np.ones(f, np.float32), np.zeros(f, np.float32)
    z = np.full((n, f, h, w), np.nan, np.float32)
    assert winograd.banded(x, u, z, ones, zeros, 0)
    assert close(z, direct_conv(x, wt))
    dx = np.full(x.shape, np.nan, np.float32)
    winograd.input_gradient(dz, u, dx)
    assert close(dx, direct_input_grad(dz, wt))
    # the weight gradient: against the literal sum, added to a non-zero gradient as its own
    # sum (bit for bit), and the same bits on one thread as on two
    from yolo9000.kernels import core
    start = rng.standard_normal(wt.shape).astype(np.float32)
    alone = np.zeros(wt.shape, np.float32)
    assert winograd.banded_weight_gradient(x, dz, alone)
    assert close(alone, direct_weight_grad(x, dz), scale=np.abs(dz).max() * 30)
    added = winograd.weight_gradient(x, dz, start.copy())
    assert np.array_equal(added, start + alone)
    saved = core.get_max_threads()
    try:
        core.set_num_threads(1)
        one_thread = winograd.weight_gradient(x, dz, np.zeros(wt.shape, np.float32))
    finally:
        core.set_num_threads(saved)
    assert np.array_equal(one_thread, alone)
    monkeypatch.setattr(winograd, "BANDED_MAX_CHANNELS", 0)     # the chunked path
    assert not winograd.banded(x, u, z, ones, zeros, 0)
    assert not winograd.banded_weight_gradient(x, dz, np.zeros(wt.shape, np.float32))
    z2 = winograd.convolve(x, u, np.empty_like(z), ones, zeros, 0)
    dx2 = winograd.input_gradient(dz, u, np.empty_like(dx))
    assert close(z, z2.astype(np.float64)) and close(dx, dx2.astype(np.float64))


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
    against the float64 direct sums."""
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
        assert close(z, ref)
        dx = np.full(x.shape, np.nan, np.float32)
        winograd.input_gradient(dz, flipped, dx)
        assert close(dx, direct_input_grad(dz, wt))


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
def test_inference_uses_weight_blocks_for_13x13_maps_at_any_batch():
    """A 13x13 layer of many channels caches WeightBlocks (the plan counts their bytes) and
    multiplies every batch through them in groups of images: a batch gives the bits of its
    images one by one, all equal to im2col's within the tolerance."""
    rng = np.random.default_rng(11)
    layer = ConvolutionalLayer((96, 13, 13), filters=40, size=3, stride=1, pad=1,
                               batch_normalize=True, activation="leaky")
    randomise(layer, rng)
    assert layer.winograd_filter_bytes() == 4 * 64 * 96 * 9
    assert not ConvolutionalLayer((96, 26, 26), 40, 3, 1, 1)._blocks()      # 169 tiles
    x = rng.standard_normal((5, 96, 13, 13)).astype(np.float32)
    y = layer.forward(x)
    assert isinstance(layer._u, winograd.WeightBlocks)
    assert all(np.array_equal(y[i], layer.forward(x[i:i + 1])[0]) for i in range(5))
    layer.use_winograd = False
    reference = layer.forward(x)
    assert close(y, reference.astype(np.float64))


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
    assert {"direct": layer.use_direct, "blocks": layer._blocks()}.get(path, True)
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
