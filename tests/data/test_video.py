"""data/video.py: which sources are videos or cameras, and the frames of a video file as PyAV
wrote them (lossless clips), with vid_stride, cut-short files and an early stop."""
import sys
import threading

import numpy as np
import pytest

from yolo9000.data.video import (VIDEO_SUFFIXES, VideoSource, camera_device, is_video_name,
                                 video_inputs)
from yolo9000.errors import UserError

pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")
from video_clips import RATE, moving_shapes, write_video  # noqa: E402

N_FRAMES = 30


@pytest.fixture(scope="module")
def frames():
    return moving_shapes(N_FRAMES)


@pytest.fixture(scope="module")
def clip(frames, tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mkv", frames)


def test_frames_are_the_written_frames_with_index_time_and_header_facts(clip, frames):
    video = VideoSource(clip)
    assert (video.width, video.height, video.rate, video.fps) == (160, 128, RATE, 25.0)
    assert video.frame_count == N_FRAMES == video.kept_frames   # Matroska: duration x rate
    assert not video.camera and video.path == str(clip)
    got = list(video.frames())
    assert [f.index for f in got] == list(range(N_FRAMES))
    np.testing.assert_allclose([f.time for f in got], np.arange(N_FRAMES) / RATE, atol=1e-9)
    for frame, written in zip(got, frames):
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (128, 160, 3)
        np.testing.assert_array_equal(frame.rgb, written)
    assert video.decode_seconds > 0


def test_vid_stride_keeps_every_nth_frame(clip, frames):
    video = VideoSource(clip, vid_stride=3)
    got = list(video)
    assert [f.index for f in got] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert video.kept_frames == 10
    np.testing.assert_allclose([f.time for f in got], [i / RATE for i in range(0, 30, 3)])
    for frame in got:
        np.testing.assert_array_equal(frame.rgb, frames[frame.index])
    with pytest.raises(UserError, match="vid_stride must be at least 1"):
        VideoSource(clip, vid_stride=0)


@pytest.mark.parametrize("keep", [0.35, 0.8])
def test_a_cut_matroska_file_gives_its_frames_then_names_the_first_missing_one(clip, frames,
                                                                               tmp_path, keep):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:int(len(data) * keep)])
    got = []
    with pytest.raises(UserError) as e:
        for frame in VideoSource(cut).frames():
            got.append(frame)
    assert 0 < len(got) < N_FRAMES
    assert [f.index for f in got] == list(range(len(got)))
    for frame in got:
        np.testing.assert_array_equal(frame.rgb, frames[frame.index])
    message = str(e.value)
    assert message.startswith(f"{cut}: frame {len(got)}: ") and "\n" not in message
    assert "cut short or damaged" in message


def test_a_cut_mp4_with_its_index_first_fails_where_its_data_ends(frames, tmp_path):
    full = write_video(tmp_path / "full.mp4", frames, codec="libx264", pix_fmt="yuv420p",
                       container_options={"movflags": "+faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:int(len(data) * 0.7)])
    video = VideoSource(cut)
    assert video.frame_count == N_FRAMES          # the header still lists them all
    got = []
    with pytest.raises(UserError) as e:
        for frame in video:
            got.append(frame.index)
    assert got == list(range(len(got))) and len(got) < N_FRAMES
    assert str(e.value).startswith(f"{cut}: frame {len(got)}: ") and "\n" not in str(e.value)


def test_files_that_are_not_videos_are_one_line_errors(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(UserError, match=r"notes\.mp4: cannot open the video") as e:
        VideoSource(text)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="no such file"):
        VideoSource(tmp_path / "missing.mkv")
    with pytest.raises(UserError, match="is a directory"):
        VideoSource(tmp_path)


def test_closing_early_stops_the_reader_thread(clip):
    video = VideoSource(clip)
    frames = video.frames()
    assert [next(frames).index, next(frames).index] == [0, 1]
    frames.close()
    assert not [t for t in threading.enumerate() if t.name == "yolo9000-video"]
    with pytest.raises(RuntimeError, match="once"):
        next(video.frames())


def test_video_names_and_cameras(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert {".mp4", ".mkv", ".avi", ".webm", ".mov"} <= VIDEO_SUFFIXES
    assert is_video_name("a/B.MKV") and not is_video_name("a.png") and not is_video_name("mp4")
    assert camera_device("0") == "/dev/video0" and camera_device(2) == "/dev/video2"
    assert camera_device("/dev/video1") == "/dev/video1"
    assert camera_device("clip.mp4") is None
    (tmp_path / "3").write_text("a file named 3")
    assert camera_device("3") is None                # a file of that name wins


def test_video_inputs_sorts_out_videos_cameras_and_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("b.mp4", "a.mkv", "x.png"):
        (tmp_path / name).write_bytes(b"")
    assert video_inputs(["x.png", "photos/"]) is None
    assert video_inputs(["*.png"]) is None
    assert video_inputs(["*.m*", "b.mp4", "0"]) == ["a.mkv", "b.mp4", "0"]
    assert video_inputs(["/dev/video4"]) == ["/dev/video4"]
    with pytest.raises(UserError, match="not both: a.mkv is a video .* x.png is not"):
        video_inputs(["a.mkv", "x.png"])
    with pytest.raises(UserError, match="not both"):
        video_inputs(["*"])


def test_a_missing_camera_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^/dev/video9: no such camera device$"):
        VideoSource("9")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="video4linux2 is Linux's")
def test_a_device_that_is_no_camera_goes_through_video4linux2_and_fails_in_one_line():
    assert camera_device("/dev/null") == "/dev/null"       # a character device
    with pytest.raises(UserError) as e:
        VideoSource("/dev/null")
    message = str(e.value)
    assert message.startswith("/dev/null: cannot open the camera: ") and "\n" not in message
    assert "VIDIOC_QUERYCAP" in message                    # the v4l2 input asked the driver
