"""`yolo9000 detect` cut short: SIGTERM half-way through 200 images, or a disk that fills,
still leaves the --save-json file of the images finished (its last record marks it
incomplete), says so in one line and exits 143 / 1."""
import json
import signal
import subprocess

import pytest

from conftest import INSTALLED_SCRIPT, installed_env
from yolo9000.model.zoo import DEFAULT_CHECKPOINT

IMAGES = 200


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    root = tmp_path_factory.mktemp("many")
    make_shapes(root / "data", n_train=IMAGES, n_val=0, size=64, seed=2)
    return root / "data" / "images" / "train"


def test_sigterm_half_way_writes_the_json_of_the_finished_images(images, tmp_path):
    json_path = tmp_path / "dets.json"
    process = subprocess.Popen(
        [str(INSTALLED_SCRIPT), "detect", str(images), "--weights", str(DEFAULT_CHECKPOINT),
         "--project", str(tmp_path / "runs"), "--save-json", str(json_path)],
        cwd=tmp_path, env=installed_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    reported = []
    for line in process.stdout:        # one line per image as it is done
        reported.append(line)
        if len(reported) == IMAGES // 2:
            process.send_signal(signal.SIGTERM)
            break
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    [line] = stderr.splitlines()
    assert line.startswith("interrupted after") and str(json_path) in line
    records = json.loads(json_path.read_text())
    *entries, marker = records
    done = len(reported) + len(rest.splitlines())
    assert marker == {"incomplete": True, "images_done": done, "images_total": IMAGES}
    assert IMAGES // 2 <= done < IMAGES
    assert [e["path"] for e in entries] == sorted(str(p) for p in images.iterdir())[:done]


def test_a_disk_filling_mid_run_still_writes_the_json_of_the_finished_images(images, small_disk,
                                                                            tmp_path):
    # room for a few dozen annotated 64 px images, not for 200
    (small_disk / "filler").write_bytes(b"\0" * (16 * 2**20 - 160 * 1024))
    json_path = tmp_path / "dets.json"
    result = subprocess.run(
        [str(INSTALLED_SCRIPT), "detect", str(images), "--weights", str(DEFAULT_CHECKPOINT),
         "--project", str(small_disk), "--save-json", str(json_path)],
        cwd=tmp_path, env=installed_env(tmp_path), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert "no space left" in line.lower() and str(json_path) in line
    *entries, marker = json.loads(json_path.read_text())
    done = len(result.stdout.splitlines())
    assert marker == {"incomplete": True, "images_done": done, "images_total": IMAGES}
    assert 0 < done < IMAGES and len(entries) == done
