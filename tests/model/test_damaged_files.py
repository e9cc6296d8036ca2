"""Damaged checkpoints: one error line naming the file and what is wrong, never a traceback
(issue 15 item 5)."""
import json
import shutil

import h5py
import numpy as np
import pytest

from yolo9000 import Network, UserError
from conftest import GOLDEN

MINI_CFG = GOLDEN / "mini.cfg"


@pytest.fixture
def good(tmp_path):
    """The golden mini network saved as a checkpoint (with names, so every attribute is set)."""
    net = Network.from_cfg(str(MINI_CFG)).load_weights(GOLDEN / "mini.weights")
    path = tmp_path / "good.h5"
    net.save(path, names=["a", "b", "c"])
    return path


def damaged(good, name, change):
    path = good.with_name(name)
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        change(f)
    return path


def refused(path, *fragments, **load):
    with pytest.raises(UserError) as e:
        Network.load(path) if not load else Network.from_cfg(str(MINI_CFG)).load_weights(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_the_good_file_loads(good):
    net = Network.load(good)
    assert net.names == ["a", "b", "c"] and net.seen == 0


def replace_dataset(f, key, data):
    del f[key]
    f[key] = data


@pytest.mark.parametrize("name,change,fragments", [
    ("names-not-json.h5", lambda f: f.attrs.__setitem__("names", "{oops"),
     ["attribute 'names' is not valid JSON"]),
    ("names-not-a-list.h5", lambda f: f.attrs.__setitem__("names", json.dumps({"a": 1})),
     ["attribute 'names' should be a list of class names"]),
    ("names-numbers.h5", lambda f: f.attrs.__setitem__("names", "[1, 2, 3]"),
     ["attribute 'names' should be a list of class names"]),
    ("meta-not-json.h5", lambda f: f.attrs.__setitem__("meta", "nan-sense{"),
     ["attribute 'meta' is not valid JSON"]),
    ("no-seen.h5", lambda f: f.attrs.__delitem__("seen"), ["attribute 'seen' is missing"]),
    ("seen-text.h5", lambda f: f.attrs.__setitem__("seen", "many"),
     ["attribute 'seen' should be an integer"]),
    ("no-cfg.h5", lambda f: f.attrs.__delitem__("cfg"), ["attribute 'cfg' is missing"]),
    ("size-3.h5", lambda f: f.attrs.__setitem__("input_size", np.array([64, 64, 3])),
     ["attribute 'input_size' should be 2 integers"]),
    ("string-weights.h5",
     lambda f: replace_dataset(f, "layers/000/weights", np.full((8, 3, 3, 3), b"ab", "S2")),
     ["layer 0 [convolutional]", "weights holds |S2 values, not numbers"]),
    ("layer-is-array.h5", lambda f: replace_dataset(f, "layers/000", np.zeros(3)),
     ["/layers/000 should be a group of parameter arrays"]),
    ("no-layers.h5", lambda f: f.__delitem__("layers"), ["no 'layers' group"]),
    ("odd-layer-name.h5", lambda f: f["layers"].create_group("first"),
     ["/layers/first is not a layer number"]),
])
def test_damaged_checkpoint_is_one_line(good, name, change, fragments):
    refused(damaged(good, name, change), "damaged checkpoint", *fragments)
