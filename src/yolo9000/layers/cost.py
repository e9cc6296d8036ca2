"""darknet's [cost] layer and the classifier's loss: softmax cross-entropy (flat, or along a
WordTree path for a [softmax] with tree=: tree_cross_entropy).

A classifier cfg ends in [softmax] (optionally followed by [cost]). darknet's [cost] (type sse)
sets its delta to truth − p, and its [softmax] backward passes that delta through unchanged,
i.e. it treats it as the gradient at the softmax's *input*. That is exactly the gradient of the
cross-entropy −log p[label] with respect to the logits, p − onehot: darknet trains its
classifiers with softmax cross-entropy, while the number it prints is the squared error. Here
the loss reported is the cross-entropy itself, whose value means something (log 20 ≈ 3.0 for a
uniform guess over 20 classes).
"""
import numpy as np

from ..label_scores import TOP_K, TREE_TOP1_THRESH, label_ranks, tree_label_scores
from .base import Layer


class CostLayer(Layer):
    """darknet's [cost]: passes its input through; `scale` multiplies the training gradient."""
    kind = "cost"

    def __init__(self, in_shape, scale=1.0):
        super().__init__(in_shape)
        self.scale = float(scale)

    @classmethod
    def from_section(cls, s, in_shape, context):
        cost_type = (s.get_str("type", "sse") or "sse").strip()
        if cost_type != "sse":
            raise s.error(f"cost type '{cost_type}' is not supported (sse, which a softmax "
                          "classifier trains as cross-entropy)", "type")
        # ratio (hard-example mining), noobj and thresh only steer darknet's other cost types
        s.ignore("ratio", "noobj", "thresh")
        return cls(in_shape, scale=s.get_float("scale", 1.0))

    def forward(self, x, train=False):
        return x

    def backward(self, dy, dy_is_scratch=False):
        return dy

    def to_onnx(self, graph, x):
        return x        # a training loss: nothing at inference

    def describe(self):
        return f"scale {self.scale:g}" if self.scale != 1.0 else ""


def softmax_cross_entropy(probabilities, labels):
    """The classifier's loss on a batch of softmax outputs.

    probabilities: (N, K) or (N, K, 1, 1) float32 rows summing to 1; labels: (N,) class ids.
    Returns (loss, gradient, stats): loss = Σ −log p[label] over the batch (summed, as the
    region loss is: the optimiser divides by the batch), the gradient of that sum with respect
    to the softmax's input (p − onehot, in the probabilities' shape), and stats with the mean
    loss and the fractions of images whose label is the top-1 and among the top-5 classes."""
    p = np.asarray(probabilities, np.float32)
    rows = p.reshape(p.shape[0], -1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    n, k = rows.shape
    if labels.shape[0] != n:
        raise ValueError(f"{labels.shape[0]} labels for {n} images")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"class id out of range for {k} classes")
    picked = rows[np.arange(n), labels].astype(np.float64)
    # p underflows to 0 for a confidently wrong net; the log's cap keeps the loss finite
    loss = float(-np.log(np.maximum(picked, 1e-30)).sum())
    grad = rows.copy()
    grad[np.arange(n), labels] -= 1.0
    ranks = label_ranks(rows, labels)
    stats = {"loss": loss / max(n, 1), "top1": float(np.mean(ranks < 1)) if n else 0.0,
             f"top{TOP_K}": float(np.mean(ranks < TOP_K)) if n else 0.0}
    return loss, grad.reshape(p.shape), stats


def tree_cross_entropy(probabilities, labels, tree, thresh=TREE_TOP1_THRESH):
    """The loss of a classifier whose [softmax] has a WordTree (tree=), same contract as
    softmax_cross_entropy; probabilities are the group softmax's P(node | parent), labels tree
    nodes (a leaf or any coarser node).

    loss: Σ over the batch and over the label's path to its root of −log P(node | parent).
    gradient at the softmax's input: in each group on that path p − onehot, 0 in every other
    group — darknet's softmax_tree training (its truth marks the label and its ancestors,
    groups without a marked node are masked out of the delta and the loss).
    stats: "loss" per image, "top1" and "top5" as label_scores.tree_label_scores counts them
    (the deepest confident node at ``thresh``; the label among the 5 most probable nodes, its
    own ancestors not counted). With a one-level tree these are the flat classifier's loss,
    gradient, top-1 and top-5."""
    loss, top1, top5 = tree_label_scores(probabilities, labels, tree, thresh)
    p = np.asarray(probabilities, np.float32)
    rows = p.reshape(p.shape[0], -1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    grad = np.zeros_like(rows)
    for i, label in enumerate(labels.tolist()):
        for node in tree.path(label):
            start = int(tree.group_offset[tree.group[node]])
            stop = start + int(tree.group_size[tree.group[node]])
            grad[i, start:stop] = rows[i, start:stop]
            grad[i, node] -= 1.0
    stats = {"loss": loss / max(rows.shape[0], 1), "top1": top1, f"top{TOP_K}": top5}
    return loss, grad.reshape(p.shape), stats
