"""`yolo9000 detect` end to end on the tiny golden network (64x64, 3 classes)."""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo9000.cli import main
from conftest import GOLDEN, IMAGES, run_folder_args

MINI = ["--cfg", str(GOLDEN / "mini.cfg"), "--weights", str(GOLDEN / "mini.weights")]


def run(argv, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(["detect", *map(str, argv)])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def _photo(path, w, h, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    # smooth blobs rather than noise, so JPEG files stay small and decode fast
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize((w, h), Image.BILINEAR).convert(mode).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    return [_photo(d / "wide.jpg", 160, 90, 1), _photo(d / "tall.png", 70, 130, 2),
            _photo(d / "grey.png", 100, 100, 3, mode="L")]


def _inside(box, w, h):
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_outputs_json_labels_and_images(images, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run([*images, *MINI, *run_folder_args(out), "--save-json", out / "dets.json",
                                "--thresh", 0.2, "--save-txt", "--save-conf", "--batch", 2],
                               capsys)
    assert code == 0, stderr
    records = json.loads((out / "dets.json").read_text())
    assert [r["path"] for r in records] == [str(p) for p in images]
    total = 0
    for r, src in zip(records, images):
        with Image.open(src) as im:
            assert (r["width"], r["height"]) == im.size
        annotated = out / src.name
        with Image.open(annotated) as im:
            assert im.size == (r["width"], r["height"]) and im.mode == "RGB"
        assert r["detections"], "random mini weights give boxes at thresh 0.2"
        for d in r["detections"]:
            assert set(d) == {"class", "name", "score", "box"}
            assert d["score"] >= 0.2 and d["class"] in (0, 1, 2)
            assert _inside(d["box"], r["width"], r["height"])
        lines = (out / "labels" / f"{src.stem}.txt").read_text().splitlines()
        assert len(lines) == len(r["detections"])
        values = np.array([[float(v) for v in line.split()] for line in lines])
        assert np.all(values[:, 1:5] >= 0) and np.all(values[:, 1:5] <= 1)
        first = r["detections"][0]
        x1, y1, x2, y2 = first["box"]
        np.testing.assert_allclose(values[0, 1:6], [(x1 + x2) / 2 / r["width"],
                                                    (y1 + y2) / 2 / r["height"],
                                                    (x2 - x1) / r["width"],
                                                    (y2 - y1) / r["height"], first["score"]],
                                   atol=2e-5)
        total += len(r["detections"])
    assert "images/s" in stdout and str(out) in stdout
    assert stdout.count(" ms") == 3 and "160x90" in stdout
    assert stderr == ""


def test_coco_layout_numbers_images_by_input_position(images, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    sources = [images[0], bad, images[1], images[2]]     # the bad one still takes id 1
    args = [*sources, *MINI, "--thresh", 0.2]
    code, _, _ = run([*args, *run_folder_args(tmp_path / "a"), "--save-json", tmp_path / "y.json"],
                     capsys)
    assert code == 1
    code, _, _ = run([*args, *run_folder_args(tmp_path / "b"), "--save-json", tmp_path / "c.json",
                      "--json-format", "coco"], capsys)
    assert code == 1
    per_image = json.loads((tmp_path / "y.json").read_text())
    entries = json.loads((tmp_path / "c.json").read_text())
    assert all(set(e) == {"image_id", "category_id", "bbox", "score"} for e in entries)
    expected = []
    for image_id, record in zip([0, 2, 3], per_image):
        for d in record["detections"]:
            x1, y1, x2, y2 = d["box"]
            expected.append((image_id, d["class"], [x1, y1, x2 - x1, y2 - y1], d["score"]))
    assert len(entries) == len(expected) and len({e["image_id"] for e in entries}) == 3
    for e, (image_id, cls, bbox, score) in zip(entries, expected):
        assert (e["image_id"], e["category_id"], e["score"]) == (image_id, cls, score)
        np.testing.assert_allclose(e["bbox"], bbox, atol=2e-3)     # both rounded to 1e-3


def test_saved_labels_read_back_as_a_dataset_score_ap_1(images, tmp_path, capsys):
    """detect's label files are training labels: read back, they are the detections again."""
    from yolo9000.data.formats import load_dataset
    from yolo9000.inference.detector import Detector
    from yolo9000.metrics.detection import (Detections, evaluate_coco, evaluate_voc,
                                            ground_truth_from_record)

    dataset = tmp_path / "data"
    (dataset / "images").mkdir(parents=True)
    for p in images:
        (dataset / "images" / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "out"
    code, _, stderr = run([dataset / "images", *MINI, *run_folder_args(out), "--thresh", 0.2,
                           "--save-txt"], capsys)
    assert code == 0, stderr
    (out / "labels").rename(dataset / "labels")
    assert all(len(line.split()) == 5 for f in (dataset / "labels").iterdir()
               for line in f.read_text().splitlines())

    ds = load_dataset(dataset, names=["a", "b", "c"], strict=True)
    # The same detections through the Python API: the JSON's boxes are rounded to 1/1000 px.
    # Label files keep 1e-6 of the image size: at thresh 0.2 the thinnest box is 0.16 px wide,
    # far above that (at 0.1 one is 0.0004 px wide, too thin to keep an IoU of 0.95).
    detector = Detector(cfg=GOLDEN / "mini.cfg", weights=GOLDEN / "mini.weights", thresh=0.2)
    found = detector.batch([r.path for r in ds.records])
    assert ds.num_boxes == sum(len(f) for f in found) > 100
    gts = {k: ground_truth_from_record(r) for k, r in enumerate(ds.records)}
    dets = {k: Detections([d.box for d in f], [d.score for d in f], [d.cls for d in f])
            for k, f in enumerate(found)}
    voc = evaluate_voc(gts, dets, 3)
    coco = evaluate_coco(gts, dets, 3, max_dets=1000)
    assert (voc.num_gt > 0).all()
    np.testing.assert_array_equal(voc.ap, 1.0)
    np.testing.assert_array_equal(coco.ap, 1.0)     # even at IoU 0.95


def test_save_conf_needs_save_txt(images, capsys):
    code, _, stderr = run([images[0], *MINI, "--save-conf"], capsys)
    assert code == 2 and "--save-txt" in stderr


def test_json_to_stdout_keeps_stdout_clean(images, tmp_path, capsys):
    code, stdout, stderr = run([images[0], *MINI, *run_folder_args(tmp_path / "o"), "--save-json", "-",
                                "--thresh", 0.3], capsys)
    assert code == 0
    records = json.loads(stdout)
    assert len(records) == 1 and records[0]["width"] == 160
    assert "images/s" in stderr


def test_default_out_dir_is_numbered(images, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for expected in ("exp", "exp2"):
        code, stdout, _ = run([images[0], *MINI], capsys)
        assert code == 0
        out = Path("runs") / "detect" / expected
        assert (out / "wide.jpg").is_file() and str(out) in stdout


def test_same_file_name_in_two_folders(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _photo(a / "x.jpg", 64, 48, 1), _photo(b / "x.jpg", 48, 64, 2)
    code, _, _ = run([a / "x.jpg", b / "x.jpg", *MINI, *run_folder_args(tmp_path / "o")], capsys)
    assert code == 0
    assert Image.open(tmp_path / "o" / "x.jpg").size == (64, 48)
    assert Image.open(tmp_path / "o" / "x_2.jpg").size == (48, 64)


def test_directory_glob_and_bad_inputs(tmp_path, capsys):
    d = tmp_path / "mixed"
    d.mkdir()
    good = [_photo(d / "a.jpg", 96, 64, 1), _photo(d / "b.png", 64, 80, 2)]
    (d / "notes.txt").write_text("not an image, and not named like one\n")
    (d / "fake.jpg").write_text("plain text with an image name\n")
    (d / "empty.png").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(
        buf, "JPEG")
    (d / "cut.jpg").write_bytes(buf.getvalue()[:600])
    jpeg = bytearray(buf.getvalue())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = (20000).to_bytes(2, "big") * 2          # claims 20000x20000
    (d / "huge.jpg").write_bytes(bytes(jpeg))
    extra = _photo(tmp_path / "extra.png", 50, 50, 4)
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    code, stdout, stderr = run([d, missing, str(tmp_path / "*.png"), str(tmp_path / "*.gif"),
                                *MINI, *run_folder_args(out), "--save-json", out / "d.json"], capsys)
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    expected = {"fake.jpg": "not an image", "empty.png": "empty", "cut.jpg": "truncated",
                "huge.jpg": "too large", "missing.jpg": "no such file", "*.gif": "no files"}
    assert len(errors) == len(expected)
    for name, why in expected.items():
        assert any(name in e and why in e for e in errors), (name, errors)
    assert "skipped 1 non-image" in stderr and "6 inputs failed" in stderr
    assert "Traceback" not in stderr
    # every good image was still processed
    records = json.loads((out / "d.json").read_text())
    assert sorted(Path(r["path"]).name for r in records) == ["a.jpg", "b.png", "extra.png"]
    for p in [*good, extra]:
        assert (out / p.name).is_file()


def test_nothing_to_process(tmp_path, capsys):
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    code, _, stderr = run([empty, *MINI], capsys)
    assert code == 1 and "no images found" in stderr and "no images to process" in stderr


@pytest.mark.parametrize("argv, message", [
    (["--size", "100"], "multiple of 32"),
    (["--thresh", "0"], "thresh"),
    (["--batch", "0"], "batch"),
    (["--model", "yolov2-voc"], "not both"),
])
def test_usage_errors_exit_2(images, argv, message, capsys):
    code, _, stderr = run([images[0], *MINI, *argv], capsys)
    assert code == 2 and message in stderr


def test_no_sources_is_a_usage_error(capsys):
    code, _, _ = run([*MINI], capsys)
    assert code == 2


def test_no_weights_explains_how_to_get_them(images, tmp_path, capsys, monkeypatch):
    import yolo9000.inference.detector as detector_module
    monkeypatch.setattr(detector_module, "DEFAULT_CHECKPOINT", tmp_path / "absent.h5")
    code, _, stderr = run([images[0], "--model", "yolov2-voc"], capsys)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "darknet" in stderr and "yolo9000 train" in stderr and "yolo9000 demo" in stderr


def test_names_file_and_size_option(images, tmp_path, capsys):
    names = tmp_path / "n.names"
    names.write_text("circle\nsquare\ntriangle\n")
    code, stdout, _ = run([images[0], *MINI, "--names", names, "--size", 96, "--thresh", 0.2,
                           *run_folder_args(tmp_path / "o"), "--save-json", "-"], capsys)
    assert code == 0
    dets = json.loads(stdout)[0]["detections"]
    assert dets and all(d["name"] == ["circle", "square", "triangle"][d["class"]] for d in dets)


def test_console_script_exit_code(tmp_path):
    """The real entry point: one good and one missing image -> exit 1, good output written."""
    good = _photo(tmp_path / "ok.jpg", 80, 60, 1)
    proc = subprocess.run([sys.executable, "-m", "yolo9000", "detect", str(good),
                           str(tmp_path / "gone.jpg"), *MINI, *run_folder_args(str(tmp_path / "o"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("error:") == 1 and "gone.jpg" in proc.stderr
    assert (tmp_path / "o" / "ok.jpg").is_file()


def test_old_out_and_json_spellings_still_work(tmp_path, capsys):
    out = tmp_path / "old"
    code, _, stderr = run([IMAGES / "dog.jpg", *MINI, "--out", out, "--json", out / "d.json"], capsys)
    assert code == 0, stderr
    assert "--out is deprecated" in stderr and "--json is deprecated" in stderr
    assert (out / "dog.jpg").is_file() and json.loads((out / "d.json").read_text())[0]["path"]
