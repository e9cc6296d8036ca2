"""Detector API, checked against an independent loop-based decode + NMS; and drawing."""
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo9000.inference.detector import Detection, Detector, PreparedImage, build_network
from yolo9000.errors import UserError
from yolo9000.boxes import letterbox_info
from yolo9000.data.images import LoadedImage
from conftest import GOLDEN, IMAGES

MINI_CFG, MINI_WEIGHTS = GOLDEN / "mini.cfg", GOLDEN / "mini.weights"


# -- an independent reference: darknet's detection path written with plain loops ---------------
def _ref_iou(a, b):
    """box.c box_iou on (x, y, w, h) centre boxes."""
    def overlap(x1, w1, x2, w2):
        return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)
    w = overlap(a[0], a[2], b[0], b[2])
    h = overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if w < 0 or h < 0 else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def reference_detections(output, anchors, classes, img_w, img_h, net_w, net_h, thresh, nms):
    """get_region_detections + correct_region_boxes + do_nms_sort, loop by loop.

    Conventions of this project that differ from darknet are spelled out: scores >= thresh are
    kept, the letterbox offset is the integer one the image was placed at, boxes are clipped
    to the image and boxes clipped to nothing are dropped.
    """
    num = len(anchors)
    C, H, W = output.shape
    out = output.reshape(num, C // num, H, W).astype(np.float64)
    dets = []                                              # [box (x, y, w, h) relative, probs]
    for i in range(H):
        for j in range(W):
            for n in range(num):
                obj = out[n, 4, i, j]
                box = [(j + out[n, 0, i, j]) / W, (i + out[n, 1, i, j]) / H,
                       math.exp(out[n, 2, i, j]) * anchors[n][0] / W,
                       math.exp(out[n, 3, i, j]) * anchors[n][1] / H]
                probs = [obj * out[n, 5 + k, i, j] for k in range(classes)]
                dets.append([box, [p if p >= thresh else 0.0 for p in probs]])
    if net_w / img_w < net_h / img_h:
        new_w, new_h = net_w, img_h * net_w // img_w
    else:
        new_w, new_h = img_w * net_h // img_h, net_h
    dx, dy = (net_w - new_w) // 2, (net_h - new_h) // 2
    for d in dets:
        x, y, w, h = d[0]
        d[0] = [(x * net_w - dx) / new_w, (y * net_h - dy) / new_h, w * net_w / new_w,
                h * net_h / new_h]
    for k in range(classes):
        order = sorted(range(len(dets)), key=lambda t: -dets[t][1][k])
        for a_pos, a in enumerate(order):
            if dets[a][1][k] == 0:
                continue
            for b in order[a_pos + 1:]:
                if _ref_iou(dets[a][0], dets[b][0]) > nms:
                    dets[b][1][k] = 0.0
    found = []
    for box, probs in dets:
        x, y, w, h = box
        x1, x2 = max((x - w / 2) * img_w, 0.0), min((x + w / 2) * img_w, img_w)
        y1, y2 = max((y - h / 2) * img_h, 0.0), min((y + h / 2) * img_h, img_h)
        for k, p in enumerate(probs):
            if p > 0 and x2 > x1 and y2 > y1:
                found.append((k, p, (x1, y1, x2, y2)))
    return found


def assert_same_detections(got, ref, img_w, img_h):
    got = sorted(((d.cls, d.score, d.box) for d in got), key=lambda t: (t[0], -t[1]))
    ref = sorted(ref, key=lambda t: (t[0], -t[1]))
    assert len(got) == len(ref) > 0
    assert [g[0] for g in got] == [r[0] for r in ref]
    np.testing.assert_allclose([g[1] for g in got], [r[1] for r in ref], atol=1e-4)
    size = max(img_w, img_h)
    np.testing.assert_allclose([g[2] for g in got], [r[2] for r in ref], atol=1e-3 * size)


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


def _independent_letterbox(rgb, net_w, net_h):
    """darknet letterbox_image with its resize_image, written without the package."""
    im = rgb.astype(np.float64) / 255.0
    ih, iw = im.shape[:2]
    if net_w / iw < net_h / ih:
        new_w, new_h = net_w, ih * net_w // iw
    else:
        new_w, new_h = iw * net_h // ih, net_h
    part = np.empty((ih, new_w, 3))
    for c in range(new_w):
        if c == new_w - 1:
            part[:, c] = im[:, iw - 1]
        else:
            sx = c * (iw - 1) / (new_w - 1)
            ix = int(sx)
            part[:, c] = (1 - (sx - ix)) * im[:, ix] + (sx - ix) * im[:, ix + 1]
    resized = np.empty((new_h, new_w, 3))
    for r in range(new_h):
        if r == new_h - 1:
            resized[r] = part[ih - 1]
        else:
            sy = r * (ih - 1) / (new_h - 1)
            iy = int(sy)
            resized[r] = (1 - (sy - iy)) * part[iy] + (sy - iy) * part[iy + 1]
    boxed = np.full((net_h, net_w, 3), 0.5)
    dx, dy = (net_w - new_w) // 2, (net_h - new_h) // 2
    boxed[dy:dy + new_h, dx:dx + new_w] = resized
    return boxed.transpose(2, 0, 1)[None].astype(np.float32)


def test_matches_independent_torch_pipeline(mini_detector):
    """Real photo: independent letterbox + PyTorch darknet forward + loop decode/NMS."""
    torch = pytest.importorskip("torch")
    ref_path = Path(__file__).with_name("torch_darknet.py")
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
        out = model(torch.from_numpy(_independent_letterbox(rgb, 64, 64))).numpy()[0]
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
