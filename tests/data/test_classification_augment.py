"""Classifier crops (darknet's random_augment_image / validation crop) and classification
batches from the loader."""
import math

import numpy as np
import pytest
from PIL import Image

from yolo9000.data.formats import ClassificationRecord
from yolo9000.data.classification_augment import (CropAugmentConfig, center_crop,
                                                   make_classification_sample, rotate_crop)
from yolo9000.data.loader import BatchLoader
from yolo9000.errors import UserError


def pattern(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def plain(min_crop, max_crop, **kw):
    """No colour jitter, no flip: the crop geometry alone."""
    return CropAugmentConfig(min_crop, max_crop, flip=kw.pop("flip", False), **kw)


def test_halving_crop_is_the_2x2_block_mean():
    img = pattern(128, 128)
    out = make_classification_sample(img, 64, 64, plain(64, 64), np.random.default_rng(0))
    # short side 128 -> 64 leaves no slack: the window is the whole image at half size, each
    # output pixel centred between four source pixels
    blocks = img.astype(np.float64).reshape(64, 2, 64, 2, 3).mean(axis=(1, 3)) / 255
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out, blocks.transpose(2, 0, 1), atol=1e-6)


def test_unscaled_crop_is_a_pixel_window_within_the_slack():
    img = pattern(40, 60, seed=1)                 # short side 40 = min = max: scale 1
    offsets = set()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        out = make_classification_sample(img, 20, 20, plain(40, 40), rng)
        # dx, dy in (-slack, slack): slack 20 horizontally, 10 vertically
        rng = np.random.default_rng(seed)
        rng.uniform(1, 1), rng.random(), rng.integers(40, 41), rng.uniform(0, 0)
        dx, dy = rng.uniform(-20, 20), rng.uniform(-10, 10)
        x0, y0 = 20 + dx, 10 + dy                  # window corner = centre offset + slack
        ix, iy = math.floor(x0), math.floor(y0)
        fx, fy = x0 - ix, y0 - iy
        crop = img.astype(np.float64) / 255
        expect = ((1 - fy) * (1 - fx) * crop[iy:iy + 20, ix:ix + 20]
                  + (1 - fy) * fx * crop[iy:iy + 20, ix + 1:ix + 21]
                  + fy * (1 - fx) * crop[iy + 1:iy + 21, ix:ix + 20]
                  + fy * fx * crop[iy + 1:iy + 21, ix + 1:ix + 21])
        np.testing.assert_allclose(out, expect.transpose(2, 0, 1), atol=1e-5)
        offsets.add((iy, ix))
    assert len(offsets) > 20                       # the window really moves about


def test_quarter_turn_is_rot90():
    img = pattern(32, 32, seed=2)
    out = rotate_crop(img, 32, 32, scale=1.0, angle=math.pi / 2)
    expect = np.rot90(img, 1).astype(np.float64) / 255   # out[y, x] = img[x, 31 - y]
    np.testing.assert_allclose(out, expect.transpose(2, 0, 1), atol=1e-5)


def test_outside_the_image_is_grey():
    img = np.zeros((10, 10, 3), np.uint8)
    out = rotate_crop(img, 30, 30, scale=1.0)          # 10x10 image in the middle of 30x30
    assert np.all(out[:, 10:20, 10:20] == 0)
    assert np.all(out[:, :9, :] == np.float32(0.5)) and np.all(out[:, :, 21:] == np.float32(0.5))


def test_flip_mirrors_half_the_samples():
    img = pattern(50, 70, seed=3)
    kinds = []
    for seed in range(20):
        ref = make_classification_sample(img, 32, 32, plain(40, 60), np.random.default_rng(seed))
        got = make_classification_sample(img, 32, 32, plain(40, 60, flip=True),
                                         np.random.default_rng(seed))
        if np.array_equal(got, ref):
            kinds.append("same")
        else:
            assert np.array_equal(got, ref[:, :, ::-1])
            kinds.append("mirrored")
    assert 5 <= kinds.count("mirrored") <= 15


def test_center_crop_of_a_wide_and_a_tall_image():
    ramp = np.repeat((np.arange(40) * 6).astype(np.uint8)[None, :, None], 20, axis=0)
    wide = np.repeat(ramp, 3, axis=2)                          # 20 high, 40 wide, value 6x
    out = center_crop(wide, 10, 10)
    # short side 20 -> 10: 40 -> 20 columns at darknet's corner-aligned positions i*39/19,
    # where a linear ramp takes the value of the position; centre window = columns 5..14
    expect = 6 * np.arange(5, 15) * 39 / 19 / 255
    assert out.shape == (3, 10, 10)
    np.testing.assert_allclose(out[0, 4], expect, atol=1e-5)
    np.testing.assert_allclose(out, np.broadcast_to(expect, (3, 10, 10)), atol=1e-5)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    np.testing.assert_allclose(center_crop(tall, 10, 10)[1, :, 3], expect, atol=1e-5)


def test_center_crop_to_a_non_square_input_covers_it():
    img = pattern(30, 30, seed=4)
    out = center_crop(img, 30, 15)                  # already covers 30x15: no resize
    np.testing.assert_allclose(out, img[7:22].transpose(2, 0, 1) / 255, atol=1e-6)


def test_same_seed_same_sample_and_values_in_range():
    img = pattern(90, 120, seed=5)
    config = CropAugmentConfig(48, 96, aspect=1.3, angle=15, hue=0.1, saturation=1.5,
                               exposure=1.5)
    a = make_classification_sample(img, 64, 48, config, np.random.default_rng(9))
    b = make_classification_sample(img, 64, 48, config, np.random.default_rng(9))
    c = make_classification_sample(img, 64, 48, config, np.random.default_rng(10))
    assert a.shape == (3, 48, 64) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    off = CropAugmentConfig(48, 96, enabled=False)
    assert np.array_equal(make_classification_sample(img, 64, 48, off, np.random.default_rng(1)),
                          center_crop(img, 64, 48))


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_crop=0, max_crop=10), "min_crop"),
    (dict(min_crop=10.5, max_crop=20), "min_crop"),
    (dict(min_crop=20, max_crop=10), "max_crop"),
    (dict(min_crop=10, max_crop=20, aspect=0), "aspect"),
    (dict(min_crop=10, max_crop=20, angle=-1), "angle"),
    (dict(min_crop=10, max_crop=20, hue=2), "hue"),
    (dict(min_crop=10, max_crop=20, exposure=0), "exposure"),
])
def test_bad_settings_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        CropAugmentConfig(**kwargs)


# --------------------------------------------------------------------------- loader

@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cls_images")
    out = []
    for i in range(7):
        path = folder / f"{i:03d}_1.png"
        Image.fromarray(pattern(40 + 3 * i, 50, seed=i)).save(path)
        out.append(ClassificationRecord(str(path), label=i % 3))
    return out


def test_loader_classification_batches_match_across_workers(records):
    config = CropAugmentConfig(32, 48, aspect=1.2, angle=10, hue=0.1, saturation=1.5,
                               exposure=1.5)
    with BatchLoader(records, 3, config, seed=4, workers=0) as inline:
        reference = [inline.get(i, 32, 32) for i in range(4)]
    with BatchLoader(records, 3, config, seed=4, workers=2) as pool:
        got = list(pool.iterate(0, 4, lambda i: (32, 32)))
    for (i, batch), ref in zip(got, reference):
        assert batch.truths == [] and batch.labels.dtype == np.int64
        assert np.array_equal(batch.images, ref.images)
        assert np.array_equal(batch.labels, ref.labels)
        assert batch.labels.tolist() == [records[k].label for k in batch.record_indices]
    # one sample equals the augmentation called by hand with the loader's seeding rule
    img = np.asarray(Image.open(records[reference[1].record_indices[2]].path).convert("RGB"))
    by_hand = make_classification_sample(img, 32, 32, config, np.random.default_rng([4, 1, 2]))
    assert np.array_equal(reference[1].images[2], by_hand)


def test_loader_refuses_a_mismatched_augment_config(records):
    with pytest.raises(TypeError, match="CropAugmentConfig"):
        BatchLoader(records, 2, None, workers=0)


def test_image_smaller_than_the_window_moves_inside_it():
    img = np.zeros((20, 20, 3), np.uint8)            # short side 20 -> 10 in a 20x20 window
    for seed in range(5):
        out = make_classification_sample(img, 20, 20, plain(10, 10), np.random.default_rng(seed))
        dark = out[0] < 0.25
        rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
        assert 10 <= len(rows) <= 11 and 10 <= len(cols) <= 11     # 10 px, maybe blurred by 1
        assert np.all(out[:, ~dark] > 0.25)
