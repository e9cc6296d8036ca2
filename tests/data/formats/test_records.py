"""What every reader's records share (data/formats/records.py): the dataset split, and each
dropped or clipped box named with its file and line or entry."""
import numpy as np

from dataset_files import coco_json, make_image, make_voc, one_labelled_image
from yolo9000.data.formats import load_dataset


def test_split_and_subset(tmp_path):
    for i in range(10):
        make_image(tmp_path / "images" / f"{i}.jpg", 8, 8)
        (tmp_path / "images" / f"{i}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    ds = load_dataset(tmp_path)
    a, b = ds.split(0.7, seed=1)
    assert len(a) == 7 and len(b) == 3
    assert sorted(r.path for r in a.records + b.records) == sorted(r.path for r in ds.records)
    assert [r.path for r in ds.split(0.7, seed=1)[0].records] == [r.path for r in a.records]


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
