"""Training a classifier through the same trainer: it learns, resumes exactly, counts epochs,
continues at a higher resolution and hands its first layers to a detector."""
import csv

import numpy as np
import pytest
from PIL import Image

from yolo9000.errors import UserError
from yolo9000.model.network import Network
from yolo9000.training.settings import TrainSettings
from yolo9000.training.trainer import Trainer

# A classifier small enough to train in seconds: conv/BN/leaky, maxpool, stride-2 conv,
# a 1x1 conv to the classes, avgpool, softmax, cost.
TINY_CLASSIFIER = """[net]
batch=8
subdivisions=2
width=32
height=32
channels=3
min_crop=32
max_crop=40
momentum=0.9
decay=0.0005
learning_rate=0.05
policy=poly
power=4
max_batches=20

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=3
size=1
stride=1
pad=1
activation=linear

[avgpool]

[softmax]
groups=1

[cost]
"""

COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 30)}


def make_colour_classes(root, per_class=12, seed=0, size=48):
    """Class folders of noisy images of one dominant colour each (and a few photos with two
    crops, named like the VOC crops)."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            noise = rng.normal(0, 35, (size, size, 3))
            img = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{name}{k // 2:03d}_{k % 2}.png")
    return root


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    make_colour_classes(root / "train", per_class=16, seed=1)
    make_colour_classes(root / "val", per_class=6, seed=2)
    (root / "tiny.cfg").write_text(TINY_CLASSIFIER)
    return root


def settings(colours, out, **kw):
    base = dict(cfg=str(colours / "tiny.cfg"), data=str(colours / "train"),
                val=str(colours / "val"), out=str(out), workers=0, seed=3, save_every=0)
    base.update(kw)
    return TrainSettings(**base)


def quiet(*_):
    pass


def test_a_classifier_learns_and_logs_top1_and_top5(colours, tmp_path):
    trainer = Trainer(settings(colours, tmp_path / "run"), echo=quiet).setup()
    assert trainer.task.kind == "classification" and not trainer.multiscale
    result = trainer.train()
    assert result["top1"] >= 0.9, result        # three colours: easy for a working classifier
    assert result["top5"] == 1.0                 # three classes are always in the top 5
    with open(tmp_path / "run" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["iteration", "seen", "loss", "top1", "top5", "eval_seconds"]
    with open(tmp_path / "run" / "train_log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    assert len(log) == 20 and {"loss", "top1", "top5"} <= set(log[0])
    assert float(log[-1]["loss"]) < float(log[0]["loss"])
    assert (tmp_path / "run" / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "run" / "anchors.txt").exists()
    # the class count of the cfg (3 filters) was adapted to the data's classes
    assert (tmp_path / "run" / "classes.names").read_text().split() == sorted(COLOURS)


def parameters(net):
    return {f"{i}/{name}": p.copy() for i, name, p, g in net.parameters()}


def test_classifier_resume_is_exact(colours, tmp_path):
    """12 iterations straight == 5, stop, resume, 7 more (crops, flips, accumulation, poly)."""
    straight = Trainer(settings(colours, tmp_path / "a", max_batches=12), echo=quiet).setup()
    straight.train()
    first = Trainer(settings(colours, tmp_path / "b", max_batches=12), echo=quiet).setup()
    first.train(iterations=5)
    resumed = Trainer(settings(colours, tmp_path / "b", max_batches=12), echo=quiet).setup(resume=True)
    resumed.resume()
    assert resumed.iteration == 5
    resumed.train()
    a, b = parameters(straight.net), parameters(resumed.net)
    for key in a:
        assert np.abs(a[key] - b[key]).max() <= 1e-6, key


def test_epochs_set_the_number_of_iterations(colours, tmp_path):
    # 48 training images, batch 8: 2.5 epochs are 120 images, 15 iterations
    trainer = Trainer(settings(colours, tmp_path / "run", epochs=2.5, val=None, val_fraction=0),
                      echo=quiet).setup()
    assert trainer.net.options.max_batches == 15 and trainer.val_set is None
    trainer = Trainer(settings(colours, tmp_path / "r2", epochs=0.01, val=None, val_fraction=0),
                      echo=quiet).setup()
    assert trainer.net.options.max_batches == 1


def test_val_fraction_holds_out_whole_photos(colours, tmp_path, capsys):
    trainer = Trainer(settings(colours, tmp_path / "run", val=None, val_fraction=0.25),
                      echo=quiet, warn=print).setup()
    train = {r.path for r in trainer.train_set.records}
    held = {r.path for r in trainer.val_set.records}
    assert not train & held and len(train) + len(held) == 48
    stems = lambda paths: {p.rsplit("_", 1)[0] for p in paths}
    assert not stems(train) & stems(held)        # a photo's two crops stay together
    assert "held out" in capsys.readouterr().out
    # without --val and --val-fraction a tenth is held out
    default = Trainer(settings(colours, tmp_path / "d", val=None), echo=quiet, warn=quiet).setup()
    assert 0 < len(default.val_set.records) < 48 / 4


def test_higher_resolution_fine_tune_from_the_checkpoint_alone(colours, tmp_path):
    """`train --weights low.h5 --size 64`: the checkpoint's cfg, resized; crops follow."""
    low = Trainer(settings(colours, tmp_path / "low", max_batches=4), echo=quiet).setup()
    low.train()
    checkpoint = tmp_path / "low" / "weights" / "last.h5"
    high = Trainer(settings(colours, tmp_path / "high", cfg=str(checkpoint), weights=str(checkpoint),
                            size=64, max_batches=2), echo=quiet).setup()
    assert (high.net.width, high.augment.min_crop, high.augment.max_crop) == (64, 64, 80)
    for (_, _, p, g), (_, _, q, _) in zip(high.net.parameters(), low.net.parameters()):
        if g is not None:       # (the batch-norm statistics of low.net are the evaluated ones)
            np.testing.assert_array_equal(p, q)     # every layer continued, not re-initialised
    high.train()
    assert Network.load(tmp_path / "high" / "weights" / "last.h5").width == 64


def test_a_classifier_backbone_starts_a_detector(colours, tmp_path):
    from yolo9000.data.synthetic_shapes import make_shapes
    shapes = make_shapes(tmp_path / "shapes", n_train=4, n_val=0, size=64, seed=1)
    classifier = Trainer(settings(colours, tmp_path / "cls", cfg="darknet-mini", size=64,
                                  max_batches=2, val=None, val_fraction=0, batch=4, subdivisions=1),
                         echo=quiet).setup()
    classifier.train()
    weights = tmp_path / "cls" / "weights" / "last.h5"
    detector = Trainer(TrainSettings(cfg="yolov2-mini", data=str(shapes["train"]),
                                     out=str(tmp_path / "det"), weights=str(weights), cutoff=11,
                                     size=64, max_batches=1, batch=2, subdivisions=1, workers=0),
                       echo=quiet).setup()
    for a, b in zip(classifier.net.layers[:11], detector.net.layers[:11]):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])
    # one layer too many: the classifier's 1x1 to 3 classes is not yolov2-mini's 3x3 to 512
    with pytest.raises(UserError, match="layer 11"):
        Trainer(TrainSettings(cfg="yolov2-mini", data=str(shapes["train"]),
                              out=str(tmp_path / "det2"), weights=str(weights), cutoff=12,
                              size=64, max_batches=1, batch=2, subdivisions=1, workers=0), echo=quiet).setup()


def test_darknet19_trains_fine_tunes_as_darknet19_448_and_classifies(colours, tmp_path):
    """The published Darknet-19 cfgs go through the same path (at a toy size): train
    `darknet19`, continue with `darknet19_448`'s cfg at a larger size from its weights, and
    classify with the result."""
    from yolo9000.inference.classifier import Classifier
    first = Trainer(settings(colours, tmp_path / "d19", cfg="darknet19", size=64, max_batches=1,
                             batch=3, subdivisions=1, val=None, val_fraction=0), echo=quiet).setup()
    assert first.net.layers[first.net.classifier - 2].filters == 3     # 1000 -> the 3 classes
    first.train()
    weights = tmp_path / "d19" / "weights" / "last.h5"
    second = Trainer(settings(colours, tmp_path / "d448", cfg="darknet19_448", weights=str(weights),
                              size=96, max_batches=1, batch=3, subdivisions=1, val=None, val_fraction=0),
                     echo=quiet).setup()
    assert (second.net.width, second.augment.min_crop) == (96, 96)
    second.train()
    clf = Classifier(weights=tmp_path / "d448" / "weights" / "last.h5")
    result = next(clf.stream([next((colours / "val" / "red").glob("*.png"))]))
    assert clf.size == (96, 96) and result.probabilities.shape == (3,)
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert [name for _, name, _ in result.top(3)] != [] and clf.names == sorted(COLOURS)


def test_a_darknet_partial_file_of_a_classifier_starts_a_detector(colours, tmp_path):
    """`convert --cutoff 11` writes darknet's `partial` file of a darknet-mini classifier; it
    loads into yolov2-mini with `--cutoff 11` and carries the same numbers."""
    from yolo9000.model.conversion import convert
    classifier = Trainer(settings(colours, tmp_path / "cls", cfg="darknet-mini", size=64,
                                  max_batches=1, val=None, val_fraction=0, batch=2, subdivisions=1),
                         echo=quiet).setup()
    classifier.train()
    partial = tmp_path / "mini.conv.11"
    convert(tmp_path / "cls" / "weights" / "last.h5", partial, cutoff=11)
    detector = Network.from_cfg("yolov2-mini", width=64, height=64).load_weights(partial, cutoff=11)
    for a, b in zip(classifier.net.layers[:11], detector.layers[:11]):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])


def test_a_wordtree_classifier_trains_on_tree_node_labels(tmp_path):
    """[softmax] tree=: class folders named by tree nodes become node labels, the outputs stay
    the tree's nodes, and the loss is the tree's (layers/cost.tree_cross_entropy)."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for name in ("circle", "square", "star"):          # nodes of the bundled shapes.tree
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "data" / name / f"{k}.png")
    cfg = tmp_path / "tree.cfg"
    cfg.write_text(TINY_CLASSIFIER.replace("filters=3\n", "filters=11\n")
                   .replace("[softmax]\ngroups=1", "[softmax]\ngroups=1\ntree=shapes.tree"))
    trainer = Trainer(TrainSettings(cfg=str(cfg), data=str(tmp_path / "data"), out=str(tmp_path / "run"),
                                    max_batches=3, val_fraction=0, workers=0, save_every=0), echo=quiet).setup()
    assert trainer.net.output_shape == (11, 1, 1) and trainer.task.tree is not None
    assert sorted({r.label for r in trainer.train_set.records}) == [4, 6, 9]
    trainer.train()
    with open(tmp_path / "run" / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(np.isfinite(float(r["loss"])) for r in rows)
    assert len((tmp_path / "run" / "classes.names").read_text().split()) == 11
