"""The PASCAL VOC reader (data/formats/voc.py) on small fixtures, and on the real VOC sample."""
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import VOC_SAMPLE
from dataset_files import make_image, make_voc
from yolo9000.data.formats import VOC_CLASSES, load_dataset
from yolo9000.errors import UserError


def test_voc_reader_conventions_split_and_difficult(tmp_path):
    root = make_voc(tmp_path / "VOC2007", {
        "000001": (500, 400, [("dog", (1, 1, 500, 400), False), ("cat", (101, 51, 200, 150), True)]),
        "000002": (100, 100, [("person", (11, 21, 60, 80), False)]),
    }, split={"train": ["000001"], "val": ["000002"]})
    ds = load_dataset(tmp_path / "VOC2007")
    assert ds.format == "voc" and ds.names == list(VOC_CLASSES)
    dog_cat = ds.records[0]
    # 1-based inclusive 1..500 covers the whole 500-pixel width
    np.testing.assert_allclose(dog_cat.boxes[0], [0.5, 0.5, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(dog_cat.boxes[1], [150 / 500, 100 / 400, 100 / 500, 100 / 400],
                               atol=1e-6)
    assert dog_cat.classes.tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat")]
    assert dog_cat.difficult.tolist() == [False, True]
    np.testing.assert_allclose(dog_cat.pixel_corners()[1], [100, 50, 200, 150], atol=1e-3)
    assert Path(dog_cat.path) == (root / "JPEGImages" / "000001.jpg").absolute()
    assert [Path(r.path).stem for r in load_dataset(root, split="val").records] == ["000002"]
    assert load_dataset(root, use_difficult=False).num_boxes == 2
    with pytest.raises(UserError, match="no split 'test'"):
        load_dataset(root, split="test")


def test_voc_non_voc_names_sorted_and_explicit_names(tmp_path):
    make_voc(tmp_path, {"a": (10, 10, [("zebra", (1, 1, 5, 5), False),
                                       ("apple", (2, 2, 8, 8), False)])})
    ds = load_dataset(tmp_path)
    assert ds.names == ["apple", "zebra"] and ds.records[0].classes.tolist() == [1, 0]
    mapped = load_dataset(tmp_path, names=["zebra", "apple"])
    assert mapped.records[0].classes.tolist() == [0, 1]
    partial = load_dataset(tmp_path, names=["zebra"])
    assert partial.num_boxes == 1 and partial.skipped_lines == 1


def test_voc_zero_size_boxes_dropped(tmp_path):
    make_voc(tmp_path, {"a": (10, 10, [("dog", (5, 5, 4, 9), False), ("dog", (1, 1, 9, 9), False)])})
    ds = load_dataset(tmp_path)
    assert ds.num_boxes == 1 and ds.dropped_boxes == 1


def test_voc_malformed_xml_names_the_file(tmp_path):
    make_voc(tmp_path, {"a": (10, 10, [("dog", (1, 1, 9, 9), False)])})
    bad = tmp_path / "Annotations" / "b.xml"
    bad.write_text("<annotation><size>")
    with pytest.raises(UserError) as err:
        load_dataset(tmp_path)
    assert err.value.path == str(bad) and "malformed XML" in str(err.value)


@pytest.mark.skipif(not VOC_SAMPLE.is_dir(), reason="../shared/voc2007-sample not present")
def test_real_voc_sample():
    start = time.perf_counter()
    ds = load_dataset(VOC_SAMPLE)
    elapsed = time.perf_counter() - start
    assert len(ds) == 250 and ds.num_boxes == 808
    assert ds.names == list(VOC_CLASSES) and ds.warnings == [] and ds.dropped_boxes == 0
    assert ds.class_counts().sum() == 808
    for r in ds.records:
        assert Path(r.path).is_file()
        assert ((r.boxes[:, :2] > 0) & (r.boxes[:, :2] < 1)).all()
        assert ((r.boxes[:, 2:] > 0) & (r.boxes[:, 2:] <= 1)).all()
    # 000012.xml: a car at xmin 156, ymin 97, xmax 351, ymax 270 in a 500x333 image
    first = ds.records[0]
    assert Path(first.path).name == "000012.jpg" and (first.width, first.height) == (500, 333)
    np.testing.assert_allclose(first.boxes[0], [253 / 500, 183 / 333, 196 / 500, 174 / 333],
                               atol=1e-6)
    trainval = load_dataset(VOC_SAMPLE, split="trainval", use_difficult=False)
    assert len(trainval) == 250 and trainval.num_boxes < 808
    print(f"250 VOC XMLs read in {elapsed:.3f} s")


def test_voc_missing_image_skipped_at_load_or_strict(tmp_path):
    make_voc(tmp_path, {"a": (10, 10, [("dog", (1, 1, 9, 9), False)]),
                        "b": (10, 10, [("cat", (2, 2, 8, 8), False)])})
    missing = tmp_path / "JPEGImages" / "b.jpg"
    missing.unlink()
    ds = load_dataset(tmp_path)
    assert [Path(r.path).name for r in ds.records] == ["a.jpg"]
    assert ds.skipped_images == 1
    assert ds.warnings == [f"{missing.absolute()}: image not found (image skipped)"]
    with pytest.raises(UserError) as err:
        load_dataset(tmp_path, strict=True)
    assert err.value.path == str(missing.absolute())


def test_voc_without_size_reads_the_header_and_skips_an_unreadable_image(tmp_path):
    make_voc(tmp_path, {"a": (0, 0, [("dog", (1, 1, 9, 9), False)]),
                        "b": (0, 0, [("cat", (2, 2, 8, 8), False)])})
    make_image(tmp_path / "JPEGImages" / "a.jpg", 20, 10)
    (tmp_path / "JPEGImages" / "b.jpg").write_bytes(b"garbage")
    ds = load_dataset(tmp_path)
    assert [(r.width, r.height) for r in ds.records] == [(20, 10)]
    assert ds.skipped_images == 1 and "b.jpg" in ds.warnings[0]
