"""darknet's classification-only truth row (YOLO9000 joint training)."""
import numpy as np
import pytest

from yolo9000.truths import CLASSIFICATION_ONLY, classification_truth, is_classification_only


def test_classification_truth_row():
    row = classification_truth(7)
    assert row.shape == (1, 5) and row.dtype == np.float32
    assert row[0, 0] == row[0, 1] == CLASSIFICATION_ONLY > 100000 and row[0, 4] == 7
    assert row[0, 2] > 0 and row[0, 3] > 0


def test_classification_only_rows_are_told_by_x_and_y_both_past_100000():
    rows = np.array([[0.5, 0.5, 0.2, 0.2, 3], [100001, 100001, 1, 1, 3],
                     [100001, 0.5, 1, 1, 3], [100000, 100000, 1, 1, 3]])
    assert is_classification_only(rows[:, 0], rows[:, 1]).tolist() == [False, True, False, False]
    assert is_classification_only(*classification_truth(2)[0, :2])


def test_classification_truth_refuses_a_negative_node():
    with pytest.raises(ValueError, match="node -1 is negative"):
        classification_truth(-1)
