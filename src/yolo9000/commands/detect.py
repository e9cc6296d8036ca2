"""`yolo9000 detect SOURCE...`: annotated images, JSON records and YOLO label files.

The SOURCE arguments are expanded by data/sources.py; the run is inference/detect_images.py's.
A bad input is reported on one stderr line and skipped; the exit code is 1 at the end if any
input failed.
"""
from __future__ import annotations

import click

from .options import (check_size_option, deprecated_option, echo_to_stderr, json_format_option,
                      out_folder_as_run_folder, precision_option, run_folder_options,
                      tree_options)


# -- the command -------------------------------------------------------------------------------
@click.command("detect")
@click.argument("sources", nargs=-1)
@click.option("--source", "more_sources", multiple=True, metavar="SOURCE",
              help="A source, as the arguments: e.g. a camera, 0 (/dev/video0) or a device path.")
@click.option("--vid-stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Videos and cameras: detect on every Nth frame.")
@click.option("--model", help="Bundled model name (e.g. yolov2-voc, yolov2, yolov2-tiny-voc).")
@click.option("--cfg", type=click.Path(dir_okay=False), help="Darknet .cfg file.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Darknet .weights or .h5 checkpoint (an .h5 carries its own cfg and names).")
@click.option("--names", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--size", type=int, callback=check_size_option,
              help="Network input size, a multiple of 32 [default: from the cfg].")
@click.option("--thresh", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              show_default=True, help="Keep detections whose score (objectness x class) >= this.")
@tree_options
@click.option("--nms", "nms_thresh", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="Suppress a box whose IoU with a better box of its class exceeds this.")
@run_folder_options("detect")
@deprecated_option("--out", "--project/--name", out_folder_as_run_folder,
                   type=click.Path(file_okay=False))
@click.option("--save-json", "json_path", metavar="FILE",
              help="Write detections as JSON to FILE ('-' = stdout).")
@deprecated_option("--json", "--save-json", lambda v: {"json_path": v})
@json_format_option("yolo9000", "with image_id = the image's position (from 0) in the input "
                    "list with folders and patterns expanded (the order detect prints), and "
                    "category_id = the class index (from 0)")
@click.option("--save-txt", is_flag=True,
              help="Also write YOLO label files (RUN/labels/*.txt: class cx cy w h, normalised), "
                   "readable as a YOLO dataset.")
@click.option("--save-conf", is_flag=True,
              help="With --save-txt: append each box's score as a 6th column.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images per forward pass.")
@precision_option
def command(sources, model, cfg, weights, names, size, thresh, hier_thresh, tree_walk, nms_thresh,
            project, name, exist_ok,
            json_path, json_format, save_txt, save_conf, batch, more_sources, vid_stride,
            precision):
    """Detect objects in images or videos: SOURCE is image or video files, directories (of
    images), glob patterns, or a camera (0, /dev/video0): videos are annotated into RUN/<stem>.mp4
    and --save-json writes JSON Lines, one record per frame."""
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    if save_conf and not save_txt:
        raise click.UsageError("--save-conf adds a column to the --save-txt label files: "
                               "give --save-txt too")
    from ..fileio import check_output_path
    check_output_path(project, "run folder", folder=True)
    check_output_path(json_path, "detections")
    # videos and cameras: all their work is in inference/video.py
    sources = sources + more_sources
    if not sources:
        raise click.UsageError("give the images or videos (SOURCES) or --source")
    from ..data.video import video_inputs
    videos = video_inputs(sources)
    if videos is not None:
        from functools import partial
        from ..inference.detector import Detector
        from ..inference.video import detect_videos
        detector = partial(Detector, model=model, cfg=cfg, weights=weights, names=names,
                           size=size, thresh=thresh, nms=nms_thresh, hier_thresh=hier_thresh,
                           tree_walk=tree_walk, precision=precision)
        return detect_videos(videos, detector, project=project, name=name, exist_ok=exist_ok,
                             json_path=json_path, json_format=json_format, save_txt=save_txt,
                             batch=batch, vid_stride=vid_stride)
    # With JSON on stdout, everything else goes to stderr so stdout stays valid JSON.
    progress_err = json_path == "-"

    def say(msg):
        click.echo(msg, err=progress_err)

    def fail(msg):
        click.echo(f"error: {msg}", err=True)

    from ..data.sources import expand_sources
    paths, errors, notes = expand_sources(sources)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for e in errors:
        fail(e)
    failures = len(errors)
    if not paths:
        fail("no images to process")
        return 1

    from ..inference.detect_images import detect_images
    failed = detect_images(paths, model=model, cfg=cfg, weights=weights, names=names, size=size,
                           thresh=thresh, hier_thresh=hier_thresh, tree_walk=tree_walk,
                           nms_thresh=nms_thresh, project=project, name=name, exist_ok=exist_ok,
                           json_path=json_path, json_format=json_format, save_txt=save_txt,
                           save_conf=save_conf, batch=batch, say=say, fail=fail,
                           warn=echo_to_stderr, precision=precision)
    if failed is None:          # a rank other than 0: rank 0 reports
        return 0
    failures += failed
    if failures:
        click.echo(f"{failures} input{'s' if failures != 1 else ''} failed", err=True)
        return 1
    return 0
