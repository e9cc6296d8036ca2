"""`yolo9000 train` at toy size: every option reaches the run, --resume, --weights/--cutoff,
--anchors. The numbers are worked out from the options by hand (learning rates, images seen,
anchors) or come from a run configured directly through TrainSettings."""
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from yolo9000 import Network
from yolo9000.cli import cli
from yolo9000.training.settings import TrainSettings
from yolo9000.training.trainer import Trainer


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes(root / "data", n_train=8, n_val=2, size=64, seed=11)


BACKBONE_LAYERS = 9


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """(network, darknet .weights of its first 9 layers): yolov2-shapes at 64 px with every
    parameter drawn at random, far from what a fresh network starts with."""
    rng = np.random.default_rng(4)
    source = Network.from_cfg("yolov2-shapes", width=64, height=64)
    for _, _, p, _ in source.parameters():
        p[...] = rng.uniform(0.5, 1.5, p.shape)
    path = tmp_path_factory.mktemp("backbone") / "backbone.weights"
    source.save_weights(path, cutoff=BACKBONE_LAYERS)
    return source, path


def train(*args):
    result = CliRunner().invoke(cli, ["train", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def log_rows(run):
    with open(run / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def trained_parameters(path):
    return {f"{i}/{name}": p.copy() for i, name, p, _ in Network.load(path).parameters()}


def assert_same_parameters(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


TOY = ["--cfg", "yolov2-shapes", "--size", 64, "--workers", 0]


def test_every_option_reaches_the_run(shapes, tmp_path):
    train(*TOY, "--data", shapes["train"], "--val", shapes["val"], "--batch", 4,
          "--subdivisions", 2, "--max-batches", 3, "--lr", 0.0123, "--momentum", 0.8, "--decay", 0.001,
          "--burn-in", 0, "--steps", "1,2", "--scales", "0.5,0.1", "--no-multiscale",
          "--no-augment", "--seed", 3, "--save-every", 0,
          "--project", tmp_path / "runs", "--name", "toy")
    run = tmp_path / "runs" / "toy"
    args = json.loads((run / "args.json").read_text())
    expected = dict(cfg="yolov2-shapes", data=str(shapes["train"]), val=str(shapes["val"]),
                    size=64, batch=4, subdivisions=2, max_batches=3, learning_rate=0.0123, momentum=0.8,
                    decay=0.001, burn_in=0, policy="steps", steps=[1, 2], scales=[0.5, 0.1],
                    multiscale=False, augment=False, seed=3, save_every=0, workers=0)
    assert {k: args[k] for k in expected} == expected
    rows = log_rows(run)
    # lr 0.0123, halved from iteration 1, then a tenth of that from iteration 2; 4 images each
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert [int(r["seen"]) for r in rows] == [4, 8, 12]
    assert [int(r["size"]) for r in rows] == [64, 64, 64]
    np.testing.assert_allclose([float(r["lr"]) for r in rows], [0.0123, 0.00615, 0.000615])
    assert Network.from_cfg(str(run / "model.cfg")).width == 64
    with open(run / "results.csv", newline="") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [3]    # --val at the end

    # momentum, decay, subdivisions and seed only show in the weights: the same run set up
    # directly must give exactly the same ones
    direct = Trainer(TrainSettings(
        cfg="yolov2-shapes", data=str(shapes["train"]), val=str(shapes["val"]),
        out=str(tmp_path / "direct"), size=64, batch=4, subdivisions=2, max_batches=3,
        learning_rate=0.0123, momentum=0.8, decay=0.001, burn_in=0, policy="steps", steps=[1, 2], scales=[0.5, 0.1], multiscale=False,
        augment=False, workers=0, seed=3, save_every=0), echo=lambda *_: None).setup()
    direct.train()
    assert_same_parameters(trained_parameters(run / "weights" / "last.h5"),
                           trained_parameters(tmp_path / "direct" / "weights" / "last.h5"))


def test_resume_continues_where_the_run_stopped(shapes, backbone, tmp_path):
    """Stopped after 2 of 3 iterations, moved, resumed with --max-batches raised to 4: the
    same weights as 4 iterations straight (augmentation on), all in the moved folder. Both
    start from --weights, which a resume does not load again: starting over instead of
    continuing from the checkpoint would give other weights."""
    common = [*TOY, "--data", shapes["train"], "--batch", 2, "--lr", 0.001, "--burn-in", 0,
              "--seed", 1, "--project", tmp_path, "--weights", backbone[1],
              "--cutoff", BACKBONE_LAYERS]
    train(*common, "--max-batches", 3, "--iterations", 2, "--name", "stopped")
    assert len(log_rows(tmp_path / "stopped")) == 2
    stopped = (tmp_path / "stopped").rename(tmp_path / "moved")
    train("--resume", stopped, "--max-batches", 4)
    train(*common, "--max-batches", 4, "--name", "straight")
    assert [int(r["iteration"]) for r in log_rows(stopped)] == [1, 2, 3, 4]
    assert_same_parameters(trained_parameters(stopped / "weights" / "last.h5"),
                           trained_parameters(tmp_path / "straight" / "weights" / "last.h5"),
                           atol=1e-6)
    assert Network.load(stopped / "weights" / "last.h5").seen == 4 * 2


def test_weights_cutoff_and_anchors(shapes, backbone, tmp_path):
    """A backbone's first 9 layers from a darknet .weights file; with lr 0 they come out of
    training exactly as loaded, while the layers past the cutoff keep their own start."""
    source, path = backbone
    anchors = [[0.5, 1.0], [1.0, 0.5], [2.0, 2.0]]
    train(*TOY, "--data", shapes["train"], "--weights", path, "--cutoff", BACKBONE_LAYERS,
          "--anchors", "0.5,1, 1,0.5, 2,2", "--lr", 0, "--burn-in", 0, "--max-batches", 1,
          "--batch", 2, "--no-augment", "--no-multiscale", "--project", tmp_path, "--name", "ft")
    trained = Network.load(tmp_path / "ft" / "weights" / "last.h5")
    for i in range(BACKBONE_LAYERS):
        for name in ("weights", "biases", "scales"):
            if name in source.layers[i].params:
                np.testing.assert_array_equal(trained.layers[i].params[name],
                                              source.layers[i].params[name], err_msg=f"{i}/{name}")
    fresh = Network.from_cfg(str(tmp_path / "ft" / "model.cfg"))
    for i in range(BACKBONE_LAYERS, len(trained.layers)):
        if "weights" in trained.layers[i].params:
            np.testing.assert_array_equal(trained.layers[i].weights, fresh.layers[i].weights)
    np.testing.assert_allclose(trained.region.anchors, anchors)
    assert trained.output_shape == (3 * (4 + 1 + 5), 4, 4)     # 3 anchors, 5 classes, stride 16


def test_a_refused_start_leaves_no_run_folder(shapes, backbone, tmp_path):
    _, weights = backbone
    bad = CliRunner().invoke(cli, ["train", *map(str, TOY), "--data", str(shapes["train"]),
                                   "--weights", str(weights), "--cutoff", "3",
                                   "--project", str(tmp_path / "runs"), "--name", "x"])
    assert bad.exit_code == 1 and "wrong size" in str(bad.exception)
    assert not (tmp_path / "runs" / "x").exists()
    missing = CliRunner().invoke(cli, ["train", *map(str, TOY), "--data", str(tmp_path / "nope"),
                                       "--project", str(tmp_path / "runs"), "--name", "y"])
    assert missing.exit_code == 1 and not (tmp_path / "runs" / "y").exists()


def test_train_reports_bad_labels_and_unreadable_images_with_file_line(tmp_path):
    """The training and --val sets go through the same data report as evaluate and
    cluster-anchors: each problem with its file:line, then a summary per set."""
    from yolo9000.data.synthetic_shapes import make_shapes
    paths = make_shapes(tmp_path / "data", n_train=4, n_val=2, size=64, seed=5)
    root = paths["root"]
    train_label = root / "labels" / "train" / "000002.txt"
    lines_before = len(train_label.read_text().splitlines())
    with open(train_label, "a") as f:
        f.write("0 0.5 0.5 0.2\n")                       # 4 fields: malformed
    (root / "images" / "train" / "broken.jpg").write_bytes(b"not an image at all")
    with open(paths["train"], "a") as f:
        f.write("images/train/broken.jpg\n")
    val_label = root / "labels" / "val" / "000001.txt"
    with open(val_label, "a") as f:
        f.write("7 0.5 0.5 0.2 0.2\n")                   # class 7 of 3 names
    val_line = len(val_label.read_text().splitlines())

    result = CliRunner().invoke(cli, ["train", *map(str, TOY), "--data", paths["train"],
                                      "--val", paths["val"], "--batch", 2, "--max-batches", 1,
                                      "--save-every", 0, "--project", tmp_path / "runs"])
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert f"warning: {train_label}:{lines_before + 1}: expected 'class cx cy w h'" in err
    assert f"warning: {root / 'images' / 'train' / 'broken.jpg'}: " in err
    assert "(image skipped)" in err
    assert f"warning: {val_label}:{val_line}: class id 7 out of range" in err
    assert "train data" in err and "skipped 1 malformed" in err \
        and "skipped 1 missing or unreadable image" in err
    assert "val data" in err
    assert "data: 4 training images" in result.stdout        # the broken one left out
