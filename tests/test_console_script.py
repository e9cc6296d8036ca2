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
from conftest import run_folder_args

SCRIPT = Path(sys.executable).with_name("yolo9000")


def run_installed(*args, cwd, timeout=300):
    assert SCRIPT.is_file(), (f"no console script at {SCRIPT}: install the package "
                              "(pip install .) into this interpreter's environment")
    env = {"PATH": f"{SCRIPT.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
           "HOME": str(cwd), "LANG": "C.UTF-8", "YOLO9000_THREADS": "1"}
    return subprocess.run([str(SCRIPT), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


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
