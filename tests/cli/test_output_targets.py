"""Outputs that are not regular files: a device, a named pipe, this process's standard output
(what /dev/stdout names) or a symlink. They are written through, never replaced by a plain
file; a symlink keeps being a symlink and its target receives the output.

No test here may replace a real device node if the code under test regresses: the pipes and
links are made under tmp_path, and the tests that name /dev/null and /dev/full run in-process
with os.replace refusing to touch /dev.
"""
import json
import os
import stat
import threading

import numpy as np
import pytest
from PIL import Image

from yolo9000.cli import main
from yolo9000 import fileio
from conftest import GOLDEN, run_installed

MINI = ["--cfg", GOLDEN / "mini.cfg", "--weights", GOLDEN / "mini.weights"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A YOLO folder of 3 images with 2 boxes each (classes of the 3-class mini network)."""
    root = tmp_path_factory.mktemp("targets") / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        Image.fromarray(np.full((64, 64, 3), 60 * i, np.uint8)).save(root / "images" / f"{i}.png")
        (root / "labels" / f"{i}.txt").write_text(f"{i % 3} 0.5 0.5 0.{i + 2} 0.3\n"
                                                  f"0 0.3 0.3 0.2 0.{i + 4}\n")
    return root


def command_line(command, dataset):
    """(argv up to the output option, the output option) of each command with a JSON output."""
    image = dataset / "images" / "0.png"
    return {"detect": (["detect", image, *MINI, "--project", "runs"], "--save-json"),
            "evaluate": (["evaluate", "--data", dataset, *MINI, "--project", "runs"],
                         "--metrics-json"),
            "cluster-anchors": (["cluster-anchors", dataset, "-k", 2], "--save-json")}[command]


class PipeReader:
    """Reads a named pipe in a thread, as another program would. The test holds a writing end
    of its own too, so the reader sees the end of the data only after the test lets go."""

    def __init__(self, fifo):
        self.read_end = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.held_write_end = os.open(fifo, os.O_WRONLY)
        os.set_blocking(self.read_end, True)
        self.chunks = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while chunk := os.read(self.read_end, 65536):
            self.chunks.append(chunk)

    def finish(self):
        os.close(self.held_write_end)
        self.thread.join(timeout=10)
        os.close(self.read_end)
        return b"".join(self.chunks).decode()


@pytest.mark.parametrize("command", ["detect", "evaluate", "cluster-anchors"])
def test_json_into_a_named_pipe_another_process_reads(command, dataset, tmp_path):
    fifo = tmp_path / "results.pipe"
    os.mkfifo(fifo)
    reader = PipeReader(fifo)
    argv, option = command_line(command, dataset)
    result = run_installed(*argv, option, fifo, cwd=tmp_path, timeout=120)
    received = reader.finish()
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the pipe was replaced by a file"
    assert json.loads(received)
    assert not list(tmp_path.glob(".results.pipe*")), "a temp file was left beside the pipe"


def test_json_through_a_symlink_replaces_its_target(dataset, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "dets.json").write_text("old\n")
    link = tmp_path / "dets.json"
    link.symlink_to(shared / "dets.json")
    argv, option = command_line("detect", dataset)
    result = run_installed(*argv, option, link, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(shared / "dets.json")
    records = json.loads((shared / "dets.json").read_text())
    assert [r["path"] for r in records] == [str(dataset / "images" / "0.png")]
    assert sorted(p.name for p in shared.iterdir()) == ["dets.json"]     # no temp file left


def test_json_to_standard_output_by_name(dataset, tmp_path):
    """/dev/stdout is a link to /proc/self/fd/1: the same link under tmp_path, so that the code
    this test guards against can only replace a link of the test's own."""
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    argv, option = command_line("detect", dataset)
    result = run_installed(*argv, option, stdout, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert stdout.is_symlink()
    start = result.stdout.index("[")
    records = json.loads(result.stdout[start:result.stdout.rindex("]") + 1])
    assert [r["path"] for r in records] == [str(dataset / "images" / "0.png")]


@pytest.fixture
def dev_never_replaced(monkeypatch):
    """os.replace that refuses any target under /dev: the code under test cannot destroy a
    device node even if it still renames over outputs."""
    real_replace = os.replace

    def guarded(src, dst, **kwargs):
        if os.fspath(dst).startswith("/dev/"):
            raise AssertionError(f"os.replace over {dst}")
        return real_replace(src, dst, **kwargs)
    monkeypatch.setattr(os, "replace", guarded)


def run_in_process(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_json_to_dev_null_is_written_through(dataset, dev_never_replaced, capsys):
    before = os.stat("/dev/null")
    argv, option = command_line("detect", dataset)
    code, out, err = run_in_process(capsys, *argv, option, "/dev/null")
    assert code == 0, err
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert not [name for name in os.listdir("/dev") if name.startswith(".null.")]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_a_device_that_refuses_the_write_is_one_line_naming_it(dataset, dev_never_replaced,
                                                               capsys):
    argv, option = command_line("detect", dataset)
    code, out, err = run_in_process(capsys, *argv, option, "/dev/full")
    assert code == 1 and "Traceback" not in err
    assert err == ("error: /dev/full: cannot write the detections: No space left on device "
                   "(ENOSPC)\n")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_every_writer_writes_through_a_pipe(tmp_path):
    """atomic_write_bytes (the writers of cfgs, names, logs) and atomic_path (checkpoints,
    plots) alike."""
    fifo = tmp_path / "out.pipe"
    os.mkfifo(fifo)
    reader = PipeReader(fifo)
    fileio.atomic_write_text(fifo, "one\n")
    with fileio.atomic_path(fifo) as tmp:
        with open(tmp, "w") as f:
            f.write("two\n")
    assert reader.finish() == "one\ntwo\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert fileio.output_path_problem(fifo) is None
