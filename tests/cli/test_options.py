"""Options shared by several commands mean the same everywhere (commands/options.py)."""
import pytest
from click.testing import CliRunner

from yolo9000.cli import cli
from yolo9000.errors import UserError
from yolo9000.model.cfg import check_input_size


@pytest.mark.parametrize("argv", [["detect", "x.jpg"], ["evaluate", "--data", "x"],
                                  ["train", "--data", "x"], ["cluster-anchors", "x"], ["demo"],
                                  ["summary", "yolov2-voc"]])
@pytest.mark.parametrize("size", ["100", "80"])
def test_size_must_be_a_positive_multiple_of_32(argv, size, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)           # nothing may be written if the option is refused
    result = CliRunner().invoke(cli, [*argv, "--size", size])
    assert result.exit_code == 2
    assert f"Invalid value for '--size': must be a positive multiple of 32, got {size}" \
        in result.output
    assert not list(tmp_path.iterdir())


def test_library_size_check():
    assert check_input_size(416) == 416
    for bad in (0, -32, 33, 100):
        with pytest.raises(UserError, match=f"input width must be a positive multiple of 32, "
                                            f"got {bad}"):
            check_input_size(bad, "input width")
