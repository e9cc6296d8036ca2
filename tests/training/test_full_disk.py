"""`yolo9000 train` on a disk that fills up: one line naming the file and "no space left", the
last good checkpoint kept, and --resume (after making room) ending on the very weights of a run
that never stopped. A 16 MB tmpfs holds one checkpoint of yolov2-shapes at 64 px (about 11 MB)
but not the temp file of the next one beside it (conftest's small_disk)."""
import subprocess

import numpy as np
import pytest

from conftest import run_installed
from yolo9000 import Network

CHECKPOINT_MB = 11     # yolov2-shapes at 64 px with SGD's velocity: 2 x 1.4 M float32


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    return make_shapes(tmp_path_factory.mktemp("shapes") / "data", n_train=8, n_val=0, size=64,
                       seed=3)


def train_args(shapes, project, name):
    return ["train", "--cfg", "yolov2-shapes", "--size", 64, "--workers", 0, "--batch", 2,
            "--data", shapes["train"], "--max-batches", 3, "--save-every", 1, "--seed", 5,
            "--project", project, "--name", name]


def error_lines(stderr):
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def parameters(path):
    return {f"{i}/{name}": p.copy() for i, name, p, _ in Network.load(path).parameters()}


def test_a_full_disk_stops_training_in_one_line_and_resume_ends_where_a_straight_run_does(
        small_disk, shapes, tmp_path):
    stopped = run_installed(*train_args(shapes, small_disk, "run"), cwd=tmp_path)
    assert stopped.returncode == 1, stopped.stderr
    [line] = error_lines(stopped.stderr)
    last = small_disk / "run" / "weights" / "last.h5"
    assert str(last) in line and "no space left" in line.lower()
    assert "stopped at iteration 2" in line and f"--resume {small_disk / 'run'}" in line
    # the first save stands whole: one iteration of 2 images
    assert Network.load(last).seen == 2
    assert not [p for p in last.parent.iterdir() if p.name != "last.h5"]   # no temp left

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    resumed = run_installed("train", "--resume", small_disk / "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    straight = run_installed(*train_args(shapes, tmp_path, "straight"), cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    a, b = parameters(last), parameters(tmp_path / "straight" / "weights" / "last.h5")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_disk_too_full_for_one_checkpoint_is_refused_before_training(small_disk, shapes,
                                                                        tmp_path):
    (small_disk / "filler").write_bytes(b"\0" * (16 - CHECKPOINT_MB + 2) * 2**20)
    refused = run_installed(*train_args(shapes, small_disk, "run"), cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    [line] = error_lines(refused.stderr)
    assert "no space left" in line.lower() and "a checkpoint needs about" in line
    assert "iteration" not in refused.stdout      # no progress line: nothing was trained
    assert not (small_disk / "run" / "weights").exists()


def test_an_immutable_last_h5_stops_training_in_one_line_and_stays_as_it_was(shapes, tmp_path):
    first = run_installed(*train_args(shapes, tmp_path, "run"), "--iterations", 1, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    last = tmp_path / "run" / "weights" / "last.h5"
    before = last.read_bytes()
    if subprocess.run(["chattr", "+i", str(last)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed here (needs root and a file system with flags)")
    try:
        resumed = run_installed("train", "--resume", tmp_path / "run", cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(last)], check=True)
    [line] = error_lines(resumed.stderr)
    assert resumed.returncode == 1
    assert line.startswith(f"error: {last}: cannot write: Operation not permitted (EPERM); "
                           "stopped at iteration 2, weights/last.h5 keeps iteration 1")
    assert last.read_bytes() == before
