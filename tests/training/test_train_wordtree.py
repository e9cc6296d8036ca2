"""YOLO9000 training: a word-tree detector trained jointly on boxes and classification crops
resumes exactly, and its training-time validation is what `evaluate` reports."""
import csv
import json

import numpy as np
import pytest

from conftest import run_folder_args, run_installed
from yolo9000.data.synthetic_hierarchy import make_hierarchy_data
from yolo9000.errors import UserError
from yolo9000.model.cfg import adapt_cfg, parse_cfg_text
from yolo9000.model.zoo import bundled_file
from yolo9000.training.settings import TrainSettings
from yolo9000.training.trainer import Trainer


@pytest.fixture(scope="module")
def hierarchy(tmp_path_factory):
    root = tmp_path_factory.mktemp("hierarchy")
    return make_hierarchy_data(root, n_detection=24, n_val=8, crops_per_class=4, size=64,
                               crop_size=48, seed=2)


def settings(paths, out, **kw):
    base = dict(cfg="yolov2-shapes-tree", data=str(paths["detection"]), out=str(out),
                classification_data=str(paths["crops"]), classification_ratio=0.25,
                max_batches=6, batch=8, subdivisions=2, learning_rate=0.002, burn_in=2,
                optimizer="adam", size=64, workers=0, seed=4, save_every=0)
    base.update(kw)
    return TrainSettings(**base)


def quiet(*_):
    pass


def test_a_tree_cfg_keeps_its_classes_when_adapted(tmp_path):
    text = bundled_file("yolov2-shapes-tree.cfg").read_text()
    adapted, changes = adapt_cfg(text, classes=6, source="x.cfg")
    region = parse_cfg_text(adapted).sections[-1]
    assert region.options["classes"] == "11" and not any("classes" in c for c in changes)
    # a tree file named relative to a cfg file is named absolutely in the adapted cfg
    (tmp_path / "my.tree").write_text("a -1\nb -1\n")
    mine = tmp_path / "my.cfg"
    mine.write_text(text.replace("tree=shapes.tree", "tree=my.tree").replace("classes=11", "classes=2"))
    adapted, _ = adapt_cfg(mine.read_text(), source=str(mine))
    assert parse_cfg_text(adapted).sections[-1].options["tree"] == str((tmp_path / "my.tree").resolve())


def test_joint_training_resumes_exactly(hierarchy, tmp_path):
    straight = Trainer(settings(hierarchy, tmp_path / "a"), echo=quiet).setup()
    assert straight.names[:3] == ["polygon", "round", "spiky"] and len(straight.names) == 11
    # the detection set's classes are tree nodes now: polygon 0, round 1, spiky 2, square 4,
    # circle 6, star 9
    nodes = {int(c) for r in straight.train_set.records for c in r.classes}
    assert nodes <= {0, 1, 2, 4, 6, 9}
    straight.train()
    first = Trainer(settings(hierarchy, tmp_path / "b"), echo=quiet).setup()
    first.train(iterations=3)
    resumed = Trainer(settings(hierarchy, tmp_path / "b"), echo=quiet).setup(resume=True)
    resumed.resume()
    resumed.train()
    for (_, name, a, _), (_, _, b, _) in zip(straight.net.parameters(), resumed.net.parameters()):
        assert np.abs(a - b).max() <= 1e-6, name
    with open(tmp_path / "a" / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(np.isfinite(float(r["loss"])) for r in rows)


def test_classification_data_needs_a_tree(hierarchy, tmp_path):
    with pytest.raises(UserError, match="needs a word-tree region"):
        Trainer(settings(hierarchy, tmp_path / "x", cfg="yolov2-shapes"), echo=quiet).setup()


def test_training_validation_and_evaluate_agree_on_a_tree_model(hierarchy, tmp_path):
    """results.csv's last mAP (training-time validation, fine classes scored as tree nodes)
    equals `yolo9000 evaluate` of the checkpoint that evaluation wrote."""
    trainer = Trainer(settings(hierarchy, tmp_path / "run", val=str(hierarchy["val"]),
                               max_batches=80, learning_rate=0.004), echo=quiet).setup()
    trainer.train()
    with open(tmp_path / "run" / "results.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["mAP50"]) > 0       # a model that finds something, so agreement means something
    metrics = tmp_path / "m.json"
    r = run_installed("evaluate", "--weights", tmp_path / "run" / "weights" / "best.h5",
                      "--data", hierarchy["val"], "--metrics-json", metrics,
                      *run_folder_args(tmp_path / "eval"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(metrics.read_text())
    assert [c["name"] for c in result["classes"]] == [
        "triangle", "square", "hexagon", "circle", "ellipse", "ring", "star", "cross"]
    assert result["mAP50"] == pytest.approx(float(last["mAP50"]), abs=6e-5)
    assert result["mAP50_95"] == pytest.approx(float(last["mAP50_95"]), abs=6e-5)
