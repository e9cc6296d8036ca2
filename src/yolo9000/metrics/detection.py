"""Detection metrics: PASCAL VOC AP and COCO mAP@[.5:.95], as pure functions.

Inputs
------
Both evaluators take two dicts keyed by image id (any hashable; ids are visited in sorted order
when they are mutually comparable, else in insertion order):

    gts[image_id]  = GroundTruth(boxes (n,4), classes (n,), difficult (n,) bool)
    dets[image_id] = Detections(boxes (m,4), scores (m,), classes (m,))

A plain dict with the same keys ('boxes', 'classes', 'difficult' / 'scores') works too.
Boxes are xyxy in pixels, continuous coordinates, no "+1" (area = (x2-x1)*(y2-y1)); their IoU
is ``yolo9000.boxes.pairwise_iou``.
Every image of the evaluation set must appear in `gts` (even with no boxes); an image id in
`dets` that is not in `gts` is a ValueError, as in pycocotools' loadRes.

VOC protocol (`evaluate_voc`), as in the VOCdevkit MATLAB code:
  * per class, detections of all images are ranked by score (stable sort);
  * each detection takes the GT of its class in its image with the highest IoU (first on ties);
    if that IoU >= iou_thresh: a difficult GT makes the detection ignored (neither TP nor FP),
    a non-difficult GT not yet taken makes it a TP, an already taken one an FP (duplicate);
    otherwise it is an FP;
  * AP from the resulting precision/recall curve, all-point (VOC2010+) or 11-point (VOC2007).

COCO protocol (`evaluate_coco`) reproduces pycocotools' COCOeval for iouType='bbox' and the twelve
numbers of its summarize(): per image and class the top-100 detections by score are greedily
matched (descending score) to the best-IoU free GT at each of the 10 IoU thresholds
0.50:0.05:0.95; precision is sampled at 101 recall points after making it monotone. For the
small/medium/large figures a GT outside the area range is ignored like a crowd-free ignored GT,
and so is an unmatched detection outside it; AR1/AR10/AR100 keep the top 1/10/100 detections
per image and class.
Difficult GTs are treated as pycocotools treats a GT whose ignore flag is set (`_ignore`, with
iscrowd=0): they do not count as positives, are matched only when no regular GT is available,
can be matched once per threshold, and a detection matched to one is ignored. (pycocotools
itself overwrites `ignore` with `iscrowd` when loading, so with stock pycocotools this flag is
only reachable through its matching code; the tests check that code path directly.)

Classes with no non-difficult GT get AP = nan and are left out of the means, as both
protocols do.

All box arithmetic is float64: these are not hot paths, and matching decisions at IoU exactly
on a threshold must agree with the reference implementations.

`plot_pr_curves` draws a VOC result's precision-recall curves (pr_curve.png of `evaluate`), as
metrics/classification.py's `plot_confusion` draws a classifier's confusion matrix.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..boxes import box_area, pairwise_iou

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)     # pycocotools builds them the same way
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
COCO_MAX_DETS = 100


# -- inputs --------------------------------------------------------------------------------

@dataclass
class GroundTruth:
    boxes: np.ndarray                     # (n, 4) xyxy pixels
    classes: np.ndarray                   # (n,) int
    difficult: np.ndarray | None = None   # (n,) bool; None means all False

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if self.difficult is None:
            self.difficult = np.zeros(len(self.classes), dtype=bool)
        self.difficult = np.asarray(self.difficult, dtype=bool).reshape(-1)
        if not (len(self.boxes) == len(self.classes) == len(self.difficult)):
            raise ValueError("ground truth boxes, classes and difficult differ in length")


@dataclass
class Detections:
    boxes: np.ndarray       # (m, 4) xyxy pixels
    scores: np.ndarray      # (m,)
    classes: np.ndarray     # (m,) int

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.classes)):
            raise ValueError("detection boxes, scores and classes differ in length")


def ground_truth_from_record(record) -> GroundTruth:
    """GroundTruth in pixels from an ImageRecord (normalised cx, cy, w, h)."""
    return GroundTruth(record.pixel_corners(), record.classes, record.difficult)


def _as_gt(value) -> GroundTruth:
    if isinstance(value, GroundTruth):
        return value
    return GroundTruth(value["boxes"], value["classes"], value.get("difficult"))


def _as_det(value) -> Detections:
    if isinstance(value, Detections):
        return value
    return Detections(value["boxes"], value["scores"], value["classes"])


def _normalise_inputs(gts, dets, num_classes):
    gts = {k: _as_gt(v) for k, v in gts.items()}
    dets = {k: _as_det(v) for k, v in dets.items()}
    unknown = [k for k in dets if k not in gts]
    if unknown:
        raise ValueError(f"detections for {len(unknown)} image(s) with no ground-truth entry, "
                         f"e.g. {unknown[0]!r}")
    try:
        ids = sorted(gts)
    except TypeError:
        ids = list(gts)
    for name, table in (("ground truth", gts), ("detection", dets)):
        for k, v in table.items():
            if len(v.classes) and (v.classes.min() < 0 or v.classes.max() >= num_classes):
                raise ValueError(f"{name} class id out of range [0, {num_classes}) "
                                 f"in image {k!r}")
    return ids, gts, dets


# -- VOC -----------------------------------------------------------------------------------

def precision_envelope(precision) -> np.ndarray:
    """Precision made monotone non-increasing: at each rank, the best precision at that recall
    or any higher one (the curve all-point AP integrates)."""
    return np.maximum.accumulate(np.asarray(precision, dtype=np.float64)[::-1])[::-1]


def voc_ap(recall, precision, use_07_metric=False) -> float:
    """Area under a precision/recall curve, the PASCAL VOC way.

    All-point (VOC2010+): precision made monotone non-increasing, integrated over the recall
    steps. 11-point (VOC2007): mean of the max precision at recall >= 0, 0.1, ..., 1.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if use_07_metric:
        ap = 0.0
        for t in np.linspace(0, 1, 11):
            above = prec[rec >= t]
            ap += (above.max() if above.size else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = precision_envelope(mpre)
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class VOCResult:
    ap: np.ndarray              # (K,) per-class AP; nan when the class has no non-difficult GT
    num_gt: np.ndarray          # (K,) non-difficult GT count
    num_det: np.ndarray         # (K,) detections
    recall: np.ndarray          # (K,) recall after all detections
    precision: np.ndarray       # (K,) precision after all detections (0 with no detections)
    map: float                  # mean AP over classes with num_gt > 0 (nan if none)
    iou_thresh: float = 0.5
    use_07_metric: bool = False
    curves: list = field(default_factory=list)   # per class (recall array, precision array)


def _voc_match_all(ids, gts, dets, iou_thresh):
    """Per-detection outcome arrays: class, score, 1 = TP / 0 = FP / -1 = ignored."""
    cls_parts, score_parts, outcome_parts = [], [], []
    gt_offset = 0
    key_parts = []          # global GT index of the best match, for duplicate detection
    difficult_all = []
    for image_id in ids:
        g = gts[image_id]
        d = dets.get(image_id)
        difficult_all.append(g.difficult)
        if d is not None and len(d.scores):
            iou = pairwise_iou(d.boxes, g.boxes)
            iou[d.classes[:, None] != g.classes[None, :]] = -1.0
            if iou.shape[1]:
                best = iou.argmax(axis=1)
                best_iou = iou[np.arange(len(best)), best]
            else:
                best = np.zeros(len(d.scores), dtype=np.int64)
                best_iou = np.full(len(d.scores), -1.0)
            hit = best_iou >= iou_thresh
            outcome = np.where(hit, 1, 0)
            if len(g.difficult):
                outcome[hit & g.difficult[best]] = -1
            cls_parts.append(d.classes)
            score_parts.append(d.scores)
            outcome_parts.append(outcome)
            key_parts.append(np.where(outcome == 1, best + gt_offset, -1))
        gt_offset += len(g.classes)
    if not cls_parts:
        empty = np.zeros(0, np.int64)
        return empty, np.zeros(0), empty, empty
    return (np.concatenate(cls_parts), np.concatenate(score_parts),
            np.concatenate(outcome_parts), np.concatenate(key_parts))


def evaluate_voc(gts, dets, num_classes, iou_thresh=0.5, use_07_metric=False) -> VOCResult:
    """PASCAL VOC per-class AP and mAP (see the module docstring for the protocol)."""
    ids, gts, dets = _normalise_inputs(gts, dets, num_classes)
    num_gt = np.zeros(num_classes, np.int64)
    for g in gts.values():
        num_gt += np.bincount(g.classes[~g.difficult], minlength=num_classes)
    det_cls, det_score, outcome, gt_key = _voc_match_all(ids, gts, dets, iou_thresh)

    ap = np.full(num_classes, np.nan)
    recall = np.zeros(num_classes)
    precision = np.zeros(num_classes)
    num_det = np.bincount(det_cls, minlength=num_classes).astype(np.int64)
    curves = []
    for c in range(num_classes):
        sel = np.flatnonzero(det_cls == c)
        order = sel[np.argsort(-det_score[sel], kind="stable")]
        out = outcome[order]
        keys = gt_key[order]
        tp = out == 1
        # Only the first (highest-scored) detection to claim a GT is a TP; later ones are FPs.
        claimed = np.flatnonzero(tp)
        _, first = np.unique(keys[claimed], return_index=True)
        tp = np.zeros_like(tp)
        tp[claimed[first]] = True
        fp = out != -1
        fp &= ~tp
        kept = out != -1          # ignored detections move neither recall nor precision
        tp_cum = np.cumsum(tp[kept]).astype(np.float64)
        fp_cum = np.cumsum(fp[kept]).astype(np.float64)
        prec = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
        if num_gt[c] > 0:
            rec = tp_cum / num_gt[c]
            ap[c] = voc_ap(rec, prec, use_07_metric)
        else:
            rec = np.zeros_like(tp_cum)
        recall[c] = rec[-1] if rec.size else 0.0
        precision[c] = prec[-1] if prec.size else 0.0
        curves.append((rec, prec))
    valid = num_gt > 0
    mean_ap = float(np.mean(ap[valid])) if valid.any() else float("nan")
    return VOCResult(ap=ap, num_gt=num_gt, num_det=num_det, recall=recall, precision=precision,
                     map=mean_ap, iou_thresh=float(iou_thresh), use_07_metric=use_07_metric,
                     curves=curves)


# -- COCO ----------------------------------------------------------------------------------

# COCOeval's area ranges in square pixels. Both ends are inclusive because COCOeval leaves a box
# out of a range only when `area < lo or area > hi`: a box of exactly 32x32 is small and medium.
COCO_AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2),
                    "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e5 ** 2)}
COCO_AR_MAX_DETS = (1, 10)          # AR is also reported at these per-image caps (and max_dets)
# COCOeval.summarize()'s twelve numbers, in its order (stats[0] .. stats[11]).
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class COCOResult:
    ap: np.ndarray          # (K,) AP@[.5:.95] per class; nan when no non-difficult GT
    ap50: np.ndarray        # (K,)
    ap75: np.ndarray        # (K,)
    recall: np.ndarray      # (T, K) recall after all (<=100 per image) detections; nan if no GT
    precision: np.ndarray   # (T, R, K) interpolated precision, -1 where the class has no GT
    num_gt: np.ndarray      # (K,) non-difficult GT count
    num_det: np.ndarray     # (K,) detections considered (after the per-image top-100 cut)
    map: float              # mean of ap over classes with GT (pycocotools stats[0])
    map50: float            # stats[1]
    map75: float            # stats[2]
    map_small: float        # stats[3..5]: AP@[.5:.95] of GTs (and unmatched detections) in
    map_medium: float       #   each COCO_AREA_RANGES range; nan when no class has such a GT
    map_large: float
    ar1: float              # stats[6..8]: recall averaged over IoU thresholds and classes,
    ar10: float             #   with at most 1, 10, 100 detections per image and class
    ar100: float
    ar_small: float         # stats[9..11]: AR100 per area range
    ar_medium: float
    ar_large: float
    iou_thresholds: np.ndarray = field(default_factory=lambda: COCO_IOU_THRESHOLDS.copy())

    def stats(self) -> dict:
        """COCO_STAT_NAMES -> value, COCOeval.summarize()'s numbers (nan where it prints -1)."""
        values = (self.map, self.map50, self.map75, self.map_small, self.map_medium,
                  self.map_large, self.ar1, self.ar10, self.ar100, self.ar_small,
                  self.ar_medium, self.ar_large)
        return {name: float(v) for name, v in zip(COCO_STAT_NAMES, values)}


def _coco_match_image(det_boxes, gt_boxes, gt_ignore, iou_thrs):
    """pycocotools' greedy matching for one image and class, all IoU thresholds at once.

    det_boxes are already ordered by descending score. Returns (matched, ignored), both
    (T, D) bool: whether each detection is matched, and whether it is ignored because its
    match is an ignored GT.
    """
    T, D, G = len(iou_thrs), len(det_boxes), len(gt_boxes)
    matched = np.zeros((T, D), bool)
    ignored = np.zeros((T, D), bool)
    if D == 0 or G == 0:
        return matched, ignored
    gt_order = np.argsort(gt_ignore, kind="mergesort")      # regular GTs first, like COCOeval
    gt_ignore = gt_ignore[gt_order]
    ious = pairwise_iou(det_boxes, gt_boxes[gt_order])
    thr = np.minimum(iou_thrs, 1 - 1e-10)[:, None]
    taken = np.zeros((T, G), bool)
    # Detections that reach no GT at the lowest threshold are unmatched at all of them.
    for d in np.flatnonzero(ious.max(axis=1) >= thr.min()):
        row = ious[d][None, :]
        free = (row >= thr) & ~taken                        # (T, G)
        regular = free & ~gt_ignore
        # A regular GT always wins over an ignored one; among the chosen kind, the best IoU,
        # and on ties the later GT (COCOeval replaces its pick when IoU >= best so far).
        pool = np.where(regular.any(axis=1, keepdims=True), regular, free & gt_ignore)
        has = pool.any(axis=1)
        if not has.any():
            continue
        masked = np.where(pool, row, -np.inf)
        pick = G - 1 - np.argmax(masked[:, ::-1], axis=1)
        t = np.flatnonzero(has)
        taken[t, pick[t]] = True
        matched[t, d] = True
        ignored[t, d] = gt_ignore[pick[t]]
    return matched, ignored


def _coco_accumulate(parts, num_gt, max_det, rec_thrs):
    """(precision (T, R), recall (T,)) of one class in one area range, as COCOeval.accumulate.

    parts: per image (scores, matched, ignored), each image's detections ordered by score;
    only the first max_det of each image count.
    """
    scores = np.concatenate([p[0][:max_det] for p in parts])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([p[1][:, :max_det] for p in parts], axis=1)[:, order]
    ignored = np.concatenate([p[2][:, :max_det] for p in parts], axis=1)[:, order]
    T, nd = matched.shape
    if nd == 0:
        return np.zeros((T, len(rec_thrs))), np.zeros(T)
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    rc = tp / num_gt
    pr = tp / (fp + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    precision = np.zeros((T, len(rec_thrs)))
    for t in range(T):
        idx = np.searchsorted(rc[t], rec_thrs, side="left")
        precision[t] = np.where(idx < nd, pr[t, np.minimum(idx, nd - 1)], 0.0)
    return precision, rc[:, -1]


def evaluate_coco(gts, dets, num_classes, max_dets=COCO_MAX_DETS) -> COCOResult:
    """COCO bbox AP, AP50, AP75, AP and AR by area, AR@1/10/100 with pycocotools' semantics.

    Areas are box areas (w*h in pixels) for GTs and detections alike; COCO's own annotation
    files carry segmentation areas, which pycocotools uses for GTs instead, so on real COCO the
    small/medium/large figures can differ slightly from pycocotools'.
    """
    ids, gts, dets = _normalise_inputs(gts, dets, num_classes)
    iou_thrs = COCO_IOU_THRESHOLDS
    rec_thrs = COCO_RECALL_THRESHOLDS
    ranges = list(COCO_AREA_RANGES.values())
    T, R, K, A = len(iou_thrs), len(rec_thrs), num_classes, len(ranges)
    caps = [*COCO_AR_MAX_DETS, max_dets]

    per_class = [[[] for _ in range(K)] for _ in range(A)]   # (scores, matched, ignored)
    num_gt = np.zeros((A, K), np.int64)
    for image_id in ids:
        g = gts[image_id]
        d = dets.get(image_id)
        classes_here = set(g.classes.tolist())
        if d is not None:
            classes_here |= set(d.classes.tolist())
        for c in sorted(classes_here):
            gsel = g.classes == c
            if d is not None:
                dsel = np.flatnonzero(d.classes == c)
                dsel = dsel[np.argsort(-d.scores[dsel], kind="mergesort")][:max_dets]
                dboxes, dscores = d.boxes[dsel], d.scores[dsel]
            else:
                dboxes, dscores = np.zeros((0, 4)), np.zeros(0)
            gboxes, gdifficult = g.boxes[gsel], g.difficult[gsel]
            g_area, d_area = box_area(gboxes), box_area(dboxes)
            matches = {}        # the matching depends only on which GTs are ignored
            for a, (lo, hi) in enumerate(ranges):
                gt_ignore = gdifficult | (g_area < lo) | (g_area > hi)
                key = gt_ignore.tobytes()
                if key not in matches:
                    matches[key] = _coco_match_image(dboxes, gboxes, gt_ignore, iou_thrs)
                matched, ignored = matches[key]
                # an unmatched detection outside the range is no false positive of that range
                ignored = ignored | (~matched & ((d_area < lo) | (d_area > hi)))
                per_class[a][c].append((dscores, matched, ignored))
                num_gt[a, c] += int(np.count_nonzero(~gt_ignore))

    precision = -np.ones((A, T, R, K))
    recall = np.full((A, len(caps), T, K), np.nan)
    for a in range(A):
        for c in range(K):
            if num_gt[a, c] == 0:
                continue
            for m, cap in enumerate(caps):
                pr, rc = _coco_accumulate(per_class[a][c], num_gt[a, c], cap, rec_thrs)
                recall[a, m, :, c] = rc
                if cap == max_dets:
                    precision[a, :, :, c] = pr
    num_det = np.array([sum(len(p[0]) for p in per_class[0][c]) for c in range(K)], np.int64)

    def class_mean(values, a=0):
        """Mean over classes with GT in area range a (COCOeval skips the -1 entries)."""
        valid = num_gt[a] > 0
        return float(np.mean(values[..., valid])) if valid.any() else float("nan")

    valid = num_gt[0] > 0
    ap, ap50, ap75 = (np.full(K, np.nan) for _ in range(3))
    i75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    ap[valid] = precision[0][:, :, valid].mean(axis=(0, 1))
    ap50[valid] = precision[0][0, :, valid].mean(axis=-1)
    ap75[valid] = precision[0][i75, :, valid].mean(axis=-1)
    ar_all = [class_mean(recall[0, m]) for m in range(len(caps))]
    return COCOResult(ap=ap, ap50=ap50, ap75=ap75, recall=recall[0, -1],
                      precision=precision[0], num_gt=num_gt[0], num_det=num_det,
                      map=class_mean(ap), map50=class_mean(ap50), map75=class_mean(ap75),
                      map_small=class_mean(precision[1], 1),
                      map_medium=class_mean(precision[2], 2),
                      map_large=class_mean(precision[3], 3),
                      ar1=ar_all[0], ar10=ar_all[1], ar100=ar_all[2],
                      ar_small=class_mean(recall[1, -1], 1),
                      ar_medium=class_mean(recall[2, -1], 2),
                      ar_large=class_mean(recall[3, -1], 3))


# -- report --------------------------------------------------------------------------------

def format_table(result, names=None) -> str:
    """Aligned per-class table (class, #gt, #det, AP..., recall) with a closing mAP row.

    Works for a VOCResult (AP at its IoU threshold, recall, precision) and a COCOResult
    (AP50, AP75, AP@[.5:.95], recall at IoU 0.5).
    """
    K = len(result.ap)
    names = list(names) if names is not None else [str(i) for i in range(K)]
    if len(names) < K:
        names += [str(i) for i in range(len(names), K)]

    def pct(v):
        return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"

    if isinstance(result, VOCResult):
        ap_name = f"AP{round(100 * result.iou_thresh)}"
        if result.use_07_metric:
            ap_name += "(07)"
        header = ["class", "#gt", "#det", ap_name, "recall", "precision"]
        rows = [[names[c], str(result.num_gt[c]), str(result.num_det[c]), pct(result.ap[c]),
                 pct(result.recall[c]) if result.num_gt[c] else "-",
                 pct(result.precision[c]) if result.num_det[c] else "-"]
                for c in range(K)]
        footer = ["mAP", str(int(result.num_gt.sum())), str(int(result.num_det.sum())),
                  pct(result.map), "", ""]
    else:
        header = ["class", "#gt", "#det", "AP50", "AP75", "AP50:95", "recall50"]
        rows = [[names[c], str(result.num_gt[c]), str(result.num_det[c]), pct(result.ap50[c]),
                 pct(result.ap75[c]), pct(result.ap[c]), pct(result.recall[0, c])]
                for c in range(K)]
        footer = ["mAP", str(int(result.num_gt.sum())), str(int(result.num_det.sum())),
                  pct(result.map50), pct(result.map75), pct(result.map), ""]

    table = [header] + rows + [footer]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(r):
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(r))]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule] + [line(r) for r in rows] + [rule, line(footer)])


def plot_pr_curves(voc, names, path):
    """One PNG of every class's precision-recall curve (IoU 0.5), AP in the legend.

    The curves are the interpolated ones (precision_envelope) drawn as steps, so the area under
    each is its all-point AP.

    Returns False, writing nothing, when matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from ..fileio import atomic_path

    shown = [c for c in range(len(voc.ap)) if voc.num_gt[c] > 0]
    columns = 1 + len(shown) // 25       # long legends (COCO's 80 classes) in columns
    fig, ax = plt.subplots(figsize=(6 + 2.2 * columns, 5.5))
    colours = plt.cm.tab20.colors
    for i, c in enumerate(shown):
        recall, precision = voc.curves[c]
        if recall.size == 0:                # no detections of the class: a point at (0, 0)
            recall, precision = np.zeros(1), np.zeros(1)
        envelope = precision_envelope(precision)
        ax.plot(np.concatenate([[0.0], recall]), np.concatenate([envelope[:1], envelope]),
                drawstyle="steps-pre", lw=1.2, color=colours[i % len(colours)],
                label=f"{names[c]} {voc.ap[c]:.3f}")
    metric = "VOC2007 11-point" if voc.use_07_metric else "VOC all-point"
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision (interpolated)",
           title=f"precision-recall at IoU 0.5: mAP {voc.map:.3f} ({metric})")
    ax.grid(alpha=0.3)
    ax.legend(title="class  AP", loc="upper left", bbox_to_anchor=(1.01, 1), ncol=columns,
              fontsize="small" if len(shown) <= 25 else "x-small", frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True
