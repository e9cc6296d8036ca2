"""Videos and cameras, in one place: which sources are videos, and their frames decoded ahead.

``VideoSource`` opens a video file or a camera with PyAV (FFmpeg's libraries as wheels: the
`[video]` extra) and yields ``Frame(index, time, rgb)``: the frame's position in the stream
(from 0, counting every decoded frame, so `vid_stride` leaves gaps), its presentation time in
seconds from the first frame, and an (h, w, 3) uint8 RGB array. A thread decodes up to
``QUEUE_FRAMES`` frames ahead of the caller.

A video that cannot be read to its end (cut short, damaged) is a one-line UserError naming the
file and the index of the first frame it could not give, raised after every frame before it
was yielded, so the caller keeps those. The end is known from the container: an FFmpeg error
while demuxing or decoding, an error the demuxer logs on reaching the end (Matroska / WebM:
"File ended prematurely"), or fewer frames than the header lists (MP4, MOV, AVI).

Cameras: ``0`` (a number naming no file) is /dev/video0; a /dev/video* path or any character
device is a camera too, opened through FFmpeg's video4linux2 input. A camera has no end: the
caller stops reading (detect stops on Ctrl-C).
"""
from __future__ import annotations

import os
import queue
import stat
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import UserError

# The files taken for videos among detect's sources; compared lower-cased.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".avi", ".webm", ".mov", ".mpg", ".mpeg"})
INSTALL_HINT = 'video input needs PyAV: pip install "yolo9000[video]"'
# Frames decoded ahead of the caller: enough to cover a batch being letterboxed while the
# network runs, few enough that a 1080p queue stays under 100 MB.
QUEUE_FRAMES = 16
# The rate of a source whose container or driver states none (timestamps, the annotated video).
FALLBACK_FPS = 30
CAMERA_FORMAT = "v4l2"           # FFmpeg's name of the video4linux2 input
_GLOB_CHARS = set("*?[")
_POLL_SECONDS = 0.1              # how often a blocked reader thread checks for a stop


class Frame(NamedTuple):
    index: int           # position among all the stream's decoded frames, from 0
    time: float          # seconds from the first frame's presentation time
    rgb: np.ndarray      # uint8 (h, w, 3)


def is_video_name(path) -> bool:
    """Whether a file name has one of the video suffixes (any case)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def camera_device(source) -> str | None:
    """The device a source names as a camera (``0`` -> /dev/video0), or None."""
    text = str(source)
    if text.isdigit() and not os.path.exists(text):
        return f"/dev/video{int(text)}"
    if text.startswith("/dev/video"):
        return text
    try:
        return text if stat.S_ISCHR(os.stat(text).st_mode) else None
    except OSError:
        return None


def video_inputs(sources) -> list[str] | None:
    """detect's sources as videos and cameras (files, glob matches, devices; in order, each
    once), or None when none of them is one (they are images: data/images.py). A mix of the
    two is a UserError: their results are written in different layouts."""
    import glob

    videos, others, seen = [], [], set()
    for source in map(str, sources):
        if _GLOB_CHARS & set(source) and not os.path.exists(source):
            matches = sorted(glob.glob(source, recursive=True))
            if not any(map(is_video_name, matches)):
                others.append(source)      # images, or nothing (reported as for images)
                continue
        elif camera_device(source) is not None or is_video_name(source):
            matches = [source]
        else:
            others.append(source)
            continue
        for match in matches:
            if not is_video_name(match) and camera_device(match) is None:
                others.append(match)
            elif os.path.realpath(match) not in seen:
                seen.add(os.path.realpath(match))
                videos.append(match)
    if not videos:
        return None
    if others:
        raise UserError(f"give videos or images, not both: {videos[0]} is a video (or camera) "
                        f"and {others[0]} is not")
    return videos


def source_problem(source) -> str | None:
    """Why a video file or camera cannot be opened, found without opening it (so a typo is
    reported before a model loads), or None."""
    device = camera_device(source)
    if device is not None:
        if not sys.platform.startswith("linux"):
            return "cameras are read through video4linux2, which only Linux has"
        return None if os.path.exists(device) else "no such camera device"
    if not os.path.exists(source):
        return "no such file"
    if os.path.isdir(source):
        return "is a directory, not a video"
    return None


def import_av():
    """The `av` module (PyAV), set up so FFmpeg's errors reach the captures of VideoSource and
    the video writer instead of stderr; a one-line UserError when it is not installed."""
    try:
        import av
        import av.logging
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    level = av.logging.get_level()
    # None: FFmpeg prints everything itself, from any thread; a higher level would hide errors
    if level is None or level > av.logging.ERROR:
        av.logging.set_level(av.logging.ERROR)
    # an error repeated from one file to the next (two truncated videos) must reach both
    av.logging.set_skip_repeated(False)
    return av


def ffmpeg_message(error, logs=()) -> str:
    """One line from a PyAV exception and the FFmpeg errors logged with it."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    logged = [message.strip() for level, _name, message in logs if message.strip()]
    if logged and logged[-1] not in text:
        text = f"{text} ({logged[-1]})"
    return text.replace("\n", " ")


class _End(NamedTuple):
    """What the reader thread puts after the last frame: None, or why the stream broke
    (the index of the first frame it could not give, the message)."""
    failure: tuple | None


class VideoSource:
    """A video file or a camera, opened at once (so a missing file or a camera that will not
    open is an error before any work starts); ``frames()`` decodes it.

    Attributes: ``path`` (file or device), ``camera`` (bool), ``width``, ``height``, ``rate``
    (frames per second as a Fraction; FALLBACK_FPS when the source states none),
    ``frame_count`` (the header's count, else the duration x rate, else None: a camera),
    ``vid_stride`` (keep every Nth frame), ``decode_seconds`` (the reader thread's time).
    """

    def __init__(self, source, vid_stride=1):
        self.av = import_av()
        if int(vid_stride) < 1:
            raise UserError(f"vid_stride must be at least 1, got {vid_stride}")
        self.vid_stride = int(vid_stride)
        device = camera_device(source)
        self.camera = device is not None
        self.path = device or os.fspath(source)
        self._container = self._open()
        try:
            self._describe()
        except BaseException:
            self._container.close()
            raise
        self._started = False
        self.decode_seconds = 0.0

    # -- opening ---------------------------------------------------------------------------
    def _open(self):
        av = self.av
        problem = source_problem(self.path)
        if problem:
            raise UserError(problem, path=self.path)
        with av.logging.Capture() as logs:
            try:
                return av.open(self.path, format=CAMERA_FORMAT if self.camera else None)
            except (av.FFmpegError, OSError) as e:
                what = "camera" if self.camera else "video (not a video, or damaged)"
                raise UserError(f"cannot open the {what}: {ffmpeg_message(e, logs)}",
                                path=self.path) from None

    def _describe(self):
        streams = self._container.streams.video
        if not streams:
            raise UserError("holds no video stream", path=self.path)
        stream = self._stream = streams[0]
        # one decoding thread, ours: FFmpeg's own threads would log their errors where the
        # capture in _read cannot see them (and a frame's decode is a small part of its cost)
        stream.codec_context.thread_count = 1
        context = stream.codec_context
        self.width, self.height = int(context.width), int(context.height)
        if self.width <= 0 or self.height <= 0:
            raise UserError(f"video size {self.width}x{self.height} is not positive",
                            path=self.path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.rate = Fraction(rate) if rate else Fraction(FALLBACK_FPS)
        self._listed_frames = int(stream.frames) if stream.frames and not self.camera else None
        self.frame_count = self._listed_frames
        if self.frame_count is None and not self.camera:
            seconds = (float(stream.duration * stream.time_base) if stream.duration
                       else (self._container.duration or 0) / 1e6)
            self.frame_count = round(seconds * self.rate) or None

    @property
    def fps(self) -> float:
        return float(self.rate)

    @property
    def kept_frames(self) -> int | None:
        """How many frames `frames()` yields when the stream holds frame_count frames."""
        if self.frame_count is None:
            return None
        return -(-self.frame_count // self.vid_stride)

    # -- reading ---------------------------------------------------------------------------
    def frames(self):
        """Frame(index, time, rgb) for every vid_stride-th frame, decoded ahead in a thread.

        Once only (a camera cannot rewind). Closing the generator early stops the thread and
        closes the source; a stream that breaks raises its one-line UserError after the last
        frame it gave."""
        if self._started:
            raise RuntimeError("VideoSource.frames() reads the source once")
        self._started = True
        out = queue.Queue(maxsize=QUEUE_FRAMES)
        stop = threading.Event()
        reader = threading.Thread(target=self._read, args=(out, stop), daemon=True,
                                  name="yolo9000-video")
        reader.start()
        try:
            while True:
                item = out.get()
                if isinstance(item, _End):
                    if item.failure is not None:
                        index, message = item.failure
                        raise UserError(f"frame {index}: {message}", path=self.path)
                    return
                yield item
        finally:
            stop.set()
            reader.join()
            self.close()

    def __iter__(self):
        return self.frames()

    def _read(self, out, stop):
        """The reader thread: decode, convert the kept frames, queue them, then an _End."""
        av = self.av
        decoded = 0
        failure = None
        with av.logging.Capture() as logs:
            try:
                first_time = None
                stream = self._container.decode(self._stream)
                while True:
                    start = time.perf_counter()
                    frame = next(stream, None)
                    if frame is None:
                        break
                    index, decoded = decoded, decoded + 1
                    if index % self.vid_stride:
                        self.decode_seconds += time.perf_counter() - start
                        continue
                    shown = frame.time if frame.time is not None else float(index / self.rate)
                    first_time = shown if first_time is None else first_time
                    rgb = frame.to_ndarray(format="rgb24")
                    self.decode_seconds += time.perf_counter() - start
                    if not _put(out, Frame(index, float(shown - first_time), rgb), stop):
                        return
            except Exception as e:      # noqa: BLE001 - any failure ends this stream alone
                failure = (decoded, f"cannot decode: {ffmpeg_message(e, logs)}")
            demuxer = self._container.format.name
            ended = [m.strip() for level, name, m in logs
                     if name == demuxer and level <= av.logging.ERROR]
        if failure is None and ended:
            failure = (decoded, f"{ended[-1]} (the file is cut short or damaged)")
        if failure is None and self._listed_frames and decoded < self._listed_frames:
            failure = (decoded, f"the stream ends after {decoded} of the {self._listed_frames} "
                                "frames its header lists (the file is cut short or damaged)")
        _put(out, _End(failure), stop)

    def close(self):
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _put(out, item, stop) -> bool:
    """Queue an item unless the consumer stopped (then False): a full queue never blocks the
    reader past a stop."""
    while not stop.is_set():
        try:
            out.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False
