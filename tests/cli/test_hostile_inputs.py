"""Inputs that used to end in a traceback or write where they should not, through the
installed script: each is one line on stderr, exit 1, and nothing written outside --project."""
import json
import os
import subprocess

import pytest

from conftest import INSTALLED_SCRIPT, installed_env, run_installed
from yolo9000.model.zoo import DEFAULT_CHECKPOINT


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    return make_shapes(tmp_path_factory.mktemp("shapes") / "data", n_train=2, n_val=0, size=64,
                       seed=1)


@pytest.fixture(scope="module")
def image(shapes):
    return next(iter(sorted((shapes["train"].parent / "images" / "train").iterdir())))


def one_error_line(result):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize("command", [
    ["train", "--cfg", "yolov2-shapes", "--size", "64", "--workers", "0", "--data"],
    ["evaluate", "--weights", str(DEFAULT_CHECKPOINT), "--data"],
    ["cluster-anchors"]])
def test_a_coco_json_nested_100000_deep_is_one_line(tmp_path, command):
    deep = tmp_path / "instances_train.json"
    deep.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + ', "annotations": []}')
    line = one_error_line(run_installed(*command, deep, cwd=tmp_path))
    assert str(deep) in line and "nested too deeply" in line


@pytest.mark.parametrize("command", [["detect", "IMAGE", "--weights", str(DEFAULT_CHECKPOINT)],
                                     ["cluster-anchors", "DATA", "-k", "2"]])
def test_save_json_to_a_closed_standard_output_is_one_line(tmp_path, shapes, image, command):
    command = [{"IMAGE": str(image), "DATA": str(shapes["train"])}.get(a, a) for a in command]
    result = subprocess.run([str(INSTALLED_SCRIPT), *command, "--save-json", "-"],
                            cwd=tmp_path, env=installed_env(tmp_path), stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: os.close(1), timeout=120)   # `>&-`
    line = one_error_line(result)
    assert "standard output" in line and "closed" in line


@pytest.mark.parametrize("project", ["/proc/self/fd", "/sys/kernel"])
def test_a_project_the_system_will_not_hold_folders_in_is_one_line(tmp_path, image, project):
    if not os.path.isdir(project):
        pytest.skip(f"no {project} here")
    line = one_error_line(run_installed("detect", image, "--weights", DEFAULT_CHECKPOINT,
                                        "--project", project, cwd=tmp_path))
    assert f"{project}/exp" in line and "cannot create the run folder" in line


@pytest.mark.parametrize("name", ["../../escaped", "ABSOLUTE", "..", "a/b"])
def test_a_run_name_is_one_path_component(tmp_path, image, name):
    name = str(tmp_path / "escaped") if name == "ABSOLUTE" else name
    project = tmp_path / "one" / "two"
    line = one_error_line(run_installed("detect", image, "--weights", DEFAULT_CHECKPOINT,
                                        "--project", project, "--name", name, cwd=tmp_path))
    assert repr(name) in line and "one path component" in line
    assert not (tmp_path / "escaped").exists()
    assert not (project / "a").exists()


def test_looping_symlinks_in_a_folder_get_one_note_per_loop(tmp_path, image):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "real.jpg").write_bytes(image.read_bytes())
    os.symlink("b.jpg", folder / "a.jpg")           # a -> b -> a, and c leading into it
    os.symlink("a.jpg", folder / "b.jpg")
    os.symlink("a.jpg", folder / "c.jpg")
    os.symlink("self.png", folder / "self.png")     # a loop of one
    result = run_installed("detect", folder, "--weights", DEFAULT_CHECKPOINT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "loop" in line]
    assert notes == [f"note: {folder}: skipped {folder}/a.jpg, {folder}/b.jpg, {folder}/c.jpg: "
                     "a symbolic link loop",
                     f"note: {folder}: skipped {folder}/self.png: a symbolic link loop"]
    assert result.stdout.startswith(f"{folder}/real.jpg 64x64")


def test_file_names_with_control_characters_are_quoted_and_forge_no_line(tmp_path, image):
    folder = tmp_path / "photos"
    folder.mkdir()
    forger = folder / "a.jpg 64x64: 0 detections, 1 ms\nb.jpg"
    forger.write_bytes(image.read_bytes())
    broken = folder / "c\r\x1b[2Kd.jpg"            # a carriage return and a terminal escape
    broken.write_bytes(b"not an image")
    result = run_installed("detect", folder, "--weights", DEFAULT_CHECKPOINT,
                           "--project", tmp_path / "runs", "--name", "x\ny", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    # the image's line, the rate, the run folder: nothing else, each written whole
    assert len(lines) == 3, result.stdout
    assert lines[0].startswith(repr(str(forger)) + " 64x64: ")
    assert lines[2] == "annotated images: " + repr(str(tmp_path / "runs" / "x\ny"))
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")][:1]
    assert error.startswith(f"error: {str(broken)!r}: ")
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
