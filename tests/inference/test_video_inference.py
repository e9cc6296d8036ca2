"""inference/video.py: Detector.video against the detector on the same frames as PNG files, the
annotated video writer, the JSON Lines writer and record, and stopping a run."""
import io
import json
import signal
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from yolo9000.errors import UserError
from yolo9000.inference.detector import Detection, Detector
from yolo9000.progress import Progress

pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")
from video_clips import RATE, moving_shapes, read_video, write_video  # noqa: E402
from yolo9000.inference.video import (WRITE_AHEAD, AnnotatedVideoWriter,  # noqa: E402
                                      JsonLinesWriter, annotate_video, output_stems)
from yolo9000.inference.export import frame_entry  # noqa: E402

N_FRAMES = 12


@pytest.fixture(scope="module")
def frames():
    return moving_shapes(N_FRAMES)


@pytest.fixture(scope="module")
def clip(frames, tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mkv", frames)


@pytest.fixture(scope="module")
def detector():
    return Detector(thresh=0.3)      # the bundled shapes model


def assert_same(got, expected):
    assert [(d.cls, d.name) for d in got] == [(d.cls, d.name) for d in expected]
    np.testing.assert_allclose([d.box for d in got], [d.box for d in expected], atol=1e-3)
    np.testing.assert_allclose([d.score for d in got], [d.score for d in expected], atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_video_detections_are_the_image_detections_of_each_frame(clip, frames, detector,
                                                                 tmp_path, batch_size):
    pngs = []
    for i, rgb in enumerate(frames):
        pngs.append(tmp_path / f"{i:03d}.png")
        Image.fromarray(rgb).save(pngs[-1])
    expected = detector.batch(pngs, batch_size=1)
    assert sum(map(len, expected)) >= N_FRAMES, "the shapes model sees the clip's shapes"
    results = list(detector.video(clip, batch_size=batch_size))
    assert [r.index for r in results] == list(range(N_FRAMES))
    np.testing.assert_allclose([r.time for r in results], np.arange(N_FRAMES) / RATE)
    for result, want, rgb in zip(results, expected, frames):
        assert all(isinstance(d, Detection) for d in result.detections)
        assert (result.width, result.height) == (160, 128) and result.seconds > 0
        np.testing.assert_array_equal(result.rgb, rgb)
        assert_same(result.detections, want)


def test_video_with_stride_and_a_cut_file_keeps_the_results_before_the_break(clip, detector,
                                                                             tmp_path):
    assert [r.index for r in detector.video(clip, vid_stride=5)] == [0, 5, 10]
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) // 2])
    seen = []
    with pytest.raises(UserError, match=r"cut\.mkv: frame \d+: ") as e:
        for result in detector.video(cut, batch_size=4):
            seen.append(result.index)
    assert seen == list(range(len(seen))) and 0 < len(seen) < N_FRAMES
    assert f"frame {len(seen)}:" in str(e.value)


@pytest.mark.parametrize("width, height", [(640, 480), (641, 481)])
def test_annotated_video_keeps_rate_and_size_and_shows_the_boxes(tmp_path, width, height):
    rng = np.random.default_rng(0)
    plain = [np.full((height, width, 3), 60 + 4 * i, np.uint8) for i in range(10)]
    box = Detection((20.0, 30.0, 90.0, 100.0), 0, "circle", 0.9)
    out = tmp_path / "out.mp4"
    with AnnotatedVideoWriter(out, Fraction(RATE, 3), width, height) as writer:
        for rgb in plain:
            writer.write(rgb + rng.integers(0, 3, rgb.shape, dtype=np.uint8), [box])
    assert writer.frames == 10 and writer.encode_seconds > 0
    decoded, rate, w, h = read_video(out)
    assert (len(decoded), rate, w, h) == (10, Fraction(RATE, 3), width, height)
    # the box's left edge (x = 20-21 at this size, rows 30-99) has the class's colour
    palette_red = np.array([230, 25, 75])
    for got, rgb in zip(decoded, plain):
        edge = got[40:90, 20:22].astype(int)
        assert np.abs(edge - palette_red).mean() < 30
        assert np.abs(got[5:15, 120:150].astype(int) - rgb[5:15, 120:150]).mean() < 4


def test_a_writer_that_cannot_write_is_one_line(tmp_path):
    # FFmpeg opens the file with the first frame: the error comes from the writing thread
    with pytest.raises(UserError, match=r"x\.mp4: cannot write the annotated video") as e:
        with AnnotatedVideoWriter(tmp_path / "no" / "folder" / "x.mp4", RATE, 64, 64) as writer:
            for _ in range(3 * WRITE_AHEAD):     # more than the queue holds: none may block
                writer.write(np.zeros((64, 64, 3), np.uint8), [])
    assert "\n" not in str(e.value)


def test_json_lines_are_readable_before_the_writer_closes(tmp_path):
    path = tmp_path / "d.jsonl"
    out = JsonLinesWriter(path)
    out.write({"frame": 0})
    assert json.loads(path.read_text()) == {"frame": 0}
    out.write({"frame": 3, "detections": []})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"frame": 0}, {"frame": 3, "detections": []}]
    out.close()


def test_frame_record_layout():
    dets = [Detection((1.23456, 2.0, 30.5, 40.0), 2, "triangle", 0.87654321)]
    entry = frame_entry("clip.mp4", 7, 0.28000000001, 160, 128, dets, ["a", "b", "triangle"])
    assert list(entry) == ["path", "frame", "time", "width", "height", "detections"]
    assert entry == {"path": "clip.mp4", "frame": 7, "time": 0.28, "width": 160, "height": 128,
                     "detections": [{"class": 2, "name": "triangle", "score": 0.876543,
                                     "box": [1.235, 2.0, 30.5, 40.0]}]}


def test_a_stop_request_ends_the_run_after_the_frame_at_hand(clip, detector, tmp_path):
    out = tmp_path / "clip.mp4"
    records = tmp_path / "d.jsonl"
    json_out = JsonLinesWriter(records)
    run = annotate_video(detector, clip, out, json_out, batch_size=2,
                         stop_signals=[signal.SIGINT])
    json_out.close()
    assert run.frames == 1 and run.output == out
    assert [json.loads(line)["frame"] for line in records.read_text().splitlines()] == [0]
    assert len(read_video(out)[0]) == 1


def test_output_stems_are_unique_and_name_cameras_by_device():
    assert output_stems(["a/clip.mp4", "b/clip.mkv", "0", "/dev/video0", "x.avi"]) == [
        "clip", "clip_2", "video0", "video0_2", "x"]


def test_progress_without_a_total_counts():
    stream = io.StringIO()
    bar = Progress(None, desc="video0", unit="frames", stream=stream)
    for _ in range(250):
        bar.update()
    lines = stream.getvalue().splitlines()
    assert [line.split()[:3] for line in lines] == [["video0", "100", "frames"],
                                                     ["video0", "200", "frames"]]
    assert "frames/s" in lines[0] and "%" not in lines[0] and "<" not in lines[0]
