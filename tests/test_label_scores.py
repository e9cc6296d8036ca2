"""Where a label ranks among a classifier's scores (top-1, top-5)."""
import numpy as np

from yolo9000.label_scores import label_ranks


def test_ranks_count_ties_against_the_label():
    scores = np.array([[0.25, 0.25, 0.25, 0.25],
                       [0.1, 0.6, 0.1, 0.2],
                       [0.1, 0.6, 0.1, 0.2]])
    # a constant output is wrong for any label; the third row's label ties with another class
    np.testing.assert_array_equal(label_ranks(scores, [2, 1, 0]), [3, 0, 3])
