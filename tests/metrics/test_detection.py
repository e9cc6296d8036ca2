"""Detection metrics (metrics/detection.py): VOC and COCO AP against hand-worked cases and
pycocotools, tables and the ground truth taken from dataset records."""
import contextlib
import io

import numpy as np
import pytest

from yolo9000.boxes import box_area
from yolo9000.data.formats import ImageRecord
from yolo9000.metrics.detection import (COCO_STAT_NAMES, COCOResult, Detections, GroundTruth,
                                        VOCResult, evaluate_coco, evaluate_voc, format_table,
                                        ground_truth_from_record, voc_ap)


# -- a small VOC example worked out by hand --------------------------------------------------
#
# One class (0), two images, 4 GTs:
#   image "a": g1 = [0,0,10,10], g2 = [20,20,40,40]
#   image "b": g3 = [50,50,70,70], g4 = [0,0,30,30] (difficult)
# Non-difficult positives npos = 3.
#
# Detections of class 0, ranked by score:
#   rank  score  image  box             best GT (IoU)       outcome
#   1     0.9    a      [1,0,11,10]     g1 (90/110=.82)     TP
#   2     0.8    a      [0,1,10,11]     g1 (.82, taken)     FP (duplicate)
#   3     0.7    b      [0,0,30,29]     g4 (.97, difficult) ignored
#   4     0.6    b      [80,0,90,10]    none                FP
#   5     0.5    b      [50,50,70,72]   g3 (400/440=.91)    TP
#   6     0.4    a      [20,20,40,38]   g2 (360/400=.90)    TP
#
# Keeping the non-ignored ones (ranks 1,2,4,5,6):
#   cum TP    1    1    1    2    3
#   cum FP    0    1    2    2    2
#   recall   1/3  1/3  1/3  2/3   1
#   precis.   1   1/2  1/3  1/2  3/5
#
# All-point AP: the monotone envelope is 1 on (0,1/3], 3/5 on (1/3,1]:
#   AP = 1/3*1 + 2/3*3/5 = 1/3 + 2/5 = 11/15
# 11-point AP: max precision at recall >= t:
#   t=0,.1,.2,.3 -> 1 ; t=.4,.5,.6 -> max(1/2,3/5)=3/5 ; t=.7,.8,.9,1 -> 3/5
#   AP = (4*1 + 7*3/5) / 11 = 8.2/11 = 41/55

def hand_example():
    gts = {
        "a": GroundTruth([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 0], [False, False]),
        "b": GroundTruth([[50, 50, 70, 70], [0, 0, 30, 30]], [0, 0], [False, True]),
    }
    dets = {
        "a": Detections([[1, 0, 11, 10], [0, 1, 10, 11], [20, 20, 40, 38]],
                        [0.9, 0.8, 0.4], [0, 0, 0]),
        "b": Detections([[0, 0, 30, 29], [80, 0, 90, 10], [50, 50, 70, 72]],
                        [0.7, 0.6, 0.5], [0, 0, 0]),
    }
    return gts, dets


def test_voc_hand_computed_all_point_and_11_point():
    gts, dets = hand_example()
    r = evaluate_voc(gts, dets, num_classes=1)
    assert r.ap[0] == pytest.approx(11 / 15, abs=1e-12)
    assert r.map == pytest.approx(11 / 15, abs=1e-12)
    assert r.num_gt[0] == 3
    assert r.num_det[0] == 6
    assert r.recall[0] == pytest.approx(1.0)
    assert r.precision[0] == pytest.approx(3 / 5)
    rec, prec = r.curves[0]
    np.testing.assert_allclose(rec, [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(prec, [1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])

    r07 = evaluate_voc(gts, dets, num_classes=1, use_07_metric=True)
    assert r07.ap[0] == pytest.approx(41 / 55, abs=1e-12)


def test_voc_ap_on_explicit_curve():
    rec = [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1]
    prec = [1, 1 / 2, 1 / 3, 1 / 2, 3 / 5]
    assert voc_ap(rec, prec) == pytest.approx(11 / 15)
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(41 / 55)
    # A curve stopping at recall 0.5 with precision 1: half the area, 6 of 11 points.
    assert voc_ap([0.25, 0.5], [1.0, 1.0]) == pytest.approx(0.5)
    assert voc_ap([0.25, 0.5], [1.0, 1.0], use_07_metric=True) == pytest.approx(6 / 11)
    assert voc_ap([], []) == 0.0
    assert voc_ap([], [], use_07_metric=True) == 0.0


def test_voc_difficult_detection_is_ignored_not_fp():
    gts = {0: GroundTruth([[0, 0, 10, 10], [30, 30, 50, 50]], [0, 0], [False, True])}
    # The top detection sits on the difficult GT; it must not lower precision.
    dets = {0: Detections([[30, 30, 50, 50], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])}
    r = evaluate_voc(gts, dets, 1)
    assert r.num_gt[0] == 1
    assert r.ap[0] == pytest.approx(1.0)
    assert r.precision[0] == pytest.approx(1.0)
    # Several detections on one difficult GT are all ignored (VOC never marks it taken).
    dets = {0: Detections([[30, 30, 50, 50], [31, 30, 50, 50], [0, 0, 10, 10]],
                          [0.9, 0.85, 0.8], [0, 0, 0])}
    assert evaluate_voc(gts, dets, 1).ap[0] == pytest.approx(1.0)
    # A class whose only GT is difficult has no AP and stays out of the mean.
    gts[1] = GroundTruth([[0, 0, 5, 5], [60, 60, 70, 70]], [0, 1], [False, True])
    dets[1] = Detections([[60, 60, 70, 70]], [0.5], [1])
    r = evaluate_voc(gts, dets, 2)
    assert np.isnan(r.ap[1]) and r.num_gt[1] == 0
    assert r.map == pytest.approx(r.ap[0])


def test_voc_best_gt_taken_makes_fp_even_if_another_gt_overlaps():
    # VOC assigns each detection to its best-IoU GT regardless of whether it is taken.
    gts = {0: GroundTruth([[0, 0, 10, 10], [2, 0, 12, 10]], [0, 0])}
    dets = {0: Detections([[0, 0, 10, 10], [1, 0, 11, 10]], [0.9, 0.8], [0, 0])}
    # det 2 has IoU 9/11 with both GTs; argmax picks the first (taken) -> FP.
    r = evaluate_voc(gts, dets, 1)
    rec, prec = r.curves[0]
    np.testing.assert_allclose(rec, [0.5, 0.5])
    np.testing.assert_allclose(prec, [1.0, 0.5])


def test_voc_iou_threshold_is_inclusive_and_classes_do_not_mix():
    gts = {0: GroundTruth([[0, 0, 10, 20]], [0])}
    exactly_half = Detections([[0, 0, 10, 10]], [0.9], [0])
    assert evaluate_voc(gts, {0: exactly_half}, 1).ap[0] == pytest.approx(1.0)
    assert evaluate_voc(gts, {0: exactly_half}, 1, iou_thresh=0.51).ap[0] == 0.0
    wrong_class = Detections([[0, 0, 10, 20]], [0.9], [1])
    r = evaluate_voc(gts, {0: wrong_class}, 2)
    assert r.ap[0] == 0.0 and np.isnan(r.ap[1]) and r.map == 0.0


def test_edge_cases_no_detections_and_perfect_detections():
    rng = np.random.default_rng(0)
    gts, dets = {}, {}
    for i in range(5):
        xy = rng.uniform(0, 200, (4, 2))
        wh = rng.uniform(10, 80, (4, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        classes = rng.integers(0, 3, 4)
        gts[i] = GroundTruth(boxes, classes)
        dets[i] = Detections(boxes, rng.uniform(0.1, 1, 4), classes)
    # class 3 has no GT at all and is left out of the mean
    perfect_voc = evaluate_voc(gts, dets, 4)
    present = perfect_voc.num_gt > 0
    assert not present[3]
    np.testing.assert_allclose(perfect_voc.ap[present], 1.0)
    assert perfect_voc.map == pytest.approx(1.0)
    perfect_coco = evaluate_coco(gts, dets, 4)
    assert perfect_coco.map == pytest.approx(1.0)
    assert perfect_coco.map50 == pytest.approx(1.0) and perfect_coco.map75 == pytest.approx(1.0)
    assert np.isnan(perfect_coco.ap[3])

    no_voc = evaluate_voc(gts, {}, 4)
    np.testing.assert_array_equal(no_voc.ap[present], 0.0)
    assert no_voc.map == 0.0 and no_voc.num_det.sum() == 0
    no_coco = evaluate_coco(gts, {}, 4)
    assert no_coco.map == 0.0 and no_coco.map50 == 0.0

    nothing = evaluate_voc({0: GroundTruth(np.zeros((0, 4)), [])}, {}, 2)
    assert np.isnan(nothing.map)
    # False positives on an image with no GT lower precision of a class that has GT elsewhere.
    gts2 = {0: GroundTruth([[0, 0, 10, 10]], [0]), 1: GroundTruth(np.zeros((0, 4)), [])}
    dets2 = {0: Detections([[0, 0, 10, 10]], [0.5], [0]),
             1: Detections([[0, 0, 10, 10]], [0.9], [0])}
    r = evaluate_voc(gts2, dets2, 1)
    np.testing.assert_allclose(r.curves[0][1], [0.0, 0.5])
    assert r.ap[0] == pytest.approx(0.5)


def test_inputs_as_dicts_and_bad_inputs():
    gts = {0: {"boxes": [[0, 0, 10, 10]], "classes": [0]}}
    dets = {0: {"boxes": [[0, 0, 10, 10]], "scores": [1.0], "classes": [0]}}
    assert evaluate_voc(gts, dets, 1).map == 1.0
    with pytest.raises(ValueError, match="no ground-truth"):
        evaluate_voc(gts, {5: dets[0]}, 1)
    with pytest.raises(ValueError, match="out of range"):
        evaluate_coco(gts, dets, 0)


def test_ground_truth_from_record_is_in_pixels():
    rec = ImageRecord(path="a.jpg", width=200, height=100,
                      boxes=np.array([[0.5, 0.5, 0.2, 0.4]], np.float32),
                      classes=np.array([3]), difficult=np.array([True]))
    g = ground_truth_from_record(rec)
    np.testing.assert_allclose(g.boxes, [[80, 30, 120, 70]], atol=1e-4)
    assert g.classes.tolist() == [3] and g.difficult.tolist() == [True]


def test_format_table_lists_classes_and_map():
    gts, dets = hand_example()
    text = format_table(evaluate_voc(gts, dets, 1), ["thing"])
    lines = text.splitlines()
    assert lines[0].split() == ["class", "#gt", "#det", "AP50", "recall", "precision"]
    assert lines[2].split() == ["thing", "3", "6", "73.3", "100.0", "60.0"]
    assert lines[-1].split()[:4] == ["mAP", "3", "6", "73.3"]
    coco_text = format_table(evaluate_coco(gts, dets, 2), ["thing", "other"])
    assert "AP50:95" in coco_text.splitlines()[0]
    assert coco_text.splitlines()[3].split()[0] == "other" and "-" in coco_text.splitlines()[3]
    # numeric columns are right-aligned under their headers
    assert lines[0].index("AP50") + 4 == lines[2].index("73.3") + 4 == lines[-1].index("73.3") + 4
    assert lines[0].index("recall") + 6 == lines[2].index("100.0") + 5


# -- agreement with pycocotools --------------------------------------------------------------

def random_scene(seed, n_images=25, n_classes=4, with_difficult=False):
    """Jittered GT boxes, duplicates and false positives with coarse (often tied) scores."""
    rng = np.random.default_rng(seed)
    gts, dets = {}, {}
    for image_id in range(1, n_images + 1):
        W, H = rng.integers(200, 640, 2)
        n = rng.integers(0, 8)
        wh = rng.uniform(8, 200, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([W, H]) - wh).clip(1)
        gboxes = np.concatenate([xy, xy + wh], 1)
        gcls = rng.integers(0, n_classes, n)
        gdiff = (rng.uniform(size=n) < 0.2) if with_difficult else np.zeros(n, bool)
        gts[image_id] = GroundTruth(gboxes, gcls, gdiff)

        boxes, scores, classes = [], [], []
        for b, c in zip(gboxes, gcls):
            for _ in range(rng.integers(0, 3)):        # missed, found, or found twice
                size = b[2:] - b[:2]
                jitter = rng.normal(0, 0.08, 4) * np.concatenate([size, size])
                boxes.append(b + jitter)
                classes.append(c if rng.uniform() < 0.9 else rng.integers(0, n_classes))
                scores.append(rng.uniform(0.2, 1.0))
        for _ in range(rng.integers(0, 6)):            # background false positives
            wh_fp = rng.uniform(8, 150, 2)
            xy_fp = rng.uniform(0, 1, 2) * (np.array([W, H]) - wh_fp).clip(1)
            boxes.append(np.concatenate([xy_fp, xy_fp + wh_fp]))
            classes.append(rng.integers(0, n_classes))
            scores.append(rng.uniform(0.0, 0.7))
        if image_id == 3:                              # more than maxDets of one class
            for _ in range(130):
                wh_fp = rng.uniform(8, 150, 2)
                xy_fp = rng.uniform(0, 1, 2) * (np.array([W, H]) - wh_fp).clip(1)
                boxes.append(np.concatenate([xy_fp, xy_fp + wh_fp]))
                classes.append(0)
                scores.append(rng.uniform(0.0, 1.0))
        scores = np.round(np.asarray(scores), 2)       # ties exercise the stable ordering
        dets[image_id] = Detections(np.asarray(boxes).reshape(-1, 4), scores, classes)
    return gts, dets


def pycocotools_eval(gts, dets, n_classes, difficult_as_ignore=False):
    COCO = pytest.importorskip("pycocotools.coco").COCO
    COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval

    class IgnoreFlagEval(COCOeval):
        # Stock _prepare overwrites `ignore` with `iscrowd`; restore it from our flag so that
        # pycocotools' own matching and accumulation code handles ignored GTs.
        def _prepare(self):
            super()._prepare()
            for anns in self._gts.values():
                for g in anns:
                    g["ignore"] = int(g["difficult"])

    images, annotations = [], []
    for image_id, g in gts.items():
        images.append({"id": image_id, "width": 1000, "height": 1000})
        for b, c, d in zip(g.boxes, g.classes, g.difficult):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(c) + 1, "bbox": [b[0], b[1], w, h],
                                "area": w * h, "iscrowd": 0, "difficult": bool(d)})
    results = []
    for image_id, d in dets.items():
        for b, s, c in zip(d.boxes, d.scores, d.classes):
            results.append({"image_id": image_id, "category_id": int(c) + 1,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations,
                           "categories": [{"id": k + 1, "name": str(k)} for k in range(n_classes)]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        E = (IgnoreFlagEval if difficult_as_ignore else COCOeval)(coco_gt, coco_dt, "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    per_class = E.eval["precision"][:, :, :, 0, 2]          # area 'all', maxDets 100
    return E.stats, per_class


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_matches_pycocotools(seed):
    gts, dets = random_scene(seed)
    stats, precision = pycocotools_eval(gts, dets, 4)
    r = evaluate_coco(gts, dets, 4)
    assert isinstance(r, COCOResult)
    assert 0.2 < r.map < 0.9            # a realistic, non-degenerate scene
    assert r.map == pytest.approx(stats[0], abs=1e-3)
    assert r.map50 == pytest.approx(stats[1], abs=1e-3)
    assert r.map75 == pytest.approx(stats[2], abs=1e-3)
    np.testing.assert_allclose(r.precision, precision, atol=1e-9)


def test_coco_difficult_as_ignored_matches_pycocotools_ignore_flag():
    gts, dets = random_scene(7, with_difficult=True)
    assert sum(int(g.difficult.sum()) for g in gts.values()) > 5
    stats, precision = pycocotools_eval(gts, dets, 4, difficult_as_ignore=True)
    r = evaluate_coco(gts, dets, 4)
    assert r.map == pytest.approx(stats[0], abs=1e-3)
    assert r.map50 == pytest.approx(stats[1], abs=1e-3)
    np.testing.assert_allclose(r.precision, precision, atol=1e-9)
    # ... and difficult handling changes the answer compared with counting them as positives
    plain = {k: GroundTruth(g.boxes, g.classes) for k, g in gts.items()}
    assert evaluate_coco(plain, dets, 4).map != pytest.approx(r.map, abs=1e-4)


def test_voc_and_coco_ap50_agree_roughly_on_a_realistic_scene():
    # Different interpolations, same matching idea at IoU 0.5: close but not identical.
    gts, dets = random_scene(3)
    voc = evaluate_voc(gts, dets, 4)
    coco = evaluate_coco(gts, dets, 4)
    assert isinstance(voc, VOCResult)
    assert voc.map == pytest.approx(coco.map50, abs=0.05)


def test_coco_prefers_regular_gt_over_better_ignored_gt():
    # GT r = [0,0,10,10] (regular), GT i = [1,0,11,10] (difficult -> ignored).
    # The detection equals i (IoU 1) but has IoU 90/110 = .818 with r. COCOeval takes a regular
    # GT whenever one is free above the threshold: TP for t in .50..0.80 (7 thresholds); above
    # .818 only i qualifies, the detection is ignored and recall stays 0.
    # AP@[.5:.95] = 7/10, AP75 = 1.
    gts = {1: GroundTruth([[0, 0, 10, 10], [1, 0, 11, 10]], [0, 0], [False, True])}
    dets = {1: Detections([[1, 0, 11, 10]], [0.9], [0])}
    r = evaluate_coco(gts, dets, 1)
    assert r.map == pytest.approx(0.7)
    assert r.map75 == pytest.approx(1.0)
    stats, _ = pycocotools_eval(gts, dets, 1, difficult_as_ignore=True)
    assert r.map == pytest.approx(stats[0], abs=1e-9)


def _assert_stats_match(result, stats):
    """All twelve COCOeval.summarize() numbers; pycocotools prints -1 where we give nan."""
    ours = result.stats()
    assert list(ours) == list(COCO_STAT_NAMES)
    for name, theirs in zip(COCO_STAT_NAMES, stats):
        expected = float("nan") if theirs == -1 else theirs
        assert ours[name] == pytest.approx(expected, abs=1e-9, nan_ok=True), name


@pytest.mark.parametrize("seed,with_difficult", [(0, False), (1, False), (3, True)])
def test_coco_area_ranges_and_recall_match_pycocotools(seed, with_difficult):
    gts, dets = random_scene(seed, with_difficult=with_difficult)
    areas = np.concatenate([box_area(g.boxes) for g in gts.values()])
    # GTs in every COCO size range, so APs/APm/APl and ARs/ARm/ARl are all exercised
    assert (areas < 32 ** 2).sum() > 3 and (areas > 96 ** 2).sum() > 3
    assert ((areas > 32 ** 2) & (areas < 96 ** 2)).sum() > 3
    stats, _ = pycocotools_eval(gts, dets, 4, difficult_as_ignore=with_difficult)
    r = evaluate_coco(gts, dets, 4)
    assert len({round(v, 6) for v in r.stats().values()}) > 8    # twelve different figures
    _assert_stats_match(r, stats)


def test_coco_area_ranges_by_hand():
    # One class. GT s = 20x20 (small), GT m = exactly 32x32 (on the boundary: small AND medium,
    # as COCOeval's inclusive ranges make it), GT l = 100x100 (large).
    # Detections: on s (0.9), on l (0.8), a 100x100 false positive (0.7) and one on m (0.6).
    # small:  GTs s, m; the large FP is outside the range and unmatched -> ignored, so the
    #         ranking is s TP, m TP: AP 1; l's detection is matched to an ignored GT -> ignored.
    # medium: GT m only; s's detection (unmatched, 400 px^2 < 32^2) ignored, l's matched to an
    #         ignored GT, the FP (10000 px^2 > 96^2) ignored: AP 1.
    # large:  GT l; ranking l TP (0.8), FP (0.7); s's and m's detections are ignored
    #         (m's 1024 px^2 is outside [96^2, 1e10]): precision 1 up to recall 1, AP 1.
    # all:    s TP, l TP, FP, m TP: precision 1,1,2/3,3/4 -> monotone 1 up to recall 2/3,
    #         then 3/4: 101-point AP = (67 * 1 + 34 * 3/4) / 101 (recall thresholds 0..0.66
    #         are 67, 0.67..1 are 34).
    gts = {1: GroundTruth([[0, 0, 20, 20], [100, 100, 132, 132], [200, 0, 300, 100]],
                          [0, 0, 0])}
    dets = {1: Detections([[0, 0, 20, 20], [200, 0, 300, 100], [0, 200, 100, 300],
                           [100, 100, 132, 132]], [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0])}
    r = evaluate_coco(gts, dets, 1)
    assert r.map_small == pytest.approx(1.0)
    assert r.map_medium == pytest.approx(1.0)
    assert r.map_large == pytest.approx(1.0)
    assert r.map == pytest.approx((67 + 34 * 0.75) / 101)
    # AR1 keeps only the best detection (on s): 1 of 3 GTs at every IoU threshold
    assert (r.ar1, r.ar10, r.ar100) == pytest.approx((1 / 3, 1.0, 1.0))
    assert (r.ar_small, r.ar_medium, r.ar_large) == pytest.approx((1.0, 1.0, 1.0))
    stats, _ = pycocotools_eval(gts, dets, 1)
    _assert_stats_match(r, stats)
