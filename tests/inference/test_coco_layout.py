"""COCO results: bbox = [x, y, w, h] in the original image's pixels, (x, y) the top-left
corner; checked against an independent loop decode of the network's output mapped back to
the photo (tests/detection_reference.py), not only through the CLI."""
import numpy as np
from PIL import Image

from yolo9000.inference.detector import Detector
from yolo9000.inference.export import coco_results
from conftest import GOLDEN, IMAGES
from detection_reference import independent_letterbox, reference_detections

ANCHORS = [[0.8, 1.1], [1.6, 2.5], [3.0, 1.8], [2.2, 4.2], [5.0, 5.5]]      # mini.cfg's


def test_coco_bbox_is_top_left_width_height_in_original_pixels():
    detector = Detector(cfg=GOLDEN / "mini.cfg", weights=GOLDEN / "mini.weights", thresh=0.2)
    photo = IMAGES / "dog.jpg"
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    height, width = rgb.shape[:2]
    output = detector.net.forward(independent_letterbox(rgb, 64, 64))[0]
    reference = reference_detections(output, ANCHORS, 3, width, height, 64, 64, 0.2, 0.45)
    entries = coco_results(7, detector(photo))
    assert len(entries) == len(reference) > 0
    expected = sorted((k, p, [x1, y1, x2 - x1, y2 - y1]) for k, p, (x1, y1, x2, y2) in reference)
    got = sorted((e["category_id"], e["score"], e["bbox"]) for e in entries)
    for (k, p, box), (category, score, bbox) in zip(expected, got):
        assert category == k and abs(score - p) < 1e-4
        np.testing.assert_allclose(bbox, box, atol=0.5)
    assert all(e["image_id"] == 7 for e in entries)
    # in the photo's pixels (768 x 576), not the network's 64 x 64 or fractions of the image
    assert max(e["bbox"][0] + e["bbox"][2] for e in entries) > 64
    assert all(e["bbox"][0] + e["bbox"][2] <= width + 1e-3 for e in entries)
    assert all(e["bbox"][1] + e["bbox"][3] <= height + 1e-3 for e in entries)
