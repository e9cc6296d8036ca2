"""The bad-step guard refuses an update more than 10 times the size of the weights. The
divergence tests use lr 1e6 (updates ~1e5 times the weights); here the update is ~100 times:
refused by the 10x rule, where a looser one (1000x) would let the wrecked weights through."""
import math
import re

import numpy as np
import pytest

from yolo9000 import Network
from yolo9000.errors import UserError
from yolo9000.training.settings import TrainSettings
from yolo9000.training.trainer import Trainer


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    return make_shapes(tmp_path_factory.mktemp("guard") / "data", n_train=8, n_val=0, size=64,
                       seed=6)


def adam_run(shapes, out, lr):
    settings = TrainSettings(cfg="yolov2-shapes", data=str(shapes["train"]), out=str(out),
                             max_batches=2, batch=4, subdivisions=1, learning_rate=lr,
                             burn_in=0, size=64, optimizer="adam", multiscale=False,
                             workers=0, seed=5, save_every=0)
    return Trainer(settings, echo=lambda *_: None).setup()


def first_adam_step_ratio(lr, seed=5):
    """Adam's first step moves each trained parameter by lr (its bias-corrected m / sqrt(v)
    is +-1 wherever the gradient is not 0; the decoupled decay adds 0.05% of lr): the update
    is lr * sqrt(count) against the weights' 2-norm, read from a fresh network."""
    net = Network.from_cfg("yolov2-shapes", width=64, height=64, seed=seed)
    trained = [p for _, _, p, g in net.parameters() if g is not None]
    count = sum(p.size for p in trained)
    norm = math.sqrt(sum(float(np.dot(p.ravel(), p.ravel())) for p in trained))
    return lr * math.sqrt(count) / norm


def test_an_update_a_hundred_times_the_weights_is_refused(shapes, tmp_path):
    lr = 5.0
    expected = first_adam_step_ratio(lr)
    assert 30 < expected < 300
    trainer = adam_run(shapes, tmp_path / "run", lr)
    with pytest.raises(UserError) as refused:
        trainer.train()
    message = str(refused.value)
    assert message.startswith("training diverged at iteration 1 (the update is "), message
    ratio = float(re.search(r"the update is ([0-9.e+]+) times the size of the weights",
                            message).group(1))
    assert 0.8 * expected < ratio <= 1.01 * expected
    assert trainer.iteration == 0


def test_an_update_a_few_times_smaller_than_the_weights_is_kept(shapes, tmp_path):
    trainer = adam_run(shapes, tmp_path / "run", 0.02)       # ratio ~0.4: a brisk, kept step
    assert first_adam_step_ratio(0.02) < 1
    trainer.train()
    assert trainer.iteration == 2
