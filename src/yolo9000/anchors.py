"""Anchor boxes by k-means on box shapes, as in YOLOv2 (Redmon & Farhadi 2017, section 2).

Boxes are compared by shape only: both are centred at the origin, so the IoU of boxes (w1, h1)
and (w2, h2) is min(w1, w2)·min(h1, h2) / (w1·h1 + w2·h2 − intersection), and the distance is
d = 1 − IoU, which, unlike the Euclidean distance, does not favour large boxes. ``metric=
'euclidean'`` is the paper's baseline (plain k-means on (w, h)); both are scored by the same
figure, the average over boxes of the IoU with their closest centroid.

Widths and heights are normalised to the image (as darknet resizes every image to the network
input), so an anchor in grid cells is ``centroid * size / 32``.

Everything on the hot path is float32 numpy, processed in cache-sized chunks so that a million
boxes never need a (n, k) matrix; restarts run in threads (numpy releases the GIL).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

METRICS = ("iou", "euclidean")
_CHUNK = 16384        # boxes per chunk: ~10 float32 buffers of this size stay in L2


@dataclass
class KMeansResult:
    centroids: np.ndarray     # (k, 2) float64 normalised (w, h), sorted by area
    assignments: np.ndarray   # (n,) int64 cluster of each box (by the clustering metric)
    avg_iou: float            # mean over boxes of the IoU with the closest centroid
    iterations: int           # Lloyd iterations of the kept restart
    metric: str = "iou"
    objective: float = 0.0    # avg IoU (metric 'iou') or sum of squared distances ('euclidean')

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def populations(self) -> np.ndarray:
        return np.bincount(self.assignments, minlength=self.k)


def box_wh(dataset, use_difficult=True) -> np.ndarray:
    """(n, 2) float32 normalised (w, h) of every box of a :class:`~yolo9000.datasets.Dataset`."""
    parts = [r.boxes[:, 2:4] if use_difficult else r.boxes[~r.difficult, 2:4]
             for r in dataset.records]
    if not parts:
        return np.zeros((0, 2), np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def iou_wh(wh_a, wh_b) -> np.ndarray:
    """(n, m) IoU of boxes aligned at a common centre; small inputs only (no chunking)."""
    a = np.asarray(wh_a, np.float64).reshape(-1, 2)
    b = np.asarray(wh_b, np.float64).reshape(-1, 2)
    inter = np.minimum(a[:, None, 0], b[None, :, 0]) * np.minimum(a[:, None, 1], b[None, :, 1])
    union = (a[:, 0] * a[:, 1])[:, None] + (b[:, 0] * b[:, 1])[None, :] - inter
    return inter / union


def best_iou(wh, centroids) -> tuple[np.ndarray, np.ndarray]:
    """For every box, (index of the centroid of highest IoU, that IoU as float32)."""
    boxes = _Boxes(wh)
    idx = np.empty(boxes.n, np.int64)
    score = np.empty(boxes.n, np.float32)
    _assign_iou(boxes, np.asarray(centroids, np.float64).reshape(-1, 2), idx, score)
    return idx, score


def avg_iou(wh, centroids) -> float:
    """Mean over boxes of the IoU with their closest centroid (the paper's 'Avg IoU')."""
    _, score = best_iou(wh, centroids)
    return float(score.mean(dtype=np.float64)) if score.size else 0.0


def kmeans_anchors(wh, k, metric="iou", restarts=10, seed=None, max_iter=300,
                   tol=1e-6, workers=None) -> KMeansResult:
    """k-means on box shapes with k-means++ seeding; the best of ``restarts`` runs is kept.

    wh: (n, 2) widths and heights (any unit; normalised to the image by convention).
    metric: 'iou' (d = 1 − IoU, best run = highest average IoU) or 'euclidean' (squared
        distance on (w, h), best run = lowest SSE).
    seed: makes the result reproducible, whatever the number of worker threads.
    max_iter, tol: a run stops when no box changes cluster, when no centroid moves by more
        than ``tol`` (relative to its size), or after ``max_iter`` Lloyd iterations.
    An empty cluster is reseeded with the box worst served by its centroid.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    boxes = _Boxes(wh)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if boxes.n < k:
        raise ValueError(f"k = {k} clusters need at least {k} boxes, got {boxes.n}")
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1, got {restarts}")
    streams = np.random.SeedSequence(seed).spawn(restarts)
    workers = workers or min(restarts, os.cpu_count() or 1)

    def run(stream):
        return _lloyd(boxes, k, metric, np.random.default_rng(stream), max_iter, tol)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            runs = list(pool.map(run, streams))
    else:
        runs = [run(s) for s in streams]
    # Ties go to the earliest restart, so the choice does not depend on thread timing.
    if metric == "iou":
        best = max(range(restarts), key=lambda i: (runs[i][2], -i))
    else:
        best = min(range(restarts), key=lambda i: (runs[i][2], i))
    centroids, assignments, objective, iterations = runs[best]

    order = np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k)
    centroids = centroids[order]
    assignments = rank[assignments]
    score = objective if metric == "iou" else avg_iou(boxes.wh, centroids)
    return KMeansResult(centroids=centroids, assignments=assignments, avg_iou=float(score),
                        iterations=iterations, metric=metric, objective=float(objective))


def cluster_iou(wh, result: KMeansResult) -> np.ndarray:
    """(k,) mean IoU of each cluster's boxes with its own centroid (NaN for an empty one)."""
    iou = _iou_with_assigned(_Boxes(wh), result.centroids, result.assignments)
    sums = np.bincount(result.assignments, weights=iou, minlength=result.k)
    counts = np.bincount(result.assignments, minlength=result.k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


# -- internals -------------------------------------------------------------------------------

class _Boxes:
    """Widths, heights and areas as separate contiguous float32 arrays (fast 1-D ufuncs)."""

    def __init__(self, wh):
        wh = np.asarray(wh, np.float32).reshape(-1, 2)
        if wh.size and (not np.isfinite(wh).all() or (wh <= 0).any()):
            raise ValueError("box widths and heights must be finite and positive")
        self.wh = wh
        self.n = wh.shape[0]
        self.w = np.ascontiguousarray(wh[:, 0])
        self.h = np.ascontiguousarray(wh[:, 1])
        self.area = self.w * self.h
        # float64 copies for the centroid sums: bincount would convert float32 every call.
        self.w64 = self.w.astype(np.float64)
        self.h64 = self.h.astype(np.float64)


def _assign_iou(boxes: _Boxes, centroids, idx_out, score_out):
    """Closest centroid by IoU for every box; score_out gets that IoU.

    argmax IoU = argmax inter / (area + c_area): IoU = r / (1 − r) with r = inter / (sum of
    areas) is increasing in r, so the subtraction is done once per box, not once per pair.
    """
    cw = centroids[:, 0].astype(np.float32)
    ch = centroids[:, 1].astype(np.float32)
    ca = cw * ch
    m = min(_CHUNK, boxes.n)
    inter = np.empty(m, np.float32)
    tmp = np.empty(m, np.float32)
    better = np.empty(m, bool)
    for s in range(0, boxes.n, _CHUNK):
        e = min(s + _CHUNK, boxes.n)
        w, h, a = boxes.w[s:e], boxes.h[s:e], boxes.area[s:e]
        it, tp, bt = inter[: e - s], tmp[: e - s], better[: e - s]
        best, idx = score_out[s:e], idx_out[s:e]
        best.fill(-1.0)
        idx.fill(0)
        for j in range(len(cw)):
            np.minimum(w, cw[j], out=it)
            np.minimum(h, ch[j], out=tp)
            np.multiply(it, tp, out=it)
            np.add(a, ca[j], out=tp)
            np.divide(it, tp, out=it)
            np.greater(it, best, out=bt)
            np.copyto(best, it, where=bt)
            np.copyto(idx, j, where=bt)
        # r -> IoU
        np.subtract(1.0, best, out=tp)
        np.divide(best, tp, out=best)


def _assign_euclidean(boxes: _Boxes, centroids, idx_out, score_out):
    """Closest centroid by Euclidean distance on (w, h); score_out gets the squared distance."""
    cw = centroids[:, 0].astype(np.float32)
    ch = centroids[:, 1].astype(np.float32)
    m = min(_CHUNK, boxes.n)
    dist = np.empty(m, np.float32)
    tmp = np.empty(m, np.float32)
    better = np.empty(m, bool)
    for s in range(0, boxes.n, _CHUNK):
        e = min(s + _CHUNK, boxes.n)
        w, h = boxes.w[s:e], boxes.h[s:e]
        dt, tp, bt = dist[: e - s], tmp[: e - s], better[: e - s]
        best, idx = score_out[s:e], idx_out[s:e]
        best.fill(np.inf)
        idx.fill(0)
        for j in range(len(cw)):
            np.subtract(w, cw[j], out=dt)
            np.multiply(dt, dt, out=dt)
            np.subtract(h, ch[j], out=tp)
            np.multiply(tp, tp, out=tp)
            np.add(dt, tp, out=dt)
            np.less(dt, best, out=bt)
            np.copyto(best, dt, where=bt)
            np.copyto(idx, j, where=bt)


def _distance_to(boxes: _Boxes, centroid, metric):
    """(n,) float32 distance of every box to one centroid (1 − IoU, or squared Euclidean)."""
    cw, ch = np.float32(centroid[0]), np.float32(centroid[1])
    if metric == "iou":
        inter = np.minimum(boxes.w, cw)
        inter *= np.minimum(boxes.h, ch)
        union = boxes.area + cw * ch
        union -= inter
        d = np.divide(inter, union)
        np.subtract(1.0, d, out=d)
        return d
    d = boxes.w - cw
    d *= d
    dh = boxes.h - ch
    dh *= dh
    d += dh
    return d


def _seed_plus_plus(boxes: _Boxes, k, metric, rng):
    """Greedy k-means++: each new centre is the best of a few draws ∝ D² (D² for 1 − IoU too)."""
    n_trials = 2 + int(math.log(k))
    centroids = np.empty((k, 2), np.float64)
    first = int(rng.integers(boxes.n))
    centroids[0] = boxes.wh[first]
    closest = _distance_to(boxes, centroids[0], metric)
    for j in range(1, k):
        weight = closest.astype(np.float64)
        if metric == "iou":
            weight *= weight          # squared euclidean distances come squared already
        cumulative = np.cumsum(weight)
        total = cumulative[-1]
        if total <= 0:                # fewer distinct shapes than k: any box will do
            candidates = rng.integers(boxes.n, size=n_trials)
        else:
            draws = rng.random(n_trials) * total
            candidates = np.minimum(np.searchsorted(cumulative, draws), boxes.n - 1)
        best_closest, best_potential, best_c = None, np.inf, candidates[0]
        for c in candidates:
            trial = np.minimum(closest, _distance_to(boxes, boxes.wh[c], metric))
            potential = float(np.dot(trial, trial) if metric == "iou" else trial.sum())
            if potential < best_potential:
                best_closest, best_potential, best_c = trial, potential, c
        centroids[j] = boxes.wh[best_c]
        closest = best_closest
    return centroids


def _lloyd(boxes: _Boxes, k, metric, rng, max_iter, tol):
    """One k-means run -> (centroids, assignments, objective, iterations).

    The mean is not the 1 − IoU minimiser of a cluster, so the average IoU need not rise at
    every step: the best centroids seen are kept, not the last ones.
    """
    assign = _assign_iou if metric == "iou" else _assign_euclidean
    better = (lambda new, old: new > old) if metric == "iou" else (lambda new, old: new < old)
    centroids = _seed_plus_plus(boxes, k, metric, rng)
    idx = np.empty(boxes.n, np.int64)
    prev = np.empty(boxes.n, np.int64)
    score = np.empty(boxes.n, np.float32)
    best = (None, None, -np.inf if metric == "iou" else np.inf, 0)
    for iteration in range(1, max_iter + 1):
        assign(boxes, centroids, idx, score)
        objective = float(score.mean(dtype=np.float64)) if metric == "iou" \
            else float(score.sum(dtype=np.float64))
        if better(objective, best[2]):
            best = (centroids.copy(), idx.copy(), objective, iteration)
        if iteration > 1 and np.array_equal(idx, prev):
            break
        idx, prev = prev, idx
        updated = _update(boxes, prev, score, centroids, k, metric)
        shift = np.max(np.abs(updated - centroids) / np.maximum(updated, 1e-12))
        centroids = updated
        if shift <= tol:
            break
    return best[0], best[1], best[2], iteration


def _update(boxes: _Boxes, idx, score, centroids, k, metric):
    """Cluster means; an empty cluster takes the box worst served by its current centroid."""
    counts = np.bincount(idx, minlength=k)
    sw = np.bincount(idx, weights=boxes.w64, minlength=k)
    sh = np.bincount(idx, weights=boxes.h64, minlength=k)
    updated = centroids.copy()
    full = counts > 0
    updated[full, 0] = sw[full] / counts[full]
    updated[full, 1] = sh[full] / counts[full]
    empty = np.flatnonzero(~full)
    if empty.size:
        # worst served: lowest IoU, or largest squared distance
        key = score if metric == "iou" else -score
        worst = np.argpartition(key, empty.size - 1)[: empty.size]
        updated[empty] = boxes.wh[worst]
    return updated


def _iou_with_assigned(boxes: _Boxes, centroids, assignments):
    c = np.asarray(centroids, np.float32)[assignments]
    inter = np.minimum(boxes.w, c[:, 0]) * np.minimum(boxes.h, c[:, 1])
    return (inter / (boxes.area + c[:, 0] * c[:, 1] - inter)).astype(np.float64)
