"""WordTree (YOLO9000's hierarchy) and the region layer's grouped softmax."""

import numpy as np
import pytest

from yolo9000.errors import UserError
from yolo9000.layers.region import RegionLayer
from yolo9000.model.wordtree import WordTree, cfg_class_map, cfg_word_tree
from conftest import REFERENCE_NAMES


# roots {0,1}; 0 -> {2,3,4}; 1 -> {5,6}; 3 -> {7,8}; 6 -> {9}
SMALL_PARENTS = [-1, -1, 0, 0, 0, 1, 1, 3, 3, 6]


def darknet_read_tree_groups(parents):
    """darknet's read_tree group bookkeeping, transcribed loop for loop as a reference."""
    offsets, sizes, group_of = [], [], []
    last_parent, group_size, groups = -1, 0, 0
    for n, parent in enumerate(parents):
        if parent != last_parent:
            groups += 1
            offsets.append(n - group_size)
            sizes.append(group_size)
            group_size = 0
            last_parent = parent
        group_of.append(groups)
        group_size += 1
    offsets.append(len(parents) - group_size)
    sizes.append(group_size)
    return offsets, sizes, group_of


def test_small_tree_structure():
    tree = WordTree(SMALL_PARENTS)
    offsets, sizes = tree.groups
    assert offsets.tolist() == [0, 2, 5, 7, 9] and sizes.tolist() == [2, 3, 2, 2, 1]
    assert tree.child.tolist() == [1, 2, -1, 3, -1, -1, 4, -1, -1, -1]
    assert tree.leaf.tolist() == [False, False, True, False, True, True, False, True, True, True]
    assert tree.path(8) == [8, 3, 0]
    assert tree.depth.tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2, 2]


def test_bundled_9k_matches_darknet_grouping():
    tree = WordTree.bundled("9k")
    assert tree.n == 9418
    assert tree.wnids[0] == "n00002452" and tree.names[0] == "thing"
    ref_offsets, ref_sizes, ref_group = darknet_read_tree_groups(tree.parent.tolist())
    # darknet's first group is the roots' (first node is a root, so no empty leading group)
    assert ref_sizes[0] > 0
    assert tree.group_offset.tolist() == ref_offsets
    assert tree.group_size.tolist() == ref_sizes
    assert tree.group.tolist() == ref_group
    assert tree.group_size.sum() == 9418
    same = WordTree.load(REFERENCE_NAMES / "9k.tree", names=REFERENCE_NAMES / "9k.names")
    assert np.array_equal(same.parent, tree.parent) and same.names == tree.names


def test_resolve_cfg_path_falls_back_to_bundled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert WordTree.resolve("data/9k.tree").n == 9418
    with pytest.raises(UserError, match="not found"):
        WordTree.resolve("data/nope.tree")


def test_load_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.tree"
    bad.write_text("a -1\nb 0\nc 5\n")
    with pytest.raises(UserError) as err:
        WordTree.load(bad)
    assert err.value.line == 3 and "earlier node" in str(err.value)
    bad.write_text("a -1\nb x\n")
    with pytest.raises(UserError, match="not an integer"):
        WordTree.load(bad)


def test_grouped_softmax_and_its_adjoint():
    tree = WordTree(SMALL_PARENTS)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, size=(3, 10, 4))
    p = tree.grouped_softmax(x, axis=1)
    for off, size in zip(*tree.groups):
        span = x[:, off:off + size]
        e = np.exp(span - span.max(axis=1, keepdims=True))
        np.testing.assert_allclose(p[:, off:off + size], e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(np.exp(tree.grouped_log_softmax(x, axis=1)), p, rtol=1e-12)
    dy = rng.normal(size=x.shape)
    dx = tree.grouped_softmax_vjp(p, dy, axis=1)
    eps = 1e-6
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        numeric = ((tree.grouped_softmax(xp, 1) - tree.grouped_softmax(xm, 1)) * dy).sum() / (2 * eps)
        assert numeric == pytest.approx(dx.flat[i], rel=1e-6, abs=1e-9)


def softmax_a_group_at_a_time(tree, x, axis):
    """The grouped softmax as one pass per group (each group's slice, its maximum, exp, sum
    along the axis and quotient), singletons 1: the bits grouped_softmax must give."""
    out = np.empty_like(x)
    before = (slice(None),) * axis
    for off, size in zip(*tree.groups):
        span = before + (slice(off, off + size),)
        if size == 1:
            out[span] = 1
            continue
        z = x[span]
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        out[span] = e / e.sum(axis=axis, keepdims=True)
    return out


@pytest.mark.parametrize("shape,axis", [
    ((1, 3, None, 5, 4), 2),        # a region layer's classes (N, anchors, nodes, H, W)
    ((2, 2, None, 1, 1), 2),        # ... on a 1x1 map: the sum's axis innermost
    ((3, None), 1),                 # a softmax layer's (N, nodes)
    ((2, None, 2, 3), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grouped_softmax_gives_the_bits_of_a_pass_per_group(shape, axis, dtype, monkeypatch):
    """The 9k tree's 1800 groups of 40 sizes go through NumPy a size at a time, in chunks
    (a small chunk budget here, so that sizes span several); the bits are those of a pass
    per group, NaN and infinities included."""
    from yolo9000.model import wordtree
    monkeypatch.setattr(wordtree, "GROUPED_SOFTMAX_BYTES", 4096)
    tree = WordTree.bundled("9k")
    shape = tuple(tree.n if d is None else d for d in shape)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 8).astype(dtype)
    x.reshape(-1)[rng.integers(0, x.size, 12)] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 80.0] * 2
    with np.errstate(invalid="ignore"):
        expected = softmax_a_group_at_a_time(tree, x, axis)
        got = tree.grouped_softmax(x, axis)
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_hierarchy_probabilities():
    tree = WordTree(SMALL_PARENTS)
    probs = tree.grouped_softmax(np.random.default_rng(1).normal(size=(2, 10)), axis=1)
    assert tree.hierarchy_probability(probs[0], 8) == pytest.approx(probs[0, 8] * probs[0, 3] * probs[0, 0])
    absolute = tree.hierarchy_predictions(probs, axis=1)
    for node in range(10):
        np.testing.assert_allclose(absolute[:, node], tree.hierarchy_probability(probs, node, axis=1))
    # children of a node share its probability mass
    np.testing.assert_allclose(absolute[:, 7] + absolute[:, 8], absolute[:, 3])
    np.testing.assert_allclose(absolute[:, 0] + absolute[:, 1], 1)


def test_top_prediction_descends_while_confident():
    tree = WordTree(SMALL_PARENTS)
    probs = np.array([0.9, 0.1, 0.1, 0.8, 0.1, 0.5, 0.5, 0.3, 0.7, 1.0])
    assert tree.top_prediction(probs, 0.5) == 8        # .9 * .8 * .7 = .504
    assert tree.top_prediction(probs, 0.6) == 3        # .504 too low: stop at the parent
    assert tree.top_prediction(probs, 0.95) == 0       # root group: best root regardless


# -- naming a box: the paper's walk and darknet's ------------------------------------------------
# roots A(0), B(1); A -> C(2), D(3); C -> E(4), F(5)
WALK_PARENTS = [-1, -1, 0, 0, 2, 2]
WALK_PROBS = np.array([0.9, 0.1, 0.8, 0.2, 0.9, 0.1])     # conditional: each group sums to 1


def test_paper_and_darknet_walks_name_different_nodes():
    tree = WordTree(WALK_PARENTS)
    # paper: .9 > .5 -> A; .9*.8 = .72 > .5 -> C; .72*.9 = .648 > .5 -> E, a leaf
    assert tree.top_prediction(WALK_PROBS, 0.5) == 4
    assert tree.top_prediction(WALK_PROBS, 0.5, walk="paper") == 4
    # darknet: absolute probabilities A .9, C .72, E .648; it multiplies those again:
    # .9 > .5 -> A; .9*.72 = .648 > .5 -> C; .648*.648 = .42 < .5 -> stop at C
    assert tree.top_prediction(WALK_PROBS, 0.5, walk="darknet") == 2
    # at .4 darknet's product .42 passes too, and both reach E
    assert tree.top_prediction(WALK_PROBS, 0.4, walk="darknet") == 4
    with pytest.raises(ValueError, match="paper, darknet"):
        tree.top_prediction(WALK_PROBS, 0.5, walk="greedy")


def test_path_probabilities_root_first():
    tree = WordTree(WALK_PARENTS)
    path = tree.path_probabilities(WALK_PROBS, 4)
    assert [node for node, _, _ in path] == [0, 2, 4]
    np.testing.assert_allclose([cond for _, cond, _ in path], [0.9, 0.8, 0.9])
    np.testing.assert_allclose([absolute for _, _, absolute in path], [0.9, 0.72, 0.648])
    assert tree.path_probabilities(WALK_PROBS, 1) == [(1, pytest.approx(0.1), pytest.approx(0.1))]


def golden_tree_outputs():
    from conftest import GOLDEN
    tree = WordTree.load(GOLDEN / "small.tree")
    cases = [np.load(GOLDEN / f"wordtree_region_{c}.npz") for c in ("seen0", "seen100000")]
    return tree, cases


def test_golden_absolute_probabilities_are_darknets():
    tree, cases = golden_tree_outputs()
    for d in cases:
        probs = d["output"].reshape(3, 3, 15, 8, 8)[:, :, 5:]
        absolute = tree.hierarchy_predictions(probs, axis=2)
        assert absolute.dtype == np.float32
        np.testing.assert_allclose(absolute, d["absprob"], rtol=0, atol=1e-7)
        assert not np.allclose(probs, d["absprob"], atol=1e-3)     # the product is not a no-op


def test_golden_darknet_walk_reproduces_top50():
    tree, cases = golden_tree_outputs()
    for d in cases:
        probs = d["output"].reshape(3, 3, 15, 8, 8)[:, :, 5:]
        predictions = np.ndindex(3, 3, 8, 8)
        darknet = np.array([tree.top_prediction(probs[b, a, :, r, c], 0.5, walk="darknet")
                            for b, a, r, c in predictions]).reshape(3, 3, 8, 8)
        np.testing.assert_array_equal(darknet, d["top50"])
        paper = np.array([tree.top_prediction(probs[b, a, :, r, c], 0.5)
                          for b, a, r, c in np.ndindex(3, 3, 8, 8)]).reshape(3, 3, 8, 8)
        # the files tell the walks apart: the paper's goes deeper on some predictions
        differ = paper != d["top50"]
        assert differ.any()
        assert np.all(tree.depth[paper[differ]] > tree.depth[d["top50"][differ]])


def test_region_layer_with_tree_forward_and_backward():
    tree = WordTree(SMALL_PARENTS)
    anchors = [1, 1, 2, 2]
    layer = RegionLayer((2 * (5 + 10), 3, 4), anchors=anchors, classes=10, num=2, tree=tree)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 2, size=(2,) + layer.in_shape)
    out = layer.forward(x.astype(np.float32)).reshape(2, 2, 15, 3, 4)
    v = x.reshape(2, 2, 15, 3, 4)
    np.testing.assert_allclose(out[:, :, 5:], tree.grouped_softmax(v[:, :, 5:], axis=2), rtol=1e-5)
    np.testing.assert_allclose(out[:, :, 5:7].sum(axis=2), 1, rtol=1e-6)    # root group
    np.testing.assert_allclose(out[:, :, 4], 1 / (1 + np.exp(-v[:, :, 4])), rtol=1e-5)

    dy = rng.normal(size=x.shape)
    out64 = layer.activate(x)
    dx = layer._activation_vjp(out64, dy)
    eps = 1e-6
    for i in rng.choice(x.size, size=300, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        numeric = ((layer.activate(xp) - layer.activate(xm)) * dy).sum() / (2 * eps)
        assert numeric == pytest.approx(dx.flat[i], rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(layer.backward(dy.astype(np.float32)), dx, rtol=1e-4, atol=1e-5)


def test_region_tree_size_must_match_classes():
    with pytest.raises(ValueError, match="tree has 10 nodes"):
        RegionLayer((2 * (5 + 9), 3, 3), anchors=[1, 1, 2, 2], classes=9, num=2,
                    tree=WordTree(SMALL_PARENTS))


# -- training with the tree (darknet's hierarchical delta_region_class) ----------------------
def darknet_tree_class_delta(tree, output, truth_nodes, scale=1.0):
    """delta_region_class with a hierarchy, transcribed: one prediction's class channels,
    truths applied in order, each writing the groups on its path."""
    delta = np.zeros_like(output)
    for node in truth_nodes:
        while node >= 0:
            g = tree.group[node]
            off, size = tree.group_offset[g], tree.group_size[g]
            delta[off:off + size] = scale * (0 - output[off:off + size])
            delta[node] = scale * (1 - output[node])
            node = tree.parent[node]
    return delta


def tree_layer(**kw):
    return RegionLayer((2 * 15, 4, 4), anchors=[1, 1, 2.5, 2.5], classes=10, num=2,
                       tree=WordTree(SMALL_PARENTS), rescore=False, **kw)


def test_tree_class_gradient_matches_darknet_delta_with_overwrites():
    layer = tree_layer(class_scale=2)
    raw = np.random.default_rng(5).normal(size=(1,) + layer.in_shape).astype(np.float32)
    layer.forward(raw, train=True)
    # both truths fall in cell (1, 1) with anchor 0: the later (node 5) rewrites the root group
    # but leaves node 8's deeper groups as the first truth wrote them
    truths = np.array([[0.3, 0.3, 0.2, 0.2, 8], [0.32, 0.3, 0.21, 0.2, 5]])
    _, grad, stats = layer.loss([truths], 20000)
    out = layer._out.reshape(1, 2, 15, 4, 4)
    expected = -darknet_tree_class_delta(layer.tree, out[0, 0, 5:, 1, 1], [8, 5], scale=2)
    g = grad.reshape(1, 2, 15, 4, 4)
    np.testing.assert_allclose(g[0, 0, 5:, 1, 1], expected, atol=1e-6)
    assert np.count_nonzero(expected) == 9      # groups of 8 (3 of them) and of 5 (1 new)
    mask = np.ones(g.shape, bool)
    mask[0, 0, 5:, 1, 1] = False
    mask[:, :, :5] = False
    assert np.all(g[mask] == 0)
    p = out[0, 0, 5:, 1, 1]
    assert stats["avg_cat"] == pytest.approx(
        (p[8] * p[3] * p[0] + p[5] * p[1]) / 2, rel=1e-5)


def test_tree_class_loss_gradient_finite_differences():
    layer = tree_layer()
    rng = np.random.default_rng(6)
    raw = rng.normal(0, 1.5, size=(2,) + layer.in_shape)
    truths = [np.array([[0.3, 0.3, 0.2, 0.2, 8], [0.7, 0.6, 0.5, 0.4, 2]]),
              np.array([[0.55, 0.8, 0.3, 0.3, 9]])]
    loss, grad, stats = layer.loss_from_raw(raw, truths, 20000)
    assert stats["class"] > 0
    v = raw.reshape(2, 2, 15, 4, 4)
    eps = 1e-6
    # the class channels cannot move anchors or the ignore mask, so the loss is smooth in them
    checked = 0
    for idx in np.ndindex(v[:, :, 5:].shape):
        b, a, k, r, c = idx
        if grad.reshape(v.shape)[b, a, 5 + k, r, c] == 0 and rng.random() > 0.05:
            continue
        xp, xm = v.copy(), v.copy()
        xp[b, a, 5 + k, r, c] += eps
        xm[b, a, 5 + k, r, c] -= eps
        numeric = (layer.loss_from_raw(xp.reshape(raw.shape), truths, 20000)[0]
                   - layer.loss_from_raw(xm.reshape(raw.shape), truths, 20000)[0]) / (2 * eps)
        assert numeric == pytest.approx(grad.reshape(v.shape)[b, a, 5 + k, r, c], rel=1e-5, abs=1e-7)
        checked += 1
    assert checked > 20


def test_class_map_sends_dataset_classes_to_tree_nodes():
    layer = tree_layer(map=[8, 9])          # dataset class 0 -> node 8, class 1 -> node 9
    raw = np.random.default_rng(7).normal(size=(1,) + layer.in_shape)
    _, g_mapped, _ = layer.loss_from_raw(raw, [np.array([[0.3, 0.3, 0.2, 0.2, 1]])], 20000)
    _, g_direct, _ = tree_layer().loss_from_raw(raw, [np.array([[0.3, 0.3, 0.2, 0.2, 9]])], 20000)
    np.testing.assert_array_equal(g_mapped, g_direct)
    with pytest.raises(ValueError, match="outside"):
        layer.loss_from_raw(raw, [np.array([[0.3, 0.3, 0.2, 0.2, 2]])], 20000)


def test_yolo9000_region_options_load_bundled_tree_and_map(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                 # the cfg's data/ paths do not exist here
    # what the network builder hands the layer for yolo9000.cfg's tree= and map= values
    layer = RegionLayer((3 * (5 + 9418), 2, 2), anchors=[0.77871, 1.14074, 3.00525, 4.31277,
                        9.22725, 9.61974], classes=9418, num=3,
                        tree=cfg_word_tree("data/9k.tree"), map=cfg_class_map("data/coco9k.map"))
    assert layer.tree.n == 9418 and len(layer.class_map) == 80
    x = np.random.default_rng(0).normal(size=(1,) + layer.in_shape).astype(np.float32)
    out = layer.forward(x, train=True).reshape(1, 3, 5 + 9418, 2, 2)
    n_roots = int(layer.tree.group_size[0])
    np.testing.assert_allclose(out[:, :, 5:5 + n_roots].sum(axis=2), 1, rtol=1e-5)
    loss, grad, stats = layer.loss([np.array([[0.5, 0.5, 0.4, 0.4, 0]])], 20000)
    assert np.isfinite(loss) and stats["class"] > 0 and np.isfinite(grad).all()
