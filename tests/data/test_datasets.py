"""Dataset readers on small fixtures made in tmp_path, and on the real VOC sample."""
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo9000.data.datasets import VOC_CLASSES, label_path_candidates, load_dataset
from yolo9000.errors import UserError
from conftest import VOC_SAMPLE



def make_image(path, width, height):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path)
    return path


def voc_xml(filename, width, height, objects):
    objs = "".join(
        f"<object><name>{name}</name><difficult>{int(diff)}</difficult><bndbox>"
        f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, (x1, y1, x2, y2), diff in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{objs}</annotation>")


def make_voc(root, entries, split=None):
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem, (w, h, objects) in entries.items():
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", w, h, objects))
        if w > 0 and h > 0:
            make_image(root / "JPEGImages" / f"{stem}.jpg", w, h)   # readers check it exists
    if split:
        (root / "ImageSets" / "Main").mkdir(parents=True)
        for name, ids in split.items():
            (root / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return root


# -- YOLO ------------------------------------------------------------------------------------

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


def one_labelled_image(root, label_text):
    """root/images/a.jpg (10x10) with root/labels/a.txt holding label_text; -> the label path."""
    make_image(root / "images" / "a.jpg", 10, 10)
    (root / "labels").mkdir()
    label = root / "labels" / "a.txt"
    label.write_text(label_text)
    return label


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


# -- VOC -------------------------------------------------------------------------------------

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


# -- COCO ------------------------------------------------------------------------------------

def coco_json(path, annotations, images=None, categories=None):
    data = {
        "images": images or [{"id": 7, "file_name": "a.jpg", "width": 200, "height": 100},
                             {"id": 9, "file_name": "b.jpg", "width": 50, "height": 50}],
        "annotations": annotations,
        "categories": categories or [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
                                     {"id": 18, "name": "dog"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


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


# -- detection and errors ---------------------------------------------------------------------

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


def test_split_and_subset(tmp_path):
    for i in range(10):
        make_image(tmp_path / "images" / f"{i}.jpg", 8, 8)
        (tmp_path / "images" / f"{i}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    ds = load_dataset(tmp_path)
    a, b = ds.split(0.7, seed=1)
    assert len(a) == 7 and len(b) == 3
    assert sorted(r.path for r in a.records + b.records) == sorted(r.path for r in ds.records)
    assert [r.path for r in ds.split(0.7, seed=1)[0].records] == [r.path for r in a.records]


# -- images checked at load time, box problems named ----------------------------------------

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


def test_each_box_problem_named_with_its_line(tmp_path):
    # line 1 fine; 2 zero width; 3 wholly right of the image; 4 sticks out left (clipped);
    # 5 off the border by 1e-4 only (rounding: clipped quietly)
    label = one_labelled_image(tmp_path, "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0 0.3\n"
                                         "0 1.5 0.5 0.2 0.2\n0 0.05 0.5 0.2 0.2\n"
                                         "0 0.9001 0.5 0.2 0.2\n")
    ds = load_dataset(tmp_path)
    assert ds.warnings == [f"{label}:2: box of zero or negative size dropped",
                           f"{label}:3: box wholly outside the image dropped",
                           f"{label}:4: box partly outside the image clipped to it"]
    assert ds.dropped_boxes == 2 and ds.clipped_boxes == 1 and ds.num_boxes == 3
    np.testing.assert_allclose(ds.records[0].boxes[1], [0.075, 0.5, 0.15, 0.2], atol=1e-6)


def test_voc_and_coco_box_problems_name_the_entry(tmp_path):
    make_voc(tmp_path / "voc", {"a": (10, 10, [("dog", (1, 1, 9, 9), False),
                                               ("dog", (5, 5, 4, 9), False),
                                               ("dog", (12, 1, 20, 9), False)])})
    voc = load_dataset(tmp_path / "voc")
    xml = tmp_path / "voc" / "Annotations" / "a.xml"
    assert voc.warnings == [f"{xml}: object 2: box of zero or negative size dropped",
                            f"{xml}: object 3: box wholly outside the image dropped"]
    make_image(tmp_path / "coco" / "a.jpg", 200, 100)
    make_image(tmp_path / "coco" / "b.jpg", 50, 50)
    path = coco_json(tmp_path / "coco" / "instances_t.json", [
        {"image_id": 7, "category_id": 1, "bbox": [10, 20, 40, 60]},
        {"image_id": 7, "category_id": 1, "bbox": [180, 20, 40, 60]},
    ])
    coco = load_dataset(path)
    assert coco.warnings == [f"{path}: annotations[1]: box partly outside the image clipped to it"]
