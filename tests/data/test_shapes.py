from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from yolo9000.cli import cli
from yolo9000.errors import UserError
from yolo9000.data.synthetic_shapes import (CLASS_NAMES, MAX_OBJECTS, MIN_VISIBLE, SUPERSAMPLE, make_shapes,
                             render_sample, sample_rng)


def read_labels(path):
    rows = [line.split() for line in Path(path).read_text().splitlines()]
    return np.array([[float(v) for v in r[1:]] for r in rows]).reshape(-1, 4), \
        np.array([int(r[0]) for r in rows], np.int64)


def test_render_sample_boxes_are_tight_around_each_shape():
    size = 160
    checked = 0
    for i in range(40):
        image, boxes, classes, masks = render_sample(sample_rng(3, "train", i), size,
                                                     return_masks=True)
        assert image.size == (size, size) and image.mode == "RGB"
        assert 1 <= len(classes) <= MAX_OBJECTS
        assert boxes.dtype == np.float32 and classes.dtype == np.int64
        assert masks.shape == (len(classes), size, size)
        for box, mask in zip(boxes * size, masks):
            x1, y1 = box[0] - box[2] / 2, box[1] - box[3] / 2
            x2, y2 = box[0] + box[2] / 2, box[1] + box[3] / 2
            # The mask's own extent (any coverage) as continuous pixel edges.
            cols = np.flatnonzero(mask.max(0) > 0)
            rows = np.flatnonzero(mask.max(1) > 0)
            mx1, mx2, my1, my2 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
            # Drawn pixels never reach a whole pixel past the box (a pixel the shape enters is
            # partly covered) ...
            assert mx1 > x1 - 1 and my1 > y1 - 1 and mx2 < x2 + 1 and my2 < y2 + 1
            # ... and the box never sticks out of the drawn pixels by more than one sub-pixel
            # sample (a sharp tip may poke into a pixel between the 4x4 samples).
            slack = 1.0 / SUPERSAMPLE + 1e-4
            assert x1 >= mx1 - slack and y1 >= my1 - slack
            assert x2 <= mx2 + slack and y2 <= my2 + slack
            checked += 1
    assert checked > 60


def test_shapes_stay_mostly_visible_and_sizes_span_the_range():
    sides = []
    for i in range(60):
        _, boxes, classes, masks = render_sample(sample_rng(5, "val", i), 128, return_masks=True)
        # masks are in drawing order: shape k is covered only by shapes drawn after it
        for k in range(len(masks)):
            visible = masks[k] * np.prod(1.0 - masks[k + 1:], axis=0)
            assert visible.sum() >= MIN_VISIBLE * masks[k].sum() - 1e-3
        assert np.all(boxes >= 0) and np.all(boxes <= 1)
        assert np.all(boxes[:, :2] - boxes[:, 2:] / 2 >= -1e-6)
        assert np.all(boxes[:, :2] + boxes[:, 2:] / 2 <= 1 + 1e-6)
        sides.append(boxes[:, 2:].max(1))
    sides = np.concatenate(sides)
    assert sides.min() < 0.12 and sides.max() > 0.45
    assert sides.min() >= 0.07 and sides.max() <= 0.61


def test_render_is_deterministic_and_seed_dependent():
    a = render_sample(sample_rng(1, "train", 7), 96)
    b = render_sample(sample_rng(1, "train", 7), 96)
    c = render_sample(sample_rng(2, "train", 7), 96)
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))


def test_make_shapes_is_byte_identical_for_a_seed_and_valid(tmp_path):
    first = make_shapes(tmp_path / "a", n_train=24, n_val=6, size=64, seed=11)
    second = make_shapes(tmp_path / "b", n_train=24, n_val=6, size=64, seed=11, workers=2)
    other = make_shapes(tmp_path / "c", n_train=24, n_val=6, size=64, seed=12)
    for name in ("train.txt", "val.txt", "classes.names", "shapes.data"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b
    differing = 0
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
        if rel.suffix == ".txt" and rel.parts[0] == "labels":
            differing += (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()
    assert differing > 20          # a different seed gives different labels

    root = first["root"]
    assert first["data"].read_text().split("\n")[:4] == [
        "classes = 5", "train = train.txt", "valid = val.txt", "names = classes.names"]
    assert first["names"].read_text().split() == list(CLASS_NAMES)
    train_list = first["train"].read_text().splitlines()
    assert len(train_list) == 24 and len(first["val"].read_text().splitlines()) == 6
    seen = set()
    for entry in train_list:
        image_path = root / entry
        # darknet's convention: images -> labels, extension -> .txt
        label_path = Path(str(image_path).replace("/images/", "/labels/")).with_suffix(".txt")
        with Image.open(image_path) as im:
            assert im.size == (64, 64)
        boxes, classes = read_labels(label_path)
        assert len(classes) >= 1
        assert np.all((boxes >= 0) & (boxes <= 1))
        assert np.all((classes >= 0) & (classes < len(CLASS_NAMES)))
        seen.update(classes.tolist())
    assert seen == set(range(len(CLASS_NAMES)))
    assert first["objects"] == sum(
        len(read_labels(p)[1]) for p in (root / "labels").rglob("*.txt"))
    assert not list(root.rglob("*.tmp"))


def test_make_shapes_reads_back_through_the_dataset_loader(tmp_path):
    from yolo9000.data import formats
    paths = make_shapes(tmp_path / "s", n_train=8, n_val=3, size=48, seed=0, image_format="png")
    ds = formats.load_dataset(paths["data"], split="val")
    assert len(ds.records) == 3 and ds.names == list(CLASS_NAMES)
    rec = ds.records[0]
    _, boxes, classes = render_sample(sample_rng(0, "val", 0), 48)
    np.testing.assert_allclose(rec.boxes, boxes, atol=1e-5)
    assert rec.classes.tolist() == classes.tolist()
    with Image.open(rec.path) as im:
        assert np.array_equal(np.asarray(im), np.asarray(render_sample(sample_rng(0, "val", 0),
                                                                       48)[0]))


def test_regenerating_removes_stale_images_and_refuses_foreign_folders(tmp_path):
    make_shapes(tmp_path / "s", n_train=10, n_val=2, size=40, seed=0)
    make_shapes(tmp_path / "s", n_train=4, n_val=2, size=40, seed=0)
    assert len(list((tmp_path / "s" / "images" / "train").iterdir())) == 4
    assert len(list((tmp_path / "s" / "labels" / "train").iterdir())) == 4
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        make_shapes(tmp_path / "other", n_train=2, n_val=0, size=40)
    with pytest.raises(UserError, match="too small"):
        make_shapes(tmp_path / "t", n_train=2, n_val=0, size=16)


def test_cli_make_shapes_writes_and_says_where(tmp_path):
    out = tmp_path / "shapes"
    result = CliRunner().invoke(cli, ["make-shapes", str(out), "--train-images", "6", "--val-images", "2",
                                      "--image-size", "48", "--seed", "3", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote 6 train + 2 val images" in result.output
    assert "rendering 8 images 8/8 [" in result.output        # the package's progress bar
    assert str(out.resolve() / "shapes.data") in result.output
    assert len((out / "train.txt").read_text().splitlines()) == 6
    assert len(list((out / "labels" / "val").glob("*.txt"))) == 2
    bad = CliRunner().invoke(cli, ["make-shapes", str(out), "--image-size", "8"])
    assert bad.exit_code == 2


def test_cli_refuses_a_foreign_folder_with_one_line(tmp_path, capsys):
    from yolo9000.cli import main
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["make-shapes", str(tmp_path), "--train-images", "2", "--val-images", "0"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "rendering" not in captured.out
    assert (tmp_path / "notes.txt").read_text() == "mine"
