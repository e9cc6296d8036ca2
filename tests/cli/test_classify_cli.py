"""`yolo9000 classify` and `yolo9000 evaluate` on a classifier, through the installed script."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import IMAGES, TESTS, run_folder_args, run_installed

sys.path.insert(0, str(TESTS / "training"))
from test_train_classifier import COLOURS, TINY_CLASSIFIER, make_colour_classes  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny colour classifier trained in-process (the training CLI has its own tests)."""
    from yolo9000.training.settings import TrainSettings
    from yolo9000.training.trainer import Trainer
    root = tmp_path_factory.mktemp("classifier")
    make_colour_classes(root / "train", per_class=16, seed=1)
    make_colour_classes(root / "val", per_class=6, seed=2)
    (root / "tiny.cfg").write_text(TINY_CLASSIFIER)
    Trainer(TrainSettings(cfg=str(root / "tiny.cfg"), data=str(root / "train"), out=str(root / "run"),
                          val=str(root / "val"), workers=0, seed=3, save_every=0),
            echo=lambda *_: None).setup().train()
    # best.h5: written by the final evaluation, with batch-norm statistics exact for the final
    # weights (last.h5 keeps darknet's rolling averages, which lag a 20-iteration run)
    return root, root / "run" / "weights" / "best.h5"


def test_classify_prints_and_saves_the_top_classes(trained, tmp_path):
    root, weights = trained
    images = sorted((root / "val").glob("*/*.png"))
    out = tmp_path / "top.json"
    r = run_installed("classify", *images[:4], root / "val" / "red", "--weights", weights,
                      "--top", 2, "--save-json", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.endswith(tuple("0123456789")) and ": " in l]
    entries = json.loads(out.read_text())
    assert len(entries) == 4 + 6          # four files and the six images of a folder
    first = entries[0]
    assert set(first) == {"path", "width", "height", "top"} and (first["width"], first["height"]) == (48, 48)
    assert len(first["top"]) == 2 and first["top"][0]["probability"] >= first["top"][1]["probability"]
    # the printed table says the same as the JSON
    assert f"{first['top'][0]['name']} {first['top'][0]['probability']:.3f}" in r.stdout
    # a trained colour classifier gets most of them right (the folder name is the truth)
    right = sum(Path(e["path"]).parent.name == e["top"][0]["name"] for e in entries)
    assert right >= 8, entries
    assert lines


def test_classify_bad_inputs_are_one_line_each_and_the_rest_goes_on(trained, tmp_path):
    root, weights = trained
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    good = sorted((root / "val" / "green").glob("*.png"))[0]
    r = run_installed("classify", broken, tmp_path / "missing.png", good, "--weights", weights,
                      cwd=tmp_path)
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 2
    assert any("broken.jpg" in e and "not an image" in e for e in errors)
    assert any("missing.png" in e and "no such file" in e for e in errors)
    assert "Traceback" not in r.stderr
    assert str(good) in r.stdout and "2 inputs failed" in r.stderr


def test_classify_refuses_a_detector_and_detect_points_a_classifier_to_classify(trained, tmp_path):
    root, weights = trained
    r = run_installed("classify", IMAGES / "dog.jpg", "--weights", weights, "--model",
                      "yolov2-tiny-voc", cwd=tmp_path)
    assert r.returncode == 1 and "not a classifier" in r.stderr and "Traceback" not in r.stderr
    r = run_installed("detect", IMAGES / "dog.jpg", "--weights", weights, cwd=tmp_path)
    assert r.returncode == 1 and "yolo9000 classify" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_evaluate_a_classifier(trained, tmp_path):
    root, weights = trained
    run_dir = tmp_path / "eval"
    metrics_path = tmp_path / "m.json"
    preds = tmp_path / "p.json"
    r = run_installed("evaluate", "--weights", weights, "--data", root / "val",
                      "--metrics-json", metrics_path, "--save-json", preds,
                      *run_folder_args(run_dir), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(metrics_path.read_text())
    assert metrics["task"] == "classification" and metrics["images"] == 18
    assert metrics["precision"] == "fp32"
    # top-1 recomputed from the per-image predictions and the class folders
    entries = json.loads(preds.read_text())
    truth = [Path(e["path"]).parent.name for e in entries]
    top1 = np.mean([e["top"][0]["name"] == t for e, t in zip(entries, truth)])
    assert metrics["top1"] == pytest.approx(top1)
    assert metrics["top5"] == 1.0
    confusion = np.array(metrics["confusion"])
    assert confusion.sum() == 18 and confusion.trace() == round(top1 * 18)
    for row in metrics["classes"]:
        assert row["images"] == 6
    # the per-class table and the summary are printed, the confusion matrix drawn
    for name in COLOURS:
        assert any(line.startswith(name) for line in r.stdout.splitlines())
    assert f"top-1: {100 * top1:.1f}" in r.stdout
    assert (run_dir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics


def test_evaluate_a_classifier_on_data_with_an_unknown_class(trained, tmp_path):
    root, weights = trained
    make_colour_classes(tmp_path / "data", per_class=2)
    (tmp_path / "data" / "purple").mkdir()
    (root / "val" / "red")  # noqa: B018 - the model knows blue, green, red only
    import shutil
    shutil.copy(next((tmp_path / "data" / "red").glob("*.png")), tmp_path / "data" / "purple" / "p.png")
    r = run_installed("evaluate", "--weights", weights, "--data", tmp_path / "data", cwd=tmp_path)
    assert r.returncode == 1 and "purple" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_train_a_classifier_through_the_installed_command(tmp_path):
    make_colour_classes(tmp_path / "data", per_class=10, seed=4)
    (tmp_path / "tiny.cfg").write_text(TINY_CLASSIFIER)
    run_dir = tmp_path / "runs" / "c"
    r = run_installed("train", "--cfg", tmp_path / "tiny.cfg", "--data", tmp_path / "data",
                      "--epochs", 1, "--val-fraction", 0.2, "--workers", 0,
                      *run_folder_args(run_dir), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "held out" in r.stderr and "validation top-1" in r.stdout
    assert "poly power 4" in r.stdout
    assert (run_dir / "weights" / "last.h5").is_file()
    r = run_installed("train", "--cfg", tmp_path / "tiny.cfg", "--data", tmp_path / "data",
                      "--epochs", 1, "--max-batches", 3, cwd=tmp_path)
    assert r.returncode == 2 and "not both" in r.stderr
