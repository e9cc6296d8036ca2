"""The installed `yolo9000` console script, run as a user runs it.

The script is the file pip writes next to the interpreter, started in a subprocess with a clean
environment from an unrelated folder: no `python -m` (runpy imports modules the script does
not), no CliRunner (runs inside this process, whose imports hide missing ones). `.ci/run`
installs the package non-editably, so these tests see what `pip install .` gives a user.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import yolo9000
from yolo9000.cli import COMMANDS
from conftest import INSTALLED_SCRIPT, run_folder_args, run_installed

def test_help_lists_every_command(tmp_path):
    proc = run_installed("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    listed = re.findall(r"^  ([a-z][a-z-]+)\s", proc.stdout.split("Commands:")[1], re.M)
    assert sorted(listed) == sorted(COMMANDS)


def test_version(tmp_path):
    proc = run_installed("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"yolo9000, version {yolo9000.__version__}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help(tmp_path, command):
    proc = run_installed(command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: yolo9000 {command}")
    assert "Traceback" not in proc.stderr


def test_unknown_command_is_one_line_error(tmp_path):
    proc = run_installed("detetc", cwd=tmp_path)
    assert proc.returncode == 2
    assert "No such command 'detetc'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_end_to_end_through_the_installed_script(tmp_path):
    out = tmp_path / "demo"
    proc = run_installed("demo", *run_folder_args(out), "--train-images", "16", "--val-images", "4", "--size", "64",
                         "--iterations", "3", "--batch", "4", "--workers", "0",
                         "--detect-images", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "[5/5]" in proc.stdout
    assert (out / "shapes.h5").is_file()
    assert len(list((out / "detections").glob("*.png"))) == 1


# -- --threads -----------------------------------------------------------------------------------
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
needs_two_cores = pytest.mark.skipif(CORES < 2, reason="one thread is the default on one core")

# Loaded by the script's interpreter at start-up (site imports `sitecustomize` from the path):
# when the command is done, report the thread counts the pools really have.
THREAD_REPORT = """
import atexit
import sys


def report():
    from yolo9000.kernels import core, threads
    blas = threads.blas_thread_functions()
    print("threads:", threads.current_threads(), core.get_max_threads(),
          blas[1]() if blas else "no-openblas", file=sys.stderr)


atexit.register(report)
"""


def thread_counts(blas):
    """(yolo9000's count, OpenMP's maximum, OpenBLAS's count) in this process."""
    from yolo9000.kernels import core, threads
    return threads.current_threads(), core.get_max_threads(), blas[1]()


@needs_two_cores
def test_threads_option_reaches_blas_and_openmp_in_the_script(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(THREAD_REPORT)

    def counts(*options):
        proc = run_installed(*options, "summary", "yolov2-shapes", cwd=tmp_path,
                             env={"PYTHONPATH": str(hook), "YOLO9000_THREADS": None})
        assert proc.returncode == 0, proc.stderr
        return proc.stderr.split("threads:")[1].split()

    assert counts() == [str(CORES)] * 3                 # default: every core
    assert counts("--threads", "1") == ["1", "1", "1"]


@needs_two_cores
def test_threads_option_when_numpy_is_already_loaded():
    """In a process that has started BLAS already (as here) the option sets the pools."""
    import numpy  # noqa: F401  (BLAS is loaded with it, and must be before it can be found)
    from yolo9000 import set_threads
    from yolo9000.cli import main
    from yolo9000.kernels.threads import blas_thread_functions

    blas = blas_thread_functions()
    assert blas is not None, "OpenBLAS not found in this process"
    saved = dict(os.environ)
    set_threads(2)
    try:
        assert thread_counts(blas) == (2, 2, 2)
        with pytest.raises(SystemExit) as exit_:
            main(["--threads", "1", "summary", "yolov2-shapes"])
        assert exit_.value.code == 0
        assert thread_counts(blas) == (1, 1, 1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        set_threads()
