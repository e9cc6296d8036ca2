"""Sizes from cfgs and files are checked against the machine's memory before the arrays are
allocated: a cfg with filters=1000000, a checkpoint whose stored cfg asks for 32.7 TiB of
parameters and a crafted optimiser dataset are each one error line, and the command never
grows past a few hundred MB getting there (measured as the peak resident memory of the
installed script, data workers included)."""
import h5py
import numpy as np
import pytest

from yolo9000 import Network
from conftest import GOLDEN, IMAGES, run_installed, run_installed_peak

PEAK_LIMIT = 500 * 2**20

# a detector whose first layer has a million filters (1x1, so its parameters stay small:
# 16 MB), at 416 px: its activations alone would take petabytes
MILLION_FILTERS = """[net]
width=416
height=416
channels=3
batch=2

[convolutional]
filters=1000000
size=1
activation=leaky

[convolutional]
filters=1
size=1
activation=leaky

[convolutional]
filters=50
size=1
activation=linear

[region]
anchors=1,1, 2,2, 3,3, 4,4, 5,5
classes=5
coords=4
num=5
softmax=1
"""

# two 3x3 convolutions of a million filters each: 1e6 x (3 x 9 + 1) parameters in layer 0,
# 1e6 x (1e6 x 9 + 1) (32.7 TiB) in layer 1
HUGE_PARAMETERS = """[net]
width=64
height=64
channels=3

[convolutional]
filters=1000000
size=3
pad=1
activation=leaky

[convolutional]
filters=1000000
size=3
pad=1
activation=leaky

[convolutional]
filters=40
size=1
activation=linear

[region]
anchors=1,1, 2,2, 3,3, 4,4, 5,5
classes=3
coords=4
num=5
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    return make_shapes(tmp_path_factory.mktemp("memory") / "data", n_train=4, n_val=0, size=64,
                       seed=2)


def assert_one_line_refusal(result, peak, *fragments):
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert peak < PEAK_LIMIT, f"peak resident memory {peak / 2**20:.0f} MiB"


def test_a_million_filters_are_refused_before_training(shapes, tmp_path):
    cfg = tmp_path / "million.cfg"
    cfg.write_text(MILLION_FILTERS)
    result, peak = run_installed_peak("train", "--cfg", cfg, "--data", shapes["train"],
                                      "--workers", 1, "--max-batches", 1, cwd=tmp_path)
    assert_one_line_refusal(result, peak, f"error: {cfg}: training 2 images at a time at up "
                            "to 416x416: about ", " TiB needed, more than the ",
                            "this machine has available")
    # at least the first layer's output for the two images: 1e6 x 416 x 416 floats each
    figure = float(result.stderr.split(": about ")[1].split(" TiB")[0])
    assert figure >= 2 * 1e6 * 416 * 416 * 4 / 2**40


def test_summary_shows_what_the_million_filters_would_take(tmp_path):
    cfg = tmp_path / "million.cfg"
    cfg.write_text(MILLION_FILTERS)
    result = run_installed("summary", cfg, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("0 "))
    # the layer's 1e6 x 416 x 416 outputs and 4e6 parameters, 4 bytes each
    assert first.split("->")[1].split()[-4:-2] == [f"{(416 * 416 + 4) * 4e6 / 2**30:.1f}", "GiB"]
    last = result.stdout.splitlines()[-1]
    assert last.startswith("memory: about ") and " TiB to train mini-batches of 2" in last


def test_a_stored_cfg_of_32_tib_is_refused_before_allocating(tmp_path):
    path = tmp_path / "crafted.h5"
    Network.from_cfg(str(GOLDEN / "mini.cfg")).save(path, names=["a", "b", "c"])
    with h5py.File(path, "a") as f:
        f.attrs["cfg"] = HUGE_PARAMETERS
    result, peak = run_installed_peak("detect", IMAGES / "dog.jpg", "--weights", path, cwd=tmp_path)
    assert_one_line_refusal(result, peak, f"error: {path} (stored cfg):12: [convolutional] "
                            "layer 1: the 9,000,029,000,000 parameters up to this layer: about "
                            "32.7 TiB needed")


@pytest.fixture
def stopped_run(shapes, tmp_path):
    """A run folder stopped after its first iteration, whose last.h5 resumes."""
    run = tmp_path / "runs" / "stopped"
    result = run_installed("train", "--cfg", "yolov2-shapes", "--data", shapes["train"],
                           "--size", 64, "--batch", 2, "--max-batches", 3, "--iterations", 1,
                           "--workers", 0, "--project", run.parent, "--name", run.name,
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return run


GIB_2 = 2**29      # float32 values: 2 GiB once read


@pytest.mark.parametrize("crafted,message", [
    ("padding", "/optimizer/padding (shape (536870912,)) is no part of the state this run's "
                "optimiser keeps"),
    ("velocity/000_weights", "/optimizer/velocity/000_weights holds shape (536870912,), this "
                             "run's optimiser needs (16, 3, 3, 3)"),
])
def test_a_crafted_optimizer_dataset_is_refused_before_it_is_read(stopped_run, tmp_path,
                                                                  crafted, message):
    last = stopped_run / "weights" / "last.h5"
    size = last.stat().st_size
    with h5py.File(last, "a") as f:
        if crafted in f["optimizer"]:
            del f["optimizer"][crafted]
        # chunked and never written: a small file that reads as 2 GiB of zeros
        f["optimizer"].create_dataset(crafted, shape=(GIB_2,), dtype=np.float32,
                                      chunks=(2**20,))
    assert last.stat().st_size < size + 2**20
    result, peak = run_installed_peak("train", "--resume", stopped_run, cwd=tmp_path)
    assert_one_line_refusal(result, peak, f"error: {last}: damaged checkpoint: {message}")


def test_describe_bytes():
    from yolo9000.memory import available_memory, describe_bytes
    assert [describe_bytes(n) for n in (0, 1023, 1024, 5 * 2**20 // 2, 61 * 2**30, 2**50 * 3)] \
        == ["0 B", "1023 B", "1.0 KiB", "2.5 MiB", "61.0 GiB", "3.0 PiB"]
    assert available_memory() is None or available_memory() > 0
