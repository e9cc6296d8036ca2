"""The classifier's loss: softmax cross-entropy at [cost], and its gradient through the network."""
import math

import numpy as np
import pytest

from gradcheck import numeric_grad
from yolo9000.errors import UserError
from yolo9000.layers.cost import label_ranks, softmax_cross_entropy
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


def test_ranks_count_ties_against_the_label():
    scores = np.array([[0.25, 0.25, 0.25, 0.25],
                       [0.1, 0.6, 0.1, 0.2],
                       [0.1, 0.6, 0.1, 0.2]])
    # a constant output is wrong for any label; the third row's label ties with another class
    np.testing.assert_array_equal(label_ranks(scores, [2, 1, 0]), [3, 0, 3])


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
