"""Which images calibrate (inference/calibration.py) and how the set is described."""
import datetime
import hashlib

import numpy as np
import pytest
from PIL import Image

from yolo9000 import UserError
from yolo9000.inference.calibration import calibration_images
from yolo9000.model.quantization import calibration_description


def write_images(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)


def test_class_folders_are_read_and_the_choice_is_spread_over_them(tmp_path):
    write_images(tmp_path, [f"{c}/{k}.png" for c in "abcd" for k in range(3)])
    (tmp_path / "notes.txt").write_text("not an image")
    everything = calibration_images(tmp_path, None)
    assert [p.split("/")[-2] + "/" + p.split("/")[-1] for p in everything] == \
        [f"{c}/{k}.png" for c in "abcd" for k in range(3)]
    # 4 of 12 sorted paths: every third, one per class
    chosen = calibration_images(tmp_path, 4)
    assert [p.split("/")[-2] for p in chosen] == ["a", "b", "c", "d"]


def test_folders_without_images_are_one_line(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match="no images in this folder or its subfolders"):
        calibration_images(tmp_path / "empty")
    with pytest.raises(UserError, match="not a folder"):
        calibration_images(tmp_path / "missing")


def test_the_description_digests_the_paths_within_the_folder(tmp_path):
    paths = [str(tmp_path / "b" / "2.jpg"), str(tmp_path / "a" / "1.jpg")]
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=datetime.timezone.utc)
    record = calibration_description(tmp_path, paths, (64, 96), when)
    assert record["names_sha256"] == hashlib.sha256(b"a/1.jpg\nb/2.jpg").hexdigest()
    assert record["images"] == 2 and record["size"] == [64, 96]
    assert record["directory"] == str(tmp_path)
    assert record["date"] == "2026-01-02T03:04:05+00:00"


def noise_images(root, count, size=48):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size + 8 * k, 3), np.uint8)).save(
            root / f"{k}.png")
    return root


def test_detector_and_classifier_take_an_int8_checkpoint(tmp_path):
    """The Python API end to end: calibrate, save, and run with precision= (auto: int8 where
    the CPU has a unit, else what auto falls back to, saying the weights are dequantized)."""
    from yolo9000 import Detector, Network
    from yolo9000.inference.calibration import calibrate
    from yolo9000.inference.classifier import Classifier
    from yolo9000.kernels import int8
    from yolo9000.model.zoo import DEFAULT_CHECKPOINT
    images = noise_images(tmp_path / "images", 3)
    unit = int8.int8_hardware_kernel()
    detector_net = Network.load(DEFAULT_CHECKPOINT)
    record = calibrate(detector_net, images, images=2)
    assert record["calibration"]["images"] == 2 and record["rule"] == "percentile"
    detector_net.save(tmp_path / "detector8.h5")
    classifier_net = Network.from_cfg("darknet-mini", width=64, height=64)
    calibrate(classifier_net, images, rule="entropy", keep_ends=False)
    assert classifier_net.quantization["kept_fp32"] == []
    classifier_net.save(tmp_path / "classifier8.h5")
    detector = Detector(weights=tmp_path / "detector8.h5", precision="auto")
    classifier = Classifier(weights=tmp_path / "classifier8.h5", precision="auto")
    for made in (detector, classifier):
        if unit is None:
            assert made.notice.endswith("(an int8 checkpoint: its weights dequantized)")
        else:
            assert made.notice.endswith(f"precision auto: int8 on {unit}")
            assert made.net.precision == "int8"
    assert isinstance(detector(str(images / "0.png")), list)
    assert len(next(classifier.stream([str(images / "1.png")])).top(3)) == 3


def test_calibrating_int8_weights_again_is_refused(tmp_path):
    from yolo9000 import Network
    from yolo9000.inference.calibration import calibrate
    from yolo9000.model.zoo import DEFAULT_CHECKPOINT
    images = noise_images(tmp_path / "images", 1)
    net = Network.load(DEFAULT_CHECKPOINT)
    calibrate(net, images)
    with pytest.raises(UserError, match="already int8"):
        calibrate(net, images)
