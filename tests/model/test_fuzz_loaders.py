"""Property-based fuzzing of the model loaders: any cfg text, darknet .weights or .h5 file
gives a network or a UserError (one line naming the file), never another exception."""
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
h5py = pytest.importorskip("h5py")
from hypothesis import given, strategies as st  # noqa: E402

from fuzzing import FUZZ, arbitrary_or_mutated, mutated  # noqa: E402
from yolo9000 import Network  # noqa: E402
from yolo9000.errors import UserError  # noqa: E402
from yolo9000.model.cfg import parse_cfg_text  # noqa: E402
from yolo9000.model.checkpoint import save_checkpoint  # noqa: E402
from yolo9000.model.darknet_weights import darknet_weights_bytes  # noqa: E402
from conftest import GOLDEN  # noqa: E402

# Every layer kind of YOLOv2 at toy size, so the weights and checkpoint files stay a few KB and
# a random edit lands in the header or structure as often as in the floats.
TINY_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[route]
layers=-2

[reorg]
stride=2

[route]
layers=-1,-3

[convolutional]
size=1
stride=1
pad=1
filters=12
activation=linear

[region]
anchors=1,1, 2,2
classes=1
coords=4
num=2
"""


def user_error_is_one_line(call):
    try:
        return call()
    except UserError as e:
        assert "\n" not in str(e)
        return None


@pytest.fixture(scope="module")
def tiny():
    return Network.from_cfg(TINY_CFG)


def test_tiny_cfg_is_what_the_fuzzers_mutate(tiny):
    # a base file that did not load would leave the fuzzers testing only the first checks
    assert [layer.kind for layer in tiny.layers] == ["conv", "max", "route", "reorg",
                                                     "route", "conv", "region"]


@FUZZ
@given(st.text(max_size=300) | mutated(TINY_CFG.encode()).map(
    lambda b: b.decode("utf-8", errors="replace"))
       | mutated((GOLDEN / "mini.cfg").read_bytes()).map(lambda b: b.decode("utf-8", "replace")))
def test_cfg_text(text):
    user_error_is_one_line(lambda: Network(parse_cfg_text(text, "<fuzz>")))


@FUZZ
@given(arbitrary_or_mutated(darknet_weights_bytes(Network.from_cfg(TINY_CFG))))
def test_darknet_weights(tiny, tmp_path, content):
    path = tmp_path / "fuzz.weights"
    path.write_bytes(content)
    user_error_is_one_line(lambda: tiny.load_weights(path))
    user_error_is_one_line(lambda: tiny.load_weights(path, cutoff=2))


def _checkpoint_bytes():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.h5"
        save_checkpoint(Network.from_cfg(TINY_CFG), path, names=["thing"],
                        optimizer={"step": 3, "m": {"0": np.ones(3)}})
        return path.read_bytes()


CHECKPOINT = _checkpoint_bytes()


def load_checkpoint_both_ways(tiny, path):
    user_error_is_one_line(lambda: Network.load(path))
    user_error_is_one_line(lambda: tiny.load_weights(path))


@FUZZ
@given(arbitrary_or_mutated(CHECKPOINT).map(lambda b: b"\x89HDF\r\n\x1a\n" + b[8:]))
def test_h5_bytes(tiny, tmp_path, content):
    path = tmp_path / "fuzz.h5"
    path.write_bytes(content)
    load_checkpoint_both_ways(tiny, path)


# What a damaged or hand-edited checkpoint holds where a value belongs.
# (h5py cannot store a NUL inside a text attribute, so no checkpoint holds one)
attribute_values = (st.text(st.characters(blacklist_characters="\x00"), max_size=12) | st.integers(-2**40, 2**40) | st.floats()
                    | st.sampled_from(["null", "[1, 2]", '{"a": 1}', "not json", '"x"', "[]"])
                    | st.lists(st.integers(-5, 5), max_size=4).map(lambda v: np.array(v)))
dataset_values = (st.sampled_from(["float32", "float64", "int8", "S4"]).flatmap(
    lambda dtype: st.lists(st.integers(0, 3), max_size=3).map(
        lambda shape: np.zeros(shape, dtype))))


@st.composite
def edited_checkpoints(draw):
    """The valid checkpoint with 1-3 edits through h5py: an attribute removed or replaced,
    a parameter replaced by another dtype or shape, a group or dataset removed."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["del_attr", "set_attr", "set_dataset", "del_item"]))
        attr = draw(st.sampled_from(["format", "version", "cfg", "seen", "input_size",
                                     "weights_header", "names", "anchors", "meta"]))
        item = draw(st.sampled_from(["layers", "layers/000", "layers/000/weights",
                                     "layers/000/scales", "layers/005/biases", "optimizer",
                                     "optimizer/m/0"]))
        value = draw(attribute_values if kind == "set_attr" else dataset_values)
        edits.append((kind, attr, item, value))
    return edits


def _apply(path, edits):
    with h5py.File(path, "a") as f:
        for kind, attr, item, value in edits:
            if kind == "del_attr" and attr in f.attrs:
                del f.attrs[attr]
            elif kind == "set_attr":
                f.attrs[attr] = value
            elif kind == "set_dataset" and isinstance(f.get(item.rsplit("/", 1)[0]), h5py.Group):
                if item in f:
                    del f[item]
                f.create_dataset(item, data=value)
            elif kind == "del_item" and item in f:
                del f[item]


@FUZZ
@given(edited_checkpoints())
def test_h5_structure(tiny, tmp_path, edits):
    path = tmp_path / "fuzz.h5"
    path.write_bytes(CHECKPOINT)
    _apply(path, edits)
    load_checkpoint_both_ways(tiny, path)
    from yolo9000.model.checkpoint import read_checkpoint_info, read_optimizer_state
    user_error_is_one_line(lambda: read_checkpoint_info(path))
    user_error_is_one_line(lambda: read_optimizer_state(path))
