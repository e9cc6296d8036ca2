"""Anchor boxes by k-means on box shapes, as in YOLOv2 (Redmon & Farhadi 2017, section 2).

Boxes are compared by shape only: both are centred at the origin, so the IoU of boxes (w1, h1)
and (w2, h2) is min(w1, w2)·min(h1, h2) / (w1·h1 + w2·h2 − intersection) (``boxes.iou_wh``),
and the distance is
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

from ..boxes import iou_wh

METRICS = ("iou", "euclidean")
_CHUNK = 16384        # boxes per chunk: ~10 float32 buffers of this size stay in L2
_PATIENCE = 10        # iterations without progress before a run stops


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
    """(n, 2) float32 normalised (w, h) of every box of a :class:`~yolo9000.data.formats.Dataset`."""
    parts = [r.boxes[:, 2:4] if use_difficult else r.boxes[~r.difficult, 2:4]
             for r in dataset.records]
    if not parts:
        return np.zeros((0, 2), np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


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
                   tol=1e-5, workers=None) -> KMeansResult:
    """k-means on box shapes with k-means++ seeding; the best of ``restarts`` runs is kept.

    wh: (n, 2) widths and heights (any unit; normalised to the image by convention).
    metric: 'iou' (d = 1 − IoU, best run = highest average IoU) or 'euclidean' (Euclidean
        distance on (w, h), best run = lowest sum of squared distances, the paper's baseline).
    seed: makes the result reproducible, whatever the number of worker threads.
    max_iter, tol: a run keeps its best iterate and stops when that has not improved by more
        than ``tol`` (relative) for 10 iterations, when the centroids no longer move, or after
        ``max_iter`` Lloyd iterations.
    An empty cluster is reseeded with the boxes worst served by their centroids.

    The assignment is exact but works on a fine log-grid of cells (see :class:`_Cells`): a
    cell whose every box provably has the same closest centroid is assigned as one weighted
    point, so an iteration costs O(cells·k + boundary boxes·k) instead of O(n·k).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1, got {restarts}")
    boxes = _Boxes(wh)
    if boxes.n < k:
        raise ValueError(f"k = {k} clusters need at least {k} boxes, got {boxes.n}")
    cells = _Cells(boxes, metric)
    streams = np.random.SeedSequence(seed).spawn(restarts)
    workers = workers or min(restarts, os.cpu_count() or 1)

    def run(stream):
        return _lloyd(cells, k, metric, np.random.default_rng(stream), max_iter, tol)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            runs = list(pool.map(run, streams))
    else:
        runs = [run(s) for s in streams]
    centroids, assignments, objective, iterations = _pick_best_run(boxes, runs, metric)

    order = np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k)
    centroids = centroids[order]
    assignments = rank[assignments]
    score = objective if metric == "iou" else avg_iou(boxes.wh, centroids)
    return KMeansResult(centroids=centroids, assignments=assignments, avg_iou=float(score),
                        iterations=iterations, metric=metric, objective=float(objective))


def _pick_best_run(boxes, runs, metric):
    """The best restart by its exact objective -> (centroids, assignments, objective, iters).

    The IoU objective a run tracks counts every box of a 'pure' cell at its cell's mean shape:
    a close estimate. Only runs whose estimate is within 0.1% of the best are scored exactly,
    on every box. The Euclidean SSE of a run is exact already. Ties go to the earliest run,
    so the choice does not depend on thread timing.
    """
    estimates = [r[1] for r in runs]
    if metric == "iou":
        top = max(estimates)
        contenders = [i for i, e in enumerate(estimates) if e >= top - 1e-3 * abs(top)]
    else:
        contenders = [min(range(len(runs)), key=lambda i: (estimates[i], i))]
    best = None
    for i in contenders:
        idx, score = _exact_assign(boxes, runs[i][0], metric)
        objective = float(score.mean(dtype=np.float64)) if metric == "iou" \
            else float(score.sum(dtype=np.float64))
        if best is None or objective > best[2]:
            best = (runs[i][0], idx, objective, runs[i][2])
    return best


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

    @classmethod
    def from_arrays(cls, w, h, area):
        """Already validated float32 columns (a subset of another _Boxes)."""
        boxes = cls.__new__(cls)
        boxes.w, boxes.h, boxes.area, boxes.n = w, h, area, len(w)
        boxes.wh = np.stack([w, h], axis=1)
        return boxes


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


def _exact_assign(boxes: _Boxes, centroids, metric):
    idx = np.empty(boxes.n, np.int64)
    score = np.empty(boxes.n, np.float32)
    (_assign_iou if metric == "iou" else _assign_euclidean)(boxes, centroids, idx, score)
    return idx, score


def _distance(w, h, cw, ch, metric, area=None):
    """Distance of boxes (w, h) (of areas ``area``, when known) to one box (cw, ch): 1 − IoU,
    or Euclidean (not squared)."""
    cw, ch = np.float32(cw), np.float32(ch)
    if metric == "iou":
        d = iou_wh(w, h, cw, ch, area_a=area)
        return np.subtract(1.0, d, out=d)
    d = w - cw
    d *= d
    dh = h - ch
    dh *= dh
    d += dh
    return np.sqrt(d, out=d)


class _Cells:
    """Boxes binned on a log grid (cells ~1% wide), each cell's boxes contiguous.

    A cell is summarised by its boxes' mean shape (``rep``), count, sums and ``radius``: the
    largest distance from ``rep`` to one of its boxes. 1 − IoU of boxes aligned at a common
    centre is the Jaccard distance of two sets, a metric, as is the Euclidean distance; so by
    the triangle inequality, when the nearest centroid to ``rep`` beats the second by more
    than twice the radius, it is the nearest centroid of every box of the cell.
    """

    def __init__(self, boxes: _Boxes, metric, step=0.01):
        self.n = boxes.n
        lw, lh = np.log(boxes.w), np.log(boxes.h)
        qu = ((lw - lw.min()) / step).astype(np.int64)
        qv = ((lh - lh.min()) / step).astype(np.int64)
        key = qu * (int(qv.max()) + 1) + qv
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        self.starts = starts
        self.counts = np.diff(np.append(starts, boxes.n))
        self.m = len(starts)
        # the boxes in cell order
        self.w = boxes.w[order]
        self.h = boxes.h[order]
        self.area = self.w * self.h
        self.w64 = self.w.astype(np.float64)
        self.h64 = self.h.astype(np.float64)
        self.sum_w = np.add.reduceat(self.w64, starts)
        self.sum_h = np.add.reduceat(self.h64, starts)
        self.rep_w = (self.sum_w / self.counts).astype(np.float32)
        self.rep_h = (self.sum_h / self.counts).astype(np.float32)
        self.rep_area = self.rep_w * self.rep_h
        cell_of_box = np.repeat(np.arange(self.m), self.counts)
        rw, rh = self.rep_w[cell_of_box], self.rep_h[cell_of_box]
        d = _pairwise_distance(self.w, self.h, rw, rh, metric, self.area)
        # float32 rounding of the distances themselves is covered by a small margin
        self.radius = np.maximum.reduceat(d, starts) + np.float32(1e-5)
        # within-cell sum of squared deviations: makes the Euclidean SSE exact per cell
        dev = (self.w64 - rw) ** 2 + (self.h64 - rh) ** 2
        self.within_sse = np.add.reduceat(dev, starts)

    def box_positions(self, cell_ids):
        """Positions (in cell order) of all boxes of the given cells."""
        counts = self.counts[cell_ids]
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, np.int64)
        offsets = np.repeat(self.starts[cell_ids] - np.cumsum(counts) + counts, counts)
        return offsets + np.arange(total)


def _pairwise_distance(w, h, cw, ch, metric, area=None):
    """Element-wise distance between boxes (w, h) (of areas ``area``, when known) and boxes
    (cw, ch) of the same length."""
    if metric == "iou":
        return (1.0 - iou_wh(w, h, cw, ch, area_a=area)).astype(np.float32)
    return np.sqrt((w - cw) ** 2 + (h - ch) ** 2).astype(np.float32)


def _nearest_two(cells: _Cells, centroids, metric):
    """For every cell's rep: nearest centroid, its distance and the second distance."""
    d1 = np.full(cells.m, np.inf, np.float32)
    d2 = np.full(cells.m, np.inf, np.float32)
    j1 = np.zeros(cells.m, np.int64)
    closer = np.empty(cells.m, bool)
    for j, (cw, ch) in enumerate(centroids):
        d = _distance(cells.rep_w, cells.rep_h, cw, ch, metric, cells.rep_area)
        np.minimum(d2, np.maximum(d1, d), out=d2)
        np.less(d, d1, out=closer)
        np.copyto(j1, j, where=closer)
        np.minimum(d1, d, out=d1)
    return j1, d1, d2


# np.dot is avoided on purpose: it goes through BLAS, whose thread pool can cost
# milliseconds per call on a busy machine for vectors this short.
def _seed_plus_plus(cells: _Cells, k, metric, rng):
    """Greedy k-means++ on the cells, each weighted by its box count: every new centre is
    the best of a few draws with probability ∝ count · D², D = 1 − IoU (or Euclidean)."""
    n_trials = 2 + int(math.log(k))
    weights = cells.counts.astype(np.float64)
    centroids = np.empty((k, 2), np.float64)
    first = int(np.searchsorted(np.cumsum(weights), rng.random() * cells.n, side="right"))
    first = min(first, cells.m - 1)
    centroids[0] = cells.rep_w[first], cells.rep_h[first]
    closest = _distance(cells.rep_w, cells.rep_h, *centroids[0], metric,
                        cells.rep_area).astype(np.float64)
    for j in range(1, k):
        cumulative = np.cumsum(weights * closest * closest)
        total = cumulative[-1]
        if total <= 0:                # fewer distinct shapes than k: any cell will do
            candidates = rng.integers(cells.m, size=n_trials)
        else:
            draws = rng.random(n_trials) * total
            candidates = np.minimum(np.searchsorted(cumulative, draws, side="right"),
                                    cells.m - 1)
        best_closest, best_potential, best_c = closest, np.inf, candidates[0]
        for c in candidates:
            d = _distance(cells.rep_w, cells.rep_h, cells.rep_w[c], cells.rep_h[c], metric,
                          cells.rep_area)
            trial = np.minimum(closest, d)
            potential = float((weights * trial * trial).sum())
            if potential < best_potential:
                best_closest, best_potential, best_c = trial, potential, c
        centroids[j] = cells.rep_w[best_c], cells.rep_h[best_c]
        closest = best_closest
    return centroids


def _assign_step(cells: _Cells, centroids, metric):
    """Exact assignment of every box -> (counts, sums of w, sums of h, objective, worst cells).

    The objective is the average IoU (metric 'iou'; pure cells count their rep's IoU, a close
    approximation used only to keep the best iterate) or the exact sum of squared distances.
    """
    k = len(centroids)
    j1, d1, d2 = _nearest_two(cells, centroids, metric)
    pure = (d2 - d1) > 2 * cells.radius
    pure_ids = np.flatnonzero(pure)
    mixed_ids = np.flatnonzero(~pure)
    pj = j1[pure_ids]
    # astype: bincount of an empty selection comes back as int64 even with float weights
    counts = np.bincount(pj, weights=cells.counts[pure_ids], minlength=k).astype(np.float64)
    sum_w = np.bincount(pj, weights=cells.sum_w[pure_ids], minlength=k).astype(np.float64)
    sum_h = np.bincount(pj, weights=cells.sum_h[pure_ids], minlength=k).astype(np.float64)
    pure_d = d1[pure_ids].astype(np.float64)
    if metric == "iou":
        objective = float((cells.counts[pure_ids] * (1.0 - pure_d)).sum())
    else:
        objective = float((cells.counts[pure_ids] * pure_d * pure_d).sum()
                          + cells.within_sse[pure_ids].sum())
    if mixed_ids.size:
        pos = cells.box_positions(mixed_ids)
        sub = _Boxes.from_arrays(cells.w[pos], cells.h[pos], cells.area[pos])
        idx = np.empty(sub.n, np.int64)
        score = np.empty(sub.n, np.float32)
        (_assign_iou if metric == "iou" else _assign_euclidean)(sub, centroids, idx, score)
        counts += np.bincount(idx, minlength=k)
        sum_w += np.bincount(idx, weights=cells.w64[pos], minlength=k)
        sum_h += np.bincount(idx, weights=cells.h64[pos], minlength=k)
        objective += float(score.sum(dtype=np.float64))
    if metric == "iou":
        objective /= cells.n
    return counts, sum_w, sum_h, objective, d1


def _lloyd(cells: _Cells, k, metric, rng, max_iter, tol):
    """One k-means run -> (best centroids seen, their objective, iterations).

    The mean is not the 1 − IoU minimiser of a cluster, so with metric 'iou' the average IoU
    typically peaks after a dozen iterations and then slowly sinks while the run converges:
    the best centroids seen are kept, and the run stops once the best objective has not
    improved by more than ``tol`` (relative) for ``_PATIENCE`` iterations, when the centroids
    no longer move, or after ``max_iter`` iterations.
    """
    sign = 1.0 if metric == "iou" else -1.0      # compare objectives as "higher is better"
    centroids = _seed_plus_plus(cells, k, metric, rng)
    best_centroids, best_objective = centroids, -np.inf
    stalled = 0
    iteration = 0
    for iteration in range(1, max_iter + 1):
        counts, sum_w, sum_h, objective, d1 = _assign_step(cells, centroids, metric)
        score = sign * objective
        stalled = 0 if score > best_objective + tol * abs(best_objective) else stalled + 1
        if score > best_objective:
            best_centroids, best_objective = centroids, score
        if stalled >= _PATIENCE:
            break
        updated = centroids.copy()
        full = counts > 0
        updated[full, 0] = sum_w[full] / counts[full]
        updated[full, 1] = sum_h[full] / counts[full]
        empty = np.flatnonzero(~full)
        if empty.size:
            # reseed with the cells worst served by their centroid
            worst = np.argsort(-d1, kind="stable")[: empty.size]
            updated[empty, 0] = cells.rep_w[worst]
            updated[empty, 1] = cells.rep_h[worst]
        elif np.array_equal(updated, centroids):
            break                                    # converged: nothing moves any more
        centroids = updated
    return best_centroids, sign * best_objective, iteration


def _iou_with_assigned(boxes: _Boxes, centroids, assignments):
    c = np.asarray(centroids, np.float32)[assignments]
    return iou_wh(boxes.w, boxes.h, c[:, 0], c[:, 1], area_a=boxes.area).astype(np.float64)
