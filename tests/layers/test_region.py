"""Region layer: darknet's golden numbers, and exact gradients of the loss and the activation."""
from pathlib import Path

import numpy as np
import pytest

from yolo9000.layers.region import RegionLayer, sigmoid
from conftest import GOLDEN

# darknet's three region cases, named: a missing file fails, a new one is not swept in unread
GOLDEN_CASES = [GOLDEN / f"region_{case}.npz" for case in ("seen0", "seen100000", "ignore_seen100000")]

MINI_ANCHORS = [0.8, 1.1, 1.6, 2.5, 3.0, 1.8, 2.2, 4.2, 5.0, 5.5]


def region_options_from_cfg(path):
    """The [region] section's key=value pairs (a hand parser; the cfg module is separate)."""
    options, inside = {}, False
    for line in Path(path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            inside = line == "[region]"
            continue
        if inside:
            key, value = (s.strip() for s in line.split("=", 1))
            options[key] = value
    opts = {k: float(v) if k in ("thresh", "jitter") or "scale" in k else v
            for k, v in options.items()}
    opts["anchors"] = [float(s) for s in options["anchors"].split(",")]
    for key in ("classes", "coords", "num", "softmax", "rescore", "bias_match", "absolute", "random"):
        if key in options:
            opts[key] = int(options[key])
    return opts


# -- golden ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda p: p.stem)
def test_golden_darknet_region(case):
    d = np.load(case)
    opts = region_options_from_cfg(GOLDEN / "mini.cfg")
    assert opts["anchors"] == MINI_ANCHORS and opts["classes"] == 3 and opts["num"] == 5
    layer = RegionLayer(d["raw"].shape[1:], **opts)
    out = layer.forward(d["raw"], train=True)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, d["output"], rtol=0, atol=1e-5)

    loss, grad, stats = layer.loss(list(d["truth"][None]), int(d["seen"]))
    assert grad.shape == d["raw"].shape and grad.dtype == np.float32

    delta = d["delta"].reshape(1, 5, 8, 8, 8)
    outv = d["output"].reshape(1, 5, 8, 8, 8)
    expected = -delta.copy()
    for entry in (0, 1, 4):   # darknet's delta there is w.r.t. the sigmoid output
        expected[:, :, entry] *= outv[:, :, entry] * (1 - outv[:, :, entry])
    np.testing.assert_allclose(grad.reshape(expected.shape), expected, rtol=0, atol=1e-5)
    # the relation is non-trivial: many entries carry a gradient
    assert np.count_nonzero(np.abs(expected) > 1e-4) > 100
    assert stats["darknet_cost"] == pytest.approx(float(d["cost"]), rel=1e-4)
    assert stats["count"] == len(d["truth"])
    parts = stats["coord"] + stats["obj"] + stats["noobj"] + stats["class"]
    assert loss == pytest.approx(parts, rel=1e-9) and loss > 0


def test_golden_ignore_case_zeroes_objectness():
    d = np.load(GOLDEN / "region_ignore_seen100000.npz")
    layer = RegionLayer((40, 8, 8), **region_options_from_cfg(GOLDEN / "mini.cfg"))
    layer.forward(d["raw"], train=True)
    _, grad, _ = layer.loss([d["truth"]], int(d["seen"]))
    targets = layer.build_targets(layer._raw, [d["truth"]], int(d["seen"]))
    # the README's prediction (anchor 4, row 4, col 5) coincides with the 4th box without being
    # its responsible one: the IoU > thresh rule silences its objectness, in darknet and here
    assert not targets.responsible[0, 4, 4, 5] and targets.obj_s[0, 4, 4, 5] == 0
    assert d["delta"].reshape(1, 5, 8, 8, 8)[0, 4, 4, 4, 5] == 0
    assert grad.reshape(1, 5, 8, 8, 8)[0, 4, 4, 4, 5] == 0
    # the same prediction without the 4th box does carry a noobject gradient
    _, grad3, _ = layer.loss([d["truth"][:3]], int(d["seen"]))
    assert grad3.reshape(1, 5, 8, 8, 8)[0, 4, 4, 4, 5] != 0


# -- helpers for the gradient checks ---------------------------------------------------------
def make_layer(h, w, classes=3, rescore=True, **kw):
    return RegionLayer((5 * (5 + classes), h, w), anchors=MINI_ANCHORS, classes=classes,
                       rescore=rescore, **kw)


def safe_raw_and_truths(layer, n, rng, n_truths=4):
    """Random raw input and truths, nudged away from the loss's discontinuities.

    The responsible anchor is fixed by the truths alone (bias_match); the ignore mask flips
    where a prediction's best IoU crosses thresh, so redraw until no prediction is near it.
    """
    _, h, w = layer.in_shape
    for _ in range(200):
        raw = rng.normal(0, 1.0, size=(n,) + layer.in_shape)
        truths = []
        for _b in range(n):
            t = np.empty((n_truths, 5))
            t[:, 0:2] = rng.uniform(0.05, 0.95, size=(n_truths, 2))
            t[:, 2:4] = rng.uniform(0.08, 0.7, size=(n_truths, 2))
            t[:, 4] = rng.integers(0, layer.classes, size=n_truths)
            truths.append(t)
        cells = np.concatenate([t[:, 0:2] * (w, h) for t in truths])
        if np.any(np.abs(cells - np.round(cells)) < 1e-3):
            continue
        best = best_ious(layer, raw, truths)
        if np.min(np.abs(best - layer.thresh)) > 0.02 and np.any(best > layer.thresh):
            return raw, truths
        # without any ignored prediction the test would not exercise that branch: make one
        # prediction coincide with a truth and retry the check
        b, t0 = 0, truths[0][0]
        col, row = int(t0[0] * w), int(t0[1] * h)
        a = 2
        v = raw.reshape(n, layer.num, layer.entries, h, w)
        for entry, target in ((0, t0[0] * w - col), (1, t0[1] * h - row)):
            target = min(max(target, 1e-3), 1 - 1e-3)
            v[b, a, entry, row, col] = np.log(target / (1 - target))
        v[b, a, 2, row, col] = np.log(t0[2] * w / layer.anchors[a, 0])
        v[b, a, 3, row, col] = np.log(t0[3] * h / layer.anchors[a, 1])
        best = best_ious(layer, raw, truths)
        if np.min(np.abs(best - layer.thresh)) > 0.02 and np.any(best > layer.thresh):
            return raw, truths
    raise AssertionError("could not draw a test input away from the discontinuities")


def best_ious(layer, raw, truths):
    n = raw.shape[0]
    _, h, w = layer.in_shape
    v = raw.reshape(n, layer.num, layer.entries, h, w)
    s = sigmoid(v[:, :, 0:2])
    px = (np.arange(w) + s[:, :, 0]) / w
    py = (np.arange(h)[:, None] + s[:, :, 1]) / h
    pw = np.exp(v[:, :, 2]) * layer.anchors[:, 0, None, None].astype(np.float64) / w
    ph = np.exp(v[:, :, 3]) * layer.anchors[:, 1, None, None].astype(np.float64) / h
    best = np.zeros(px.shape)
    for b in range(n):
        for x, y, tw, th, _c in truths[b]:
            iw = np.minimum(px[b] + pw[b] / 2, x + tw / 2) - np.maximum(px[b] - pw[b] / 2, x - tw / 2)
            ih = np.minimum(py[b] + ph[b] / 2, y + th / 2) - np.maximum(py[b] - ph[b] / 2, y - th / 2)
            inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
            best[b] = np.maximum(best[b], inter / (pw[b] * ph[b] + tw * th - inter))
    return best


def check_loss_gradient(layer, raw, truths, seen, rng, frozen=False, n_checks=300, eps=1e-6):
    loss, grad, stats = layer.loss_from_raw(raw, truths, seen)
    assert grad.dtype == np.float64
    targets = layer.build_targets(raw, truths, seen)

    def f(x):
        if frozen:   # rescore's IoU target held constant, as darknet does
            return layer.loss_given_targets(x, targets)[0]
        return layer.loss_from_raw(x, truths, seen)[0]

    # every entry with a gradient of note, plus random ones elsewhere
    flat_grad = grad.ravel()
    big = np.flatnonzero(np.abs(flat_grad) > 1e-3)
    picks = np.concatenate([rng.choice(big, size=min(n_checks, len(big)), replace=False),
                            rng.choice(flat_grad.size, size=n_checks // 3, replace=False)])
    for i in picks:
        xp, xm = raw.copy(), raw.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        numeric = (f(xp) - f(xm)) / (2 * eps)
        assert numeric == pytest.approx(flat_grad[i], rel=1e-5, abs=1e-7), f"entry {i}"
    return stats


# -- loss gradient ---------------------------------------------------------------------------
@pytest.mark.parametrize("seen", [0, 20000], ids=["warmup", "no-warmup"])
def test_loss_gradient_without_rescore(seen):
    rng = np.random.default_rng(1 + seen)
    layer = make_layer(5, 7, rescore=False)          # H=5, W=7: rows and columns differ
    raw, truths = safe_raw_and_truths(layer, 2, rng)
    stats = check_loss_gradient(layer, raw, truths, seen, rng)
    assert stats["count"] == 8
    assert stats["coord"] > 0 and stats["obj"] > 0 and stats["noobj"] > 0 and stats["class"] > 0


@pytest.mark.parametrize("seen", [0, 20000], ids=["warmup", "no-warmup"])
def test_loss_gradient_with_rescore_frozen_iou_target(seen):
    rng = np.random.default_rng(7 + seen)
    layer = make_layer(5, 7, rescore=True)
    raw, truths = safe_raw_and_truths(layer, 2, rng)
    check_loss_gradient(layer, raw, truths, seen, rng, frozen=True)
    # with rescore the full loss differs from the frozen one only through the IoU target,
    # which touches just the box entries of the responsible predictions
    t = layer.build_targets(raw, truths, seen)
    _, grad, _ = layer.loss_from_raw(raw, truths, seen)
    eps = 1e-6
    v = raw.reshape(2, 5, 8, 5, 7)
    # a responsible prediction whose box overlaps its truth, so the IoU target moves with it
    # (and not at IoU ~ 1, a maximum where its derivative vanishes)
    overlapping = t.responsible & (t.obj_t > 0.05) & (t.obj_t < 0.9)
    assert overlapping.any()
    b, a, r, c = (idx[0] for idx in np.nonzero(overlapping))
    for entry in range(4):   # the objectness-through-IoU part darknet ignores
        xp, xm = v.copy(), v.copy()
        xp[b, a, entry, r, c] += eps
        xm[b, a, entry, r, c] -= eps
        full = (layer.loss_from_raw(xp.reshape(raw.shape), truths, seen)[0]
                - layer.loss_from_raw(xm.reshape(raw.shape), truths, seen)[0]) / (2 * eps)
        frozen = (layer.loss_given_targets(xp.reshape(raw.shape), t)[0]
                  - layer.loss_given_targets(xm.reshape(raw.shape), t)[0]) / (2 * eps)
        assert frozen == pytest.approx(grad.reshape(v.shape)[b, a, entry, r, c], rel=1e-5, abs=1e-7)
        if entry >= 2:   # the IoU always moves with w, h (x, y may sit where overlap is flat)
            assert full != pytest.approx(frozen, rel=1e-3, abs=1e-6)


def test_loss_float32_matches_float64():
    rng = np.random.default_rng(3)
    layer = make_layer(5, 7)
    raw, truths = safe_raw_and_truths(layer, 2, rng)
    l64, g64, s64 = layer.loss_from_raw(raw, truths, 20000)
    layer.forward(raw.astype(np.float32), train=True)
    l32, g32, s32 = layer.loss(truths, 20000)
    assert g32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


# -- darknet's order of operations ------------------------------------------------------------
def test_later_truth_overwrites_shared_prediction_and_stats_count_both():
    layer = make_layer(8, 8)
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1, size=(1,) + layer.in_shape).astype(np.float32)
    first = [0.30, 0.40, 0.20, 0.30, 0]
    second = [0.31, 0.41, 0.21, 0.29, 2]     # same cell, same best anchor (1)
    layer.forward(raw, train=True)
    _, g_both, s_both = layer.loss([np.array([first, second])], 20000)
    _, g_second, s_second = layer.loss([np.array([second])], 20000)
    np.testing.assert_array_equal(g_both, g_second)
    assert s_both["count"] == 2 and s_second["count"] == 1
    t = layer.build_targets(layer._raw, [np.array([first, second])], 20000)
    assert np.count_nonzero(t.responsible) == 1 and t.cls_t[0, 1, 3, 2] == 2


def test_warmup_pulls_every_prediction_then_responsible_overwrites():
    layer = make_layer(4, 4, rescore=False)
    raw = np.zeros((1,) + layer.in_shape)
    truth = np.array([[0.6, 0.6, 0.3, 0.4, 1]])
    t0 = layer.build_targets(raw, [truth], 0)
    t1 = layer.build_targets(raw, [truth], 12800)
    assert np.count_nonzero(t1.coord_s) == 1
    assert np.count_nonzero(t0.coord_s) == t0.coord_s.size
    resp = t0.responsible
    assert np.all(t0.coord_s[~resp] == 0.01)
    assert t0.coord_s[resp][0] == pytest.approx(2 - 0.3 * 0.4)
    assert np.all(t0.coord_t[:, :, 0:2][np.broadcast_to(~resp[:, :, None], t0.coord_t[:, :, 0:2].shape)] == 0.5)
    # sigma(0) = .5 and w = h = 0 is exactly the prior, so the warm-up alone gives no gradient
    _, grad, _ = layer.loss_from_raw(raw, [np.zeros((0, 5))], 0)
    assert np.all(grad.reshape(1, 5, 8, 4, 4)[:, :, 0:4] == 0)


def test_padding_and_out_of_range_truths():
    layer = make_layer(4, 4)
    raw = np.random.default_rng(0).normal(size=(2,) + layer.in_shape)
    real = [0.5, 0.5, 0.2, 0.2, 0]
    padded = np.array([real, [0, 0, 0, 0, 0], [1.5, 0.5, 0.2, 0.2, 1]])
    _, g, s = layer.loss_from_raw(raw, [padded, np.zeros((0, 5))], 20000)
    _, g_ref, _ = layer.loss_from_raw(raw, [np.array([real]), np.zeros((0, 5))], 20000)
    np.testing.assert_array_equal(g, g_ref)
    assert s["count"] == 1 and s["ignored_truths"] == 1
    # a centre exactly on the right/bottom edge belongs to the last cell
    _, _, s = layer.loss_from_raw(raw, [np.array([[1.0, 1.0, 0.2, 0.2, 0]]), np.zeros((0, 5))], 0)
    assert s["count"] == 1
    with pytest.raises(ValueError, match="class 3"):
        layer.loss_from_raw(raw, [np.array([[0.5, 0.5, 0.2, 0.2, 3]]), np.zeros((0, 5))], 0)


def test_stats_are_consistent():
    layer = make_layer(6, 6)
    raw = np.random.default_rng(4).normal(size=(1,) + layer.in_shape)
    truths = [np.array([[0.3, 0.3, 0.3, 0.3, 0], [0.7, 0.6, 0.2, 0.4, 1]])]
    _, _, s = layer.loss_from_raw(raw, truths, 20000)
    out = layer.activate(raw).reshape(1, 5, 8, 6, 6)
    t = layer.build_targets(raw, truths, 20000)
    assert s["avg_noobj"] == pytest.approx(out[:, :, 4].mean())
    assert s["avg_obj"] == pytest.approx(out[:, :, 4][t.responsible].mean())
    assert s["avg_iou"] == pytest.approx(t.obj_t[t.responsible].mean())   # rescore target = IoU
    assert s["recall50"] == pytest.approx(np.mean(t.obj_t[t.responsible] > 0.5))


# -- construction and shapes -----------------------------------------------------------------
def test_bad_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match="filters=40"):
        RegionLayer((45, 8, 8), anchors=MINI_ANCHORS, classes=3)
    with pytest.raises(ValueError, match="anchor"):
        RegionLayer((40, 8, 8), anchors=MINI_ANCHORS[:-2], classes=3)


def test_resize_changes_grid():
    layer = make_layer(8, 8)
    layer.resize((40, 5, 7))
    assert layer.out_shape == (40, 5, 7)
    out = layer.forward(np.zeros((1, 40, 5, 7), np.float32))
    assert out.shape == (1, 40, 5, 7)
    with pytest.raises(ValueError):
        layer.resize((41, 5, 7))


# -- activation adjoint ----------------------------------------------------------------------
def check_backward(layer, rng):
    x = rng.normal(0, 2, size=(2,) + layer.in_shape)
    dy = rng.normal(size=x.shape)
    layer._out = layer.activate(x)   # float64 activation for the check
    dx = layer._activation_vjp(layer._out, dy)
    eps = 1e-6
    for i in rng.choice(x.size, size=200, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        numeric = ((layer.activate(xp) - layer.activate(xm)) * dy).sum() / (2 * eps)
        assert numeric == pytest.approx(dx.flat[i], rel=1e-6, abs=1e-8)
    # and the float32 public path agrees
    layer.forward(x.astype(np.float32))
    np.testing.assert_allclose(layer.backward(dy.astype(np.float32)), dx, rtol=1e-4, atol=1e-5)


def test_backward_is_activation_adjoint():
    check_backward(make_layer(5, 7), np.random.default_rng(11))


def test_forward_activation_values():
    layer = make_layer(3, 4)
    x = np.random.default_rng(2).normal(size=(1,) + layer.in_shape).astype(np.float32)
    out = layer.forward(x).reshape(1, 5, 8, 3, 4)
    v = x.reshape(1, 5, 8, 3, 4)
    np.testing.assert_allclose(out[:, :, [0, 1, 4]], 1 / (1 + np.exp(-v[:, :, [0, 1, 4]])), rtol=1e-6)
    np.testing.assert_array_equal(out[:, :, 2:4], v[:, :, 2:4])
    np.testing.assert_allclose(out[:, :, 5:].sum(axis=2), 1, rtol=1e-6)
    e = np.exp(v[:, :, 5:])
    np.testing.assert_allclose(out[:, :, 5:], e / e.sum(axis=2, keepdims=True), rtol=1e-5)
