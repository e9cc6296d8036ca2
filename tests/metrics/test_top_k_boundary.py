"""classification_metrics counts top-5 as the label among the 5 highest scores: the 5th place
counts, the 6th does not (the same boundary tests/layers/test_cost.py checks in training)."""
import numpy as np
import pytest

from yolo9000.metrics.classification import classification_metrics


def test_the_fifth_place_counts_and_the_sixth_does_not():
    # 8 classes scored 8, 7, ..., 1 (class 0 highest): the label's place is its class id
    scores = np.tile(np.arange(8, 0, -1, dtype=np.float64) / 36, (6, 1))
    labels = np.array([0, 2, 3, 4, 5, 7])            # places 1, 3, 4, 5, 6, 8
    result = classification_metrics(scores, labels)
    assert result.top1 == pytest.approx(1 / 6)
    assert result.top5 == pytest.approx(4 / 6)        # places 1, 3, 4 and 5
    only_fifth = classification_metrics(scores[:1], [4])
    only_sixth = classification_metrics(scores[:1], [5])
    assert (only_fifth.top5, only_sixth.top5) == (1.0, 0.0)


def test_with_fewer_than_five_classes_every_label_is_in_the_top_5():
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    result = classification_metrics(scores, [2, 0])
    assert (result.top1, result.top5) == (0.0, 1.0)
