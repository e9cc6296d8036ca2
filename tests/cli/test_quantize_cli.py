"""`convert --quantize int8` and int8 checkpoints through the installed script: the checkpoint
made and described, int8 detections scored within a point of fp32, fp32 runs of an int8 file
said, and every misuse one line with a non-zero exit."""
import json

import pytest

from conftest import GOLDEN, run_installed
from yolo9000.kernels import int8
from yolo9000.model.zoo import DEFAULT_CHECKPOINT

NO_UNIT = {"YOLO9000_PORTABLE_KERNELS": "1"}
UNIT = int8.int8_hardware_kernel()
needs_unit = pytest.mark.skipif(UNIT is None, reason="this CPU has neither AMX-INT8 nor VNNI")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The bundled shapes model quantized on 16 fresh training images; 24 others to score."""
    root = tmp_path_factory.mktemp("int8")
    r = run_installed("make-shapes", root / "data", "--train-images", 16, "--val-images", 48,
                      "--image-size", 128, "--seed", 5, cwd=root)
    assert r.returncode == 0, r.stderr
    r = run_installed("convert", DEFAULT_CHECKPOINT, "--output", root / "int8.h5", "--quantize",
                      "int8", "--calibration", root / "data" / "images" / "train", cwd=root)
    assert r.returncode == 0, r.stderr
    return root, r


def one_line_error(r):
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[-1].startswith("error: ")
    return lines[-1]


def test_convert_writes_and_describes_an_int8_checkpoint(made):
    root, r = made
    lines = r.stdout.splitlines()
    assert lines[-1] == f"wrote {root / 'int8.h5'}"
    assert lines[-2].startswith("int8 checkpoint: 8 int8 convolutions, layers 0, 16 kept fp32; "
                                "calibrated (percentile 99.99) on 16 images of ")
    assert "calibration 16/16" in r.stderr          # the progress bar
    assert (root / "int8.h5").stat().st_size < DEFAULT_CHECKPOINT.stat().st_size / 3
    summary = run_installed("summary", root / "int8.h5", cwd=root)
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.splitlines()[0] == lines[-2]


@needs_unit
def test_summary_names_the_int8_paths(made):
    root, _ = made
    r = run_installed("summary", root / "int8.h5", "--precision", "auto", cwd=root)
    assert r.returncode == 0, r.stderr
    assert f"precision auto: int8 on {UNIT}" in r.stdout
    conv_rows = [line for line in r.stdout.splitlines() if " conv " in line]
    assert [row.split("BFLOPs  ")[1].startswith("int8") for row in conv_rows] == \
        [False] + [True] * 8 + [False]


@needs_unit
def test_evaluate_in_int8_is_within_a_point_of_fp32(made):
    root, _ = made
    maps = {}
    for weights, precision in ((DEFAULT_CHECKPOINT, "fp32"), (root / "int8.h5", "int8")):
        r = run_installed("evaluate", "--data", root / "data" / "val.txt", "--weights", weights,
                          "--precision", precision, "--metrics-json", "-", "--name", precision,
                          cwd=root)
        assert r.returncode == 0, r.stderr
        metrics = json.loads(r.stdout)
        maps[precision] = metrics["mAP50"]
        # metrics.json says which arithmetic gave its figures
        assert metrics["precision"] == ("fp32" if precision == "fp32" else f"int8 on {UNIT}")
    assert f"precision int8 on {UNIT}" in r.stderr
    assert abs(maps["int8"] - maps["fp32"]) <= 0.01


def test_an_int8_checkpoint_in_fp32_says_it_runs_dequantized_weights(made):
    root, _ = made
    r = run_installed("detect", root / "data" / "images" / "val", "--weights", root / "int8.h5",
                      "--save-json", root / "fp32.json", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "precision fp32 (an int8 checkpoint: its weights dequantized)" in r.stderr


def test_auto_without_a_unit_falls_back_and_says_why(made):
    root, _ = made
    r = run_installed("summary", root / "int8.h5", "--precision", "auto", cwd=root, env=NO_UNIT)
    assert r.returncode == 0, r.stderr
    assert ("precision auto: fp32 (YOLO9000_PORTABLE_KERNELS is set) (an int8 checkpoint: its "
            "weights dequantized)") in r.stdout


def test_int8_without_a_unit_is_one_line(made):
    root, _ = made
    r = run_installed("evaluate", "--data", root / "data" / "val.txt", "--weights",
                      root / "int8.h5", "--precision", "int8", cwd=root, env=NO_UNIT)
    assert one_line_error(r) == ("error: --precision int8 needs AMX-INT8 or AVX512-VNNI: "
                                 "YOLO9000_PORTABLE_KERNELS is set; use --precision fp32 (or "
                                 "auto)")


@needs_unit
def test_int8_on_fp32_weights_names_the_convert_command(tmp_path):
    r = run_installed("detect", GOLDEN / "input.npy", "--cfg", GOLDEN / "mini.cfg", "--weights",
                      GOLDEN / "mini.weights", "--precision", "int8", cwd=tmp_path)
    assert one_line_error(r) == (
        "error: --precision int8 needs an int8 checkpoint and these weights are fp32: make one "
        f"with `yolo9000 convert {GOLDEN / 'mini.weights'} --cfg {GOLDEN / 'mini.cfg'} "
        "--output mini-int8.h5 --quantize int8 --calibration DIR` (DIR: a folder "
        "of images like those it will see)")


def test_training_from_an_int8_checkpoint_is_one_line(made):
    root, _ = made
    r = run_installed("train", "--weights", root / "int8.h5", "--data", root / "data" /
                      "train.txt", "--max-batches", 1, "--batch", 2, "--name", "refused",
                      cwd=root)
    assert "an int8 checkpoint does not train" in one_line_error(r)
    assert not (root / "runs" / "train" / "refused" / "weights").exists()


@pytest.mark.parametrize("output", ["again.h5", "back.weights"])
def test_an_int8_checkpoint_is_not_converted(made, output):
    root, _ = made
    r = run_installed("convert", root / "int8.h5", "--output", root / output, cwd=root)
    assert "an int8 checkpoint is not converted" in one_line_error(r)
    assert not (root / output).exists()


def test_calibration_problems_are_one_line(made, tmp_path):
    root, _ = made
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"not a jpeg")
    convert = ("convert", DEFAULT_CHECKPOINT, "--output", tmp_path / "out.h5")
    cases = {
        (): None,
        ("--quantize", "int8"): "--quantize int8 needs --calibration DIR",
        ("--quantize", "int8", "--calibration", tmp_path / "empty"): "no images in this folder",
        ("--quantize", "int8", "--calibration", tmp_path / "missing"): "not a folder",
        ("--quantize", "int8", "--calibration", tmp_path / "broken"):
            "none of the 1 images",
        ("--calibration", tmp_path / "empty"): "--calibration is for --quantize int8",
        ("--quantize", "int8", "--calibration", root / "data" / "images" / "train",
         "--calibration-rule", "entropy", "--percentile", 99): "--percentile is for",
    }
    for extra, expected in cases.items():
        r = run_installed(*convert, *extra, cwd=tmp_path)
        if expected is None:
            assert r.returncode == 0, r.stderr     # a plain conversion still works
            (tmp_path / "out.h5").unlink()
            continue
        assert expected in one_line_error(r), extra
        assert not (tmp_path / "out.h5").exists()


def test_int8_needs_a_checkpoint_output(made, tmp_path):
    root, _ = made
    r = run_installed("convert", DEFAULT_CHECKPOINT, "--output", tmp_path / "x.weights",
                      "--quantize", "int8", "--calibration", root / "data" / "images" / "train",
                      cwd=tmp_path)
    assert "only as a checkpoint" in one_line_error(r)


def test_the_help_states_the_default_percentile(tmp_path):
    from yolo9000.model.quantization import PERCENTILE
    r = run_installed("convert", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"[default: {PERCENTILE:g}]" in " ".join(r.stdout.split())


def test_size_and_rule_are_recorded(made, tmp_path):
    root, _ = made
    r = run_installed("convert", DEFAULT_CHECKPOINT, "--output", tmp_path / "e.h5", "--quantize",
                      "int8", "--calibration", root / "data" / "images" / "train", "--size", 96,
                      "--calibration-rule", "entropy", "--calibration-images", 5,
                      "--quantize-ends", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[-2]
    assert line.startswith("int8 checkpoint: 10 int8 convolutions; calibrated (entropy) on 5 "
                           "images of ")
    assert " at 96x96 " in line
    summary = run_installed("summary", tmp_path / "e.h5", cwd=tmp_path)
    assert "(stored cfg): input 96 x 96 x 3" in summary.stdout
