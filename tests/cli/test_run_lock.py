"""A run folder is one run's: a second `train --resume` or `train --exist-ok` on a folder whose
run is still alive is refused with the live run's pid, and the live run goes on untouched; a
run killed with kill -9 leaves nothing that blocks its resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yolo9000.errors import UserError
from conftest import INSTALLED_SCRIPT, installed_env, run_installed

ITERATIONS = 12


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    return make_shapes(tmp_path_factory.mktemp("lock") / "data", n_train=8, n_val=0, size=64,
                       seed=1)


def train_args(shapes):
    return ["train", "--cfg", "yolov2-shapes", "--data", shapes["train"], "--size", 64,
            "--batch", 2, "--max-batches", ITERATIONS, "--no-multiscale", "--save-every", 1,
            "--workers", 1, "--project", "runs", "--name", "live"]


def start_run(shapes, cwd):
    """The training run in the background, once it holds its folder and is about to train."""
    run = subprocess.Popen([str(INSTALLED_SCRIPT), *map(str, train_args(shapes))], cwd=cwd,
                           env=installed_env(cwd), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:
        if line.startswith("run folder:"):
            return run
    run.wait()
    pytest.fail(f"the run did not start: {run.stderr.read()}")


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_live_run_keeps_its_folder(shapes, tmp_path):
    run_dir = tmp_path / "runs" / "live"
    live = start_run(shapes, tmp_path)
    try:
        wait_for(lambda: (run_dir / "weights" / "last.h5").exists())
        # stopped, the run still holds its folder: the refusals cannot depend on timing
        os.kill(live.pid, signal.SIGSTOP)
        args_before = (run_dir / "args.json").read_bytes()
        for second in (["train", "--resume", run_dir],
                       [*train_args(shapes), "--exist-ok"]):
            refused = run_installed(*second, cwd=tmp_path, timeout=120)
            assert refused.returncode == 1, refused.stderr
            assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
            assert refused.stderr.startswith(f"error: {run_dir}: ") or \
                refused.stderr.startswith("error: runs/live: "), refused.stderr
            assert f"pid {live.pid}" in refused.stderr, refused.stderr
        assert (run_dir / "args.json").read_bytes() == args_before
    finally:
        os.kill(live.pid, signal.SIGCONT)
    out, err = live.communicate(timeout=120)
    assert live.returncode == 0, err
    rows = (run_dir / "train_log.csv").read_text().strip().splitlines()
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(1, ITERATIONS + 1))
    assert json.loads(args_before)["max_batches"] == ITERATIONS
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]    # only results


def child_pids(pid):
    """The processes whose parent is `pid` (the run's data-loading worker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_killed_run_does_not_block_its_resume(shapes, tmp_path):
    run_dir = tmp_path / "runs" / "live"
    live = start_run(shapes, tmp_path)
    workers = []
    try:
        wait_for(lambda: (run_dir / "weights" / "last.h5").exists())
        # the run's worker, forked while the run held its folder, outlives it (stopped here,
        # for a second or so otherwise): it must not keep the folder locked
        workers = child_pids(live.pid)
        assert workers, "the run has no data-loading worker"
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
    finally:
        os.kill(live.pid, signal.SIGKILL)
        live.wait(timeout=60)       # not communicate(): the stopped worker holds the pipes
        live.stdout.close()
        live.stderr.close()
    try:
        resumed = run_installed("train", "--resume", run_dir, "--iterations", 1, cwd=tmp_path,
                                timeout=120)
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir}" in resumed.stdout or "resuming runs/live" in resumed.stdout


def test_claims_in_one_process(tmp_path):
    """Claiming again in the same process is allowed (one run, e.g. the demo); a folder held by
    another process is refused naming its pid, which the lock file holds."""
    from yolo9000.runs import LOCK_FILE, claim_run_dir, new_run_dir, release_run_dirs
    folder = new_run_dir(tmp_path, "exp")
    try:
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert new_run_dir(tmp_path, "exp", exist_ok=True) == folder
        (tmp_path / "other").mkdir()
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys; from yolo9000.runs import claim_run_dir; "
             "claim_run_dir(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
             str(tmp_path / "other")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            claim_run_dir(tmp_path / "other")
        holder.communicate("")                  # it exits: its lock and lock file are gone
        assert not (tmp_path / "other" / LOCK_FILE).exists()
        claim_run_dir(tmp_path / "other")
    finally:
        release_run_dirs()
    assert not (folder / LOCK_FILE).exists()
