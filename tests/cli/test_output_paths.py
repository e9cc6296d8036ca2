"""Output paths are checked before a command starts its work: a path that cannot be written is
one error line naming it (exit 1), not a traceback after minutes of work whose results are lost."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo9000.cli import main
from yolo9000.fileio import output_path_problem
from conftest import GOLDEN

MINI = ["--cfg", GOLDEN / "mini.cfg", "--weights", GOLDEN / "mini.weights"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A YOLO folder of 4 images with 2 boxes each (classes of the 3-class mini network)."""
    root = tmp_path_factory.mktemp("outputs") / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(4):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        (root / "labels" / f"{i}.txt").write_text(f"{i % 3} 0.5 0.5 0.{i + 2} 0.3\n"
                                                  f"0 0.3 0.3 0.2 0.{i + 4}\n")
    return root


@pytest.fixture
def blocker(tmp_path):
    """A plain file where the outputs expect a folder."""
    path = tmp_path / "blocker"
    path.write_text("not a folder\n")
    return path


def run(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def assert_refused_before_work(code, out, err, path, reason):
    assert code == 1, (out, err)
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: cannot write the "), err
    assert reason in err, err
    assert out == "", "the command worked before refusing its output path"
    assert not os.path.exists("runs"), "a run folder was made before the refusal"


def command_lines(dataset, image):
    """command -> (argv before the output options, output option)."""
    return {
        "detect": ["detect", image, *MINI],
        "evaluate": ["evaluate", "--data", dataset, *MINI],
        "cluster-anchors": ["cluster-anchors", dataset, "-k", 2],
        "train": ["train", "--data", dataset, "--cfg", "yolov2-shapes", "--size", 64,
                  "--workers", 0, "--max-batches", 1, "--batch", 2],
        "demo": ["demo", "--train-images", 16, "--val-images", 1, "--iterations", 1],
    }


CASES = [
    # (command, option, where it points: under the blocker file, or at a folder)
    ("detect", "--project", "under-file"),
    ("detect", "--save-json", "under-file"),
    ("detect", "--save-json", "folder"),
    ("evaluate", "--project", "under-file"),
    ("evaluate", "--save-json", "under-file"),
    ("evaluate", "--metrics-json", "under-file"),
    ("evaluate", "--metrics-json", "folder"),
    ("cluster-anchors", "--save-json", "under-file"),
    ("cluster-anchors", "--save-json", "folder"),
    ("train", "--project", "under-file"),
    ("demo", "--project", "under-file"),
]


@pytest.mark.parametrize("command,option,where", CASES)
def test_unwritable_output_is_refused_before_the_work(command, option, where, dataset, blocker,
                                                      tmp_path, capsys):
    image = next((dataset / "images").iterdir())
    if where == "under-file":
        target, reason = blocker / "sub" / "out.json", f"{blocker} is a file, not a folder"
    else:
        target, reason = tmp_path / "a-folder", "is a folder"
        target.mkdir()
    code, out, err = run(capsys, *command_lines(dataset, image)[command], option, target)
    assert_refused_before_work(code, out, err, target, reason)


def test_cluster_anchors_plot_under_a_file(dataset, blocker, capsys):
    target = blocker / "sweep.png"
    code, out, err = run(capsys, "cluster-anchors", dataset, "-k", 2, "--sweep", "1-2",
                         "--plot", target)
    assert_refused_before_work(code, out, err, target, f"{blocker} is a file")


def test_convert_and_make_shapes_outputs_under_a_file(blocker, capsys):
    code, out, err = run(capsys, "convert", GOLDEN / "mini.weights", "--cfg", GOLDEN / "mini.cfg",
                         "-o", blocker / "mini.h5")
    assert_refused_before_work(code, out, err, blocker / "mini.h5", "is a file, not a folder")
    code, out, err = run(capsys, "make-shapes", blocker / "shapes", "--train-images", 1,
                         "--val-images", 0)
    assert_refused_before_work(code, out, err, blocker / "shapes", "is a file, not a folder")


def test_path_problems(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    # creatable: missing folders on the way are made when writing
    assert output_path_problem(tmp_path / "new" / "deeper" / "out.json") is None
    assert output_path_problem(tmp_path / "file") is None              # replaced atomically
    assert output_path_problem(tmp_path / "folder", folder=True) is None
    assert output_path_problem(tmp_path / "new" / "run", folder=True) is None
    assert output_path_problem("relative.json") is None
    # not creatable
    assert output_path_problem(tmp_path / "folder") == "is a folder; give a file name"
    assert output_path_problem(tmp_path / "file", folder=True) == "exists and is not a folder"
    assert (output_path_problem(tmp_path / "file" / "a" / "b.json")
            == f"{tmp_path / 'file'} is a file, not a folder")


def test_read_only_folder(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    # chmod does not stop root (the usual user in containers): refuse access the way the
    # kernel would for a folder without write permission
    real_access = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    assert output_path_problem(locked / "a" / "out.json") == f"no permission to write in {locked}"
    assert output_path_problem(locked, folder=True) == "no permission to write in it"
    assert output_path_problem(tmp_path / "elsewhere.json") is None
