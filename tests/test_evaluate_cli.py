"""`yolo9000 evaluate` end to end on the tiny golden network (64x64, 3 classes).

The ground truth is partly the network's own best detections, so the mAP is strictly between
0 and 1 and a wrong pipeline (boxes in the wrong space, lost classes) shows up in the figures.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from yolo9000.cli import cli, main
from yolo9000.data.datasets import ImageRecord, load_dataset
from conftest import GOLDEN

CFG, WEIGHTS = GOLDEN / "mini.cfg", GOLDEN / "mini.weights"
MINI = ["--cfg", str(CFG), "--weights", str(WEIGHTS)]

SIZES = [(96, 80), (120, 90), (70, 110), (100, 100), (128, 72), (84, 96)]


def _mini_net():
    from yolo9000.model.network import Network
    return Network.from_cfg(str(CFG)).load_weights(str(WEIGHTS))


def _mini_detector():
    """The pipeline `evaluate` runs, at its default thresholds."""
    from yolo9000.inference.detector import Detector
    return Detector.from_network(_mini_net(), thresh=0.005, nms=0.45, evaluation=True)


def _draw_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i, (w, h) in enumerate(SIZES):
        im = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            x2, y2 = x1 + int(rng.integers(10, w // 2)), y1 + int(rng.integers(10, h // 2))
            draw.rectangle([x1, y1, x2, y2], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        path = folder / f"img{i}.png"
        im.save(path)
        paths.append(path)
    return paths


def _label_boxes(paths):
    """Per image: [(class, x1, y1, x2, y2)] — the network's top detection plus a made-up box."""
    from yolo9000.inference.validate import predict_records

    records = [ImageRecord(str(p), w, h, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                           np.zeros(0, bool)) for p, (w, h) in zip(paths, SIZES)]
    dets = predict_records(_mini_detector(), records)
    out = []
    for k, (w, h) in enumerate(SIZES):
        d = dets[k]
        best = int(np.argmax(d.scores))
        x1, y1, x2, y2 = (float(v) for v in d.boxes[best])
        boxes = [(int(d.classes[best]), x1, y1, x2, y2)]
        # a box the network is unlikely to find, of another class, so recall stays below 1
        boxes.append(((int(d.classes[best]) + 1) % 3, 0.1 * w, 0.6 * h, 0.3 * w, 0.9 * h))
        out.append(boxes)
    return out


@pytest.fixture(scope="module")
def yolo_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo_data")
    paths = _draw_images(root / "images")
    (root / "labels").mkdir()
    for p, (w, h), boxes in zip(paths, SIZES, _label_boxes(paths)):
        lines = [f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
                 f"{(y2 - y1) / h:.6f}" for c, x1, y1, x2, y2 in boxes]
        (root / "labels" / f"{p.stem}.txt").write_text("\n".join(lines) + "\n")
    return root


def invoke(args):
    result = CliRunner().invoke(cli, ["evaluate", *map(str, args)])
    return result


def run_main(argv, capsys):
    """The real entry point (it turns UserError into one line); -> (code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(["evaluate", *map(str, argv)])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def _direct(data, use_07_metric=False, **load):
    from yolo9000.inference.validate import evaluate_records

    ds = load_dataset(data, **load)
    voc, coco, dets = evaluate_records(_mini_detector(), ds.records, use_07_metric=use_07_metric)
    return ds, voc, coco, dets


# -- results -----------------------------------------------------------------------------------
def test_table_figures_and_json_match_evaluate_records(yolo_data, tmp_path):
    out_json, dets_json = tmp_path / "res" / "r.json", tmp_path / "dets.json"
    result = invoke(["--data", yolo_data, *MINI, "--metrics-json", out_json, "--save-dets", dets_json,
                     "--batch", 4])
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    assert "mAP@0.5 (VOC all-point):" in stdout
    assert "COCO mAP@[.5:.95]:" in stdout and "AP75:" in stdout
    header = next(line for line in stdout.splitlines() if line.startswith("class "))
    assert header.split() == ["class", "#gt", "#det", "AP50", "recall", "precision"]
    for name in ("class0", "class1", "class2"):
        assert any(line.split()[0] == name for line in stdout.splitlines() if line.strip())
    assert "6 images in" in stdout and "images/s" in stdout
    assert "evaluating 6/6" in result.stderr        # progress goes to stderr

    ds, voc, coco, dets = _direct(yolo_data)
    res = json.loads(out_json.read_text())
    assert 0.0 < voc.map < 1.0                       # a figure a broken pipeline would move
    assert res["mAP50"] == pytest.approx(voc.map, abs=1e-6)
    assert res["mAP50_95"] == pytest.approx(coco.map, abs=1e-6)
    assert res["AP50"] == pytest.approx(coco.map50, abs=1e-6)
    assert res["AP75"] == pytest.approx(coco.map75, abs=1e-6)
    assert res["images"] == 6 and res["seconds"] > 0 and res["metric"] == "voc all-point"
    assert [c["num_gt"] for c in res["classes"]] == voc.num_gt.tolist()
    for c, entry in enumerate(res["classes"]):
        assert entry["AP"] == pytest.approx(voc.ap[c], abs=1e-6)
        assert entry["recall"] == pytest.approx(voc.recall[c], abs=1e-6)
    assert f"{100 * voc.map:.1f}" in stdout.split("mAP@0.5 (VOC all-point):")[1].split("\n")[0]

    saved = json.loads(dets_json.read_text())
    assert [r["path"] for r in saved] == [r.path for r in ds.records]
    assert sum(len(r["detections"]) for r in saved) == int(voc.num_det.sum())
    assert not list(out_json.parent.glob(".*.tmp"))   # atomic write left no temp file


def test_voc07_metric(yolo_data, tmp_path):
    out_json = tmp_path / "r07.json"
    result = invoke(["--data", yolo_data, *MINI, "--voc07", "--metrics-json", out_json])
    assert result.exit_code == 0, result.output
    assert "mAP@0.5 (VOC2007 11-point):" in result.stdout
    assert "AP50(07)" in result.stdout and "all-point" not in result.stdout
    _, voc, _, _ = _direct(yolo_data, use_07_metric=True)
    res = json.loads(out_json.read_text())
    assert res["metric"] == "voc07 11-point"
    assert res["mAP50"] == pytest.approx(voc.map, abs=1e-6)


def test_json_to_stdout_keeps_stdout_pure(yolo_data):
    result = invoke(["--data", yolo_data, *MINI, "--metrics-json", "-"])
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)
    assert res["images"] == 6
    assert "mAP@0.5" in result.stderr


def test_h5_checkpoint_without_cfg(yolo_data, tmp_path):
    ckpt = tmp_path / "mini.h5"
    _mini_net().save(str(ckpt), names=["red", "green", "blue"])
    out_json = tmp_path / "r.json"
    result = invoke(["--data", yolo_data, "--weights", ckpt, "--metrics-json", out_json])
    assert result.exit_code == 0, result.output
    # the dataset has no names file, so the checkpoint's names label the table
    names_col = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"red", "green", "blue"} <= set(names_col)
    _, voc, _, _ = _direct(yolo_data)
    res = json.loads(out_json.read_text())
    assert res["mAP50"] == pytest.approx(voc.map, abs=1e-6)
    assert res["size"] == [64, 64]


def _write_voc(root, paths, label_boxes, names, difficult_first=False):
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for p, (w, h), boxes in zip(paths, SIZES, label_boxes):
        (root / "JPEGImages" / p.name).write_bytes(p.read_bytes())
        objects = "".join(
            f"<object><name>{names[c]}</name><difficult>{int(difficult_first and j == 0)}"
            f"</difficult><bndbox><xmin>{x1 + 1:.1f}</xmin><ymin>{y1 + 1:.1f}</ymin>"
            f"<xmax>{x2:.1f}</xmax><ymax>{y2:.1f}</ymax></bndbox></object>"
            for j, (c, x1, y1, x2, y2) in enumerate(boxes))
        (root / "Annotations" / f"{p.stem}.xml").write_text(
            f"<annotation><filename>{p.name}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{objects}</annotation>")


def test_voc_names_mapped_to_checkpoint_and_difficult_reaches_metrics(yolo_data, tmp_path):
    paths = sorted((yolo_data / "images").glob("*.png"))
    boxes = _label_boxes(paths)
    model_names = ["red", "green", "blue"]
    voc_root = tmp_path / "VOC"
    # The network's own best box of each image is difficult: finding it must not count.
    _write_voc(voc_root, paths, boxes, model_names, difficult_first=True)
    ckpt = tmp_path / "mini.h5"
    _mini_net().save(str(ckpt), names=model_names)

    out_json = tmp_path / "voc.json"
    result = invoke(["--data", voc_root, "--weights", ckpt, "--metrics-json", out_json])
    assert result.exit_code == 0, result.output
    # load_dataset numbers VOC classes alphabetically (blue, green, red): mapped back by name
    assert "mapped the dataset's" in result.stderr
    assert "6 difficult" in result.stdout
    res = json.loads(out_json.read_text())
    expected_gt = np.bincount([b[1][0] for b in boxes], minlength=3)   # non-difficult only
    assert [c["num_gt"] for c in res["classes"]] == expected_gt.tolist()
    assert [c["name"] for c in res["classes"]] == model_names

    # The same figures with the flags as read from the XML, computed directly...
    from yolo9000.inference.validate import evaluate_records
    ds = load_dataset(voc_root, names=model_names)
    voc, _, _ = evaluate_records(_mini_detector(), ds.records)
    assert res["mAP50"] == pytest.approx(voc.map, abs=1e-6)

    # ...and --no-difficult drops those objects: the detections on them become false positives.
    dropped = invoke(["--data", voc_root, "--weights", ckpt, "--no-difficult", "--json",
                      tmp_path / "nd.json"])
    assert dropped.exit_code == 0, dropped.output
    res_nd = json.loads((tmp_path / "nd.json").read_text())
    assert [c["num_gt"] for c in res_nd["classes"]] == expected_gt.tolist()
    assert res_nd["mAP50"] < res["mAP50"]


# -- classes -----------------------------------------------------------------------------------
def _copy_yolo(src, dst, names=None):
    for sub in ("images", "labels"):
        (dst / sub).mkdir(parents=True)
        for f in (src / sub).iterdir():
            (dst / sub / f.name).write_bytes(f.read_bytes())
    if names is not None:
        (dst / "classes.txt").write_text("\n".join(names) + "\n")
    return dst


def test_class_count_mismatch_names_both_counts(yolo_data, tmp_path, capsys):
    data = _copy_yolo(yolo_data, tmp_path / "four", names=["a", "b", "c", "d"])
    code, out, err = run_main(["--data", data, *MINI], capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and str(data) in err
    assert "predicts 3 classes" in err and "has 4" in err
    assert "Traceback" not in err + out


def test_same_count_different_names_warns_and_uses_dataset_ids(yolo_data, tmp_path):
    data = _copy_yolo(yolo_data, tmp_path / "named", names=["cat", "dog", "cow"])
    ckpt = tmp_path / "mini.h5"
    _mini_net().save(str(ckpt), names=["red", "green", "blue"])
    out_json = tmp_path / "r.json"
    result = invoke(["--data", data, "--weights", ckpt, "--metrics-json", out_json])
    assert result.exit_code == 0, result.output
    assert "class names differ" in result.stderr
    res = json.loads(out_json.read_text())
    assert [c["name"] for c in res["classes"]] == ["cat", "dog", "cow"]
    _, voc, _, _ = _direct(yolo_data)
    assert res["mAP50"] == pytest.approx(voc.map, abs=1e-6)


# -- bad input ---------------------------------------------------------------------------------
def _assert_one_line_error(code, out, err, *fragments):
    assert code == 1, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    for f in fragments:
        assert str(f) in err, err


def test_missing_dataset_subprocess(tmp_path):
    missing = tmp_path / "no_such_dir"
    proc = subprocess.run([sys.executable, "-m", "yolo9000", "evaluate", "--data", str(missing),
                           *MINI], capture_output=True, text=True, timeout=60)
    _assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, missing)


def test_dataset_without_boxes(tmp_path, capsys):
    data = tmp_path / "empty"
    paths = _draw_images(data / "images")
    (data / "labels").mkdir()
    for p in paths:
        (data / "labels" / f"{p.stem}.txt").write_text("")
    code, out, err = run_main(["--data", data, *MINI], capsys)
    _assert_one_line_error(code, out, err, data, "no boxes")


def test_missing_weights_file(yolo_data, tmp_path, capsys):
    missing = tmp_path / "nope.weights"
    code, out, err = run_main(["--data", yolo_data, "--cfg", CFG, "--weights", missing], capsys)
    _assert_one_line_error(code, out, err, missing, "not found")


def test_no_weights_at_all(yolo_data, tmp_path, monkeypatch, capsys):
    import yolo9000.inference.detector as detector_module
    # as on an installation without the bundled demo model
    monkeypatch.setattr(detector_module, "DEFAULT_CHECKPOINT", tmp_path / "absent.h5")
    code, out, err = run_main(["--data", yolo_data], capsys)
    _assert_one_line_error(code, out, err, "no weights given", "--weights")


def test_weights_do_not_fit_cfg(yolo_data, tmp_path, capsys):
    # the same network with 4 classes: its last layer needs more floats than mini.weights holds
    cfg = tmp_path / "mini4.cfg"
    cfg.write_text(CFG.read_text().replace("filters=40", "filters=45")
                   .replace("classes=3", "classes=4"))
    code, out, err = run_main(["--data", yolo_data, "--cfg", cfg, "--weights", WEIGHTS], capsys)
    _assert_one_line_error(code, out, err, WEIGHTS, "wrong size")


def test_darknet_weights_need_a_cfg(yolo_data, capsys):
    code, out, err = run_main(["--data", yolo_data, "--weights", WEIGHTS], capsys)
    _assert_one_line_error(code, out, err, WEIGHTS, "--cfg")


def test_names_file_count_mismatch(yolo_data, tmp_path, capsys):
    names = tmp_path / "two.names"
    names.write_text("a\nb\n")
    code, out, err = run_main(["--data", yolo_data, *MINI, "--names", names], capsys)
    _assert_one_line_error(code, out, err, names, "2 class names", "3 classes")
