"""Classification metrics: top-1 / top-5 accuracy, per-class accuracy and the confusion matrix.

    result = classification_metrics(probabilities, labels)      # (N, K) scores, (N,) ids
    result.top1, result.top5, result.loss                        # fractions; mean cross-entropy
    print(format_table(result, names)); plot_confusion(result, names, "confusion.png")

A label tied with other classes ranks below them (label_scores.label_ranks), so a constant
output scores 0, not 1/K.
"""
from dataclasses import dataclass

import numpy as np

from ..label_scores import TOP_K, label_ranks, tree_label_scores


@dataclass
class ClassificationResult:
    top1: float                  # fraction of images whose label scores highest
    top5: float                  # ... is among the TOP_K highest
    loss: float                  # mean cross-entropy −log p[label]
    images: int
    confusion: np.ndarray        # (K, K) int64: row = true class, column = top-1 prediction

    @property
    def class_totals(self):
        return self.confusion.sum(axis=1)

    @property
    def class_accuracy(self):
        """Top-1 accuracy per true class (nan for a class with no image)."""
        totals = self.class_totals
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, np.diag(self.confusion) / np.maximum(totals, 1), np.nan)

    @property
    def mean_class_accuracy(self):
        acc = self.class_accuracy
        return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def classification_metrics(probabilities, labels, num_classes=None):
    p = np.asarray(probabilities, np.float64)
    p = p.reshape(p.shape[0], -1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    k = p.shape[1] if num_classes is None else int(num_classes)
    n = labels.shape[0]
    confusion = np.zeros((k, k), np.int64)
    if n == 0:
        return ClassificationResult(float("nan"), float("nan"), float("nan"), 0, confusion)
    ranks = label_ranks(p, labels)
    predicted = p.argmax(axis=1)
    np.add.at(confusion, (labels, predicted), 1)
    picked = p[np.arange(n), labels]
    return ClassificationResult(top1=float(np.mean(ranks < 1)),
                                top5=float(np.mean(ranks < min(TOP_K, k))),
                                loss=float(np.mean(-np.log(np.maximum(picked, 1e-30)))),
                                images=int(n), confusion=confusion)


def tree_classification_metrics(probabilities, labels, tree):
    """A word-tree classifier's figures (labels are tree nodes): top-1, top-5 and the loss as
    its training counts them (label_scores.tree_label_scores: the deepest confident node is
    the label or below it); the confusion matrix over the labels' own nodes, each image
    predicted as the one of them with the highest absolute probability."""
    n = len(labels)
    if n == 0:
        return classification_metrics(probabilities, labels, tree.n)
    loss, top1, top5 = tree_label_scores(probabilities, labels, tree)
    classes = np.unique(labels)
    absolute = tree.hierarchy_predictions(np.asarray(probabilities, np.float64), axis=1)
    predicted = classes[absolute[:, classes].argmax(axis=1)]
    confusion = np.zeros((tree.n, tree.n), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return ClassificationResult(top1=top1, top5=top5, loss=loss / n, images=n,
                                confusion=confusion)


def format_table(result, names):
    """Per-class table: images, top-1 accuracy, the class most often predicted instead."""
    width = max([len("class")] + [len(str(n)) for n in names])
    rows = [f"{'class':<{width}}  {'images':>6}  {'top-1':>6}  most confused with"]
    confusion = result.confusion
    for c, name in enumerate(names):
        total = int(confusion[c].sum())
        if total == 0:
            rows.append(f"{name:<{width}}  {0:>6}  {'-':>6}")
            continue
        wrong = confusion[c].copy()
        wrong[c] = 0
        other = int(wrong.argmax())
        instead = (f"{names[other]} ({100 * wrong[other] / total:.0f}%)" if wrong[other] else "")
        rows.append(f"{name:<{width}}  {total:>6}  {100 * confusion[c, c] / total:>5.1f}%  {instead}")
    return "\n".join(rows)


def plot_confusion(result, names, path, title=None):
    """The confusion matrix as an image, rows normalised to the true class's images (so a
    rare class reads as clearly as a common one). False, writing nothing, without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from ..fileio import atomic_path

    confusion = result.confusion.astype(np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    k = len(names)
    side = max(5.0, 0.32 * k + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), [str(n) for n in names], rotation=90, fontsize="small")
    ax.set_yticks(range(k), [str(n) for n in names], fontsize="small")
    ax.set_xlabel("predicted (top-1)")
    ax.set_ylabel("true class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if confusion[i, j]:
                    ax.text(j, i, f"{int(confusion[i, j])}", ha="center", va="center",
                            fontsize=6, color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title or f"confusion matrix: top-1 {100 * result.top1:.1f}%, "
                          f"top-5 {100 * result.top5:.1f}% ({result.images} images)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True
