"""`train --resume RUN` with a damaged run folder: one error line naming args.json or last.h5
and what is wrong in it (issue 15 item 5)."""
import json

import h5py
import pytest

from yolo9000.cli import main
from yolo9000.data.synthetic_shapes import make_shapes


def run(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def assert_one_line(code, err, path, fragment):
    assert code == 1, err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1, err
    assert fragment in err, err


VALID = {"cfg": "yolov2-shapes", "data": "data/train.txt", "batch": 2, "learning_rate": 0.001,
         "steps": [4, 6], "multiscale": False, "anchors": None}


@pytest.mark.parametrize("change,fragment", [
    ({"batch": "two"}, "setting 'batch' should be a whole number, not \"two\""),
    ({"batch": 2.5}, "setting 'batch' should be a whole number, not 2.5"),
    ({"batch": True}, "setting 'batch' should be a whole number, not true"),
    ({"learning_rate": "fast"}, "setting 'learning_rate' should be a number"),
    ({"multiscale": "yes"}, "setting 'multiscale' should be true or false"),
    ({"steps": "4,6"}, "setting 'steps' should be a list of numbers"),
    ({"steps": [4, "six"]}, "setting 'steps' should be a list of numbers"),
    ({"cfg": 3}, "setting 'cfg' should be text"),
    ({"cfg": None}, "setting 'cfg' should be text"),
    ({"colour": "red"}, "unknown training settings: colour"),
])
def test_wrong_setting_in_args_json(tmp_path, capsys, change, fragment):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "args.json").write_text(json.dumps({**VALID, **change}))
    code, _, err = run(capsys, "train", "--resume", run_dir)
    assert_one_line(code, err, run_dir / "args.json", fragment)


@pytest.mark.parametrize("text,fragment", [
    ('{"cfg": "yolov2-shapes"}', "setting 'data' is missing"),
    ("[1, 2]", "should hold a JSON object of settings"),
    ("{cfg: yolov2", "args.json is not valid JSON"),
])
def test_malformed_args_json(tmp_path, capsys, text, fragment):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "args.json").write_text(text)
    code, _, err = run(capsys, "train", "--resume", run_dir)
    assert_one_line(code, err, run_dir / "args.json", fragment)


def test_damaged_optimiser_state_in_last_h5(tmp_path, capsys):
    data = make_shapes(tmp_path / "data", n_train=4, n_val=0, size=64, seed=2)
    code, _, err = run(capsys, "train", "--cfg", "yolov2-shapes", "--size", 64, "--workers", 0,
                       "--data", data["train"], "--batch", 2, "--max-batches", 2,
                       "--iterations", 1, "--save-every", 1, "--no-multiscale",
                       "--project", tmp_path, "--name", "run")
    assert code == 0, err
    last = tmp_path / "run" / "weights" / "last.h5"
    with h5py.File(last, "a") as f:
        del f["optimizer/iteration"]
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run")
    assert_one_line(code, err, last, "damaged checkpoint: its optimiser state does not fit")
