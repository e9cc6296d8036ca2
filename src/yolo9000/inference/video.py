"""Detection on videos and cameras: frames batched through the one Detector, an annotated video,
JSON Lines records, and all of `yolo9000 detect`'s work on video sources (detect_videos).

The stages overlap on threads: data/video.py decodes frames ahead, the Detector letterboxes
them ahead (inference/prefetch.py) while the network runs on a batch, and the annotated video
is drawn (inference/draw.py) and encoded behind it. The JSON Lines record of a frame is written
and flushed as soon as its detections are known (layout: inference/export.py).

SIGINT / SIGTERM stop a run after the frame at hand: the annotated video is closed properly
(its index written, so it plays), the JSON Lines hold every frame written to it, and the
command exits 130 / 143 with one line.
"""
from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.images import LoadedImage
from ..data.video import (VideoSource, camera_device, ffmpeg_message, import_av,
                          source_problem)
from ..errors import Interrupted, UserError, shown_path, stop_requests
from .draw import draw_detections
from .export import frame_entry, json_line

# H.264 plays everywhere; a PyAV build without libx264 writes MPEG-4 part 2 (same .mp4).
VIDEO_CODECS = ("libx264", "mpeg4")
# x264's speed/size trade-off: "veryfast" encodes 640x360 in a few ms a frame, "medium" (its
# default) takes about three times as long for a smaller file.
X264_OPTIONS = {"preset": "veryfast", "crf": "23"}
VIDEO_SUFFIX = ".mp4"
# Frames waiting for the encoder: a few batches; past that the detector waits for it.
WRITE_AHEAD = 16


@dataclass
class FrameResult:
    """One frame of a video through the Detector."""
    index: int              # its position among all the video's frames, from 0
    time: float             # seconds from the first frame
    detections: list        # of inference.detector.Detection, boxes in the frame's pixels
    rgb: np.ndarray         # the frame, uint8 (h, w, 3)
    seconds: float = 0.0    # its share of its batch's network and post-processing time

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def detect_video(detector, source, batch_size=1, vid_stride=1):
    """FrameResult per kept frame of `source` (a path, a camera such as "0", or an open
    data.video.VideoSource), `batch_size` frames per forward pass: `Detector.video`.

    A stream that breaks raises its one-line UserError after the results of the frames
    before it. Closing the generator stops the decoding and closes a source it opened."""
    video = source if isinstance(source, VideoSource) else VideoSource(source, vid_stride)
    frames = video.frames()
    pending = deque()   # decoded frames whose results have not come out yet, in order
    broken = []         # the UserError that ended the stream, raised after the results

    def images():
        try:
            for frame in frames:
                pending.append(frame)
                yield LoadedImage(frame.rgb, frame.rgb.shape[1], frame.rgb.shape[0],
                                  path=video.path)
        except UserError as e:
            broken.append(e)

    # closing the frames generator (an early stop) stops the reader thread and the source
    with contextlib.closing(frames):
        for result in detector.stream(images(), batch_size=batch_size):
            frame = pending.popleft()
            yield FrameResult(frame.index, frame.time, result.detections, frame.rgb,
                              result.seconds)
    if broken:
        raise broken[0]


class AnnotatedVideoWriter:
    """An .mp4 of frames with their detections drawn, drawn and encoded in a thread behind
    the detector. H.264 (libx264) when PyAV has it, else MPEG-4 part 2; 4:2:0 colour, or
    4:4:4 when a side is odd (4:2:0 needs even sides), so the video keeps the frames' size.

    close() (a `with` block's end, whatever ended it) drains the queue, flushes the encoder and
    writes the container's index: the file plays even after Ctrl-C. A failure to encode is a
    UserError from the next write() or from close(). draw_seconds and encode_seconds add up
    the thread's time in each stage."""

    def __init__(self, path, rate, width, height):
        av = self.av = import_av()
        self.path = Path(path)
        codec = next((c for c in VIDEO_CODECS if c in av.codecs_available), None)
        if codec is None:
            raise UserError(f"this PyAV build has none of the encoders {', '.join(VIDEO_CODECS)}")
        with av.logging.Capture() as logs:
            try:
                self._container = av.open(str(self.path), "w")
                stream = self._stream = self._container.add_stream(codec, rate=rate)
            except (av.FFmpegError, OSError) as e:
                raise UserError(f"cannot write the annotated video: {ffmpeg_message(e, logs)}",
                                path=self.path) from None
        stream.width, stream.height = int(width), int(height)
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        if codec == "libx264":
            stream.options = dict(X264_OPTIONS)
        self.frames = 0
        self.draw_seconds = self.encode_seconds = 0.0
        self._error = None
        self._queue = queue.Queue(maxsize=WRITE_AHEAD)
        self._thread = threading.Thread(target=self._encode_all, daemon=True,
                                        name="yolo9000-video-writer")
        self._thread.start()

    def write(self, rgb, detections):
        """Queue a frame (uint8 (h, w, 3)) and its detections; waits while the queue is full."""
        if self._error is not None:
            raise self._error
        self._queue.put((rgb, detections))

    def _encode_all(self):
        av = self.av
        with av.logging.Capture() as logs:
            try:
                while (item := self._queue.get()) is not None:
                    rgb, detections = item
                    start = time.perf_counter()
                    drawn = np.asarray(draw_detections(rgb, detections))
                    middle = time.perf_counter()
                    frame = av.VideoFrame.from_ndarray(drawn, format="rgb24")
                    frame.pts = self.frames
                    self._container.mux(self._stream.encode(frame))
                    self.frames += 1
                    self.draw_seconds += middle - start
                    self.encode_seconds += time.perf_counter() - middle
                start = time.perf_counter()
                self._container.mux(self._stream.encode(None))     # the encoder's delayed frames
                self.encode_seconds += time.perf_counter() - start
            except Exception as e:      # noqa: BLE001 - reported to the detecting thread
                self._error = UserError("cannot write the annotated video: "
                                        f"{ffmpeg_message(e, logs)}", path=self.path)
                while item is not None:          # let write() and close() go on
                    item = self._queue.get()

    def close(self):
        """Encode what is queued, write the container's index; raises a failure to encode."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        with self.av.logging.Capture():
            try:
                self._container.close()
            except (self.av.FFmpegError, OSError) as e:
                self._error = self._error or UserError(
                    f"cannot finish the annotated video: {ffmpeg_message(e)}", path=self.path)
        if self._error is not None:
            raise self._error

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        try:
            self.close()
        except UserError:
            if kind is None:      # an exception already on its way says what went wrong first
                raise


class JsonLinesWriter:
    """JSON Lines to a file, or '-' for standard output: each record flushed as it is written,
    so a reader following the file sees every frame as soon as it is done. The file is
    written in place (not atomically): what a run wrote before it stopped stays."""

    def __init__(self, path):
        self.path = str(path)
        if self.path == "-":
            self._file, self._owned = sys.stdout, False
            return
        try:
            self._file, self._owned = open(self.path, "w", encoding="utf-8"), True
        except OSError as e:
            raise UserError(f"cannot write the detections: {e.strerror or e}",
                            path=self.path) from None

    def write(self, entry):
        self._file.write(json_line(entry))
        self._file.flush()

    def close(self):
        if self._owned:
            self._file.close()


@dataclass
class VideoRun:
    """What annotate_video did with one source, and where its time went (seconds of each
    stage's own thread; the stages overlap, so they add up to more than the wall time)."""
    source: str
    output: Path
    width: int
    height: int
    frames: int = 0
    seconds: float = 0.0            # wall time, from the first frame asked for to the file closed
    decode_seconds: float = 0.0     # demux, decode and conversion to RGB (data/video.py's thread)
    network_seconds: float = 0.0    # the forward passes and post-processing (the main thread)
    draw_seconds: float = 0.0
    encode_seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def annotate_video(detector, source, output, json_out=None, batch_size=1, vid_stride=1,
                   stop_signals=(), progress=None):
    """Detect on every vid_stride-th frame of `source` into the annotated video `output`
    (at the source's rate / vid_stride, so it lasts as long as the source) and, with a
    JsonLinesWriter `json_out`, a record per frame. Stops after the frame at hand once
    `stop_signals` is not empty. `progress`: a stream for the progress bar, or None.
    Returns a VideoRun; a stream that breaks raises its UserError after the annotated video
    and the records of the frames before it were written."""
    from ..progress import Progress

    video = VideoSource(source, vid_stride)
    try:
        writer = AnnotatedVideoWriter(output, video.rate / video.vid_stride, video.width,
                                      video.height)
    except BaseException:
        video.close()
        raise
    run = VideoRun(str(source), Path(output), video.width, video.height)
    bar = None
    if progress is not None:
        bar = Progress(video.kept_frames, desc=Path(video.path).name, unit="frames",
                       stream=progress)
    start = time.perf_counter()
    try:
        # leaving the block stops the decoding first, then closes the video file
        with writer, contextlib.closing(detect_video(detector, video, batch_size)) as results:
            for result in results:
                writer.write(result.rgb, result.detections)
                if json_out is not None:
                    json_out.write(frame_entry(video.path, result.index, result.time,
                                               result.width, result.height, result.detections,
                                               detector.names))
                run.frames += 1
                run.network_seconds += result.seconds
                if bar is not None:
                    bar.update()
                if stop_signals:
                    break
    finally:
        if bar is not None:
            bar.close()
        video.close()
        run.seconds = time.perf_counter() - start
        run.decode_seconds = video.decode_seconds
        run.draw_seconds, run.encode_seconds = writer.draw_seconds, writer.encode_seconds
    return run


def output_stems(sources) -> list[str]:
    """One file stem per source for the run folder: the file's (a camera's device name, e.g.
    video0), with _2, _3, ... for repeats (runs.OutputNamer)."""
    from ..runs import OutputNamer
    namer = OutputNamer()
    return [namer.stem(camera_device(source) or str(source)) for source in sources]


def detect_videos(videos, make_detector, *, project, name, exist_ok=False, json_path=None,
                  json_format="yolo9000", save_txt=False, batch=1, vid_stride=1):
    """`yolo9000 detect` on video files and cameras (data.video.video_inputs): per source an
    annotated video RUN/<stem>.mp4 and, with json_path, JSON Lines records. make_detector()
    builds the Detector, once the sources were checked. A source that cannot be read is
    reported on one line and the others still run. Returns the exit code (1 when a source
    failed); SIGINT / SIGTERM raise Interrupted once the files are closed."""
    from ..runs import new_run_dir
    from ..parallel import launched_size

    if launched_size() > 1:
        raise UserError("videos and cameras are read by one process: run detect on them "
                        "without mpiexec")
    if json_format != "yolo9000":
        raise UserError(f"--json-format {json_format} is for images: videos write JSON Lines, "
                        "one yolo9000 record per frame")
    if save_txt:
        raise UserError("--save-txt writes label files of images: for videos use --save-json "
                        "(JSON Lines, one record per frame)")
    import_av()           # the install hint before the model loads
    # with JSON Lines on stdout, everything else goes to stderr so stdout stays valid
    to_stderr = json_path == "-"

    def say(message):
        print(message, file=sys.stderr if to_stderr else sys.stdout, flush=True)

    def tell(message):
        print(message, file=sys.stderr, flush=True)

    problems = {source: source_problem(source) for source in videos}
    for source, problem in problems.items():
        if problem:
            tell(f"error: {camera_device(source) or source}: {problem}")
    failures = sum(map(bool, problems.values()))
    videos = [source for source in videos if not problems[source]]
    if not videos:
        tell("error: no videos to process")
        return 1
    detector = make_detector()
    if detector.notice:
        tell(f"note: {detector.notice}")
    out_dir = new_run_dir(project, name, exist_ok)
    json_out = JsonLinesWriter(json_path) if json_path is not None else None
    last = None
    try:
        with stop_requests() as stop_signals:
            for source, stem in zip(videos, output_stems(videos)):
                try:
                    last = annotate_video(detector, source, out_dir / (stem + VIDEO_SUFFIX),
                                          json_out, batch, vid_stride, stop_signals,
                                          progress=sys.stderr)
                except UserError as e:
                    tell(f"error: {e}")
                    failures += 1
                    continue
                say(f"{shown_path(source)} {last.width}x{last.height}: {last.frames} frames in "
                    f"{last.seconds:.2f} s ({last.fps:.2f} frames/s): {last.output}")
                if stop_signals:
                    break
    finally:
        if json_out is not None:
            json_out.close()
    if stop_signals:
        done = f": {last.output} holds {last.frames} frames" if last is not None else ""
        raise Interrupted(f"interrupted{done}", stop_signals[0])
    say(f"annotated videos: {out_dir}")
    if json_path is not None and json_path != "-":
        say(f"json lines: {json_path}")
    if failures:
        tell(f"{failures} input{'s' if failures != 1 else ''} failed")
        return 1
    return 0
