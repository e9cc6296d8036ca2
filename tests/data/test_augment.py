"""Tests of the darknet-style augmentation: geometry, box/pixel alignment, HSV distortion."""

import numpy as np
import pytest

from yolo9000.boxes import image_to_network, network_to_image
from yolo9000.data.augment import (
    AugmentConfig, distort_image, distort_planes, hsv_to_rgb, letterbox_sample,
    make_training_sample, rand_scale, random_flip, random_hsv, random_place, rgb_to_hsv,
    visible_boxes,
)
from yolo9000.data.images import letterbox, load_image
from yolo9000.errors import UserError
from conftest import IMAGES


RED = np.array([255, 0, 0], np.uint8)
BLUE = np.array([0, 0, 255], np.uint8)


def pixel_box(x1, y1, x2, y2, w, h):
    """Normalised [cx, cy, w, h] of continuous pixel corners."""
    return np.array([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h],
                    np.float32)


def synthetic_scene(w=300, h=200):
    """Black image with a red and a blue filled rectangle; returns image, boxes, classes."""
    img = np.zeros((h, w, 3), np.uint8)
    img[30:110, 40:150] = RED      # rows 30..109, cols 40..149: corners (40, 30)-(150, 110)
    img[120:190, 200:290] = BLUE   # corners (200, 120)-(290, 190), 10 px from the corner
    boxes = np.stack([pixel_box(40, 30, 150, 110, w, h), pixel_box(200, 120, 290, 190, w, h)])
    return img, boxes, np.array([0, 1])


def colour_mask(chw, channel):
    """Pixels clearly dominated by one channel (red 0 or blue 2) after any distortion."""
    others = [c for c in range(3) if c != channel]
    return chw[channel] - np.maximum(chw[others[0]], chw[others[1]]) > 0.2


def box_to_pixels(box, width, height):
    cx, cy, bw, bh = box[:4]
    return ((cx - bw / 2) * width, (cy - bh / 2) * height,
            (cx + bw / 2) * width, (cy + bh / 2) * height)


# --------------------------------------------------------------------------- letterbox

def test_training_and_inference_put_a_box_at_the_same_place():
    """A white rectangle, labelled, through the training sample (no augmentation) and through
    the detector's preparation (load_image + letterbox, as Detector.prepare): same pixels, the
    truth box where the white pixels are, and the detector's inverse map brings it back."""
    img = np.zeros((300, 500, 3), np.uint8)
    img[60:210, 120:380] = 255                     # corners (120, 60)-(380, 210)
    label = np.array([[0.5, 0.45, 0.52, 0.5]], np.float32)   # the same corners, normalised
    train_chw, truth = make_training_sample(img, label, [0], 128, 96,
                                            AugmentConfig(enabled=False),
                                            np.random.default_rng(0))
    loaded = load_image(img)
    detect_chw, info = letterbox(loaded.rgb, 128, 96, orig_size=(loaded.width, loaded.height))
    assert np.array_equal(train_chw, detect_chw)
    # by hand: 500x300 -> 128x76 (128/500 is the tighter scale), 10 rows of padding on top;
    # x = 120 * .256 = 30.72 .. 380 * .256 = 97.28, y = 10 + 60 * 76/300 = 25.2 .. 63.2
    np.testing.assert_allclose(truth[0], [64 / 128, 44.2 / 96, 66.56 / 128, 38 / 96, 0],
                               atol=1e-6)
    ys, xs = np.nonzero(train_chw[0] > 0.75)
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                               [30.72, 25.2, 97.28, 63.2], atol=1.0)
    np.testing.assert_allclose(network_to_image(truth[:, :4], info), [[120, 60, 380, 210]],
                               atol=1e-3)


# --------------------------------------------------------------------------- boxes

def test_visible_boxes_clips_and_drops():
    boxes = np.array([
        [0.5, 0.5, 0.2, 0.2],       # inside: kept unchanged
        [0.95, 0.5, 0.2, 0.2],      # half outside: clipped to [0.85, 1]
        [1.08, 0.5, 0.2, 0.2],      # 10 % visible: dropped
        [0.5, 0.5, 0.003, 0.2],     # too thin: dropped
        [-0.5, 0.5, 0.2, 0.2],      # entirely outside: dropped
    ], np.float32)
    kept, classes = visible_boxes(boxes, np.arange(5))
    assert classes.tolist() == [0, 1]
    assert np.allclose(kept[0], boxes[0])
    assert np.allclose(kept[1], [0.925, 0.5, 0.15, 0.2])


def test_flip_moves_boxes_with_pixels():
    img, boxes, _ = synthetic_scene()
    chw = np.ascontiguousarray(img.transpose(2, 0, 1))
    flips = 0
    for seed in range(8):
        out, fb = random_flip(chw, boxes, np.random.default_rng(seed))
        if not np.array_equal(out, chw):
            flips += 1
            assert np.array_equal(out, img[:, ::-1].transpose(2, 0, 1))
            assert np.allclose(fb[:, 0], 1 - boxes[:, 0]) and np.allclose(fb[:, 1:], boxes[:, 1:])
        else:
            assert np.array_equal(fb, boxes)
    assert 0 < flips < 8


@pytest.mark.parametrize("size", [(320, 320), (416, 288), (160, 224)])
def test_augmented_boxes_enclose_their_pixels_tightly(size):
    """The transformed box of each coloured rectangle must coincide with the coloured pixels
    (to ~1.5 px: interpolated edge pixels), through jitter, flip and exposure/saturation."""
    width, height = size
    img, boxes, classes = synthetic_scene()
    config = AugmentConfig(jitter=0.3, hue=0.0, saturation=1.5, exposure=1.5, flip=True)
    checked = 0
    flipped_red_right = 0
    for seed in range(12):
        chw, truth = make_training_sample(img, boxes, classes, width, height, config,
                                          np.random.default_rng(seed))
        assert chw.shape == (3, height, width) and chw.dtype == np.float32
        for cls, channel in ((0, 0), (1, 2)):
            mask = colour_mask(chw, channel)
            rows = truth[truth[:, 4] == cls]
            if len(rows) == 0:  # cropped away (the drop rule is tested by test_visible_boxes)
                continue
            x1, y1, x2, y2 = box_to_pixels(rows[0], width, height)
            ys, xs = np.nonzero(mask)
            assert len(xs) > 0
            tol = 1.5
            assert xs.min() >= x1 - tol and xs.max() + 1 <= x2 + tol
            assert ys.min() >= y1 - tol and ys.max() + 1 <= y2 + tol
            assert xs.min() <= x1 + tol and xs.max() + 1 >= x2 - tol
            assert ys.min() <= y1 + tol and ys.max() + 1 >= y2 - tol
            # tight: the coloured pixels fill the box
            inner = mask[int(np.ceil(y1 + tol)):int(y2 - tol), int(np.ceil(x1 + tol)):int(x2 - tol)]
            assert inner.mean() > 0.99
            checked += 1
            if cls == 0 and rows[0, 0] > 0.5:
                flipped_red_right += 1
    assert checked >= 18
    assert flipped_red_right > 0   # flips were exercised


def test_random_place_without_jitter_is_letterbox():
    img, boxes, classes = synthetic_scene()
    out, b, c = random_place(img, boxes, classes, 320, 320, 0.0, np.random.default_rng(0))
    ref, ref_boxes, ref_classes = letterbox_sample(img, boxes, classes, 320, 320)
    assert np.array_equal(out, ref) and np.array_equal(b, ref_boxes)
    assert c.tolist() == ref_classes.tolist() == [0, 1]


def test_random_place_jitter_changes_window_within_bounds():
    img, boxes, classes = synthetic_scene()
    scales = []
    for seed in range(20):
        _, b, _ = random_place(img, boxes[:1], classes[:1], 300, 300, 0.2,
                               np.random.default_rng(seed))
        if len(b):
            scales.append(b[0, 2] / (110 / 300))   # width relative to the letterboxed width
    scales = np.array(scales)
    # crop windows between 0.6 and 1.4 of the image: scale factors within [1/1.4, 1/0.6]
    assert scales.min() > 1 / 1.4 - 1e-3 and scales.max() < 1 / 0.6 + 1e-3
    assert scales.std() > 0.02


# --------------------------------------------------------------------------- HSV

def test_rgb_hsv_known_colours():
    rgb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5], [0, 0, 0], [1, 1, 0]],
                   np.float32)
    hsv = rgb_to_hsv(rgb)
    assert np.allclose(hsv, [[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [0, 0, 0.5], [0, 0, 0],
                             [1 / 6, 1, 1]], atol=1e-6)
    assert np.allclose(hsv_to_rgb(hsv), rgb, atol=1e-6)


def test_hsv_identity_when_no_distortion():
    img = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    img[:5] = img[:5, :, :1]          # grey pixels (no hue)
    for seed in range(3):
        out = random_hsv(img, 0.0, 1.0, 1.0, np.random.default_rng(seed))
        assert out.dtype == np.float32
        assert np.allclose(out, img, atol=2e-6)


@pytest.mark.parametrize("dhue, dsat, dexp", [(0.07, 1.3, 0.8), (-0.1, 1 / 1.5, 1.5),
                                              (0.5, 2.0, 2.0), (-1.0, 1.0, 1.0)])
def test_fast_distortion_equals_reference(dhue, dsat, dexp):
    img = np.random.default_rng(1).random((30, 40, 3)).astype(np.float32)
    img[:4, :, 1] = img[:4, :, 0]     # ties between channels
    hsv = rgb_to_hsv(img)
    hsv[..., 1] *= dsat
    hsv[..., 2] *= dexp
    hsv[..., 0] = (hsv[..., 0] + dhue) % 1.0
    reference = np.clip(hsv_to_rgb(hsv), 0, 1)
    assert np.allclose(distort_image(img, dhue, dsat, dexp), reference, atol=1e-5)
    planar = distort_planes(np.ascontiguousarray(img.transpose(2, 0, 1)), dhue, dsat, dexp)
    assert np.allclose(planar.transpose(1, 2, 0), reference, atol=1e-5)


def test_hue_shift_rotates_primaries():
    rgb = np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)
    assert np.allclose(distort_image(rgb, 1 / 3, 1, 1), [[[0, 1, 0], [0, 0, 1]]], atol=1e-5)
    assert np.allclose(distort_image(rgb, -1 / 3, 1, 1), [[[0, 0, 1], [1, 0, 0]]], atol=1e-5)


def test_exposure_and_saturation_scale_value_and_saturation():
    rgb = np.array([[[0.4, 0.2, 0.1]]], np.float32)
    out = distort_image(rgb, 0.0, 0.5, 1.5)
    h0, s0, v0 = rgb_to_hsv(rgb)[0, 0]
    h1, s1, v1 = rgb_to_hsv(out)[0, 0]
    assert h1 == pytest.approx(h0, abs=1e-5)
    assert s1 == pytest.approx(s0 * 0.5, abs=1e-5)
    assert v1 == pytest.approx(v0 * 1.5, abs=1e-5)


def test_rand_scale_range_and_inversion():
    rng = np.random.default_rng(0)
    values = np.array([rand_scale(1.5, rng) for _ in range(400)])
    assert np.all((values >= 1 / 1.5 - 1e-9) & (values <= 1.5 + 1e-9))
    assert 0.35 < np.mean(values >= 1) < 0.65


# --------------------------------------------------------------------------- config, sample

def test_config_rejects_bad_values():
    with pytest.raises(UserError):
        AugmentConfig(jitter=0.6)
    with pytest.raises(UserError):
        AugmentConfig(saturation=0)


def test_disabled_augmentation_is_plain_letterbox():
    img, boxes, classes = synthetic_scene()
    config = AugmentConfig(enabled=False)
    a, ta = make_training_sample(img, boxes, classes, 256, 192, config, np.random.default_rng(1))
    b, tb = make_training_sample(img, boxes, classes, 256, 192, config, np.random.default_rng(2))
    assert np.array_equal(a, b) and np.array_equal(ta, tb)
    ref, info = letterbox(img, 256, 192)
    assert np.array_equal(a, ref)
    assert np.allclose(ta[:, :4], image_to_network(boxes, info)) and ta[:, 4].tolist() == [0, 1]


def test_max_boxes_keeps_a_seeded_subset():
    img = np.zeros((100, 100, 3), np.uint8)
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.2, 0.8, size=(50, 2))
    boxes = np.hstack([centres, np.full((50, 2), 0.1)]).astype(np.float32)
    classes = np.arange(50)
    for config in (AugmentConfig(jitter=0.0), AugmentConfig(enabled=False)):
        _, t1 = make_training_sample(img, boxes, classes, 64, 64, config,
                                     np.random.default_rng(3), max_boxes=30)
        _, t2 = make_training_sample(img, boxes, classes, 64, 64, config,
                                     np.random.default_rng(3), max_boxes=30)
        _, t3 = make_training_sample(img, boxes, classes, 64, 64, config,
                                     np.random.default_rng(4), max_boxes=30)
        assert t1.shape == (30, 5) and np.array_equal(t1, t2)
        assert len(set(t1[:, 4].tolist())) == 30
        assert set(t1[:, 4].tolist()) != set(t3[:, 4].tolist())


def test_sample_from_a_real_photo():
    path = IMAGES / "dog.jpg"
    from types import SimpleNamespace
    rec = SimpleNamespace(path=str(path), boxes=np.array([[0.5, 0.5, 0.5, 0.5]], np.float32),
                          classes=np.array([3]))
    chw, truth = make_training_sample(rec, None, None, 224, 160, AugmentConfig(),
                                      np.random.default_rng(0))
    assert chw.shape == (3, 160, 224) and 0 <= chw.min() and chw.max() <= 1
    assert truth.shape[1] == 5 and truth[:, 4].tolist() in ([3.0], [])


@pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig(enabled=False)])
def test_image_without_boxes_gives_empty_truth(config):
    img = np.zeros((50, 60, 3), np.uint8)
    chw, truth = make_training_sample(img, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                      64, 48, config, np.random.default_rng(0), max_boxes=30)
    assert chw.shape == (3, 48, 64)
    assert truth.shape == (0, 5) and truth.dtype == np.float32
