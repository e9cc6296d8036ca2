"""The classifier's loss: softmax cross-entropy at [cost], and its gradient through the network."""
import math

import numpy as np
import pytest

from gradcheck import numeric_grad
from yolo9000.errors import UserError
from yolo9000.layers.cost import softmax_cross_entropy
from yolo9000.layers.softmax import SoftmaxLayer
from yolo9000.model.network import Network


def test_loss_and_accuracy_by_hand():
    # two images, three classes; probabilities chosen so the numbers are easy to follow
    p = np.array([[0.7, 0.2, 0.1],
                  [0.5, 0.3, 0.2]], np.float32)
    loss, grad, stats = softmax_cross_entropy(p.reshape(2, 3, 1, 1), [0, 2])
    assert loss == pytest.approx(-math.log(0.7) - math.log(0.2), rel=1e-6)
    assert stats["loss"] == pytest.approx(loss / 2)
    assert stats["top1"] == 0.5          # image 1 is right, image 2 ranks its label last
    assert stats["top5"] == 1.0          # with 3 classes every label is in the top 5
    expected = np.array([[0.7 - 1, 0.2, 0.1], [0.5, 0.3, 0.2 - 1]], np.float32)
    np.testing.assert_allclose(grad.reshape(2, 3), expected, atol=1e-7)
    assert grad.shape == (2, 3, 1, 1)


def test_top5_of_many_classes():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(10), size=50).astype(np.float32)
    labels = rng.integers(0, 10, 50)
    _, _, stats = softmax_cross_entropy(p, labels)
    # independent count: position of the label in each row sorted by descending probability
    positions = [list(np.argsort(-row)).index(lab) for row, lab in zip(p, labels)]
    assert stats["top1"] == pytest.approx(np.mean([q == 0 for q in positions]))
    assert stats["top5"] == pytest.approx(np.mean([q < 5 for q in positions]))


def test_bad_labels_are_refused():
    p = np.full((2, 3), 1 / 3, np.float32)
    with pytest.raises(ValueError):
        softmax_cross_entropy(p, [0, 3])
    with pytest.raises(ValueError):
        softmax_cross_entropy(p, [0])


@pytest.mark.parametrize("classes,batch", [(7, 3), (2, 1)])
def test_softmax_cross_entropy_gradient_at_the_logits(classes, batch):
    """The gradient the trainer starts the backward pass with (at the softmax's input)
    against finite differences of Σ −log softmax(z)[label]."""
    rng = np.random.default_rng(classes)
    z = rng.standard_normal((batch, classes, 1, 1)).astype(np.float32) * 2
    labels = rng.integers(0, classes, batch)
    softmax = SoftmaxLayer((classes, 1, 1))
    _, grad, _ = softmax_cross_entropy(softmax.forward(z), labels)

    def loss():
        return softmax_cross_entropy(softmax.forward(z), labels)[0]

    idx = np.arange(z.size)
    numeric = numeric_grad(loss, z, idx, eps=1e-2)
    np.testing.assert_allclose(grad.reshape(-1), numeric, rtol=2e-2, atol=2e-3)


CLASSIFIER = """
[net]
width=5
height=7
channels=3
[convolutional]
batch_normalize=1
filters=6
size=3
stride=2
pad=1
activation=leaky
[convolutional]
filters=5
size=1
stride=1
pad=1
activation=linear
[avgpool]
[softmax]
groups=1
[cost]
"""


def test_classifier_backward_matches_finite_differences():
    """Through conv (stride 2, batch norm) -> 1x1 conv -> avgpool -> softmax -> [cost]: the
    backward pass started at the avgpool with the loss's gradient, as training runs it, against
    finite differences of the loss in the input and in both convolutions' parameters (odd
    input 5x7, batch 3)."""
    net = Network.from_cfg(CLASSIFIER, seed=2)
    assert net.classifier == 3
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3, 3, 7, 5)).astype(np.float32)
    labels = np.array([4, 0, 2])

    def loss():
        return softmax_cross_entropy(net.forward(x, train=True), labels)[0]

    net.zero_grads()
    _, grad, _ = softmax_cross_entropy(net.forward(x, train=True), labels)
    dx = net.backward(grad, start=net.classifier - 1)
    checks = [("input", x, dx)]
    for i, name, p, g in net.parameters():
        if g is not None:
            checks.append((f"{i}/{name}", p, g.copy()))
    for label, array, analytic in checks:
        idx = rng.choice(array.size, size=min(25, array.size), replace=False)
        numeric = numeric_grad(loss, array, idx, eps=1e-2)
        got = analytic.reshape(-1)[idx]
        scale = max(np.abs(numeric).max(), 1e-3)
        assert np.all(np.abs(got - numeric) <= 3e-3 * scale + 3e-2 * np.abs(numeric)), \
            (label, got, numeric)


def test_cost_types_other_than_sse_are_refused(tmp_path):
    cfg = tmp_path / "c.cfg"
    cfg.write_text(CLASSIFIER.replace("[cost]", "[cost]\ntype=smooth"))
    with pytest.raises(UserError, match=r"c\.cfg:\d+: .*cost type 'smooth'"):
        Network.from_cfg(str(cfg))


def test_cost_scale_multiplies_the_training_gradient():
    from yolo9000.training.tasks import ClassificationTask
    net = Network.from_cfg(CLASSIFIER.replace("[cost]", "[cost]\nscale=2.5"), seed=1)
    task = ClassificationTask()
    task.check(net, "cfg")
    assert task.scale == 2.5


# -- a WordTree classifier ([softmax] tree=) --------------------------------------------------
# roots A(0), B(1); A -> C(2), D(3); C -> E(4), F(5), G(6)
TREE_PARENTS = [-1, -1, 0, 0, 2, 2, 2]


def test_tree_loss_and_accuracy_by_hand():
    from yolo9000.layers.cost import tree_cross_entropy
    from yolo9000.model.wordtree import WordTree
    tree = WordTree(TREE_PARENTS)
    # conditional probabilities, each group summing to 1
    p = np.array([[0.8, 0.2, 0.75, 0.25, 0.6, 0.3, 0.1],     # walk: A .8, C .6, E .36 < .5: C
                  [0.3, 0.7, 0.5, 0.5, 0.2, 0.2, 0.6]],      # walk: B .7, a leaf
                 np.float32)
    loss, grad, stats = tree_cross_entropy(p.reshape(2, 7, 1, 1), [5, 0], tree)
    # image 0, label F: -log P(F|C) - log P(C|A) - log P(A); image 1, label A: -log P(A)
    assert loss == pytest.approx(-math.log(0.3 * 0.75 * 0.8) - math.log(0.3), rel=1e-6)
    assert stats["loss"] == pytest.approx(loss / 2)
    expected = np.array([[0.8 - 1, 0.2, 0.75 - 1, 0.25, 0.6, 0.3 - 1, 0.1],
                         [0.3 - 1, 0.7, 0, 0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(grad.reshape(2, 7), expected, atol=1e-7)
    assert grad.shape == (2, 7, 1, 1)
    # top-1: image 0 stops at C, coarser than its label F: wrong; image 1 says B, label A: wrong
    assert stats["top1"] == 0.0
    # absolute probabilities: A .8 B .2 C .6 D .2 E .36 F .18 G .06 for image 0; without F's
    # ancestors A and C, F ranks behind E, B, D (tie counts against it): 4th, in the top 5.
    # image 1: A .3 is second behind B .7
    assert stats["top5"] == 1.0
    _, _, stats = tree_cross_entropy(p, [2, 1], tree)
    # C: the walk stopped at C itself; B: the walk reached B
    assert stats["top1"] == 1.0
    _, _, stats = tree_cross_entropy(p, [0, 6], tree)
    # A is an ancestor of the answer C (right); for G the walk says B (wrong)
    assert stats["top1"] == 0.5


def test_tree_top5_does_not_count_the_labels_ancestors():
    from yolo9000.layers.cost import tree_cross_entropy
    from yolo9000.model.wordtree import WordTree
    # a chain six deep, every node with one sibling: 0|1 -> 2|3 -> 4|5 -> ... -> 10|11
    tree = WordTree([-1, -1, 0, 0, 2, 2, 4, 4, 6, 6, 8, 8])
    p = np.tile([0.9, 0.1], 6).astype(np.float32)[None]
    # leaf 10: absolute .9**6 = .53; its five ancestors (.9 ... .59) all score higher, and
    # would push it to 6th; every other node scores at most .1
    _, _, stats = tree_cross_entropy(p, [10], tree)
    assert stats["top5"] == 1.0 and stats["top1"] == 1.0      # the walk: .9**6 > .5 -> 10
    _, _, stats = tree_cross_entropy(p, [11], tree)
    # 11 (.059): behind 10 (.53) and the siblings 1 (.1), 3 (.09), 5 (.081), 7 (.073) and
    # 9 (.066): 7th
    assert stats["top5"] == 0.0 and stats["top1"] == 0.0


def test_one_level_tree_is_the_flat_classifier():
    from yolo9000.layers.cost import tree_cross_entropy
    from yolo9000.model.wordtree import WordTree
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(9), size=40).astype(np.float32)
    labels = rng.integers(0, 9, 40)
    flat = softmax_cross_entropy(p, labels)
    tree = tree_cross_entropy(p, labels, WordTree([-1] * 9))
    assert tree[0] == pytest.approx(flat[0], rel=1e-12)
    np.testing.assert_array_equal(tree[1], flat[1])
    assert tree[2] == pytest.approx(flat[2])
    assert 0 < flat[2]["top5"] < 1 and 0 < flat[2]["top1"] < 1


def test_tree_cross_entropy_gradient_through_the_tree_softmax():
    """dL/d(softmax input) against finite differences of Σ −log P along each label's path, the
    softmax a [softmax] tree= layer (odd 2-3-3-1 groups, labels at every depth)."""
    from yolo9000.layers.cost import tree_cross_entropy
    from yolo9000.model.wordtree import WordTree
    tree = WordTree(TREE_PARENTS + [5])          # H(7) the single child of F: a singleton group
    rng = np.random.default_rng(5)
    z = rng.standard_normal((5, 8, 1, 1)).astype(np.float32) * 2
    labels = np.array([7, 4, 2, 1, 3])
    softmax = SoftmaxLayer((8, 1, 1), tree=tree)
    _, grad, _ = tree_cross_entropy(softmax.forward(z), labels, tree)

    def loss():
        return tree_cross_entropy(softmax.forward(z), labels, tree)[0]

    numeric = numeric_grad(loss, z, np.arange(z.size), eps=1e-2)
    np.testing.assert_allclose(grad.reshape(-1), numeric, rtol=2e-2, atol=2e-3)
    # groups off every path get nothing: image 3 (label B) touches only the roots
    assert np.all(grad[3, 2:] == 0) and np.any(numeric.reshape(5, 8)[0, 2:7] != 0)


def test_tree_cross_entropy_refuses_bad_input():
    from yolo9000.layers.cost import tree_cross_entropy
    from yolo9000.model.wordtree import WordTree
    tree = WordTree(TREE_PARENTS)
    p = np.full((2, 7), 0.5, np.float32)
    with pytest.raises(ValueError, match="out of range"):
        tree_cross_entropy(p, [0, 7], tree)
    with pytest.raises(ValueError, match="tree of 7 nodes"):
        tree_cross_entropy(p[:, :6], [0, 1], tree)
    with pytest.raises(ValueError, match="1 labels for 2"):
        tree_cross_entropy(p, [0], tree)
