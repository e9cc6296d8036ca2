"""A WordTree classifier's figures: top-1/top-5 as its training counts them, the confusion
matrix over the labels' own nodes by absolute probability."""
import numpy as np
import pytest

from yolo9000.metrics.classification import tree_classification_metrics
from yolo9000.model.wordtree import WordTree


def test_tree_metrics_by_hand():
    tree = WordTree([-1, -1, 0, 0])          # A -> {C, D}, B
    # image 1: P(A)=.9, P(C|A)=.8 -> walk ends at C; image 2: P(A)=.3 -> B
    probs = np.array([[0.9, 0.1, 0.8, 0.2],
                      [0.3, 0.7, 0.5, 0.5]], np.float32)
    result = tree_classification_metrics(probs, np.array([2, 3]), tree)
    assert result.images == 2
    assert result.top1 == pytest.approx(0.5)            # C right; D missed (walk stops at B)
    # loss: -log .9 - log .8 for C, -log .3 - log .5 for D, averaged over the images
    assert result.loss == pytest.approx((-np.log(.9 * .8) - np.log(.3 * .5)) / 2, rel=1e-5)
    # confusion over the labels' nodes {C, D} by absolute probability: C .72 > D .18 for
    # image 1, C .15 = D .15 for image 2 (first wins: C)
    assert result.confusion[2, 2] == 1 and result.confusion[3, 2] == 1
    assert result.confusion.sum() == 2
