"""Classification datasets: ImageFolder trees, darknet lists and .data files, bad images,
the photo-grouped split and the report."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TESTS
from yolo9000.data.formats.classification import (
    ClassificationDataset, ClassificationRecord, classification_report,
    load_classification_dataset, match_labels, photo_key)
from yolo9000.errors import UserError

VOC_CROPS = TESTS.parents[1] / "shared" / "voc2007-crops"


def write_image(path: Path, size=(12, 10), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)
    return path


def tree(root: Path, files):
    for f in files:
        write_image(root / f)
    return root


def by_class(ds):
    """{class name: sorted file paths relative to the source}."""
    out = {}
    for r in ds.records:
        out.setdefault(ds.names[r.label], []).append(os.path.relpath(r.path, ds.source))
    return {k: sorted(v) for k, v in out.items()}


# --------------------------------------------------------------------------- ImageFolder

def test_image_folder_classes_sorted_and_found_recursively(tmp_path):
    root = tree(tmp_path / "data", ["zebra/a.jpg", "ant/x/y/deep.png", "ant/b.jpg", "moth/c.bmp",
                                    ".hidden/h.jpg"])
    (root / "moth" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    ds = load_classification_dataset(root)
    assert ds.names == ["ant", "empty", "moth", "zebra"]
    assert by_class(ds) == {"ant": ["ant/b.jpg", "ant/x/y/deep.png"], "moth": ["moth/c.bmp"],
                            "zebra": ["zebra/a.jpg"]}
    assert ds.class_counts().tolist() == [2, 0, 1, 1] and ds.class_counts().dtype == np.int64
    assert ds.skipped == [] and ds.source == str(root)


def test_names_fix_the_class_order_and_a_stray_folder_is_an_error(tmp_path):
    root = tree(tmp_path / "data", ["cat/1.jpg", "dog/2.jpg"])
    names_file = tmp_path / "classes.names"
    names_file.write_text("dog\ncat\nbird\n")
    ds = load_classification_dataset(root, names=names_file)
    assert ds.names == ["dog", "cat", "bird"]
    assert {ds.names[r.label]: Path(r.path).name for r in ds.records} == {"dog": "2.jpg",
                                                                           "cat": "1.jpg"}
    with pytest.raises(UserError, match="class folder 'dog' is not one of the 1 class names") as e:
        load_classification_dataset(root, names=["cat"])
    assert e.value.path == str(root / "dog")


def test_images_outside_class_folders_are_reported(tmp_path):
    root = tree(tmp_path / "data", ["cat/1.jpg", "loose.jpg"])
    ds = load_classification_dataset(root)
    assert len(ds) == 1 and ds.skipped == [(str(root / "loose.jpg"), "not inside a class folder")]


def test_split_subfolder(tmp_path):
    tree(tmp_path / "data", ["train/cat/1.jpg", "val/cat/2.jpg", "val/dog/3.jpg"])
    ds = load_classification_dataset(tmp_path / "data", split="val")
    assert by_class(ds) == {"cat": ["cat/2.jpg"], "dog": ["dog/3.jpg"]}
    with pytest.raises(UserError, match="no 'test' folder"):
        load_classification_dataset(tmp_path / "data", split="test")


# --------------------------------------------------------------------------- bad files

def test_corrupt_truncated_and_empty_images_are_skipped_with_their_paths(tmp_path):
    root = tree(tmp_path / "data", ["cat/good.jpg", "cat/good.png"])
    (root / "cat" / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "cat" / "empty.jpg").write_bytes(b"")
    noisy = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "whole.jpg", quality=90)
    whole = (tmp_path / "whole.jpg").read_bytes()
    (root / "cat" / "cut.jpg").write_bytes(whole[: len(whole) // 2])   # header intact
    png = (root / "cat" / "good.png").read_bytes()
    (root / "cat" / "cut.png").write_bytes(png[:-20])
    ds = load_classification_dataset(root)
    assert sorted(Path(r.path).name for r in ds.records) == ["good.jpg", "good.png"]
    reasons = {Path(p).name: (p, why) for p, why in ds.skipped}
    assert sorted(reasons) == ["cut.jpg", "cut.png", "empty.jpg", "noise.jpg"]
    assert reasons["noise.jpg"] == (str(root / "cat" / "noise.jpg"),
                                    "not an image (unrecognised format)")
    assert "empty" in reasons["empty.jpg"][1]
    assert "truncated" in reasons["cut.jpg"][1] and "truncated" in reasons["cut.png"][1]


def test_missing_path_and_no_images_are_one_line_errors(tmp_path):
    with pytest.raises(UserError) as e:
        load_classification_dataset(tmp_path / "nowhere")
    assert str(e.value) == f"{tmp_path / 'nowhere'}: no such file or directory"
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 nothing")
    with pytest.raises(UserError) as e:
        load_classification_dataset(tmp_path)
    assert str(e.value) == f"{tmp_path}: no usable images found (1 file skipped)"
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- darknet lists

def test_label_matching_ranks_folders_tokens_and_substrings():
    names = ["cat", "bobcat", "dog", "train", "sea_lion", "lion", "truck"]

    def match(entry):
        return sorted(names[k] for k in match_labels(entry, names))

    assert match("data/bobcat/img1.jpg") == ["bobcat"]        # "cat" only inside "bobcat"
    assert match("train/cat/0001.jpg") == ["cat"]             # nearer folder beats "train"
    assert match("/data/cifar/1000_truck.png") == ["truck"]   # file-name token
    assert match("photos/sea_lion_03.jpg") == ["sea_lion"]    # not "lion" inside it
    assert match("pets/catdog.jpg") == ["cat", "dog"]         # two bare substrings: a tie
    assert match("cat/dog_01.jpg") == ["cat"]                 # whole folder beats a token
    assert match("pets/cat_and_dog.jpg") == ["cat", "dog"]    # two tokens: a tie
    assert match("pets/hotdog_cat.jpg") == ["cat"]            # a token beats a substring
    assert match("x/bird.jpg") == []
    assert match("x\\dog\\1.jpg") == ["dog"]                  # Windows separators


def test_list_file_with_labels_file(tmp_path):
    for f in ["imgs/cat/1.jpg", "imgs/dog/2.jpg", "imgs/3_dog.jpg", "imgs/hotdog.jpg",
              "imgs/catdog.jpg", "imgs/bird.jpg"]:
        write_image(tmp_path / f)
    entries = ["imgs/cat/1.jpg", "imgs/dog/2.jpg", "imgs/3_dog.jpg", "imgs/hotdog.jpg",
               "imgs/catdog.jpg", "imgs/bird.jpg", "imgs/missing_cat.jpg"]
    (tmp_path / "train.list").write_text("\n".join(entries) + "\n\n")
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    ds = load_classification_dataset(tmp_path / "train.list")
    assert ds.names == ["cat", "dog"]
    assert [(os.path.relpath(r.path, tmp_path), r.label) for r in ds.records] == [
        ("imgs/cat/1.jpg", 0), ("imgs/dog/2.jpg", 1), ("imgs/3_dog.jpg", 1),
        ("imgs/hotdog.jpg", 1)]
    skipped = {os.path.relpath(p, tmp_path): why for p, why in ds.skipped}
    assert skipped == {"imgs/catdog.jpg": "matches several labels equally well: cat, dog",
                       "imgs/bird.jpg": "no label name occurs in its path",
                       "imgs/missing_cat.jpg": "image not found"}
    # explicit names win over labels.txt
    other = load_classification_dataset(tmp_path / "train.list", names=["dog"])
    assert len(other) == 4 and other.names == ["dog"]


def test_list_file_without_names_is_an_error(tmp_path):
    write_image(tmp_path / "cat" / "1.jpg")
    (tmp_path / "a.list").write_text("cat/1.jpg\n")
    with pytest.raises(UserError, match="no class names") as e:
        load_classification_dataset(tmp_path / "a.list")
    assert e.value.path == str(tmp_path / "a.list")


def test_data_file(tmp_path):
    for f in ["train/n01/n01_1.jpg", "train/n02/n02_7.jpg", "val/n01/x.jpg"]:
        write_image(tmp_path / f)
    (tmp_path / "train.list").write_text("train/n01/n01_1.jpg\ntrain/n02/n02_7.jpg\n")
    (tmp_path / "valid.list").write_text(f"{tmp_path}/val/n01/x.jpg\n")
    (tmp_path / "wnids.txt").write_text("n01\nn02\n")
    (tmp_path / "words.txt").write_text("tench\ngoldfish\n")
    data = tmp_path / "net.data"
    data.write_text("classes=2\ntrain = train.list\nvalid = valid.list\nlabels = wnids.txt\n"
                    "names = words.txt\n# comment\n")
    ds = load_classification_dataset(data)
    assert ds.names == ["tench", "goldfish"]
    assert [(Path(r.path).name, r.label) for r in ds.records] == [("n01_1.jpg", 0),
                                                                  ("n02_7.jpg", 1)]
    valid = load_classification_dataset(data, split="valid")
    assert [(Path(r.path).name, r.label) for r in valid.records] == [("x.jpg", 0)]
    data.write_text("train = train\nlabels = wnids.txt\nnames = words.txt\n")   # a folder
    folder = load_classification_dataset(data)
    assert folder.names == ["tench", "goldfish"]
    assert [(Path(r.path).name, r.label) for r in folder.records] == [("n01_1.jpg", 0),
                                                                      ("n02_7.jpg", 1)]
    data.write_text("classes=3\ntrain = train.list\nlabels = wnids.txt\n")
    with pytest.raises(UserError, match="classes = 3 but there are 2 class names"):
        load_classification_dataset(data)
    data.write_text("train = train.list\n")
    with pytest.raises(UserError, match="labels ="):
        load_classification_dataset(data)
    data.write_text("train = nothere.list\nlabels = wnids.txt\n")
    with pytest.raises(UserError, match="the train list 'nothere.list' does not exist"):
        load_classification_dataset(data)


# --------------------------------------------------------------------------- split

def test_photo_key():
    assert photo_key("car/000012_1.jpg") == photo_key("person/000012_2.jpg") == "000012"
    assert photo_key("a/2008_000123_3.jpg") == "2008_000123"
    assert photo_key("faces/image_0001.jpg") == "faces/image_0001.jpg"       # no photo id
    assert photo_key("n01440764/n01440764_10026.JPEG") == "n01440764/n01440764_10026.JPEG"
    assert photo_key("x/12345.jpg") == "x/12345.jpg"


def crops_dataset(n_photos=200, seed=0):
    """Photos with 1..4 crops each, spread over 4 classes; a 5th class has a single photo."""
    rng = np.random.default_rng(seed)
    records = []
    for p in range(n_photos):
        for c in range(int(rng.integers(1, 5))):
            label = int(rng.integers(0, 4))
            records.append(ClassificationRecord(f"/d/{label}/{p:06d}_{c}.jpg", label))
    records.append(ClassificationRecord("/d/4/999999_0.jpg", 4))
    return ClassificationDataset(records, ["a", "b", "c", "d", "e"], "/d")


def test_split_keeps_photos_together_and_holds_out_about_the_fraction():
    ds = crops_dataset()
    train, held = ds.split(0.2, seed=3)
    photo = lambda r: Path(r.path).stem.split("_")[0]
    train_photos = {photo(r) for r in train.records}
    held_photos = {photo(r) for r in held.records}
    assert not train_photos & held_photos
    assert len(train) + len(held) == len(ds)
    assert sorted(r.path for r in train.records + held.records) == \
        sorted(r.path for r in ds.records)
    assert abs(len(held) / len(ds) - 0.2) < 0.03
    for c in range(4):    # every class held out roughly in proportion
        assert abs(held.class_counts()[c] / ds.class_counts()[c] - 0.2) < 0.08
    again = ds.split(0.2, seed=3)
    assert [r.path for r in again[1].records] == [r.path for r in held.records]
    other = ds.split(0.2, seed=4)
    assert [r.path for r in other[1].records] != [r.path for r in held.records]
    assert ds.split(0.0)[1].records == [] and len(ds.split(0.0)[0]) == len(ds)
    with pytest.raises(ValueError):
        ds.split(1.0)


def test_split_never_leaves_a_class_with_two_photos_out_of_training():
    # at 0.9 both photos of class a fall within its quota (1.8 images): one must come back
    records = [ClassificationRecord("/d/a/000001_1.jpg", 0),
               ClassificationRecord("/d/a/000002_1.jpg", 0),
               ClassificationRecord("/d/c/000003_1.jpg", 2)]     # one photo: may go either way
    records += [ClassificationRecord(f"/d/b/{100 + i:06d}_1.jpg", 1) for i in range(8)]
    ds = ClassificationDataset(records, ["a", "b", "c"], "/d")
    for seed in range(5):
        train, held = ds.split(0.9, seed=seed)
        assert train.class_counts().tolist()[:2] == [1, 1]
        assert held.class_counts().tolist()[:2] == [1, 7]


def test_split_holds_out_the_nearest_count_the_photos_allow():
    # 10 photos of 3 crops, a quota of 4 images: 3 (one photo) is nearer than 6 (two)
    records = [ClassificationRecord(f"/d/a/{p:06d}_{c}.jpg", 0) for p in range(10)
               for c in range(3)]
    ds = ClassificationDataset(records, ["a"], "/d")
    assert [len(ds.split(4 / 30, seed=s)[1]) for s in range(3)] == [3, 3, 3]
    assert [len(ds.split(5 / 30, seed=s)[1]) for s in range(3)] == [6, 6, 6]


# --------------------------------------------------------------------------- report

def test_report_lists_skipped_files_and_counts(tmp_path):
    ds = ClassificationDataset([ClassificationRecord("/d/a/1.jpg", 0)] * 3
                               + [ClassificationRecord("/d/b/1.jpg", 1)],
                               ["a", "b", "c"], "/d",
                               [(f"/d/a/bad{i}.jpg", "not an image") for i in range(12)])
    lines = classification_report(ds, "train")
    assert lines[0] == "warning: /d/a/bad0.jpg: not an image (skipped)"
    assert lines[10] == "warning: ... and 2 more"
    assert lines[11] == "warning: 1 class without images: c"
    assert lines[12] == "train data /d: 4 images in 3 classes (0 to 3 per class); skipped 12 files"
    assert len(lines) == 13


@pytest.mark.skipif(not VOC_CROPS.is_dir(), reason="../shared/voc2007-crops not present")
def test_voc2007_crops():
    ds = load_classification_dataset(VOC_CROPS)
    assert len(ds) == 6301 and len(ds.names) == 20 and ds.skipped == []
    assert ds.names[:3] == ["aeroplane", "bicycle", "bird"]
    assert ds.class_counts()[ds.names.index("person")] == 2358
    train, held = ds.split(0.1, seed=0)
    assert 0.08 < len(held) / len(ds) < 0.12
    held_photos = {photo_key(r.path) for r in held.records}
    assert not held_photos & {photo_key(r.path) for r in train.records}


def test_a_detection_dataset_is_not_taken_for_class_folders(tmp_path):
    from yolo9000.data.synthetic_shapes import make_shapes
    root = make_shapes(tmp_path / "shapes", n_train=2, n_val=1, size=48, seed=0)["root"]
    with pytest.raises(UserError, match=r"detection dataset \(darknet/YOLO label files in labels/\)"):
        load_classification_dataset(root)
