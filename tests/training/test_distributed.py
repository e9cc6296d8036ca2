"""`mpiexec -n 2 yolo9000 train|evaluate` (issue 14): the numbers of one process, rank 0 alone
writing, resumes across rank counts, and every rank stopped when one dies or fails.

The runs use the installed console script under the MPI launcher installed next to it (the
`mpi` extra's mpich wheel); without MPI they skip, saying so."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import INSTALLED_SCRIPT, installed_env, run_folder_args, run_installed
from test_train import checkpoint_arrays, wait_for_iterations

MPIEXEC = shutil.which("mpiexec", path=installed_env(".")["PATH"])
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason='MPI not installed (pip install "yolo9000[mpi]": the mpi4py and mpich wheels)')
TWO_RANKS = ("mpiexec", "-n", 2)
# --batch 8 --subdivisions 2: on two ranks each runs one mini-batch of 4 per iteration
TRAIN = ("train", "--cfg", "yolov2-shapes", "--size", 64, "--batch", 8, "--subdivisions", 2,
         "--lr", 0.005, "--burn-in", 2, "--seed", 5, "--workers", 0, "--save-every", 0)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes(root / "data", n_train=24, n_val=9, size=96, seed=3)


def train(shapes, run, *extra, launcher=(), cwd):
    result = run_installed(*TRAIN, "--data", shapes["train"], *extra, *run_folder_args(run),
                           cwd=cwd, launcher=launcher, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def log_rows(run):
    lines = (run / "train_log.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def assert_same_weights(a_path, b_path, rtol=1e-5):
    a, b = checkpoint_arrays(a_path), checkpoint_arrays(b_path)
    assert a.keys() == b.keys()
    trained = 0
    for key, value in a.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size:
            scale = max(1e-3, float(np.abs(value).max()))
            assert np.abs(value - b[key]).max() <= rtol * scale, key
            trained += key.endswith("/weights")
        elif not isinstance(value, (bytes, str)):
            assert np.array_equal(value, b[key]), key
    assert trained > 0


def assert_same_losses(rows, expected):
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in expected]
    for row, want in zip(rows, expected):
        assert row["seen"] == want["seen"]
        for key in ("loss", "coord", "obj", "noobj", "class"):
            assert float(row[key]) == pytest.approx(float(want[key]), rel=1e-5), (row, key)


@pytest.fixture(scope="module")
def two_rank_run(shapes, tmp_path_factory):
    """5 iterations on two ranks, uninterrupted: the run the other runs must reproduce."""
    if MPIEXEC is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip('MPI not installed (pip install "yolo9000[mpi]")')
    cwd = tmp_path_factory.mktemp("two")
    run = cwd / "runs" / "two"
    result = train(shapes, run, "--max-batches", 5, launcher=TWO_RANKS, cwd=cwd)
    return run, result


@needs_mpi
def test_two_ranks_train_what_one_process_trains(shapes, two_rank_run, tmp_path):
    run, result = two_rank_run
    one = tmp_path / "one"
    train(shapes, one, "--max-batches", 5, cwd=tmp_path)
    assert_same_weights(one / "weights" / "last.h5", run / "weights" / "last.h5")
    assert_same_losses(log_rows(run), log_rows(one))
    assert len(log_rows(run)) == 5           # rank 0 alone logs: one row per iteration
    # one voice: every line rank 0 prints, once (rank 1's output is discarded)
    assert result.stdout.count("run folder:") == 1 and result.stdout.count("weights:") == 1
    assert "MPI: 2 ranks" in result.stderr


@needs_mpi
def test_parallel_replicas_combine_with_ranks(shapes, two_rank_run, tmp_path):
    """Two ranks with --parallel 2 and 4 subdivisions: each rank runs its two mini-batches
    side by side, loaded by worker processes; still one process's weights."""
    kw = ("--max-batches", 3, "--batch", 8, "--subdivisions", 4)
    one = tmp_path / "one"
    train(shapes, one, *kw, cwd=tmp_path)
    both = tmp_path / "both"
    train(shapes, both, *kw, "--parallel", 2, "--workers", 2, launcher=TWO_RANKS, cwd=tmp_path)
    assert_same_weights(one / "weights" / "last.h5", both / "weights" / "last.h5", rtol=2e-5)


@needs_mpi
def test_resume_with_another_number_of_ranks_continues_the_run(shapes, two_rank_run, tmp_path):
    """2 iterations on two ranks, 1 more in one process from that checkpoint, the last 2 on
    two ranks again: the uninterrupted two-rank run's losses and weights."""
    full, _ = two_rank_run
    run = tmp_path / "runs" / "r"
    train(shapes, run, "--max-batches", 5, "--iterations", 2, launcher=TWO_RANKS, cwd=tmp_path)
    resumed = run_installed("train", "--resume", run, "--iterations", 1, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at iteration 2" in resumed.stdout
    resumed = run_installed("train", "--resume", run, cwd=tmp_path, launcher=TWO_RANKS)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_losses(log_rows(run), log_rows(full))
    assert_same_weights(full / "weights" / "last.h5", run / "weights" / "last.h5")


@needs_mpi
def test_ranks_that_cannot_share_the_subdivisions_say_so_once(shapes, tmp_path):
    result = run_installed(*TRAIN, "--data", shapes["train"], "--batch", 9, "--subdivisions", 3,
                           *run_folder_args(tmp_path / "r"), cwd=tmp_path, launcher=TWO_RANKS)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: 2 ranks cannot share 3 subdivisions: start a number of ranks "
                      "that divides --subdivisions"], result.stderr
    assert not (tmp_path / "r").exists()      # the failed run leaves no folder behind


def start_two_ranks(*args, cwd):
    return subprocess.Popen([MPIEXEC, "-n", "2", str(INSTALLED_SCRIPT), *map(str, args)],
                            cwd=cwd, env=installed_env(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def long_run(shapes, run, cwd):
    return start_two_ranks(*TRAIN, "--data", shapes["train"], "--max-batches", 100000,
                           "--save-every", 1, "--no-multiscale", *run_folder_args(run), cwd=cwd)


def rank_pids(stderr_line):
    """{rank: pid} from rank 0's 'MPI: 2 ranks, rank 0 pid 11 on host, rank 1 pid 12 on host'."""
    words = stderr_line.replace(",", " ").split()
    return {int(words[i + 1]): int(words[i + 3]) for i, w in enumerate(words) if w == "rank"}


@needs_mpi
@pytest.mark.parametrize("victim", [0, 1])
def test_sigkill_of_one_rank_ends_every_rank(shapes, tmp_path, victim):
    run = tmp_path / "runs" / "r"
    proc = long_run(shapes, run, tmp_path)
    try:
        first = proc.stderr.readline()
        pids = rank_pids(first)
        assert sorted(pids) == [0, 1], first
        wait_for_iterations(run, 3, proc)
        os.kill(pids[victim], signal.SIGKILL)
        killed = time.monotonic()
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - killed < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    for pid in pids.values():          # no rank left behind
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    # the launcher names the process (its pid, which rank 0's first line maps to the rank)
    # and the cause
    said = out + err                   # hydra reports on stdout
    assert f"PID {pids[victim]}" in said and "signal 9" in said, said
    iteration = int(checkpoint_arrays(run / "weights" / "last.h5")["optimizer/iteration"])
    assert iteration >= 2          # the log row of iteration 3 precedes its checkpoint
    resumed = run_installed("train", "--resume", run, "--iterations", 1, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at iteration {iteration}" in resumed.stdout


@needs_mpi
@pytest.mark.parametrize("to_rank", [None, 1])
def test_a_stop_signal_stops_every_rank_at_the_same_step(shapes, tmp_path, to_rank):
    """Ctrl-C on the launcher (it passes SIGINT to every rank), or SIGTERM to rank 1 alone
    (the ranks agree on stopping in the step's Allreduce)."""
    run = tmp_path / "runs" / "r"
    proc = long_run(shapes, run, tmp_path)
    try:
        pids = rank_pids(proc.stderr.readline())
        wait_for_iterations(run, 3, proc)
        if to_rank is None:
            proc.send_signal(signal.SIGINT)
        else:
            os.kill(pids[to_rank], signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stopped = int(checkpoint_arrays(run / "weights" / "last.h5")["optimizer/iteration"])
    assert proc.returncode == 130, err
    assert err.count("interrupted at iteration") == 1, err
    assert err.strip().splitlines()[-1] == \
        f"interrupted at iteration {stopped}; resume with --resume {run}"
    assert len(log_rows(run)) == stopped


RAISING_RANK = """
import sys
from yolo9000.parallel import run_command, world

def command():
    ranks = world()
    if ranks.rank == 1:
        raise RuntimeError("rank one broke")
    ranks.comm.Barrier()           # waits for rank 1 forever without the abort

run_command(command, lambda error: None)
"""


@needs_mpi
def test_a_raising_rank_stops_the_others_with_one_message(tmp_path):
    import sys
    start = time.monotonic()
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", RAISING_RANK],
                            cwd=tmp_path, env=installed_env(tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert time.monotonic() - start < 30
    assert result.returncode != 0
    assert result.stderr.count("rank 1 of 2 failed, stopping all ranks") == 1, result.stderr
    assert "RuntimeError: rank one broke" in result.stderr


@needs_mpi
def test_two_ranks_evaluate_like_one_process(shapes, tmp_path):
    """The bundled shapes model on 9 images (shared 5 + 4): the same metrics, every one."""
    args = ("evaluate", "--data", shapes["val"])
    one = run_installed(*args, "--metrics-json", "one.json", "--project", "runs", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = run_installed(*args, "--metrics-json", "two.json", "--project", "runs",
                        cwd=tmp_path, launcher=TWO_RANKS)
    assert two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    timing = {"seconds", "images_per_second"}
    assert {k: v for k, v in a.items() if k not in timing} == \
        {k: v for k, v in b.items() if k not in timing}
    assert a["images"] == 9 and a["mAP50"] > 0.1
    mAP_line = next(line for line in one.stdout.splitlines() if line.startswith("mAP@0.5"))
    assert two.stdout.count(mAP_line) == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["exp", "exp2"]


def test_without_mpi4py_a_launched_run_says_what_to_install(tmp_path):
    """Under a launcher (its environment variables) with mpi4py missing: one line."""
    hidden = tmp_path / "hidden"
    (hidden / "mpi4py").mkdir(parents=True)
    (hidden / "mpi4py" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    launched = {"PMI_SIZE": "2", "PMI_RANK": "0", "PYTHONPATH": str(hidden)}
    result = run_installed("summary", "yolov2-shapes", cwd=tmp_path, env=launched)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        'error: started by an MPI launcher with 2 ranks, but mpi4py is not installed: '
        'pip install "yolo9000[mpi]"'], result.stderr
    # rank 1 of the same launch exits quietly: the message is said once
    quiet = run_installed("summary", "yolov2-shapes", cwd=tmp_path,
                          env={**launched, "PMI_RANK": "1"})
    assert quiet.returncode == 1 and quiet.stderr == "" and quiet.stdout == ""
    # without a launcher mpi4py is never imported: the same hidden package is harmless
    plain = run_installed("summary", "yolov2-shapes", cwd=tmp_path,
                          env={"PYTHONPATH": str(hidden)})
    assert plain.returncode == 0, plain.stderr


@needs_mpi
def test_two_ranks_detect_like_one_process(shapes, tmp_path):
    """9 images and a broken one shared over two ranks: the same files, JSON, report lines in
    input order and exit code as one process."""
    images = tmp_path / "images"
    shutil.copytree(shapes["val"].parent / "images" / "val", images)
    (images / "broken.jpg").write_text("not an image")
    args = ("detect", images, "--save-txt", "--project", "runs")
    one = run_installed(*args, "--name", "one", "--save-json", "one.json", cwd=tmp_path)
    two = run_installed(*args, "--name", "two", "--save-json", "two.json", cwd=tmp_path,
                        launcher=TWO_RANKS)
    assert one.returncode == two.returncode == 1      # the broken image

    def image_lines(result):
        return [line.rsplit(", ", 1)[0] for line in result.stdout.splitlines()
                if line.startswith(str(images))]
    assert len(image_lines(one)) == 9 and image_lines(two) == image_lines(one)
    assert two.stderr.count("broken.jpg") == 1
    assert (tmp_path / "one.json").read_text() == (tmp_path / "two.json").read_text()
    files = {}
    for run in ("one", "two"):
        root = tmp_path / "runs" / run
        files[run] = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert len(files["one"]) == 18 and files["one"] == files["two"]


def test_a_rank_takes_its_block_of_each_iteration_and_counts_seen_from_it():
    """Rank 1 of 2 with 4 subdivisions of 3 images: mini-batches 2, 3 of iteration 0, 6, 7 of
    iteration 1, ...; its first mini-batch sees `seen` as one process would (2 · 3 later)."""
    from yolo9000 import Network
    from yolo9000.parallel import RankSteps

    class SecondOfTwo:
        rank, size = 1, 2
    net = Network.from_cfg("yolov2-shapes", width=64, height=64)
    net.seen = 40
    steps = RankSteps(SecondOfTwo(), net, subdivisions=4, mini_batch=3)
    assert steps.local_subdivisions == 2
    assert [steps.minibatch_index(p) for p in range(6)] == [2, 3, 6, 7, 10, 11]
    steps.begin(net)
    assert net.seen == 46


def test_ranks_on_one_host_share_its_cores(monkeypatch):
    from yolo9000.kernels.threads import default_threads
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("YOLO9000_THREADS", raising=False)
    assert default_threads() == cores
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")             # mpiexec -n 2 on this host
    assert default_threads() == max(1, cores // 2)
    monkeypatch.setenv("MPI_LOCALNRANKS", str(4 * cores))  # more ranks than cores: one each
    assert default_threads() == 1
    monkeypatch.setenv("YOLO9000_THREADS", "3")            # the user's choice wins
    assert default_threads() == 3


@needs_mpi
def test_commands_that_do_not_share_their_work_refuse_several_ranks(tmp_path):
    result = run_installed("summary", "yolov2-shapes", cwd=tmp_path, launcher=TWO_RANKS)
    assert result.returncode == 1 and result.stdout == ""
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: summary does not run on several MPI ranks (only train, evaluate, detect do): "
        "run it without mpiexec"], result.stderr


@needs_mpi
def test_ranks_refuse_a_diverging_step_together(shapes, tmp_path):
    """The non-finite check reads the summed gradient, the same on every rank: all stop at the
    same step with one message (a rank deciding alone would leave the other waiting)."""
    run = tmp_path / "r"
    result = run_installed(*TRAIN, "--data", shapes["train"], "--lr", 1e39, "--burn-in", 0,
                           "--max-batches", 3, *run_folder_args(run), cwd=tmp_path,
                           launcher=TWO_RANKS)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training diverged at iteration 1" in errors[0], result.stderr
    assert "failed, stopping all ranks" not in result.stderr
    assert checkpoint_arrays(run / "weights" / "last.h5")["optimizer/iteration"] == 0
