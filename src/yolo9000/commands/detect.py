"""`yolo9000 detect SOURCE...`: annotated images, JSON records and YOLO label files.

Images are decoded and letterboxed in a background thread (Pillow and NumPy release the GIL)
while the network runs on the previous batch. A bad input is reported on one stderr line and
skipped; the exit code is 1 at the end if any input failed.
"""
from __future__ import annotations

import glob
import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import click

from ..errors import UserError
from ..runs import new_run_dir
from .options import deprecated_option, out_folder_as_run_folder, run_folder_options

GLOB_CHARS = set("*?[")
# Annotated images keep their format when Pillow writes it losslessly or as the user expects.
KEEP_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".jfif": "JPEG", ".jpe": "JPEG", ".png": "PNG",
                 ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


# -- inputs ------------------------------------------------------------------------------------
def expand_sources(sources):
    """Files, directories (their images, not recursive) and glob patterns -> (paths, errors, notes).

    Explicitly named files are always tried (whatever their suffix); inside directories and
    glob matches only files with an image suffix are taken, others are counted in a note.
    """
    from ..data.images import is_image_name

    paths, errors, notes, seen = [], [], [], set()

    def add(p):
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            paths.append(str(p))

    def add_many(candidates, origin):
        files = [c for c in candidates if os.path.isfile(c)]
        images = [c for c in files if is_image_name(c)]
        if len(files) > len(images):
            notes.append(f"{origin}: skipped {len(files) - len(images)} non-image file(s)")
        if not images:
            errors.append(f"{origin}: no images found")
        for c in images:
            add(c)

    for s in sources:
        if os.path.isdir(s):
            add_many(sorted(str(p) for p in Path(s).iterdir()), s)
        elif os.path.exists(s):
            add(s)
        elif GLOB_CHARS & set(s):
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                errors.append(f"{s}: no files match this pattern")
            else:
                add_many(matches, s)
        else:
            errors.append(f"{s}: no such file or directory")
    return paths, errors, notes


def prepare_in_background(detector, paths, depth):
    """Yield (path, PreparedImage or None, error or None) in order, decoding ahead in a thread."""
    q = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work():
        try:
            for path in paths:
                if stop.is_set():
                    return
                try:
                    put((path, detector.prepare(path), None))
                except UserError as e:
                    put((path, None, str(e)))
                except Exception as e:  # one odd file must not stop a folder of images
                    put((path, None, f"{path}: cannot read image: {type(e).__name__}: {e}"))
        finally:
            put(done)   # whatever happens, the consumer is never left waiting

    worker = threading.Thread(target=work, name="yolo9000-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


# -- outputs -----------------------------------------------------------------------------------
class OutputNamer:
    """One output stem per input; inputs with the same file name get _2, _3, ..."""

    def __init__(self):
        self.used = set()

    def stem_and_suffix(self, path):
        p = Path(path)
        suffix = p.suffix.lower() if p.suffix.lower() in KEEP_SUFFIXES else ".png"
        stem, n = p.stem, 1
        while (stem if n == 1 else f"{stem}_{n}") in self.used:
            n += 1
        stem = stem if n == 1 else f"{stem}_{n}"
        self.used.add(stem)
        return stem, suffix


def save_image(image, path):
    from ..fileio import atomic_path

    fmt = KEEP_SUFFIXES.get(Path(path).suffix.lower(), "PNG")
    options = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format=fmt, **options)
    except OSError as e:
        raise UserError(f"cannot write the annotated image: {e}", path=path) from None


def label_lines(detections, width, height):
    """YOLO label format plus the score: class cx cy w h score, coordinates normalised."""
    lines = []
    for d in detections:
        x1, y1, x2, y2 = d.box
        lines.append(f"{d.cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f} {d.score:.6f}")
    return "".join(line + "\n" for line in lines)


def summarise(detections, top=3):
    if not detections:
        return "no detections"
    counts = Counter(d.name for d in detections)
    best = {}
    for d in detections:
        best[d.name] = max(best.get(d.name, 0.0), d.score)
    names = sorted(counts, key=lambda n: -best[n])
    parts = [f"{counts[n]} {n}" for n in names[:top]]
    if len(names) > top:
        parts.append(f"+{len(names) - top} more classes")
    total = len(detections)
    return f"{total} detection{'s' if total != 1 else ''} ({', '.join(parts)})"


# -- the command -------------------------------------------------------------------------------
def _check_size(ctx, param, value):
    if value is not None and (value <= 0 or value % 32):
        raise click.BadParameter(f"must be a positive multiple of 32, got {value}")
    return value


@click.command("detect")
@click.argument("sources", nargs=-1, required=True)
@click.option("--model", help="Bundled model name (e.g. yolov2-voc, yolov2, yolov2-tiny-voc).")
@click.option("--cfg", type=click.Path(dir_okay=False), help="Darknet .cfg file.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Darknet .weights or .h5 checkpoint (an .h5 carries its own cfg and names).")
@click.option("--names", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--size", type=int, callback=_check_size,
              help="Network input size, a multiple of 32 [default: from the cfg].")
@click.option("--thresh", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              show_default=True, help="Keep detections whose score (objectness x class) >= this.")
@click.option("--nms", "nms_thresh", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="Suppress a box whose IoU with a better box of its class exceeds this.")
@run_folder_options("detect")
@deprecated_option("--out", "--project/--name", out_folder_as_run_folder,
                   type=click.Path(file_okay=False))
@click.option("--save-json", "json_path", metavar="FILE",
              help="Write detections as JSON to FILE ('-' = stdout).")
@deprecated_option("--json", "--save-json", lambda v: {"json_path": v})
@click.option("--save-txt", is_flag=True, help="Also write YOLO label files (RUN/labels/*.txt).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images per forward pass.")
def command(sources, model, cfg, weights, names, size, thresh, nms_thresh, project, name, exist_ok,
            json_path, save_txt, batch):
    """Detect objects in images: SOURCE is image files, directories or glob patterns."""
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    # With JSON on stdout, everything else goes to stderr so stdout stays valid JSON.
    progress_err = json_path == "-"

    def say(msg):
        click.echo(msg, err=progress_err)

    def fail(msg):
        click.echo(f"error: {msg}", err=True)

    paths, errors, notes = expand_sources(sources)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for e in errors:
        fail(e)
    failures = len(errors)
    if not paths:
        fail("no images to process")
        return 1

    from ..inference.detector import Detector
    from ..inference.draw import draw_detections

    detector = Detector(model=model, cfg=cfg, weights=weights, names=names, size=size,
                        thresh=thresh, nms=nms_thresh)
    if detector.notice:
        click.echo(f"note: {detector.notice}", err=True)

    out_dir = new_run_dir(project, name, exist_ok)
    labels_dir = out_dir / "labels"
    if save_txt:
        labels_dir.mkdir(exist_ok=True)
    namer = OutputNamer()
    records = []
    done = 0
    start = time.perf_counter()

    def finish(pending):
        nonlocal done
        t0 = time.perf_counter()
        results = detector.predict([p for _, p in pending])
        ms = (time.perf_counter() - t0) * 1000 / len(pending)
        for (path, prepared), dets in zip(pending, results):
            image = prepared.image
            stem, suffix = namer.stem_and_suffix(path)
            scale = (image.rgb.shape[1] / image.width, image.rgb.shape[0] / image.height)
            save_image(draw_detections(image.rgb, dets, scale=scale), out_dir / (stem + suffix))
            if save_txt:
                from ..fileio import atomic_write_text
                atomic_write_text(labels_dir / f"{stem}.txt",
                                  label_lines(dets, image.width, image.height))
            records.append({"path": path, "width": image.width, "height": image.height,
                            "detections": [d.to_dict() for d in dets]})
            done += 1
            say(f"{path} {image.width}x{image.height}: {summarise(dets)}, {ms:.0f} ms")

    pending = []
    for path, prepared, error in prepare_in_background(detector, paths, depth=2 * batch):
        if error is not None:
            fail(error)
            failures += 1
            continue
        pending.append((path, prepared))
        if len(pending) == batch:
            finish(pending)
            pending = []
    if pending:
        finish(pending)

    elapsed = time.perf_counter() - start
    if json_path is not None:
        # one record per line: valid JSON that still reads (and diffs) well
        text = "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"
        if json_path == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            from ..fileio import atomic_write_text
            atomic_write_text(json_path, text)
    rate = done / elapsed if elapsed > 0 else 0.0
    say(f"{done} image{'s' if done != 1 else ''} in {elapsed:.2f} s ({rate:.2f} images/s)")
    say(f"annotated images: {out_dir}")
    if save_txt:
        say(f"labels: {labels_dir}")
    if json_path is not None and json_path != "-":
        say(f"json: {json_path}")
    if failures:
        click.echo(f"{failures} input{'s' if failures != 1 else ''} failed", err=True)
        return 1
    return 0
