"""From the region layer's output to boxes in original-image pixels.

Three separate verbs, each vectorised and tested on its own:

    boxes, scores, classes = decode_region(output, anchors, num_classes, thresh)  # network space
    keep = nms(cxcywh_to_xyxy(boxes), scores, classes, iou_thresh)               # per class
    xyxy = network_to_image(boxes[keep], info)                                   # original pixels

(the box maths, IoU and the letterbox map, are ``yolo9000.boxes``'s).

``postprocess`` chains them. NMS runs before the boxes are mapped back and clipped: mapping
through the letterbox is an affine map per axis, which leaves IoU unchanged, and darknet
suppresses on unclipped boxes too (it clips only when drawing).

Semantics follow darknet (region_layer.c get_region_detections / correct_region_boxes and
box.c do_nms_sort) with two deliberate differences: a detection is kept when its score is
``>= thresh`` (darknet: ``> thresh``), and the letterbox offset used to map boxes back is the
integer offset at which the image was actually placed (darknet's correct_region_boxes uses
``(netw - new_w) / 2.`` as a float, half a network pixel off the real placement when the
padding is odd).
"""
from __future__ import annotations

import numpy as np

from ..boxes import (LetterboxInfo, cxcywh_to_xyxy, iou_one_to_many, network_to_image,
                     pairwise_iou)


def _region_view(output, anchors, num_classes, coords):
    """One image's region output as (anchor, entry, row, col), checked against the anchors."""
    output = np.asarray(output, dtype=np.float32)
    anchors = np.asarray(anchors, dtype=np.float32).reshape(-1, 2)
    num = anchors.shape[0]
    entries = coords + 1 + num_classes
    channels, grid_h, grid_w = output.shape
    if channels != num * entries:
        raise ValueError(f"region output has {channels} channels, expected {num} anchors x "
                         f"({coords} + 1 + {num_classes}) = {num * entries}")
    return output.reshape(num, entries, grid_h, grid_w), anchors


def decode_region(output, anchors, num_classes, thresh, coords=4):
    """Candidate detections from one image's activated region output.

    output: (num*(coords+1+classes), H, W) with x, y, objectness already sigmoided, w, h raw and
    class probabilities already softmaxed (darknet layout: channel = anchor*(5+classes)+entry).
    anchors: (num, 2) prior sizes in grid cells.

    Returns (boxes (n, 4) float32 [cx, cy, w, h] normalised to the network input,
    scores (n,) float32 = objectness * class probability, classes (n,) int64), one row per
    (box, class) pair whose score >= thresh; a box can appear with several classes.
    Rows are ordered by (anchor, class, row, col).
    """
    out, anchors = _region_view(output, anchors, num_classes, coords)
    objectness = out[:, coords]
    scores_all = out[:, coords + 1:] * objectness[:, None]          # (num, classes, H, W)
    anchor, cls, row, col = np.nonzero(scores_all >= np.float32(thresh))
    scores = scores_all[anchor, cls, row, col]
    boxes = _region_boxes(out, anchors, anchor, row, col)
    return boxes, scores.astype(np.float32), cls.astype(np.int64)


def _region_boxes(out, anchors, anchor, row, col):
    """get_region_box for the predictions at (anchor, row, col); out is (num, entries, H, W)."""
    grid_h, grid_w = out.shape[2:]
    tx, ty = out[anchor, 0, row, col], out[anchor, 1, row, col]
    tw, th = out[anchor, 2, row, col], out[anchor, 3, row, col]
    boxes = np.empty((anchor.size, 4), np.float32)
    boxes[:, 0] = (col.astype(np.float32) + tx) / np.float32(grid_w)
    boxes[:, 1] = (row.astype(np.float32) + ty) / np.float32(grid_h)
    boxes[:, 2] = np.exp(tw) * anchors[anchor, 0] / np.float32(grid_w)
    boxes[:, 3] = np.exp(th) * anchors[anchor, 1] / np.float32(grid_h)
    return boxes


def decode_region_tree(output, anchors, tree, thresh, hier_thresh=0.5, coords=4, walk="paper",
                       return_index=False):
    """YOLO9000 (softmax tree) decoding, as darknet without a class map: one class per box.

    The class channels hold P(node | parent) per softmax group. A box whose objectness is
    >= thresh gets the deepest node the tree walk reaches at ``hier_thresh``
    (``tree.top_prediction``; walk "paper" descends on conditional probabilities, "darknet"
    runs darknet's hierarchy_top_prediction on absolute ones); its score is the objectness, as
    in darknet. Same return values as ``decode_region``; with return_index, also each box's
    prediction (anchor, row, column) as a flat index into the (anchors, rows, columns) grid.
    """
    tree.check_walk(walk)      # before any box: a bad walk fails even on an empty image
    out, anchors = _region_view(output, anchors, tree.n, coords)
    objectness = out[:, coords]
    anchor, row, col = np.nonzero(objectness >= np.float32(thresh))
    classes = np.array([tree.top_prediction(out[a, coords + 1:, r, c], hier_thresh, walk)
                        for a, r, c in zip(anchor, row, col)], dtype=np.int64)
    decoded = (_region_boxes(out, anchors, anchor, row, col),
               objectness[anchor, row, col].astype(np.float32), classes)
    if return_index:
        h, w = out.shape[2:]
        return decoded + (((anchor * h + row) * w + col).astype(np.int64),)
    return decoded


# Above this many candidates of one class the (m, m) overlap matrix gets too big; fall back to
# one IoU row per kept box.
_MATRIX_NMS_MAX = 2048


def _greedy_keep(boxes, iou_thresh):
    """Greedy NMS over boxes already sorted by decreasing score -> boolean keep mask.

    Matrix form: box i survives iff no *surviving* earlier box overlaps it. Iterating
    keep <- not(any earlier kept box overlaps) from keep = all fixes position t after t steps
    (it depends only on earlier positions), and its only fixed point is the greedy answer; in
    practice overlap chains are short, so it takes a handful of matrix-vector products.
    """
    m = boxes.shape[0]
    if m > _MATRIX_NMS_MAX:
        keep = np.zeros(m, bool)
        remaining = np.arange(m)
        while remaining.size:
            best = remaining[0]
            keep[best] = True
            rest = remaining[1:]
            remaining = rest[iou_one_to_many(boxes[best], boxes[rest]) <= iou_thresh]
        return keep
    overlaps = np.triu(pairwise_iou(boxes, boxes) > iou_thresh, 1).astype(np.float32)
    keep = np.ones(m, bool)
    for _ in range(m):
        suppressed = keep.astype(np.float32) @ overlaps > 0
        if not np.any(suppressed == keep):   # keep == ~suppressed: the fixed point
            break
        keep = ~suppressed
    return keep


def nms(boxes_xyxy, scores, classes, iou_thresh):
    """Greedy per-class non-maximum suppression.

    Within each class, boxes are visited by decreasing score (ties: input order); a box is
    dropped when its IoU with an already kept box of the same class exceeds ``iou_thresh``.
    Returns the kept indices, sorted by decreasing score.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores)
    classes = np.asarray(classes)
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    sorted_classes = classes[order]
    keep = []
    for c in np.unique(classes):
        members = order[sorted_classes == c]
        keep.append(members[_greedy_keep(boxes[members], iou_thresh)])
    keep = np.concatenate(keep).astype(np.int64)
    return keep[np.argsort(-scores[keep], kind="stable")]


def postprocess(output, anchors, num_classes, info: LetterboxInfo, thresh=0.5, nms_thresh=0.45,
                coords=4, tree=None, hier_thresh=0.5, tree_walk="paper", return_index=False):
    """decode -> per-class NMS -> map back and clip. Returns (xyxy px, scores, classes).

    Sorted by decreasing score; boxes left with zero area by clipping (entirely outside the
    image, in the letterbox padding) are dropped. ``tree``: a WordTree for YOLO9000 outputs,
    decoded with ``hier_thresh`` and ``tree_walk`` (see ``decode_region_tree``).
    """
    index = None
    if tree is not None:
        boxes, scores, classes, index = decode_region_tree(output, anchors, tree, thresh,
                                                           hier_thresh, coords, walk=tree_walk,
                                                           return_index=True)
    else:
        boxes, scores, classes = decode_region(output, anchors, num_classes, thresh, coords)
    if nms_thresh is not None and len(scores):
        keep = nms(cxcywh_to_xyxy(boxes), scores, classes, nms_thresh)
    else:
        keep = np.argsort(-scores, kind="stable")
    xyxy = network_to_image(boxes[keep], info)
    # A box entirely in the letterbox padding clips to nothing; it marks no part of the image.
    inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    kept = (xyxy[inside], scores[keep][inside], classes[keep][inside])
    if return_index:    # (a word tree's: the prediction behind each box, for its tree path)
        return kept + (None if index is None else index[keep][inside],)
    return kept
