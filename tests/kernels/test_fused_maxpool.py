"""A convolution and the 2x2/2 maxpool after it run as one: at inference the maxima taken in
the direct or Winograd kernel's epilogue, the bits of the two layers; in training in batch
norm's pass, which keeps each window's winner for a backward that reads the pooled gradient."""
import numpy as np
import pytest

from convolution_reference import MINI_CFG, randomise
from gradcheck import check_layer
from yolo9000 import Network
from yolo9000 import _kernels
from yolo9000.kernels import core, threads, winograd
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


# -- training: batch norm, the activation and the maxpool in one pass (forward_train_pooled) --
def activations_reference(z, mean, inv, scale, bias, act):
    """NumPy, float64: act(scale·(z − mean)·inv + bias)."""
    v = scale[:, None] * ((z.astype(np.float64) - mean[:, None]) * inv[:, None]) + bias[:, None]
    if act == "leaky":
        return np.maximum(v, 0.1 * v)
    return np.where(v > 0, v, 0) if act == "relu" else v


def pool_reference(v, h, w):
    """NumPy: the maxima of v (N, C, h·w) over 2x2/2 windows in darknet's order (a later tap
    wins only if greater), and each window's winner (the first tap equal to its maximum; 4
    for none)."""
    n, c, _ = v.shape
    taps = v.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, h // 2, w // 2, 4)
    best = taps[..., 0].copy()
    for k in (1, 2, 3):
        best = np.where(taps[..., k] > best, taps[..., k], best)
    equal = taps == best[..., None]
    winners = np.where(equal.any(axis=-1), equal.argmax(axis=-1), 4).astype(np.uint8)
    return best, winners


def bn_pool_backward_reference(z, dy, winners, mean, inv, std, scale, bias, act):
    """NumPy, float64: dL/dz of batch norm + act + the maxpool given its winners, the
    gradient dy at the pooled output reaching each window's winner alone."""
    n, c, s = z.shape
    oh, ow = dy.shape[2:]
    h, w = 2 * oh, 2 * ow
    d = np.zeros((n, c, oh, ow, 4))
    safe = np.minimum(winners, 3)
    np.put_along_axis(d, safe[..., None].astype(np.int64), dy.astype(np.float64)[..., None],
                      axis=-1)
    d[winners == 4] = 0
    d = d.reshape(n, c, oh, ow, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, s)
    xh = (z.astype(np.float64) - mean[:, None]) * inv[:, None]
    pre = scale[:, None] * xh + bias[:, None]
    slope = {"leaky": 0.1, "relu": 0.0, "linear": 1.0}[act]
    t = np.where(pre > 0, d, slope * d)
    m = n * s
    st, stx = t.sum(axis=(0, 2)), (t * xh).sum(axis=(0, 2))
    g = ((scale * t.transpose(0, 2, 1) - scale * st / m) * inv
         - (scale * stx / (std * (m - 1))) * xh.transpose(0, 2, 1))
    return g.transpose(0, 2, 1), st, stx


@pytest.mark.parametrize("act", ["leaky", "relu", "linear"])
@pytest.mark.parametrize("n,c,h,w", [(3, 5, 8, 6), (2, 3, 2, 2), (4, 7, 4, 10), (1, 2, 34, 6)])
def test_batchnorm_activate_pool_kernels_against_numpy(act, n, c, h, w):
    """The fused forward's maxima are batchnorm_activate's values pooled (bit for bit; the
    float64 activations' within rounding) and its winners the first maximal taps, ties and a
    NaN window included; the fused backward is the float64 formula of batch norm + act +
    maxpool."""
    rng = np.random.default_rng(n * 100 + c * 10 + h)
    z = rng.standard_normal((n, c, h * w)).astype(np.float32)
    z[0, 0, [1, w, w + 1]] = z[0, 0, 0]           # a window of equal values: the first wins
    z[0, -1, w + 1] = z[0, -1, 0]                 # a tie across the window's two rows
    z[-1, 1, 0] = np.nan                          # no tap equals the maximum: no winner
    mean = rng.standard_normal(c).astype(np.float32) * 0.1
    inv = rng.uniform(0.5, 2, c).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, c).astype(np.float32) * np.where(np.arange(c) % 2, -1, 1).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32) * 0.1
    code = {"leaky": core.ACT_LEAKY, "relu": core.ACT_RELU, "linear": core.ACT_LINEAR}[act]
    pooled = np.empty((n, c, h // 2, w // 2), np.float32)
    winners = np.empty(pooled.shape, np.uint8)
    scratch = np.empty((core.get_max_threads(), 2 * w), np.float32)
    core.batchnorm_activate_pool(z, h, w, mean, inv, scale, bias, code, pooled, winners, scratch)
    # the maxima of batchnorm_activate's values, bit for bit (what the unfused layers give)
    y = np.empty_like(z)
    core.batchnorm_activate(z, mean, inv, scale, bias, code, y)
    want, want_winners = pool_reference(y, h, w)
    assert np.array_equal(pooled, want, equal_nan=True)
    assert np.array_equal(winners, want_winners)
    exact = activations_reference(z, mean, inv, scale, bias, act)
    assert np.allclose(pooled, pool_reference(exact, h, w)[0], rtol=1e-6, atol=1e-6,
                       equal_nan=True)
    assert winners[0, 0, 0, 0] == 0
    # (relu makes the NaN a 0, which wins or loses as any value)
    assert (core.POOL_NO_WINNER in winners) == (act != "relu")

    z[-1, 1, 0] = 0                               # the backward's sums stay finite
    dy = rng.standard_normal(pooled.shape).astype(np.float32)
    std = rng.uniform(0.5, 2, c)
    g = np.empty_like(z)
    bias_grad, scale_grad = np.ones(c, np.float32), np.full(c, 2, np.float32)
    core.batchnorm_activate_pool_backward(dy, winners, z, code, g, bias_grad, mean, inv, std,
                                          scale, bias, scale_grad, scratch)
    want_g, st, stx = bn_pool_backward_reference(z, dy, winners, mean, inv, std, scale, bias, act)
    assert np.abs(g - want_g).max() <= 1e-5 * (1 + np.abs(want_g).max())
    assert np.allclose(bias_grad, 1 + st, rtol=1e-5, atol=1e-5)
    assert np.allclose(scale_grad, 2 + stx, rtol=1e-5, atol=1e-5)


def test_batchnorm_activate_pool_refuses_what_it_cannot_do():
    z = np.zeros((1, 2, 12), np.float32)
    ones = np.ones(2, np.float32)
    scratch = np.empty((core.get_max_threads(), 8), np.float32)
    with pytest.raises(ValueError):          # an odd map
        core.batchnorm_activate_pool(z, 3, 4, ones, ones, ones, ones, core.ACT_LEAKY,
                                     np.empty((1, 2, 1, 2), np.float32),
                                     np.empty((1, 2, 1, 2), np.uint8), scratch)
    with pytest.raises(ValueError):          # logistic's gradient needs the activations
        core.batchnorm_activate_pool_backward(
            np.zeros((1, 2, 1, 3), np.float32), np.zeros((1, 2, 1, 3), np.uint8),
            np.zeros((1, 2, 12), np.float32), core.ACT_LOGISTIC, np.empty((1, 2, 12), np.float32),
            np.zeros(2, np.float32), ones, ones, np.ones(2), ones, ones, np.zeros(2, np.float32),
            scratch)


def fused_and_separate(c, f, size, act, seed, bn=True):
    """A convolution run through forward_train_pooled, and its copy with a maxpool layer."""
    rng = np.random.default_rng(seed)
    fused = ConvolutionalLayer((c, size, size), filters=f, size=3, stride=1, pad=1,
                               batch_normalize=bn, activation=act)
    randomise(fused, rng)
    if bn:
        fused.bn.scales[::2] *= -1
    separate = ConvolutionalLayer((c, size, size), filters=f, size=3, stride=1, pad=1,
                                  batch_normalize=bn, activation=act)
    for name, p in fused.params.items():
        separate.params[name][...] = p
    return fused, separate, MaxpoolLayer(fused.out_shape, size=2, stride=2), rng


@pytest.mark.parametrize("act", ["leaky", "linear"])
@pytest.mark.parametrize("c,f,size,batch,path", [
    (3, 6, 20, 2, "direct"), (16, 32, 16, 3, "banded"), (70, 24, 12, 3, "chunked"),
    (9, 5, 2, 4, "dense"),
])
def test_training_convolution_with_its_maxpool_fused_equals_the_two(act, c, f, size, batch,
                                                                    path):
    """forward_train_pooled gives the bits of forward(train=True) then the maxpool (the
    rolling statistics too); backward_pooled the separate layers' gradients within float32
    rounding (its batch-norm sums run over the winners only)."""
    if path == "direct" and not _kernels.direct_conv_available():
        pytest.skip("needs AVX2 and FMA")
    fused, separate, pool, rng = fused_and_separate(c, f, size, act, c + f + size)
    x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
    pooled = fused.forward_train_pooled(x)
    assert np.array_equal(pooled, pool.forward(separate.forward(x, train=True), train=True))
    assert np.array_equal(fused.bn.rolling_mean, separate.bn.rolling_mean)
    assert np.array_equal(fused.bn.rolling_variance, separate.bn.rolling_variance)
    assert fused._y is None                   # the full-size output is never made
    dy = rng.standard_normal(pooled.shape).astype(np.float32)
    fused.zero_grads()
    separate.zero_grads()
    dx = fused.backward_pooled(dy.copy())
    want_dx = separate.backward(pool.backward(dy.copy()))
    for got, want in ((dx, want_dx), (fused.weight_grad, separate.weight_grad),
                      (fused.bias_grad, separate.bias_grad),
                      (fused.bn.scale_grad, separate.bn.scale_grad)):
        assert np.abs(got - want).max() <= 1e-5 * (1 + np.abs(want).max())


def test_training_pooled_fallbacks():
    """No batch norm, a logistic activation or an odd output: forward_train_pooled says so
    (None), and the network runs the two layers."""
    assert fused_and_separate(4, 3, 6, "leaky", 0, bn=False)[0].forward_train_pooled(
        np.zeros((1, 4, 6, 6), np.float32)) is None
    assert fused_and_separate(4, 3, 6, "logistic", 0)[0].forward_train_pooled(
        np.zeros((1, 4, 6, 6), np.float32)) is None
    assert fused_and_separate(4, 3, 5, "leaky", 0)[0].forward_train_pooled(
        np.zeros((1, 4, 5, 5), np.float32)) is None


class FusedPair:
    """A convolution and its maxpool as one layer, through forward_train_pooled and
    backward_pooled, for gradcheck.check_layer."""

    def __init__(self, conv):
        self.conv, self.params, self.grads = conv, conv.params, conv.grads

    def forward(self, x, train=True):
        return self.conv.forward_train_pooled(x)

    def backward(self, dy):
        return self.conv.backward_pooled(dy)

    def zero_grads(self):
        self.conv.zero_grads()


@pytest.mark.parametrize("act", ["leaky", "relu"])
def test_fused_training_pair_gradients_against_finite_differences(act):
    """backward_pooled against central differences of forward_train_pooled, on inputs whose
    pre-activations keep off the kink and whose windows' two largest values apart (finite
    differences across either are meaningless)."""
    for seed in range(1, 200):
        fused, separate, pool, rng = fused_and_separate(2, 3, 4, act, seed)
        x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
        pre = fused_and_separate(2, 3, 4, "linear", seed)[0].forward(x, train=True)
        y = separate.forward(x, train=True)
        taps = np.sort(y.reshape(2, 3, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
            2, 3, 2, 2, 4), axis=-1)
        if np.abs(pre).min() > 0.02 and (taps[..., 3] - taps[..., 2]).min() > 0.02:
            break
    else:
        pytest.fail("no input away from the kinks")
    check_layer(FusedPair(fused), x, params=["weights", "biases", "scales"], eps=3e-3, seed=seed)


def test_networks_pool_in_the_convolutions_in_training():
    """A training step through Network.forward / backward runs the pairs as one where the
    convolution can, and gives the unfused network's output (bits) and gradients (float32
    rounding); backward cannot start at a convolution whose output was pooled away."""
    cfg = MINI_CFG.replace("width=20", "width=24").replace("height=18", "height=16")
    cfg = cfg.replace("[convolutional]\nbatch_normalize=1\nfilters=12",
                      "[convolutional]\nbatch_normalize=1\nfilters=12")
    nets = [Network.from_cfg(cfg) for _ in range(2)]
    rng = np.random.default_rng(5)
    for a, b in zip(*(n.layers for n in nets)):
        if isinstance(a, ConvolutionalLayer):
            randomise(a, rng)
            for name, p in a.params.items():
                b.params[name][...] = p
    fused_net, plain_net = nets
    plain_net._pooled_pairs = set()
    x = rng.standard_normal((3, 3, 16, 24)).astype(np.float32)
    outputs = [n.forward(x, train=True) for n in nets]
    assert fused_net._train_pooled == {1} and plain_net._train_pooled == set()
    assert np.array_equal(outputs[0], outputs[1])
    dy = rng.standard_normal(outputs[0].shape).astype(np.float32)
    for n in nets:
        n.zero_grads()
    dxs = [n.backward(dy) for n in nets]
    assert np.abs(dxs[0] - dxs[1]).max() <= 1e-5 * (1 + np.abs(dxs[1]).max())
    for a, b in zip(*(n.layers for n in nets)):
        for name in a.grads:
            assert np.abs(a.grads[name] - b.grads[name]).max() <= 1e-5 * (
                1 + np.abs(b.grads[name]).max()), name
    fused_net.forward(x, train=True)
    with pytest.raises(ValueError, match="pooled"):
        fused_net.backward(np.zeros((3,) + fused_net.layers[1].out_shape, np.float32), start=1)
