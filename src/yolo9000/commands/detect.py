"""`yolo9000 detect SOURCE...`: annotated images, JSON records and YOLO label files.

The layouts of the JSON and label files are inference/export.py's; the SOURCE arguments are
expanded by data/sources.py.

The images go through `Detector.stream` (decoded ahead in background threads while the network
runs). A bad input is reported on one stderr line and skipped; the exit code is 1 at the end if
any input failed.
"""
from __future__ import annotations

import time

import click

from ..runs import OutputNamer, new_run_dir
from .options import (check_size_option, tree_options, deprecated_option, json_format_option,
                      out_folder_as_run_folder, run_folder_options)


# -- the command -------------------------------------------------------------------------------
@click.command("detect")
@click.argument("sources", nargs=-1, required=True)
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
def command(sources, model, cfg, weights, names, size, thresh, hier_thresh, tree_walk, nms_thresh,
            project, name, exist_ok,
            json_path, json_format, save_txt, save_conf, batch):
    """Detect objects in images: SOURCE is image files, directories or glob patterns."""
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    if save_conf and not save_txt:
        raise click.UsageError("--save-conf adds a column to the --save-txt label files: "
                               "give --save-txt too")
    from ..fileio import atomic_write_text, check_output_path, write_output
    check_output_path(project, "run folder", folder=True)
    check_output_path(json_path, "detections")
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

    from ..inference.detector import Detector
    from ..data.images import save_image, written_suffix
    from ..inference.draw import draw_detections
    from ..inference.export import (coco_results, image_entry, json_list_text, summarise,
                                    yolo_label_text)
    from ..progress import images_rate_line

    detector = Detector(model=model, cfg=cfg, weights=weights, names=names, size=size,
                        thresh=thresh, nms=nms_thresh, hier_thresh=hier_thresh,
                        tree_walk=tree_walk)
    if detector.notice:
        click.echo(f"note: {detector.notice}", err=True)

    from ..parallel import world
    ranks = world()
    out_dir = ranks.from_main(lambda: new_run_dir(project, name, exist_ok))
    labels_dir = out_dir / "labels"
    if save_txt and ranks.is_main:
        labels_dir.mkdir(exist_ok=True)
    namer = OutputNamer()
    # named before any image runs: the same names however the images are shared over ranks
    outputs = [(namer.stem(path), written_suffix(path)) for path in paths]
    mine = ranks.shard(len(paths))
    # under MPI the ranks' reports are printed by rank 0, in input order, once all are done
    live = ranks.size == 1

    def detect_mine(mine_paths):
        reports = {}     # position among mine_paths -> (error or None, stdout line, entries)
        # result.index (in `paths`), the image_id of the COCO layout: failed images keep
        # their numbers
        for result in detector.stream(mine_paths, batch_size=batch, skip_errors=True):
            index = mine[result.index]
            if result.error is not None:
                report = (result.error, None, [])
            else:
                path, image, dets = result.source, result.image, result.detections
                stem, suffix = outputs[index]
                scale = (image.rgb.shape[1] / image.width, image.rgb.shape[0] / image.height)
                save_image(draw_detections(image.rgb, dets, scale=scale), out_dir / (stem + suffix),
                           "annotated image")
                if save_txt:
                    atomic_write_text(labels_dir / f"{stem}.txt",
                                      yolo_label_text(dets, image.width, image.height, save_conf))
                if json_format == "coco":
                    entries = coco_results(index, dets)
                else:
                    entries = [image_entry(path, image.width, image.height, dets, detector.names)]
                report = (None, f"{path} {image.width}x{image.height}: {summarise(dets)}, "
                                f"{result.seconds * 1000:.0f} ms", entries)
            if live:
                show(report)
            reports[result.index] = report
        return reports

    def show(report):
        error, line, _ = report
        if error is not None:
            fail(error)
        else:
            say(line)

    start = time.perf_counter()
    reports = ranks.map_sharded(paths, detect_mine)
    if not ranks.is_main:
        return 0
    entries = []        # of the --save-json file
    for report in reports.values():
        if not live:
            show(report)
        entries.extend(report[2])
    done = sum(error is None for error, _, _ in reports.values())
    failures += len(reports) - done

    elapsed = time.perf_counter() - start
    if json_path is not None:
        write_output(json_path, json_list_text(entries), "detections")
    say(images_rate_line(done, elapsed))
    say(f"annotated images: {out_dir}")
    if save_txt:
        say(f"labels: {labels_dir}")
    if json_path is not None and json_path != "-":
        say(f"json: {json_path}")
    if failures:
        click.echo(f"{failures} input{'s' if failures != 1 else ''} failed", err=True)
        return 1
    return 0
