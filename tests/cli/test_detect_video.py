"""`yolo9000 detect` on videos: the same detections as on the frames saved as images, the
annotated video, JSON Lines readable while the command runs, SIGINT / SIGTERM, a cut file,
--vid-stride, cameras, and PyAV missing."""
import importlib.util
import json
import os
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import INSTALLED_SCRIPT, installed_env, run_folder_args, run_installed
from yolo9000.cli import main

needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None,
                              reason="PyAV (the [video] extra) is not installed")
THRESH = ["--thresh", "0.3"]


def run(argv, capsys):
    """The CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(["detect", *map(str, argv)])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def messages(stderr, video_name):
    """stderr without the progress bar's lines and the bundled model's note."""
    return [line for line in stderr.splitlines()
            if not line.startswith((f"{video_name} ", "note: "))]


@pytest.fixture(scope="module")
def clip_frames():
    from video_clips import moving_shapes
    return moving_shapes(30)


@pytest.fixture(scope="module")
def clip(clip_frames, tmp_path_factory):
    from video_clips import write_video
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mkv", clip_frames)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """90 frames: at --size 416 on one thread the run takes seconds, time to watch it."""
    from video_clips import moving_shapes, write_video
    return write_video(tmp_path_factory.mktemp("long") / "long.mkv", moving_shapes(90))


@needs_av
def test_video_detections_are_those_of_the_frames_as_images(clip, clip_frames, tmp_path,
                                                            capsys):
    from video_clips import read_video
    images = tmp_path / "frames"
    images.mkdir()
    for i, rgb in enumerate(clip_frames):
        Image.fromarray(rgb).save(images / f"{i:03d}.png")
    code, _, err = run([images, *THRESH, "--save-json", tmp_path / "images.json",
                        *run_folder_args(tmp_path / "img")], capsys)
    assert code == 0, err
    expected = json.loads((tmp_path / "images.json").read_text())
    assert sum(len(r["detections"]) for r in expected) >= 30, "the model sees the shapes"

    code, out, err = run([clip, *THRESH, "--save-json", tmp_path / "video.jsonl", "--batch", 4,
                          *run_folder_args(tmp_path / "vid")], capsys)
    assert code == 0, err
    got = records(tmp_path / "video.jsonl")
    assert [r["frame"] for r in got] == list(range(30))
    np.testing.assert_allclose([r["time"] for r in got], np.arange(30) / 25, atol=1e-6)
    for frame, image in zip(got, expected):
        assert frame["path"] == str(clip) and (frame["width"], frame["height"]) == (160, 128)
        assert [d["class"] for d in frame["detections"]] == [d["class"] for d in image["detections"]]
        assert [d["name"] for d in frame["detections"]] == [d["name"] for d in image["detections"]]
        for d, e in zip(frame["detections"], image["detections"]):
            assert set(d) == set(e)
            np.testing.assert_allclose(d["box"], e["box"], atol=0.5)
            assert abs(d["score"] - e["score"]) <= 1e-4
    annotated = tmp_path / "vid" / "clip.mp4"
    frames, rate, width, height = read_video(annotated)
    assert (len(frames), rate, width, height) == (30, 25, 160, 128)
    assert f"{clip} 160x128: 30 frames in" in out and str(annotated) in out
    assert "frames/s" in err and "30/30" in err          # the progress bar, on stderr


@needs_av
def test_vid_stride_keeps_frames_0_3_6(clip, tmp_path, capsys):
    from video_clips import read_video
    code, _, err = run([clip, "--vid-stride", 3, "--save-json", tmp_path / "d.jsonl",
                        *run_folder_args(tmp_path / "run")], capsys)
    assert code == 0, err
    assert [r["frame"] for r in records(tmp_path / "d.jsonl")] == list(range(0, 30, 3))
    frames, rate, _, _ = read_video(tmp_path / "run" / "clip.mp4")
    assert len(frames) == 10 and rate == Fraction(25, 3)   # lasts as long as the source


def start_installed(*args, cwd):
    return subprocess.Popen([str(INSTALLED_SCRIPT), "detect", *map(str, args)], cwd=cwd,
                            env=installed_env(cwd), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def complete_records(path):
    """The records of the lines written so far (a line still being written is left out)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


def wait_for_records(proc, path, count, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = complete_records(path)
        if len(seen) >= count or proc.poll() is not None:
            return seen
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no {count} records in {timeout} s")


@needs_av
def test_json_lines_can_be_read_while_the_command_runs(long_clip, tmp_path):
    out = tmp_path / "d.jsonl"
    proc = start_installed(long_clip, "--size", 416, "--save-json", out, cwd=tmp_path)
    counts = set()          # how many records the file held, each time it was read mid-run
    while proc.poll() is None:
        seen = complete_records(out)
        assert [r["frame"] for r in seen] == list(range(len(seen)))
        counts.add(len(seen))
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert [r["frame"] for r in records(out)] == list(range(90))
    # a record per frame as it is done, not a buffer's worth now and then
    assert len(counts - {0, 90}) >= 10, sorted(counts)


@needs_av
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_a_video_that_plays(long_clip, tmp_path, sig):
    from video_clips import read_video
    out = tmp_path / "d.jsonl"
    proc = start_installed(long_clip, "--size", 416, "--save-json", out, cwd=tmp_path)
    wait_for_records(proc, out, 2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    annotated = tmp_path / "runs" / "detect" / "exp" / "long.mp4"
    assert messages(stderr, "long.mkv") == [
        f"interrupted: {Path('runs/detect/exp/long.mp4')} holds {len(records(out))} frames"]
    frames, rate, width, height = read_video(annotated)
    assert 2 <= len(frames) == len(records(out)) < 90
    assert (rate, width, height) == (25, 160, 128)


@needs_av
def test_a_cut_video_names_its_frame_and_keeps_the_records_before_it(clip, tmp_path, capsys):
    from video_clips import read_video
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) * 2 // 3])
    code, _, err = run([cut, clip, "--save-json", tmp_path / "d.jsonl",
                        *run_folder_args(tmp_path / "run")], capsys)
    assert code == 1
    got = records(tmp_path / "d.jsonl")
    kept = [r["frame"] for r in got if r["path"] == str(cut)]
    assert 0 < len(kept) < 30 and kept == list(range(len(kept)))
    assert [r["frame"] for r in got if r["path"] == str(clip)] == list(range(30))
    errors = [line for line in messages(err, "cut.mkv") if line.startswith("error:")]
    assert errors == [f"error: {cut}: frame {len(kept)}: File ended prematurely "
                      "(the file is cut short or damaged)"]
    assert "1 input failed" in err
    assert len(read_video(tmp_path / "run" / "cut.mp4")[0]) == len(kept)


def test_without_pyav_one_line_names_the_extra(tmp_path):
    hide = tmp_path / "no_av"
    hide.mkdir()
    (hide / "av.py").write_text('raise ImportError("PyAV hidden by the test")\n')
    (tmp_path / "clip.mp4").write_bytes(b"")
    proc = run_installed("detect", "clip.mp4", cwd=tmp_path, env={"PYTHONPATH": str(hide)})
    assert proc.returncode == 1
    assert proc.stderr == 'error: video input needs PyAV: pip install "yolo9000[video]"\n'
    assert not (tmp_path / "runs").exists()


def test_a_missing_camera_and_video_sources_options(tmp_path, capsys):
    if os.path.exists("/dev/video0"):
        pytest.skip("this machine has a camera at /dev/video0")
    pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")
    code, _, err = run(["--source", "0"], capsys)
    assert code == 1
    assert err.splitlines() == ["error: /dev/video0: no such camera device",
                                "error: no videos to process"]
    (tmp_path / "a.mkv").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"")
    for argv, message in [(["a.mkv", "b.png"], "give videos or images, not both"),
                          (["a.mkv", "--json-format", "coco"], "--json-format coco is for images"),
                          (["a.mkv", "--save-txt"], "--save-txt writes label files of images")]:
        code, _, err = run(argv, capsys)
        assert code == 1 and err.startswith(f"error: {message}") and err.count("\n") == 1
    code, _, err = run([], capsys)
    assert code == 2 and "give the images or videos (SOURCES) or --source" in err
