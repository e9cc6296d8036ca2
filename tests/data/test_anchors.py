"""Anchor k-means: IoU of aligned boxes, reproducibility, and quality against brute force."""
from pathlib import Path

import numpy as np
import pytest

from yolo9000.boxes import iou_wh
from yolo9000.data.anchors import avg_iou, best_iou, box_wh, kmeans_anchors
from yolo9000.data.formats import load_dataset
from conftest import REPO, VOC_SAMPLE



def _bench_anchors_module():
    import importlib.util
    path = REPO / "scripts" / "bench_anchors.py"
    spec = importlib.util.spec_from_file_location("bench_anchors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the benchmark's box distribution (log-normal sizes and aspects), shared with the tests
lognormal_boxes = _bench_anchors_module().synthetic_boxes


def brute_force_kmeans(wh, k, restarts=20, seed=123):
    """A plain, separate implementation: random boxes as centres, Lloyd with 1 - IoU."""
    wh = wh.astype(np.float64)
    rng = np.random.default_rng(seed)
    best = 0.0
    for _ in range(restarts):
        c = wh[rng.choice(len(wh), k, replace=False)]
        prev = None
        for _ in range(1000):
            inter = np.minimum(wh[:, None, 0], c[None, :, 0]) * np.minimum(wh[:, None, 1], c[None, :, 1])
            iou = inter / (wh[:, 0:1] * wh[:, 1:2] + (c[:, 0] * c[:, 1])[None] - inter)
            a = iou.argmax(1)
            if prev is not None and (a == prev).all():
                break
            prev = a
            for j in range(k):
                if (a == j).any():
                    c[j] = wh[a == j].mean(0)
        best = max(best, iou.max(1).mean())
    return best


def test_best_iou_picks_the_closest_shape():
    idx, score = best_iou(np.array([[1, 1], [4, 4]], np.float32), [[1, 1], [3, 3]])
    assert idx.tolist() == [0, 1]
    np.testing.assert_allclose(score, [1.0, 9 / 16], rtol=1e-6)


# (w, h), centroid (w, h), IoU of the two aligned at a common centre worked out by hand:
# intersection min(w)·min(h), union the two areas minus the intersection
HAND_PAIRS = [((2, 2), (1, 1), 1 / 4),        # 1 / (4 + 1 - 1)
              ((2, 1), (1, 2), 1 / 3),        # 1 / (2 + 2 - 1)
              ((4, 4), (3, 3), 9 / 16),       # 9 / (16 + 9 - 9)
              ((3, 1), (1, 2), 1 / 4),        # 1 / (3 + 2 - 1)
              ((0.5, 0.25), (0.5, 0.25), 1.0)]
HAND_EUCLIDEAN = [2 ** 0.5, 2 ** 0.5, 2 ** 0.5, 5 ** 0.5, 0.0]   # sqrt(dw² + dh²) of the pairs


def test_distances_on_hand_computed_pairs():
    from yolo9000.data import anchors as A

    w = np.array([p[0][0] for p in HAND_PAIRS], np.float32)
    h = np.array([p[0][1] for p in HAND_PAIRS], np.float32)
    cw = np.array([p[1][0] for p in HAND_PAIRS], np.float32)
    ch = np.array([p[1][1] for p in HAND_PAIRS], np.float32)
    iou = np.array([p[2] for p in HAND_PAIRS])
    np.testing.assert_allclose(A._pairwise_distance(w, h, cw, ch, "iou"), 1 - iou, atol=1e-6)
    one_to_one = [A._distance(w[i:i + 1], h[i:i + 1], cw[i], ch[i], "iou")[0]
                  for i in range(len(w))]
    np.testing.assert_allclose(one_to_one, 1 - iou, atol=1e-6)
    np.testing.assert_allclose(A._pairwise_distance(w, h, cw, ch, "euclidean"), HAND_EUCLIDEAN,
                               atol=1e-6)
    np.testing.assert_allclose([A._distance(w[i:i + 1], h[i:i + 1], cw[i], ch[i], "euclidean")[0]
                                for i in range(len(w))], HAND_EUCLIDEAN, atol=1e-6)
    np.testing.assert_allclose(iou_wh(w, h, cw, ch), iou, rtol=1e-6)   # float32 in, float32 out


def test_assignment_step_on_a_hand_solved_case():
    """Boxes 1×1 (twice), 2×2, 4×4 (twice) against centroids 1×1 and 4×4.

    The 1×1 and 4×4 boxes sit on a centroid (IoU 1). The 2×2 box has IoU 1/4 with both
    (1 / (4 + 1 - 1) and 4 / (4 + 16 - 4)): a tie, so its cell is not 'pure' and goes through
    the per-box assignment. Average IoU = (1 + 1 + 1/4 + 1 + 1) / 5 = 0.85."""
    from yolo9000.data import anchors as A

    wh = np.array([[1, 1], [1, 1], [2, 2], [4, 4], [4, 4]], np.float32)
    boxes = A._Boxes(wh)
    cells = A._Cells(boxes, "iou")
    centroids = np.array([[1.0, 1.0], [4.0, 4.0]])
    counts, sum_w, sum_h, objective, _ = A._assign_step(cells, centroids, "iou")
    assert objective == pytest.approx(0.85, abs=1e-6)
    # the tied 2×2 box joins one cluster or the other, never both or neither
    assert counts.tolist() in ([3, 2], [2, 3])
    expected_w = [4, 8] if counts[0] == 3 else [2, 10]
    assert sum_w.tolist() == expected_w and sum_h.tolist() == expected_w
    idx, score = A._exact_assign(boxes, centroids, "iou")
    np.testing.assert_allclose(score, [1, 1, 0.25, 1, 1], atol=1e-6)
    assert idx[[0, 1, 3, 4]].tolist() == [0, 0, 1, 1]
    # per-cluster IoU with the own centroid: cluster of 1×1 boxes (+ maybe the 2×2) and 4×4
    result = A.KMeansResult(centroids=centroids, assignments=np.array([0, 0, 0, 1, 1]),
                            avg_iou=0.85, iterations=1)
    np.testing.assert_allclose(A.cluster_iou(wh, result), [(1 + 1 + 0.25) / 3, 1.0], atol=1e-6)


def test_chunked_assignment_matches_dense():
    wh = lognormal_boxes(40_000, seed=3)
    centroids = wh[:7].astype(np.float64) * 1.1
    w, h = wh.astype(np.float64).T
    dense = iou_wh(w[:, None], h[:, None], centroids[None, :, 0], centroids[None, :, 1])
    idx, score = best_iou(wh, centroids)
    assert (idx == dense.argmax(1)).mean() > 0.9999       # float32 ties only
    np.testing.assert_allclose(score, dense.max(1), rtol=1e-5)


def test_cells_path_is_exact_on_many_boxes():
    """Lloyd on cells must give the same centroids as Lloyd on every box (no approximation)."""
    from yolo9000.data import anchors as A

    wh = lognormal_boxes(30_000, seed=5)
    boxes = A._Boxes(wh)
    for metric in ("iou", "euclidean"):
        cells = A._Cells(boxes, metric)
        assert cells.m < boxes.n                           # really grouped
        centroids = A._seed_plus_plus(cells, 6, metric, np.random.default_rng(0))
        for _ in range(5):
            counts, sw, sh, _, _ = A._assign_step(cells, centroids, metric)
            idx, _ = A._exact_assign(boxes, centroids, metric)
            np.testing.assert_array_equal(counts, np.bincount(idx, minlength=6))
            ref = np.stack([np.bincount(idx, wh[:, 0].astype(np.float64), 6),
                            np.bincount(idx, wh[:, 1].astype(np.float64), 6)], 1)
            np.testing.assert_allclose(np.stack([sw, sh], 1), ref, rtol=1e-9)
            centroids = ref / counts[:, None]


def test_result_shape_sorted_reproducible():
    wh = lognormal_boxes(5000)
    r1 = kmeans_anchors(wh, 5, seed=7)
    r2 = kmeans_anchors(wh, 5, seed=7, workers=1)
    np.testing.assert_array_equal(r1.centroids, r2.centroids)
    assert r1.centroids.shape == (5, 2)
    areas = r1.centroids.prod(1)
    assert (np.diff(areas) > 0).all()
    assert r1.populations.sum() == 5000 and len(r1.assignments) == 5000
    assert r1.avg_iou == pytest.approx(avg_iou(wh, r1.centroids), abs=1e-6)
    # assignments agree with the closest centroid by IoU
    idx, _ = best_iou(wh, r1.centroids)
    assert (idx == r1.assignments).mean() > 0.999


def test_iou_metric_beats_euclidean_and_rises_with_k():
    wh = lognormal_boxes(3000, seed=1)
    previous = 0.0
    for k in (1, 3, 5, 9):
        iou = kmeans_anchors(wh, k, seed=0).avg_iou
        euc = kmeans_anchors(wh, k, seed=0, metric="euclidean").avg_iou
        assert iou >= euc - 1e-6
        assert iou > previous
        previous = iou


def test_fewer_distinct_shapes_than_k():
    wh = np.array([[0.1, 0.2]] * 50 + [[0.5, 0.5]] * 50, np.float32)
    r = kmeans_anchors(wh, 4, seed=0)
    assert np.isfinite(r.centroids).all() and r.avg_iou == pytest.approx(1.0)


def test_bad_arguments():
    wh = lognormal_boxes(10)
    with pytest.raises(ValueError):
        kmeans_anchors(wh, 11)
    with pytest.raises(ValueError):
        kmeans_anchors(wh, 2, metric="manhattan")
    with pytest.raises(ValueError):
        kmeans_anchors(np.array([[0.1, 0.0]]), 1)


@pytest.mark.skipif(not VOC_SAMPLE.is_dir(), reason="../shared/voc2007-sample not present")
@pytest.mark.parametrize("k", [5, 9])
def test_voc_sample_not_worse_than_brute_force(k):
    ds = load_dataset(VOC_SAMPLE)
    wh = box_wh(ds)
    assert wh.shape == (808, 2)
    ours = kmeans_anchors(wh, k, seed=0).avg_iou
    brute = brute_force_kmeans(wh, k)
    print(f"k={k}: ours {ours:.4f}, brute force {brute:.4f}")
    assert ours >= brute - 0.0005


def test_box_wh_difficult_filter(tmp_path):
    from yolo9000.data.formats import Dataset, ImageRecord

    rec = ImageRecord("x.jpg", 10, 10, np.array([[0.5, 0.5, 0.2, 0.4], [0.5, 0.5, 0.6, 0.8]],
                                                np.float32),
                      np.array([0, 1]), np.array([False, True]))
    ds = Dataset([rec], ["a", "b"], "voc", str(tmp_path))
    np.testing.assert_allclose(box_wh(ds), [[0.2, 0.4], [0.6, 0.8]])
    np.testing.assert_allclose(box_wh(ds, use_difficult=False), [[0.2, 0.4]])
