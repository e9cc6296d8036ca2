"""Damaged, crafted or foreign weight files: one error line naming the file and what is wrong,
never a traceback, and never a read outside the file (issue 15 items 5 and 8)."""
import json
import shutil

import h5py
import numpy as np
import pytest

from yolo9000 import Network, UserError
from yolo9000.cli import main
from conftest import GOLDEN, IMAGES

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


def test_non_finite_weights_are_refused_naming_the_layer(good, tmp_path):
    def poison(f):
        f["layers/000/biases"][1] = np.inf
    path = damaged(good, "diverged.h5", poison)
    refused(path, "layer 0 [convolutional] (cfg line", "biases", "1 of 8 values are NaN or "
            "infinite")
    # the same rule for darknet .weights: the header (20 bytes), then layer 0's 8 biases
    raw = bytearray((GOLDEN / "mini.weights").read_bytes())
    raw[20 + 4 * 5:20 + 4 * 6] = np.array([np.nan], "<f4").tobytes()
    weights = tmp_path / "nan.weights"
    weights.write_bytes(bytes(raw))
    refused(weights, "layer 0 [convolutional]", "biases: 1 of 8 values", cfg=True)


def test_detect_with_nan_weights_exits_1_without_output(tmp_path, capsys):
    raw = bytearray((GOLDEN / "mini.weights").read_bytes())
    raw[-4:] = np.array([np.nan], "<f4").tobytes()
    weights = tmp_path / "nan.weights"
    weights.write_bytes(bytes(raw))
    with pytest.raises(SystemExit) as e:
        main(["detect", str(IMAGES / "dog.jpg"), "--cfg", str(MINI_CFG), "--weights",
              str(weights)])
    out, err = capsys.readouterr()
    assert e.value.code == 1 and out == "", out
    assert err.startswith(f"error: {weights}: layer ") and "NaN or infinite" in err, err
    assert err.count("\n") == 1


@pytest.fixture
def outside(tmp_path):
    """Another HDF5 file holding arrays of the shapes a crafted link would borrow."""
    path = tmp_path / "elsewhere" / "secret.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f["biases"] = np.full(8, 7.0, np.float32)
    return path


def test_external_link_is_refused(good, outside):
    def link(f):
        del f["layers/000/biases"]
        f["layers/000/biases"] = h5py.ExternalLink(str(outside), "/biases")
    path = damaged(good, "external.h5", link)
    with h5py.File(path, "r") as f:        # h5py itself would follow it
        assert f["layers/000/biases"][0] == 7.0
    refused(path, "/layers/000/biases is an external link")


def test_external_raw_storage_is_refused(good, outside):
    def external(f):
        del f["layers/000/biases"]
        f.create_dataset("layers/000/biases", shape=(8,), dtype="<f4",
                         external=[(str(outside), 0, 32)])
    refused(damaged(good, "raw.h5", external), "/layers/000/biases keeps its data in other files")


def test_soft_link_is_refused(good):
    def soft(f):
        del f["layers/000/biases"]
        f["layers/000/biases"] = h5py.SoftLink("/layers/000/weights")
    # even one pointing inside the file: the writer never makes links
    refused(damaged(good, "soft.h5", soft), "/layers/000/biases is a soft link")


def test_random_bytes_are_named_by_what_they_are_not(tmp_path):
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    (tmp_path / "noise.h5").write_bytes(noise)
    refused(tmp_path / "noise.h5", "not an HDF5 checkpoint", cfg=True)
    # the same bytes under a darknet name: the header's first int32 is no darknet version
    header = np.frombuffer(noise[:12], "<i4")
    assert header.min() < 0 or header.max() >= 1 << 16
    (tmp_path / "noise.weights").write_bytes(noise)
    refused(tmp_path / "noise.weights", "not a darknet .weights file", cfg=True)
