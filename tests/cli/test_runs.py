"""Run folders: runs/<command>/exp, exp2, ... claimed atomically; --exist-ok reuses one."""
import threading

import pytest

from yolo9000.errors import UserError
from yolo9000.runs import OutputNamer, new_run_dir


def test_numbering_and_exist_ok(tmp_path):
    first = new_run_dir(tmp_path / "runs", "exp")
    second = new_run_dir(tmp_path / "runs", "exp")
    assert (first.name, second.name) == ("exp", "exp2")
    (first / "keep.txt").write_text("mine")
    again = new_run_dir(tmp_path / "runs", "exp", exist_ok=True)
    assert again == first and (again / "keep.txt").read_text() == "mine"


def test_runs_started_together_never_share_a_folder(tmp_path):
    folders, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        folders.append(new_run_dir(tmp_path, "exp"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(folders)) == 8


def test_a_file_in_the_way_is_a_user_error(tmp_path):
    (tmp_path / "exp").write_text("not a folder")
    with pytest.raises(UserError, match="not a folder"):
        new_run_dir(tmp_path, "exp", exist_ok=True)


def test_inputs_with_the_same_file_name_get_numbered_output_stems():
    namer = OutputNamer()
    stems = [namer.stem(p) for p in ("a/dog.jpg", "b/dog.png", "cat.jpg", "c/dog.jpg", "dog_2.jpg")]
    assert stems == ["dog", "dog_2", "cat", "dog_3", "dog_2_2"]
