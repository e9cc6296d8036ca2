"""`yolo9000 evaluate` cut short by SIGTERM: no metrics (a part of the set would pass for the
model's score), but the --save-json detections of the images finished, their last record
marking them incomplete; one line, exit 143."""
import json
import signal
import subprocess

from conftest import INSTALLED_SCRIPT, installed_env
from yolo9000.model.zoo import DEFAULT_CHECKPOINT

IMAGES = 200


def test_sigterm_half_way_writes_the_detections_of_the_finished_images(tmp_path):
    from yolo9000.data.synthetic_shapes import make_shapes
    data = make_shapes(tmp_path / "data", n_train=IMAGES, n_val=0, size=64, seed=4)["train"]
    json_path = tmp_path / "dets.json"
    process = subprocess.Popen(
        [str(INSTALLED_SCRIPT), "evaluate", "--data", str(data), "--batch", "1",
         "--weights", str(DEFAULT_CHECKPOINT), "--project", str(tmp_path / "runs"),
         "--save-json", str(json_path), "--json-format", "yolo9000"],
        cwd=tmp_path, env=installed_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    for line in process.stderr:        # the progress, a line per 10 images off a terminal
        if line.startswith(f"evaluating {IMAGES // 2}/"):
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if not line.startswith("evaluating ")]
    assert line.startswith("interrupted after") and "no metrics" in line
    assert str(json_path) in line
    *entries, marker = json.loads(json_path.read_text())
    assert marker["incomplete"] is True and marker["images_total"] == IMAGES
    assert IMAGES // 2 <= marker["images_done"] < IMAGES == marker["images_total"]
    assert len(entries) == marker["images_done"]
    assert not list((tmp_path / "runs").rglob("metrics.json"))
    assert "mAP" not in stdout


def test_a_plot_the_full_disk_cannot_take_is_one_line(small_disk, tmp_path):
    from conftest import run_installed
    from yolo9000.data.synthetic_shapes import make_shapes
    data = make_shapes(tmp_path / "data", n_train=10, n_val=0, size=64, seed=4)["train"]
    # room for metrics.json (about 1.5 kB), not for pr_curve.png (tens of kB)
    (small_disk / "filler").write_bytes(b"\0" * (16 * 2**20 - 40 * 1024))
    result = run_installed("evaluate", "--data", data, "--weights", DEFAULT_CHECKPOINT,
                           "--project", small_disk, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line == f"error: {small_disk / 'exp' / 'pr_curve.png'}: No space left on device (ENOSPC)"
    assert not [p for p in (small_disk / "exp").iterdir() if p.name.startswith(".")]
