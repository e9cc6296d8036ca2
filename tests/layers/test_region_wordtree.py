"""YOLO9000's region loss: darknet's own numbers with a WordTree, and its joint-training rule
for classification-only images (gradient checks on odd grids)."""
import sys

import numpy as np
import pytest

from yolo9000.layers.region import RegionLayer
from yolo9000.model.wordtree import WordTree
from yolo9000.truths import classification_truth
from conftest import GOLDEN, TESTS

sys.path.insert(0, str(TESTS / "layers"))
from test_region import (check_loss_gradient, make_layer, region_options_from_cfg,  # noqa: E402
                         safe_raw_and_truths)

WORDTREE_CASES = [GOLDEN / f"wordtree_region_{case}.npz" for case in ("seen0", "seen100000")]
# the golden README's small.tree, parent by parent
SMALL_TREE_PARENTS = [-1, -1, 0, 0, 0, 1, 1, 1, 2, 2]
# (image, anchor, row, col) the README names as darknet's choice for the two classification images
README_CLASSIFICATION_PICKS = [(1, 2, 0, 0), (2, 1, 4, 4)]


def golden_tree_layer():
    opts = region_options_from_cfg(GOLDEN / "tree.cfg")
    opts["tree"] = WordTree.load(GOLDEN / opts["tree"])
    return RegionLayer((45, 8, 8), **opts)


def expected_grad(d):
    """-delta, times sigmoid' on x, y, objectness (the golden README's convention)."""
    out = d["output"].reshape(3, 3, 15, 8, 8)
    expected = -d["delta"].reshape(out.shape).copy()
    for entry in (0, 1, 4):
        expected[:, :, entry] *= out[:, :, entry] * (1 - out[:, :, entry])
    return expected


@pytest.mark.parametrize("case", WORDTREE_CASES, ids=lambda p: p.stem)
def test_golden_darknet_wordtree_region(case):
    d = np.load(case)
    layer = golden_tree_layer()
    assert layer.tree.parent.tolist() == SMALL_TREE_PARENTS
    out = layer.forward(d["raw"], train=True)
    np.testing.assert_allclose(out, d["output"], rtol=0, atol=1e-5)
    loss, grad, stats = layer.loss(list(d["truth"]), int(d["seen"]))
    expected = expected_grad(d)
    g = grad.reshape(expected.shape)
    # image by image: the detection image (labels at depths 0, 1 and 2) and both
    # classification-only images
    for image in range(3):
        np.testing.assert_allclose(g[image], expected[image], rtol=0, atol=1e-5,
                                   err_msg=f"image {image}")
        assert np.count_nonzero(np.abs(expected[image]) > 1e-4) > 150
    assert stats["darknet_cost"] == pytest.approx(float(d["cost"]), rel=1e-5)
    assert stats["count"] == 3 and stats["classification_count"] == 2
    assert loss == pytest.approx(stats["coord"] + stats["obj"] + stats["noobj"] + stats["class"])


def test_golden_classification_images_follow_darknets_rule():
    d = np.load(WORDTREE_CASES[0])        # seen 0: the warm-up is on for the detection image
    layer = golden_tree_layer()
    layer.forward(d["raw"], train=True)
    t = layer.build_targets(layer._raw, list(d["truth"]), int(d["seen"]))
    delta = d["delta"].reshape(3, 3, 15, 8, 8)
    assert t.class_only.tolist() == [-1, 9, 1]
    for b, a, r, c in README_CLASSIFICATION_PICKS:
        assert t.obj_s[b, a, r, c] == 0 and delta[b, a, 4, r, c] == 0
        assert t.cls_t[b, a, r, c] == d["truth"][b, 0, 4]
    for b in (1, 2):
        # no coordinate term despite seen 0; no-object pull on every other prediction
        assert np.all(t.coord_s[b] == 0) and np.all(delta[b, :, 0:4] == 0)
        assert np.count_nonzero(t.obj_s[b] == 0) == 1 and np.count_nonzero(delta[b, :, 4]) == 191
    # the class delta of image 1 (node 9 isosceles) covers its three groups: 2 + 3 + 2 channels
    assert np.count_nonzero(delta[1, 2, 5:, 0, 0]) == 7
    assert np.count_nonzero(delta[2, 1, 5:, 4, 4]) == 2      # node 1 round: the root group


# -- the rule's pieces on their own --------------------------------------------------------
def small_tree_layer(h, w, **kw):
    return make_layer(h, w, classes=10, tree=WordTree(SMALL_TREE_PARENTS), **kw)


def pick_scores(layer, raw, image, node):
    """objectness x P(node) of every prediction of one image, by hand from the activation."""
    out = layer.activate(raw).reshape(raw.shape[0], layer.num, layer.entries, *layer.in_shape[1:])
    p = out[image, :, 4].copy()
    while node >= 0:
        p *= out[image, :, 5 + node]
        node = SMALL_TREE_PARENTS[node]
    return p


def test_classification_image_gradient_finite_differences():
    """An odd 5x7 grid, batch 2: a classification-only image (a depth-2 node) next to a
    detection image, during the warm-up, which the classification image must skip."""
    rng = np.random.default_rng(21)
    layer = small_tree_layer(5, 7)
    raw, truths = safe_raw_and_truths(layer, 2, rng)
    truths[0] = classification_truth(8)
    scores = np.sort(pick_scores(layer, raw, 0, 8).reshape(-1))
    assert scores[-1] - scores[-2] > 1e-3 * scores[-1]     # the pick cannot flip under eps
    stats = check_loss_gradient(layer, raw, truths, 0, rng, frozen=True)
    assert stats["classification_count"] == 1 and stats["count"] == 4

    loss, grad, _ = layer.loss_from_raw(raw, truths, 0)
    g = grad.reshape(2, 5, 15, 5, 7)
    a, r, c = np.unravel_index(np.argmax(pick_scores(layer, raw, 0, 8)), (5, 5, 7))
    assert np.all(g[0, :, 0:4] == 0)                        # no coordinate loss, no warm-up
    assert g[0, a, 4, r, c] == 0                            # darknet zeroes the pick's objectness
    others = np.ones((5, 5, 7), bool)
    others[a, r, c] = False
    assert np.all(g[0, :, 4][others] > 0)                   # no-object pull on all the rest
    class_grads = g[0, :, 5:].transpose(0, 2, 3, 1).reshape(-1, 10)
    assert np.flatnonzero(np.abs(class_grads).sum(axis=1)).tolist() == [
        np.ravel_multi_index((a, r, c), (5, 5, 7))]
    # the groups on node 8's path (8's, 2's and 0's) carry the class loss, group 2 (round's) not
    assert np.all(g[0, a, 5:10, r, c] != 0) and np.all(g[0, a, 10:13, r, c] == 0)
    assert np.all(g[0, a, 13:15, r, c] != 0)
    # the finite differences of the full loss (pick recomputed) agree at the pick as well
    eps = 1e-6
    v = raw.reshape(g.shape)
    for k in [4, 5, 7, 13, 10]:
        xp, xm = v.copy(), v.copy()
        xp[0, a, k, r, c] += eps
        xm[0, a, k, r, c] -= eps
        numeric = (layer.loss_from_raw(xp.reshape(raw.shape), truths, 0)[0]
                   - layer.loss_from_raw(xm.reshape(raw.shape), truths, 0)[0]) / (2 * eps)
        assert numeric == pytest.approx(g[0, a, k, r, c], rel=1e-5, abs=1e-7), f"entry {k}"


def test_detection_image_with_tree_gradient_finite_differences():
    """Labels anywhere in the tree (classes drawn over all 10 nodes), odd 7x5 grid, all terms."""
    rng = np.random.default_rng(22)
    layer = small_tree_layer(7, 5)
    raw, truths = safe_raw_and_truths(layer, 2, rng)
    stats = check_loss_gradient(layer, raw, truths, 20000, rng, frozen=True)
    assert stats["class"] > 0 and stats["coord"] > 0 and stats["noobj"] > 0
    assert stats["classification_count"] == 0


def test_classification_image_ignores_its_other_rows_and_the_class_map():
    layer = small_tree_layer(4, 4, map=[8, 9])
    raw = np.random.default_rng(23).normal(size=(1,) + layer.in_shape)
    only = classification_truth(6)
    box = [0.5, 0.5, 0.3, 0.3, 1]
    # a box row and a second marker in a classification image: darknet uses the first
    # marker only; the node is a tree node, the map (dataset class -> node) does not apply
    mixed = np.vstack([[box], only, classification_truth(2)])
    _, g_mixed, s_mixed = layer.loss_from_raw(raw, [mixed], 20000)
    _, g_only, s_only = layer.loss_from_raw(raw, [only], 20000)
    np.testing.assert_array_equal(g_mixed, g_only)
    assert s_mixed["ignored_truths"] == 2 and s_only["ignored_truths"] == 0
    t = small_tree_layer(4, 4).build_targets(raw, [only], 20000)
    assert t.cls_t.max() == 6


def test_classification_truth_errors():
    tree_layer = small_tree_layer(4, 4)
    flat_layer = make_layer(4, 4)
    raw_tree = np.zeros((1,) + tree_layer.in_shape)
    with pytest.raises(ValueError, match="node 10 outside"):
        tree_layer.loss_from_raw(raw_tree, [classification_truth(10)], 0)
    with pytest.raises(ValueError, match="needs a WordTree"):
        flat_layer.loss_from_raw(np.zeros((1,) + flat_layer.in_shape), [classification_truth(1)], 0)
