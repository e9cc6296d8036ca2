"""`yolo9000 evaluate` end to end on the tiny golden network (64x64, 3 classes).

The ground truth is partly the network's own best detections, so the mAP is strictly between
0 and 1 and a wrong pipeline (boxes in the wrong space, lost classes) shows up in the figures.
"""
import contextlib
import io
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from yolo9000.cli import cli, main
from yolo9000.data.formats import ImageRecord, load_dataset
from conftest import GOLDEN, run_folder_args

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
    from yolo9000.inference.evaluation import predict_records

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


@pytest.fixture(autouse=True)
def _run_folders_in_tmp(tmp_path, monkeypatch):
    # evaluate writes a run folder (runs/evaluate/exp) under the working directory
    monkeypatch.chdir(tmp_path)


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
    from yolo9000.inference.evaluation import evaluate_records

    ds = load_dataset(data, **load)
    voc, coco, dets = evaluate_records(_mini_detector(), ds.records, use_07_metric=use_07_metric)
    return ds, voc, coco, dets


# -- results -----------------------------------------------------------------------------------
def test_table_figures_and_json_match_evaluate_records(yolo_data, tmp_path):
    out_json, dets_json = tmp_path / "res" / "r.json", tmp_path / "dets.json"
    run = tmp_path / "run"
    result = invoke(["--data", yolo_data, *MINI, "--metrics-json", out_json, "--save-json",
                     dets_json, "--json-format", "yolo9000", "--batch", 4, *run_folder_args(run)])
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
    # COCOeval.summarize()'s other numbers (checked against pycocotools in
    # tests/metrics/test_detection.py)
    for key, value in coco.stats().items():
        if key not in ("AP", "AP50", "AP75"):
            expected = None if np.isnan(value) else pytest.approx(value, abs=1e-6)
            assert res[key] == expected, key
    assert 0 < res["APs"] < 1 and 0 < res["AR100"] <= 1
    small = stdout.split("COCO AP small/medium/large:")[1].split("\n")[0]
    assert f"{100 * coco.map_small:.1f} / " in small and f"AR@1/10/100: {100 * coco.ar1:.1f}" in small
    assert [c["num_gt"] for c in res["classes"]] == voc.num_gt.tolist()
    for c, entry in enumerate(res["classes"]):
        assert entry["AP"] == pytest.approx(voc.ap[c], abs=1e-6)
        assert entry["recall"] == pytest.approx(voc.recall[c], abs=1e-6)
    assert f"{100 * voc.map:.1f}" in stdout.split("mAP@0.5 (VOC all-point):")[1].split("\n")[0]

    saved = json.loads(dets_json.read_text())
    assert [r["path"] for r in saved] == [r.path for r in ds.records]
    assert sum(len(r["detections"]) for r in saved) == int(voc.num_det.sum())
    assert not list(out_json.parent.glob(".*.tmp"))   # atomic write left no temp file

    # the run folder: the same metrics, and the PR curves
    assert f"results: {run} (metrics.json, pr_curve.png)" in stdout
    assert json.loads((run / "metrics.json").read_text()) == res
    with Image.open(run / "pr_curve.png") as im:
        assert im.format == "PNG" and im.width > 300


def test_run_folders_are_numbered_and_plot_is_optional(yolo_data, tmp_path, monkeypatch):
    first = invoke(["--data", yolo_data, *MINI])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "runs" / "evaluate" / "exp" / "pr_curve.png").is_file()
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # as if not installed
    second = invoke(["--data", yolo_data, *MINI])
    assert second.exit_code == 0, second.output
    run = tmp_path / "runs" / "evaluate" / "exp2"
    assert "results: runs/evaluate/exp2 (metrics.json)\n" in second.stdout
    assert "matplotlib is not installed" in second.stderr
    assert second.stderr.count("matplotlib") == 1
    assert (run / "metrics.json").is_file() and not (run / "pr_curve.png").exists()


def test_old_save_dets_spelling_writes_the_detect_layout(yolo_data, tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    result = invoke(["--data", yolo_data, *MINI, "--save-dets", old])
    assert result.exit_code == 0, result.output
    assert "--save-dets is deprecated" in result.stderr
    assert "--save-json FILE --json-format yolo9000" in result.stderr
    again = invoke(["--data", yolo_data, *MINI, "--save-json", new, "--json-format", "yolo9000"])
    assert again.exit_code == 0, again.output
    assert old.read_text() == new.read_text()
    assert set(json.loads(old.read_text())[0]) == {"path", "width", "height", "detections"}


# -- COCO results that pycocotools scores the same ---------------------------------------------
MODEL_NAMES = ["red", "green", "blue"]
CATEGORY_IDS = {"red": 11, "green": 3, "blue": 7}      # not 0..2, and not in the model's order
IMAGE_IDS = [904, 17, 5000, 33, 2, 61]


def _coco_ground_truth(paths, label_boxes, image_ids, category_of_class):
    """A COCO instances dict of the test images and boxes, ids chosen by the caller."""
    images = [{"id": i, "file_name": p.name, "width": w, "height": h}
              for i, p, (w, h) in zip(image_ids, paths, SIZES)]
    annotations = []
    for i, boxes in zip(image_ids, label_boxes):
        for c, x1, y1, x2, y2 in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": i,
                                "category_id": category_of_class[c],
                                "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    categories = [{"id": category_of_class[c], "name": n} for c, n in enumerate(MODEL_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _pycocotools_stats(gt_file, results_file):
    COCO = pytest.importorskip("pycocotools.coco").COCO
    COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        coco_dt = coco_gt.loadRes(str(results_file))
        E = COCOeval(coco_gt, coco_dt, "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E.stats


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_save_json_scored_by_pycocotools_gives_the_printed_map(layout, yolo_data, tmp_path):
    pytest.importorskip("pycocotools")
    paths = sorted((yolo_data / "images").glob("*.png"))
    boxes = _label_boxes(paths)
    ckpt = tmp_path / "mini.h5"
    _mini_net().save(str(ckpt), names=MODEL_NAMES)
    if layout == "coco":
        # the dataset's own ids: images and categories numbered their way, classes by name
        data = tmp_path / "coco" / "instances_val.json"
        data.parent.mkdir()
        for p in paths:
            (data.parent / p.name).write_bytes(p.read_bytes())
        gt = _coco_ground_truth(paths, boxes, IMAGE_IDS,
                                [CATEGORY_IDS[n] for n in MODEL_NAMES])
        data.write_text(json.dumps(gt))
        gt_file = data
    else:
        # the documented scheme: image_id = position in the dataset, category_id = class index
        data = yolo_data
        gt_file = tmp_path / "gt.json"
        gt_file.write_text(json.dumps(_coco_ground_truth(paths, boxes, range(6), [0, 1, 2])))
    results, metrics = tmp_path / "results.json", tmp_path / "metrics.json"
    run = invoke(["--data", data, "--weights", ckpt, "--save-json", results,
                  "--metrics-json", metrics])
    assert run.exit_code == 0, run.output
    entries = json.loads(results.read_text())
    assert set(entries[0]) == {"image_id", "category_id", "bbox", "score"}
    expected_images = IMAGE_IDS if layout == "coco" else range(6)
    expected_categories = CATEGORY_IDS.values() if layout == "coco" else range(3)
    assert {e["image_id"] for e in entries} == set(expected_images)
    assert {e["category_id"] for e in entries} <= set(expected_categories)

    stats = _pycocotools_stats(gt_file, results)
    res = json.loads(metrics.read_text())
    assert 0.05 < res["mAP50_95"] < 0.95
    # The file holds boxes to 1/1000 pixel and scores to 1e-6, too little to change a match or
    # the ranking here: the figures agree up to the 6 decimals metrics.json keeps. (Printed
    # "mAP@0.5" is VOC's all-point AP; COCO's 101-point AP50 is the one pycocotools gives.)
    for k, key in enumerate(["mAP50_95", "AP50", "AP75", "APs", "APm", "APl",
                             "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]):
        expected = None if stats[k] == -1 else pytest.approx(stats[k], abs=1e-6)
        assert res[key] == expected, key


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
    dets = invoke(["--data", yolo_data, *MINI, "--save-json", "-"])
    assert dets.exit_code == 0, dets.output
    assert {e["image_id"] for e in json.loads(dets.stdout)} <= set(range(6))
    assert "mAP@0.5" in dets.stderr and "results:" in dets.stderr
    both = invoke(["--data", yolo_data, *MINI, "--save-json", "-", "--metrics-json", "-"])
    assert both.exit_code == 2 and "cannot both write to stdout" in both.output


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
    from yolo9000.inference.evaluation import evaluate_records
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


# -- ground truth independent of the network ---------------------------------------------------
# A network whose detections are known by construction: a 32x32/32 maxpool makes a 4x4 grid of
# the 128x128 input, a 1x1 convolution reads each cell's strongest red and green, and one
# anchor of 1x1 cells with tx = ty = tw = th = 0 puts a box of exactly that cell (32x32 network
# pixels) wherever the cell holds red: objectness logit 40·red − 30 (pure red: σ(10); the grey
# letterbox padding, red 0.5: σ(−10) < 0.005; black: none). The class is red (0) or yellow (1):
# class logits ±(10 − 20·green).
KNOWN_CFG = """[net]
width=128
height=128
channels=3

[maxpool]
size=32
stride=32
padding=0

[convolutional]
size=1
stride=1
pad=0
filters=7
activation=linear

[region]
anchors=1,1
classes=2
coords=4
num=1
softmax=1
"""


def _known_weights():
    """darknet .weights bytes packed by hand: header, 7 biases, 7x3 weights (x, y, w, h, obj,
    class 0, class 1 by red, green, blue)."""
    biases = [0, 0, 0, 0, -30, 10, -10]
    weights = [[0, 0, 0]] * 4 + [[40, 0, 0], [0, -20, 0], [0, 20, 0]]
    return (struct.pack("<iiiQ", 0, 2, 0, 0) + struct.pack("<7f", *biases)
            + struct.pack("<21f", *(v for row in weights for v in row)))


# Per image: size and the objects as (class, cell row, cell column, box in image pixels). The
# letterbox worked out by hand: scale s = min(128 / w, 128 / h), the image placed at the
# integer offset (dx, dy) = ((128 − s·w) // 2, (128 − s·h) // 2), so network pixel (x, y) is
# image pixel ((x − dx) / s, (y − dy) / s); a cell (r, c) spans network pixels 32c..32c+32,
# 32r..32r+32.
KNOWN_IMAGES = [
    # 256x128: s = 1/2, 128x64 placed at dy = 32 (cell rows 1 and 2 hold the image)
    ((256, 128), [(0, 1, 0, (0, 0, 64, 64)), (1, 2, 3, (192, 64, 256, 128))]),
    # 96x192: s = 2/3, 64x128 placed at dx = 32 (cell columns 1 and 2)
    ((96, 192), [(1, 0, 1, (0, 0, 48, 48)), (0, 3, 2, (48, 144, 96, 192))]),
    # 128x128: no letterbox
    ((128, 128), [(1, 1, 1, (32, 32, 64, 64)), (0, 2, 2, (64, 64, 96, 96))]),
    # 64x32: s = 2, 128x64 placed at dy = 32
    ((64, 32), [(0, 1, 3, (48, 0, 64, 16))]),
]
COLOURS = {0: (255, 0, 0), 1: (255, 255, 0)}


@pytest.fixture(scope="module")
def known_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("known")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for i, ((w, h), objects) in enumerate(KNOWN_IMAGES):
        im = Image.new("RGB", (w, h), (0, 0, 0))
        draw = ImageDraw.Draw(im)
        lines = []
        for cls, _, _, (x1, y1, x2, y2) in objects:
            # paint the middle half of the cell only, so resampling cannot bleed into neighbours
            qw, qh = (x2 - x1) / 4, (y2 - y1) / 4
            draw.rectangle([x1 + qw, y1 + qh, x2 - qw - 1, y2 - qh - 1], fill=COLOURS[cls])
            lines.append(f"{cls} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} "
                         f"{(y2 - y1) / h}")
        im.save(root / "images" / f"known{i}.png")
        (root / "labels" / f"known{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "known.cfg").write_text(KNOWN_CFG)
    (root / "known.weights").write_bytes(_known_weights())
    return root


def test_detections_land_on_hand_mapped_boxes_and_score_perfectly(known_data, tmp_path):
    """Ground truth from the drawing, not from the network: every detection must come back in
    image pixels exactly on its object (through the letterbox worked out by hand) and both
    mAPs are 1."""
    out_json, dets_json = tmp_path / "r.json", tmp_path / "dets.json"
    result = invoke(["--data", known_data, "--cfg", known_data / "known.cfg",
                     "--weights", known_data / "known.weights", "--json", out_json,
                     "--save-dets", dets_json])
    assert result.exit_code == 0, result.output
    saved = json.loads(dets_json.read_text())
    assert len(saved) == len(KNOWN_IMAGES)
    for record in saved:
        index = int(record["path"].rsplit("known", 1)[1].split(".")[0])
        (w, h), objects = KNOWN_IMAGES[index]
        assert (record["width"], record["height"]) == (w, h)
        got = sorted((d["class"], *d["box"]) for d in record["detections"])
        expected = sorted((cls, *box) for cls, _, _, box in objects)
        assert len(got) == len(expected), record
        np.testing.assert_allclose(got, expected, atol=0.01, err_msg=record["path"])
        assert all(d["score"] > 0.99 for d in record["detections"])
    res = json.loads(out_json.read_text())
    assert res["mAP50"] == pytest.approx(1.0) and res["mAP50_95"] == pytest.approx(1.0)
    assert [c["num_gt"] for c in res["classes"]] == [4, 3]


def test_data_file_evaluates_its_valid_list_and_says_so(yolo_data, tmp_path):
    images = sorted((yolo_data / "images").iterdir())
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in images[:2]))
    (tmp_path / "valid.txt").write_text("".join(f"{p}\n" for p in images[2:]))
    data = tmp_path / "set.data"
    data.write_text("classes = 3\ntrain = train.txt\nvalid = valid.txt\n")
    result = invoke(["--data", data, *MINI])
    assert result.exit_code == 0, result.output
    assert f"note: evaluating the 'valid' list of {data}" in result.stderr
    assert f"(yolo, {len(images) - 2} images" in result.stdout

    chosen = invoke(["--data", data, *MINI, "--split", "train"])
    assert "evaluating the 'train' list" in chosen.stderr and "(yolo, 2 images" in chosen.stdout

    data.write_text("classes = 3\ntrain = train.txt\n")
    no_valid = invoke(["--data", data, *MINI])
    assert no_valid.exit_code == 0, no_valid.output
    assert "evaluating the 'train' list" in no_valid.stderr and "no 'valid =' entry" in no_valid.stderr
    assert "(yolo, 2 images" in no_valid.stdout
