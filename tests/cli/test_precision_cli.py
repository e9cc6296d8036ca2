"""--precision on detect, evaluate, classify and summary, through the installed script: what
runs is said, bf16's detections agree with fp32's, and a CPU without a bf16 unit (stood in
for by YOLO9000_PORTABLE_KERNELS) gets one line for bf16 and fp32 for auto."""
import json

import pytest

from conftest import GOLDEN, run_installed
from yolo9000.kernels import lowp

MINI = ["--cfg", GOLDEN / "mini.cfg", "--weights", GOLDEN / "mini.weights"]
NO_UNIT = {"YOLO9000_PORTABLE_KERNELS": "1"}
needs_unit = pytest.mark.skipif(lowp.bf16_hardware_kernel() is None,
                                reason="this CPU has neither AMX-BF16 nor AVX512-BF16")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    made = run_installed("make-shapes", root / "data", "--train-images", 1, "--val-images", 24,
                         "--image-size", 128, cwd=root)
    assert made.returncode == 0, made.stderr
    return root / "data"


@needs_unit
def test_detect_in_bf16_says_so_and_finds_what_fp32_finds(shapes, tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.json"
        r = run_installed("detect", shapes / "images" / "val", "--precision", precision,
                          "--save-json", out, "--name", precision, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        runs[precision] = (r, json.loads(out.read_text()))
    unit = lowp.bf16_hardware_kernel()
    assert f"precision bf16 on {unit}" in runs["bf16"][0].stderr
    assert "precision" not in runs["fp32"][0].stderr
    fp32, bf16 = runs["fp32"][1], runs["bf16"][1]
    same = sum(len(a["detections"]) == len(b["detections"]) for a, b in zip(fp32, bf16))
    assert len(fp32) == len(bf16) == 24 and same >= 22


@needs_unit
def test_evaluate_auto_runs_bf16_within_half_a_point_of_fp32(shapes, tmp_path):
    maps = {}
    for precision in ("fp32", "auto"):
        r = run_installed("evaluate", "--data", shapes / "val.txt", "--precision", precision,
                          "--metrics-json", "-", "--name", precision, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        maps[precision] = json.loads(r.stdout)["mAP50"]
        if precision == "auto":
            assert f"precision auto: bf16 on {lowp.bf16_hardware_kernel()}" in r.stderr
    assert abs(maps["auto"] - maps["fp32"]) <= 0.005


@pytest.mark.parametrize("command", [
    ["detect", GOLDEN / "input.npy", *MINI],
    ["summary", GOLDEN / "mini.cfg"],
])
def test_bf16_without_a_unit_is_one_line(command, tmp_path):
    r = run_installed(*command, "--precision", "bf16", cwd=tmp_path, env=NO_UNIT)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "error: --precision bf16 needs AMX-BF16 or AVX512-BF16: YOLO9000_PORTABLE_KERNELS is "
        "set; use --precision fp32 (or auto)"]


def test_auto_without_a_unit_runs_fp32_and_says_so(tmp_path):
    r = run_installed("summary", GOLDEN / "mini.cfg", "--precision", "auto", cwd=tmp_path,
                      env=NO_UNIT)
    assert r.returncode == 0, r.stderr
    assert "precision auto: fp32 (YOLO9000_PORTABLE_KERNELS is set)" in r.stdout
    assert "bf16" not in r.stdout.split("\n", 1)[1]


@needs_unit
def test_summary_names_each_convolutions_path(tmp_path):
    r = run_installed("summary", "yolov2-tiny-voc", "--precision", "bf16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    conv_rows = [line for line in r.stdout.splitlines() if " conv " in line]
    assert len(conv_rows) == 9
    unit = lowp.bf16_hardware_kernel()
    assert all(f"  bf16 {unit} " in line for line in conv_rows[1:])
    # the RGB layer: bf16's rgb kernel on AMX; on AVX512-BF16 alone the fp32 direct kernel
    assert conv_rows[0].endswith("bf16 amx rgb" if unit == "amx" else "fp32 direct")
    fp32 = run_installed("summary", "yolov2-tiny-voc", "--precision", "fp32", cwd=tmp_path)
    paths = {line.rsplit("  ", 1)[1] for line in fp32.stdout.splitlines() if " conv " in line}
    assert paths <= {"fp32 direct", "fp32 winograd", "fp32 im2col"} and paths
    # without --precision, darknet's table as before: no paths, no precision
    plain = run_installed("summary", "yolov2-tiny-voc", cwd=tmp_path)
    assert "precision" not in plain.stdout and "fp32" not in plain.stdout
    assert [line for line in plain.stdout.splitlines() if " conv " in line][0].endswith("BFLOPs")
