"""decode_region, nms and postprocess, each on its own (the box maths: test_boxes.py)."""
import math

import numpy as np
import pytest

from yolo9000.boxes import letterbox_info
from yolo9000.inference.postprocess import decode_region, nms, postprocess
from conftest import scalar_iou


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


# -- decode ------------------------------------------------------------------------------------
def test_decode_hand_built_tensor():
    """2 anchors, 2 classes, a 3-wide x 2-high grid; one box planted at anchor 1, row 1, col 2."""
    num, classes, H, W = 2, 2, 2, 3
    anchors = np.array([[1.0, 1.5], [2.0, 0.5]], np.float32)
    out = np.zeros((num, 5 + classes, H, W), np.float32)
    out[:, 5:] = 0.5                              # uniform class probabilities, objectness 0
    a, r, c = 1, 1, 2
    out[a, 0, r, c] = 0.25                        # sigma(tx)
    out[a, 1, r, c] = 0.75                        # sigma(ty)
    out[a, 2, r, c] = math.log(1.5)               # tw
    out[a, 3, r, c] = math.log(2.0)               # th
    out[a, 4, r, c] = 0.9                         # objectness
    out[a, 5, r, c], out[a, 6, r, c] = 0.8, 0.2
    boxes, scores, cls = decode_region(out.reshape(-1, H, W), anchors, classes, thresh=0.1)
    # both classes of the planted box pass 0.1 (0.72 and 0.18): darknet keeps one row per class
    assert cls.tolist() == [0, 1]
    np.testing.assert_allclose(scores, [0.72, 0.18], rtol=1e-6)
    expected = [(2 + 0.25) / 3, (1 + 0.75) / 2, 2.0 * 1.5 / 3, 0.5 * 2.0 / 2]
    np.testing.assert_allclose(boxes, [expected, expected], rtol=1e-6)
    boxes, scores, cls = decode_region(out.reshape(-1, H, W), anchors, classes, thresh=0.5)
    assert cls.tolist() == [0] and len(boxes) == 1
    # the threshold is inclusive: a score exactly equal to it is kept
    exact = float(np.float32(0.9) * np.float32(0.8))
    _, scores, _ = decode_region(out.reshape(-1, H, W), anchors, classes, thresh=exact)
    assert len(scores) == 1
    _, scores, _ = decode_region(out.reshape(-1, H, W), anchors, classes, thresh=exact + 1e-6)
    assert len(scores) == 0


def test_decode_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="channels"):
        decode_region(np.zeros((24, 2, 2), np.float32), np.ones((5, 2)), 3, 0.5)


def _decode_loops(output, anchors, classes, thresh):
    """Straight transcription of darknet's get_region_box / get_region_detections."""
    num = len(anchors)
    H, W = output.shape[1:]
    out = output.reshape(num, 5 + classes, H, W).astype(np.float64)
    rows = []
    for n in range(num):
        for k in range(classes):
            for i in range(H):
                for j in range(W):
                    score = out[n, 4, i, j] * out[n, 5 + k, i, j]
                    if score >= thresh:
                        box = ((j + out[n, 0, i, j]) / W, (i + out[n, 1, i, j]) / H,
                               math.exp(out[n, 2, i, j]) * anchors[n][0] / W,
                               math.exp(out[n, 3, i, j]) * anchors[n][1] / H)
                        rows.append((box, score, k))
    return rows


def _random_region(rng, num, classes, H, W, peak=3.0):
    raw = rng.standard_normal((num, 5 + classes, H, W)).astype(np.float32)
    out = raw.copy()
    for e in (0, 1, 4):
        out[:, e] = 1 / (1 + np.exp(-raw[:, e]))
    ex = np.exp(peak * raw[:, 5:])
    out[:, 5:] = ex / ex.sum(axis=1, keepdims=True)
    return out.reshape(-1, H, W)


def test_decode_matches_loops_on_random_tensor():
    rng = np.random.default_rng(4)
    anchors = np.array([[1.08, 1.19], [3.42, 4.41], [6.63, 11.38]], np.float32)
    out = _random_region(rng, 3, 4, 5, 7)
    boxes, scores, cls = decode_region(out, anchors, 4, 0.1)
    ref = _decode_loops(out, anchors, 4, 0.1)
    assert len(ref) == len(boxes) > 10
    np.testing.assert_allclose(boxes, [r[0] for r in ref], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, [r[1] for r in ref], rtol=1e-5)
    assert cls.tolist() == [r[2] for r in ref]


# -- NMS ---------------------------------------------------------------------------------------
def _nms_brute(boxes, scores, classes, thresh):
    """darknet do_nms_sort: per class, by decreasing score, zero anything overlapping a survivor.

    Returns the survivors by decreasing score. Vectorised over the boxes after each survivor
    only, so that it stays quick past 2048 boxes."""
    boxes = np.asarray(boxes, np.float64)
    scores = np.asarray(scores)
    classes = np.asarray(classes)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    alive = np.ones(len(boxes), bool)
    kept = []
    for pos, i in enumerate(order):
        if not alive[i]:
            continue
        kept.append(int(i))
        rest = order[pos + 1:]
        iw = np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])
        ih = np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        iou = inter / (area[i] + area[rest] - inter)
        alive[rest[(classes[rest] == classes[i]) & (iou > thresh)]] = False
    return kept


def test_nms_small_cases():
    a = [0, 0, 10, 10]
    b = [0, 0, 10, 6]      # IoU with a = 0.6
    c = [20, 20, 30, 30]
    boxes = np.array([a, b, c], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, [0, 0, 0], 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, [0, 0, 0], 0.6).tolist() == [0, 1, 2]   # only IoU > thresh drops
    assert nms(boxes, scores, [0, 1, 0], 0.5).tolist() == [0, 1, 2]   # different classes
    assert nms(boxes[[1, 0, 2]], scores[[1, 0, 2]], [0, 0, 0], 0.5).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).tolist() == []


def test_nms_chain_keeps_box_whose_suppressor_was_suppressed():
    # a suppresses b, b would suppress c, but a does not touch c: greedy keeps a and c
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], np.float32)
    keep = nms(boxes, [0.9, 0.8, 0.7], [0, 0, 0], 0.3)
    assert keep.tolist() == [0, 2] == _nms_brute(boxes.tolist(), [0.9, 0.8, 0.7], [0, 0, 0], 0.3)


@pytest.mark.parametrize("seed", range(6))
def test_nms_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    xy = rng.random((n, 2)) * 100
    wh = rng.random((n, 2)) * 40 + 1
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / n + 0.001     # distinct scores
    classes = rng.integers(0, 4, n)
    thresh = float(rng.choice([0.2, 0.45, 0.7]))
    got = nms(boxes, scores, classes, thresh).tolist()
    assert got == _nms_brute(boxes.tolist(), scores.tolist(), classes.tolist(), thresh)


@pytest.mark.parametrize("seed, n, thresh", [(0, 2600, 0.45), (1, 3000, 0.3), (2, 2049, 0.7)])
def test_nms_of_more_than_2048_boxes_of_one_class(seed, n, thresh):
    """Past 2048 boxes of a class NMS stops building the overlap matrix (evaluate's low
    threshold gets there on large inputs); the fallback must give the same greedy answer."""
    from yolo9000.inference import postprocess as module
    assert n > module._MATRIX_NMS_MAX                    # the fallback, not the matrix path
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * 200
    wh = rng.random((n, 2)) * 40 + 2
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = (rng.permutation(n) + 1).astype(np.float32) / n      # distinct
    keep = nms(boxes, scores, np.zeros(n, np.int64), thresh)
    expected = _nms_brute(boxes, scores, np.zeros(n, np.int64), thresh)
    assert min(len(expected), n - len(expected)) > 50          # plenty kept and dropped
    assert keep.tolist() == expected


def test_nms_fallback_keeps_a_box_whose_iou_equals_the_threshold():
    # 2100 disjoint unit boxes plus a pair of IoU exactly 0.5: only IoU > thresh suppresses
    far = np.array([[x, 1000, x + 1, 1001] for x in range(0, 4200, 2)], np.float32)
    pair = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32)
    boxes = np.concatenate([pair, far])
    scores = np.linspace(1, 0.1, len(boxes)).astype(np.float32)
    classes = np.zeros(len(boxes), np.int64)
    assert len(nms(boxes, scores, classes, 0.5)) == len(boxes)
    assert 1 not in nms(boxes, scores, classes, 0.49).tolist()


def test_postprocess_boxes_inside_image_and_sorted():
    rng = np.random.default_rng(6)
    anchors = np.array([[1.08, 1.19], [3.42, 4.41], [6.63, 11.38], [9.42, 5.11],
                        [16.62, 10.52]], np.float32)
    out = _random_region(rng, 5, 20, 13, 13)
    info = letterbox_info(500, 375, 416, 416)
    boxes, scores, classes = postprocess(out, anchors, 20, info, 0.05, 0.45)
    assert len(scores) > 0
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= 500)
    assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 3] <= 375)
    assert np.all(np.diff(scores) <= 0) and scores.min() >= 0.05


# -- YOLO9000 word tree ------------------------------------------------------------------------
def test_tree_decoding_descends_while_confident():
    from yolo9000.inference.postprocess import decode_region_tree
    from yolo9000.model.wordtree import WordTree
    # roots 0, 1; children of 0: 2, 3; children of 1: 4, 5, 6
    tree = WordTree([-1, -1, 0, 0, 1, 1, 1])
    anchors = np.array([[1.0, 1.0]], np.float32)
    out = np.zeros((1, 5 + 7, 2, 2), np.float32)
    out[0, 5:] = np.array([0.3, 0.7, 0.5, 0.5, 0.8, 0.1, 0.1], np.float32)[:, None, None]
    out[0, 0], out[0, 1] = 0.5, 0.5                 # box centres mid-cell
    out[0, 4] = [[0.9, 0.2], [0.6, 0.1]]            # objectness per cell
    out = out.reshape(-1, 2, 2)
    boxes, scores, cls = decode_region_tree(out, anchors, tree, thresh=0.5, hier_thresh=0.5)
    # P(node 4) = 0.7 * 0.8 = 0.56 > 0.5: the leaf; score is the objectness (darknet)
    assert cls.tolist() == [4, 4]
    np.testing.assert_allclose(scores, [0.9, 0.6])
    np.testing.assert_allclose(boxes[:, :2], [[0.25, 0.25], [0.25, 0.75]])
    _, _, cls = decode_region_tree(out, anchors, tree, thresh=0.5, hier_thresh=0.6)
    assert cls.tolist() == [1, 1]                   # 0.56 < 0.6: stop at the parent
    _, _, cls = decode_region_tree(out, anchors, tree, thresh=0.5, hier_thresh=0.8)
    assert cls.tolist() == [1, 1]                   # root group: its best node even below
    info = letterbox_info(64, 64, 64, 64)
    xyxy, scores, cls = postprocess(out, anchors, 7, info, 0.5, 0.45, tree=tree)
    assert cls.tolist() == [4, 4] and len(xyxy) == 2


def test_tree_walk_option_reaches_decoding():
    from yolo9000.inference.postprocess import decode_region_tree
    from yolo9000.model.wordtree import WordTree
    # roots A(0), B(1); A -> C(2), D(3); C -> E(4), F(5); one confident box
    tree = WordTree([-1, -1, 0, 0, 2, 2])
    anchors = np.array([[1.0, 1.0]], np.float32)
    out = np.zeros((1, 5 + 6, 1, 1), np.float32)
    out[0, 5:, 0, 0] = [0.9, 0.1, 0.8, 0.2, 0.9, 0.1]
    out[0, 0:2], out[0, 4] = 0.5, 0.8
    out = out.reshape(-1, 1, 1)
    # conditional walk: .9, .72, .648 all > .5 -> E (4); darknet's compounds the absolute
    # probabilities .9, .72, .648 into .9, .648, .42 -> stops at C (2)
    assert decode_region_tree(out, anchors, tree, 0.5, 0.5)[2].tolist() == [4]
    assert decode_region_tree(out, anchors, tree, 0.5, 0.5, walk="darknet")[2].tolist() == [2]
    info = letterbox_info(32, 32, 32, 32)
    assert postprocess(out, anchors, 6, info, 0.5, 0.45, tree=tree)[2].tolist() == [4]
    assert postprocess(out, anchors, 6, info, 0.5, 0.45, tree=tree,
                       tree_walk="darknet")[2].tolist() == [2]
    assert postprocess(out, anchors, 6, info, 0.5, 0.45, tree=tree, hier_thresh=0.4,
                       tree_walk="darknet")[2].tolist() == [4]
    with pytest.raises(ValueError, match="walk"):      # even when no box passes thresh
        postprocess(out, anchors, 6, info, 0.9, 0.45, tree=tree, tree_walk="Darknet")


def test_postprocess_drops_boxes_entirely_in_padding():
    # a wide image leaves padding bands above and below; a box inside the top band vanishes
    info = letterbox_info(200, 50, 64, 64)              # image rows 24..40 of the input
    anchors = np.array([[0.5, 0.5]], np.float32)
    out = np.zeros((1, 6, 4, 4), np.float32)
    out[0, 0], out[0, 1], out[0, 4], out[0, 5] = 0.5, 0.5, 0.9, 1.0
    out = out.reshape(-1, 4, 4)
    xyxy, scores, _ = postprocess(out, anchors, 1, info, 0.5, 0.45)
    rows_kept = sorted({round(float((b[1] + b[3]) / 2)) for b in xyxy})
    assert len(scores) == 8                              # grid rows 1 and 2 overlap the image
    assert all(0 < r < 50 for r in rows_kept)
    assert np.all(xyxy[:, 3] > xyxy[:, 1])
