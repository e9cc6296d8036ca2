"""Which format a path holds (data/formats/detect.py), and the errors of load_dataset when none
is found."""
import pytest

from dataset_files import make_image
from yolo9000.data.formats import load_dataset
from yolo9000.errors import UserError


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_dataset(tmp_path / "nope")


def test_empty_folder_lists_formats_tried(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "voc" in msg and "coco" in msg and "yolo" in msg


def test_no_boxes_in_recognised_layout(tmp_path):
    make_image(tmp_path / "images" / "a.jpg", 10, 10)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("")
    with pytest.raises(UserError, match="no boxes found"):
        load_dataset(tmp_path)


def test_forced_format(tmp_path):
    make_image(tmp_path / "images" / "a.jpg", 10, 10)
    (tmp_path / "images" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    with pytest.raises(UserError, match="VOC"):
        load_dataset(tmp_path, format="voc")
    assert load_dataset(tmp_path, format="yolo").num_boxes == 1
