"""How a classifier's probabilities score against the true labels: where each label ranks
(top-1, top-5), flat or over a WordTree, and the WordTree's cross-entropy along the label's path.

The training loss (layers/cost.py) and the evaluation figures (metrics/classification.py) both
count with these, so a top-1 in a training log means what the same figure means in evaluation.
A WordTree here is any object with WordTree's methods (model/wordtree.py); nothing is read.
"""
import numpy as np

TOP_K = 5      # top-5 accuracy, the classification figure darknet (and ImageNet) quote

#: hier_thresh of the walk that names a tree classifier's top-1 node (darknet's default)
TREE_TOP1_THRESH = 0.5


def label_ranks(scores, labels):
    """For each row, how many other classes score at least as high as its label (0 = top-1).

    Ties count against the label: a network that outputs the same score for every class (an
    untrained or collapsed one) is wrong for every image, not right for whichever label a sort
    order happens to put first."""
    scores = np.asarray(scores)
    rows = scores.reshape(scores.shape[0], -1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    own = rows[np.arange(rows.shape[0]), labels][:, None]
    return (rows >= own).sum(axis=1) - 1


def tree_label_scores(probabilities, labels, tree, thresh=TREE_TOP1_THRESH):
    """(loss, top1, top5) of a classifier whose [softmax] has a WordTree: probabilities are
    the group softmax's P(node | parent), (N, nodes) or (N, nodes, 1, 1); labels tree nodes (a
    leaf or any coarser node).

    loss: Σ over the batch and over each label's path to its root of −log P(node | parent).
    top1: the fraction of images whose deepest confident node (the paper's walk,
    ``tree.top_prediction`` at ``thresh``) is the label or one of its descendants — a coarse
    label ("round") says nothing against a finer answer ("circle") below it.
    top5: the fraction whose label is among the TOP_K nodes of highest absolute probability,
    not counting its own ancestors (each at least as probable as the label, and implied by it).
    A ValueError when the probabilities do not fit the tree or a label is not one of its nodes."""
    p = np.asarray(probabilities, np.float32)
    rows = p.reshape(p.shape[0], -1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    n, k = rows.shape
    if k != tree.n:
        raise ValueError(f"{k} probabilities per image for a tree of {tree.n} nodes")
    if labels.shape[0] != n:
        raise ValueError(f"{labels.shape[0]} labels for {n} images")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"tree node out of range for a tree of {k} nodes")
    loss, top1 = 0.0, 0
    absolute = tree.hierarchy_predictions(rows, axis=1)
    for i, label in enumerate(labels.tolist()):
        path = tree.path(label)
        # p underflows to 0 for a confidently wrong net; the log's cap keeps the loss finite
        loss -= float(np.log(np.maximum(rows[i, path].astype(np.float64), 1e-30)).sum())
        top1 += label in tree.path(tree.top_prediction(rows[i], thresh))
        absolute[i, path[1:]] = -np.inf
    ranks = label_ranks(absolute, labels)
    return (loss, top1 / n if n else 0.0,
            float(np.mean(ranks < TOP_K)) if n else 0.0)
