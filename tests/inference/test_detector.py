"""Detector API, checked against an independent loop-based decode + NMS; and drawing."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo9000.inference.detector import Detection, Detector, PreparedImage, build_network
from yolo9000.errors import UserError
from yolo9000.boxes import letterbox_info
from yolo9000.data.images import LoadedImage
from conftest import GOLDEN, IMAGES, TESTS
from detection_reference import independent_letterbox, assert_same_detections, reference_detections

MINI_CFG, MINI_WEIGHTS = GOLDEN / "mini.cfg", GOLDEN / "mini.weights"


# -- an independent reference: darknet's detection path written with plain loops ---------------


# -- the detector against the reference ---------------------------------------------------------
@pytest.fixture(scope="module")
def mini_detector():
    return Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, thresh=0.2, nms=0.45)


def test_matches_reference_over_darknet_golden_forward(mini_detector):
    """Our network + post-processing vs the loop reference over darknet's own forward output."""
    x = np.load(GOLDEN / "input.npy")
    darknet_out = np.load(GOLDEN / "forward.npz")["layer15"][0]
    img_w, img_h = 100, 75                   # pretend the input was a letterboxed 100x75 image
    info = letterbox_info(img_w, img_h, 64, 64)
    image = LoadedImage(np.zeros((img_h, img_w, 3), np.uint8), img_w, img_h)
    got = mini_detector.predict([PreparedImage(image, x[0], info)])[0]
    anchors = mini_detector.net.region.anchors.tolist()
    ref = reference_detections(darknet_out, anchors, 3, img_w, img_h, 64, 64, 0.2, 0.45)
    assert_same_detections(got, ref, img_w, img_h)
    # NMS did something, and one box yielded several classes somewhere (darknet semantics)
    assert len(ref) < int((darknet_out.reshape(5, 8, 8, 8)[:, 4:5] *
                           darknet_out.reshape(5, 8, 8, 8)[:, 5:] >= 0.2).sum())
    boxes = [tuple(np.round(d.box, 3)) for d in got]
    assert len(set(boxes)) < len(boxes)


def test_matches_independent_torch_pipeline(mini_detector):
    """Real photo: independent letterbox + PyTorch darknet forward + loop decode/NMS."""
    torch = pytest.importorskip("torch")
    ref_path = TESTS / "torch_darknet.py"
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location("torch_darknet_ref", ref_path)
    td = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = td          # dataclasses inside it look their module up
    spec.loader.exec_module(td)
    model = td.build_torch_net(MINI_CFG, return_all=False)
    td.load_darknet_weights(model, MINI_WEIGHTS)
    model.eval()
    photo = IMAGES / "dog.jpg"
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    img_h, img_w = rgb.shape[:2]
    with torch.no_grad():
        out = model(torch.from_numpy(independent_letterbox(rgb, 64, 64))).numpy()[0]
    anchors = [[0.8, 1.1], [1.6, 2.5], [3.0, 1.8], [2.2, 4.2], [5.0, 5.5]]   # from mini.cfg
    ref = reference_detections(out, anchors, 3, img_w, img_h, 64, 64, 0.2, 0.45)
    assert_same_detections(mini_detector(photo), ref, img_w, img_h)


# -- the API ------------------------------------------------------------------------------------
def test_sources_path_pil_array_agree(mini_detector):
    photo = IMAGES / "person.jpg"
    by_path = mini_detector(photo)
    pil = Image.open(photo)
    by_pil = mini_detector(pil)
    by_array = mini_detector(np.asarray(pil.convert("RGB")))
    assert by_path == by_pil == by_array and len(by_path) > 0
    d = by_path[0]
    assert isinstance(d, Detection) and len(d.box) == 4 and d.name == str(d.cls)
    x1, y1, x2, y2 = d.box
    assert 0 <= x1 < x2 <= pil.width and 0 <= y1 < y2 <= pil.height
    assert by_path == sorted(by_path, key=lambda t: -t.score)
    assert set(d.to_dict()) == {"class", "name", "score", "box"}


def test_batch_equals_one_by_one(mini_detector):
    photos = [IMAGES / n for n in ("dog.jpg", "scream.jpg", "kite.jpg")]
    assert mini_detector.batch(photos, batch_size=2) == [mini_detector(p) for p in photos]


def test_thresh_and_size(tmp_path):
    photo = IMAGES / "dog.jpg"
    strict = Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, thresh=0.45)
    dets = strict(photo)
    assert dets and min(d.score for d in dets) >= 0.45
    big = Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, size=96, thresh=0.45)
    assert big.size == (96, 96) and big.net.width == 96
    with pytest.raises(UserError, match="multiple of 32"):
        Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, size=100)
    with pytest.raises(UserError, match="thresh"):
        Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, thresh=0)


def test_names_from_file_and_mismatch(tmp_path):
    names = tmp_path / "three.names"
    names.write_text("circle\nsquare\ntriangle\n")
    det = Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, names=names, thresh=0.3)
    assert det.names == ["circle", "square", "triangle"]
    assert all(d.name == det.names[d.cls] for d in det(IMAGES / "dog.jpg"))
    two = tmp_path / "two.names"
    two.write_text("a\nb\n")
    with pytest.raises(UserError, match="2 class names but the network predicts 3"):
        Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, names=two)
    with pytest.raises(UserError, match="not found"):
        Detector(cfg=MINI_CFG, weights=MINI_WEIGHTS, names=tmp_path / "missing.names")


def test_h5_checkpoint_carries_cfg_and_names(tmp_path, mini_detector):
    ckpt = tmp_path / "mini.h5"
    mini_detector.net.save(ckpt, names=["red", "green", "blue"])
    det = Detector(weights=ckpt, thresh=0.2)
    assert det.names == ["red", "green", "blue"]
    photo = IMAGES / "eagle.jpg"
    assert [(d.cls, d.box) for d in det(photo)] == [(d.cls, d.box) for d in mini_detector(photo)]


def test_configuration_errors(tmp_path, monkeypatch):
    import yolo9000.inference.detector as detector_module
    monkeypatch.setattr(detector_module, "DEFAULT_CHECKPOINT", tmp_path / "absent.h5")
    with pytest.raises(UserError) as e:
        build_network(model="yolov2-voc")
    assert "yolo9000 train" in str(e.value) and "darknet" in str(e.value)
    with pytest.raises(UserError, match="not both"):
        build_network(model="yolov2-voc", cfg=MINI_CFG, weights=MINI_WEIGHTS)
    with pytest.raises(UserError, match="not found"):
        build_network(cfg=MINI_CFG, weights=tmp_path / "nope.weights")
    if MINI_WEIGHTS.is_file():
        with pytest.raises(UserError, match="--model NAME or --cfg FILE"):
            build_network(weights=MINI_WEIGHTS)


def test_bundled_default_checkpoint_used_when_present(tmp_path, monkeypatch, mini_detector):
    import yolo9000.inference.detector as detector_module
    default = tmp_path / "shapes.h5"
    mini_detector.net.save(default, names=["circle", "square", "triangle"])
    monkeypatch.setattr(detector_module, "DEFAULT_CHECKPOINT", default)
    det = Detector(thresh=0.3)
    assert det.notice and "shapes" in det.notice and "synthetic" in det.notice
    assert det.names == ["circle", "square", "triangle"]
    with pytest.raises(UserError, match="no weights given for"):   # it never stands in for a cfg
        Detector(cfg=MINI_CFG)


# -- drawing ------------------------------------------------------------------------------------
def _dets(boxes, cls=0, score=0.87, name="dog"):
    return [Detection(tuple(map(float, b)), cls, name, score) for b in boxes]


def test_draw_box_colour_and_label_inside_image():
    from yolo9000.inference.draw import class_colour, draw_detections, font_size, line_width
    img = np.full((120, 160, 3), 255, np.uint8)
    out = np.asarray(draw_detections(img, _dets([(20, 40, 100, 110)], cls=3)))
    colour = np.array(class_colour(3))
    assert np.all(out[75, 20] == colour) and np.all(out[109, 60] == colour)  # left, bottom edges
    assert np.all(out[80, 60] == 255)                                        # inside untouched
    # the label background sits just above the box
    assert np.all(out[38, 22] == colour)
    # boxes at the very edges keep their labels inside the image
    edge = np.asarray(draw_detections(np.zeros((60, 80, 3), np.uint8),
                                      _dets([(0, 0, 80, 60)], cls=1, name="a-long-label")))
    assert np.all(edge[1, 1] == class_colour(1))
    assert line_width(4000, 3000) > line_width(400, 300) >= 1
    assert font_size(4000, 3000) > font_size(400, 300) >= 10


def test_draw_palette_is_deterministic_and_distinct():
    from yolo9000.inference.draw import class_colour
    colours = [class_colour(c) for c in range(20)]
    assert colours == [class_colour(c) for c in range(20)]
    assert len(set(colours)) == 20


def test_draw_scales_boxes_for_reduced_images():
    from yolo9000.inference.draw import draw_detections
    small = np.full((50, 100, 3), 255, np.uint8)        # a half-size copy of a 200x100 image
    out = np.asarray(draw_detections(small, _dets([(40, 40, 160, 90)]), scale=(0.5, 0.5)))
    assert np.any(out[30:44, 20] != 255)               # left edge at x = 20 in the copy
    assert np.all(out[30:44, 90] == 255)               # nothing near the unscaled right edge
