"""The YOLO/darknet reader (data/formats/yolo.py): label files found as darknet finds them,
lists and .data files, malformed lines."""
from pathlib import Path

import numpy as np
import pytest

from dataset_files import make_image, one_labelled_image
from yolo9000.data.formats import label_path_candidates, load_dataset
from yolo9000.errors import UserError


def test_yolo_images_labels_layout(tmp_path):
    make_image(tmp_path / "images" / "a.jpg", 200, 100)
    make_image(tmp_path / "images" / "b.png", 50, 50)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.25 0.75 0.5 0.5\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    ds = load_dataset(tmp_path)
    assert ds.format == "yolo" and ds.names == ["cat", "dog"]
    assert [Path(r.path).name for r in ds.records] == ["a.jpg", "b.png"]
    a, b = ds.records
    assert (a.width, a.height) == (200, 100) and (b.width, b.height) == (50, 50)
    np.testing.assert_allclose(a.boxes, [[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.5, 0.5]],
                               atol=1e-6)
    assert a.classes.tolist() == [1, 0] and a.classes.dtype == np.int64
    assert not a.difficult.any() and a.boxes.dtype == np.float32
    assert b.num_boxes == 0          # no label file: a background image
    assert Path(a.path).is_absolute()


def test_darknet_label_path_rules(tmp_path):
    img = tmp_path / "my_images_project" / "VOC2007" / "JPEGImages" / "x.jpg"
    assert label_path_candidates(img)[0] == \
        tmp_path / "my_images_project" / "VOC2007" / "labels" / "x.txt"
    assert label_path_candidates(img)[-1] == img.with_suffix(".txt")


def test_yolo_labels_next_to_images_and_default_names(tmp_path):
    make_image(tmp_path / "data" / "a.jpg", 64, 32)
    (tmp_path / "data" / "a.txt").write_text("3 0.5 0.5 0.5 0.5\n")
    ds = load_dataset(tmp_path)
    assert ds.names == ["class0", "class1", "class2", "class3"]
    assert ds.records[0].classes.tolist() == [3]


def test_yolo_list_file_and_data_file(tmp_path):
    img1 = make_image(tmp_path / "VOC" / "JPEGImages" / "1.jpg", 100, 80)
    img2 = make_image(tmp_path / "VOC" / "JPEGImages" / "2.jpg", 100, 80)
    (tmp_path / "VOC" / "labels").mkdir()
    (tmp_path / "VOC" / "labels" / "1.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "VOC" / "labels" / "2.txt").write_text("1 0.5 0.5 0.3 0.2\n")
    (tmp_path / "train.txt").write_text(f"{img1}\n")
    (tmp_path / "valid.txt").write_text(f"{img2}\n")
    (tmp_path / "my.names").write_text("a\nb\n")
    (tmp_path / "my.data").write_text(
        f"classes = 2\ntrain = {tmp_path / 'train.txt'}\nvalid = {tmp_path / 'valid.txt'}\n"
        "names = my.names\n")
    listed = load_dataset(tmp_path / "train.txt")
    assert len(listed) == 1 and listed.names == ["a", "b"]
    train = load_dataset(tmp_path / "my.data")
    valid = load_dataset(tmp_path / "my.data", split="valid")
    assert train.records[0].classes.tolist() == [0]
    assert valid.records[0].classes.tolist() == [1] and valid.names == ["a", "b"]
    np.testing.assert_allclose(valid.records[0].boxes[0], [0.5, 0.5, 0.3, 0.2], atol=1e-6)


def test_yolo_malformed_lines_skipped_or_strict(tmp_path):
    label = one_labelled_image(tmp_path, "0 0.5 0.5 0.2 0.2\n0 0.5 oops 0.2 0.2\n1 0.5 0.5\n"
                                         "0 0.5 0.5 0 0.3\n0 0.5 0.5 -0.1 0.3\n")
    ds = load_dataset(tmp_path)
    assert ds.num_boxes == 1 and ds.skipped_lines == 2 and ds.dropped_boxes == 2
    assert any(w.startswith(f"{label}:2:") for w in ds.warnings)
    assert any(w.startswith(f"{label}:3:") for w in ds.warnings)
    with pytest.raises(UserError) as err:
        load_dataset(tmp_path, strict=True)
    assert err.value.path == str(label) and err.value.line == 2


def test_yolo_sixth_column_is_a_score_and_ignored(tmp_path):
    label = one_labelled_image(tmp_path, "0 0.5 0.5 0.2 0.2 0.875\n1 0.25 0.25 0.1 0.1\n"
                                         "0 0.5 0.5 0.2 0.2 high\n0 0.5 0.5 0.2 0.2 0.5 7\n"
                                         "inf 0.5 0.5 0.2 0.2\n")
    ds = load_dataset(tmp_path)
    (record,) = ds.records
    assert record.classes.tolist() == [0, 1]
    assert record.image_id is None and ds.category_ids is None    # no ids of its own
    np.testing.assert_allclose(record.boxes, [[0.5, 0.5, 0.2, 0.2], [0.25, 0.25, 0.1, 0.1]])
    assert ds.skipped_lines == 3
    assert any(w.startswith(f"{label}:3: not a number") for w in ds.warnings)
    assert any(w.startswith(f"{label}:4: expected") and "7 fields" in w for w in ds.warnings)
    assert any(w.startswith(f"{label}:5: not a finite number") for w in ds.warnings)


def test_yolo_class_id_out_of_range_of_names(tmp_path):
    one_labelled_image(tmp_path, "0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n")
    (tmp_path / "x.names").write_text("only\n")
    ds = load_dataset(tmp_path)
    assert ds.num_boxes == 1 and ds.skipped_lines == 1


def test_yolo_split_subfolder(tmp_path):
    make_image(tmp_path / "images" / "train" / "a.jpg", 20, 20)
    make_image(tmp_path / "images" / "val" / "b.jpg", 20, 20)
    for split, stem in (("train", "a"), ("val", "b")):
        (tmp_path / "labels" / split).mkdir(parents=True)
        (tmp_path / "labels" / split / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    assert [Path(r.path).name for r in load_dataset(tmp_path, split="val").records] == ["b.jpg"]
    assert len(load_dataset(tmp_path)) == 2
