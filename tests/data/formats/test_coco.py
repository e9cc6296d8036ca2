"""The COCO reader (data/formats/coco.py): categories remapped, the file's own ids kept,
malformed entries and missing images."""
from pathlib import Path

import numpy as np
import pytest

from dataset_files import coco_json, make_image
from yolo9000.data.formats import load_dataset
from yolo9000.errors import UserError


def test_coco_reader_remaps_categories(tmp_path):
    make_image(tmp_path / "val2017" / "a.jpg", 200, 100)
    make_image(tmp_path / "val2017" / "b.jpg", 50, 50)
    coco_json(tmp_path / "annotations" / "instances_val2017.json", [
        {"image_id": 7, "category_id": 90, "bbox": [10, 20, 40, 60], "iscrowd": 0},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 200, 100], "iscrowd": 1},
        {"image_id": 9, "category_id": 18, "bbox": [5, 5, 0, 10]},
    ])
    ds = load_dataset(tmp_path)            # found via annotations/instances_*.json
    assert ds.format == "coco" and ds.names == ["person", "dog", "toothbrush"]
    a, b = ds.records
    assert Path(a.path) == (tmp_path / "val2017" / "a.jpg").absolute()
    np.testing.assert_allclose(a.boxes[0], [30 / 200, 50 / 100, 40 / 200, 60 / 100], atol=1e-6)
    assert a.classes.tolist() == [2, 0] and a.difficult.tolist() == [False, True]
    assert b.num_boxes == 0 and ds.dropped_boxes == 1
    assert load_dataset(tmp_path, use_difficult=False).num_boxes == 1
    same = load_dataset(tmp_path / "annotations" / "instances_val2017.json")
    assert same.num_boxes == ds.num_boxes


def test_coco_reader_keeps_the_files_own_ids(tmp_path):
    make_image(tmp_path / "val2017" / "a.jpg", 200, 100)
    make_image(tmp_path / "val2017" / "b.jpg", 50, 50)
    path = coco_json(tmp_path / "annotations" / "instances_val2017.json", [
        {"image_id": 9, "category_id": 90, "bbox": [10, 20, 40, 60]},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 20, 10]},
    ])
    ds = load_dataset(path)
    assert [r.image_id for r in ds.records] == [7, 9]          # the file's, not 0, 1
    assert ds.category_ids == [1, 18, 90]                      # class k -> COCO category id
    assert [ds.category_ids[c] for r in ds.records for c in r.classes] == [1, 90]
    # with the caller's names, a class no category has gets None
    named = load_dataset(path, names=["dog", "cat", "person"])
    assert named.category_ids == [18, None, 1]
    assert [named.category_ids[c] for r in named.records for c in r.classes] == [1]


def test_coco_malformed_json_names_the_file(tmp_path):
    bad = tmp_path / "instances_x.json"
    bad.write_text('{"images": [1, 2,,]}')
    with pytest.raises(UserError) as err:
        load_dataset(bad)
    assert err.value.path == str(bad) and "malformed JSON" in str(err.value)


def test_coco_bad_annotation_skipped_or_strict(tmp_path):
    make_image(tmp_path / "a.jpg", 200, 100)
    make_image(tmp_path / "b.jpg", 50, 50)
    path = coco_json(tmp_path / "instances_t.json", [
        {"image_id": 7, "category_id": 1, "bbox": [10, 20, 40, 60]},
        {"image_id": 7, "category_id": 1, "bbox": [10, 20]},
    ])
    ds = load_dataset(path)
    assert ds.num_boxes == 1 and ds.skipped_lines == 1
    with pytest.raises(UserError, match=r"annotations\[1\]"):
        load_dataset(path, strict=True)


def test_coco_missing_image_skipped_at_load_or_strict(tmp_path):
    make_image(tmp_path / "a.jpg", 200, 100)           # b.jpg never written
    path = coco_json(tmp_path / "instances_t.json", [
        {"image_id": 7, "category_id": 1, "bbox": [10, 20, 40, 60]},
        {"image_id": 9, "category_id": 1, "bbox": [1, 1, 20, 20]},
    ])
    ds = load_dataset(path)
    assert [r.image_id for r in ds.records] == [7] and ds.skipped_images == 1
    assert ds.warnings == [f"{(tmp_path / 'b.jpg').absolute()}: image not found (image skipped)"]
    with pytest.raises(UserError, match="b.jpg: image not found"):
        load_dataset(path, strict=True)
