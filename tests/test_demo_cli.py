"""`yolo9000 demo` end to end at a toy size: every step runs and writes what it says."""
import json

from click.testing import CliRunner

from yolo9000.model.checkpoint import read_checkpoint_info
from yolo9000.cli import cli
from conftest import run_folder_args


def test_demo_runs_every_step_and_writes_its_results(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", *run_folder_args(out), "--train-images", "16", "--val-images", "4",
                                      "--size", "64", "--iterations", "4", "--batch", "4",
                                      "--workers", "0", "--detect-images", "2"])
    assert result.exit_code == 0, result.output
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in result.output
    assert (out / "data" / "shapes.data").is_file()
    assert (out / "anchors.txt").read_text().startswith("anchors = ")
    assert (out / "train" / "weights" / "last.h5").is_file()
    assert (out / "train" / "results.csv").read_text().count("\n") >= 2   # header + evaluations
    assert len(list((out / "detections").glob("*.png"))) == 2
    info = read_checkpoint_info(out / "shapes.h5")
    assert info["names"] == ["circle", "square", "triangle", "star", "cross"]
    assert 0.0 <= info["meta"]["mAP50"] <= 1.0
    args = json.loads((out / "train" / "args.json").read_text())
    assert args["optimizer"] == "adam" and args["max_batches"] == 4


def test_demo_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo", *run_folder_args(tmp_path), "--exist-ok"])
    assert result.exit_code != 0
    assert (tmp_path / "keep.txt").read_text() == "mine"
