"""The grouped softmax takes each group's own maximum out before exponentiating: with float32
logits a group ~100 below another would otherwise underflow to 0 / 0 (NaN). Expected values
are each group's softmax written out in float64 math."""
import math

import numpy as np

from yolo9000.model.wordtree import WordTree

# roots {0, 1}; children of 0: {2, 3}; children of 1: {4, 5, 6}
PARENTS = [-1, -1, 0, 0, 1, 1, 1]
LOGITS = [200.0, 0.0, 0.0, 1.0, -5.0, 0.0, 3.0]
GROUPS = [(0, 2), (2, 4), (4, 7)]


def reference_softmax():
    out = []
    for start, stop in GROUPS:
        z = LOGITS[start:stop]
        total = sum(math.exp(v - max(z)) for v in z)
        out += [math.exp(v - max(z)) / total for v in z]
    return np.array(out)


def test_groups_far_below_another_keep_their_own_probabilities():
    tree = WordTree(PARENTS)
    x = np.array([LOGITS, LOGITS], np.float32)[:, :, None]        # (N, nodes, 1), axis 1
    p = tree.grouped_softmax(x, axis=1)[:, :, 0]
    assert np.isfinite(p).all()
    for row in p:
        np.testing.assert_allclose(row, reference_softmax(), rtol=1e-6, atol=1e-30)
    log_p = tree.grouped_log_softmax(x, axis=1)[:, :, 0]
    expected_log = [math.log(v) if v > 0 else -200.0 for v in reference_softmax()]
    for row in log_p:
        np.testing.assert_allclose(row, expected_log, rtol=1e-6)
