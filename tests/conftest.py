import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))   # conftest, gradcheck, detection_reference, torch_darknet

# Fixtures every clone has (see fixtures/README.md).
FIXTURES = TESTS / "fixtures"
GOLDEN = FIXTURES / "golden"           # darknet's own numbers on the miniature YOLOv2
REFERENCE_CFG = FIXTURES / "cfg"       # darknet's published cfgs
REFERENCE_NAMES = FIXTURES / "names"   # voc/coco names, the 9k WordTree
IMAGES = FIXTURES / "images"           # real photographs

# Only the VOC sample stays outside the repository; tests that need it skip with a reason.
VOC_SAMPLE = TESTS.parents[1] / "shared" / "voc2007-sample"


def run_folder_args(folder):
    """--project/--name options that make a command write into exactly `folder`."""
    folder = Path(folder)
    return ["--project", str(folder.parent), "--name", folder.name]


def scalar_iou(a, b):
    """IoU of two xyxy boxes in plain Python: the independent reference for the array code."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# the console script pip writes next to the interpreter (tests run it, never `python -m`)
INSTALLED_SCRIPT = Path(sys.executable).with_name("yolo9000")


def installed_env(cwd, env=None):
    """The clean environment the installed script runs in; `env` adds variables (None values
    remove)."""
    clean = {"PATH": f"{INSTALLED_SCRIPT.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
             "HOME": str(cwd), "LANG": "C.UTF-8", "YOLO9000_THREADS": "1"}
    clean.update(env or {})
    return {k: v for k, v in clean.items() if v is not None}


def run_installed(*args, cwd, timeout=300, env=None, launcher=()):
    """Run the script (under `launcher`, e.g. ("mpiexec", "-n", "2")) in installed_env."""
    assert INSTALLED_SCRIPT.is_file(), (f"no console script at {INSTALLED_SCRIPT}: install the package "
                              "(pip install .) into this interpreter's environment")
    return subprocess.run([*map(str, launcher), str(INSTALLED_SCRIPT), *map(str, args)], cwd=cwd,
                          env=installed_env(cwd, env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# runs a command (its arguments) and writes the peak resident memory of its largest process,
# data workers included, in bytes to the file PEAK_RSS_FILE names
_PEAK_PROBE = ("import os, resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
               "open(os.environ['PEAK_RSS_FILE'], 'w').write(str(1024 * resource.getrusage("
               "resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)")


def run_installed_peak(*args, cwd, timeout=300, env=None):
    """run_installed, and the peak resident memory in bytes of the command's largest process
    (read by a fresh probe process, so no earlier command of the test run counts)."""
    peak_file = Path(cwd) / ".peak_rss"
    result = run_installed(*args, cwd=cwd, timeout=timeout,
                           env={**(env or {}), "PEAK_RSS_FILE": str(peak_file)},
                           launcher=(sys.executable, "-c", _PEAK_PROBE))
    peak = int(peak_file.read_text())
    peak_file.unlink()
    return result, peak


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path, monkeypatch):
    """Commands write run folders (runs/<command>/exp) under the current folder: keep every
    test's outputs in its own temporary folder, never in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs to fill up; skipped where this process may not mount one (not root, or a
    container without the capability)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount is not allowed here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)
