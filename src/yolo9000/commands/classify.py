"""`yolo9000 classify SOURCE... --weights W`: the most probable classes of each image.

The images go through `Classifier.stream` (inference/classifier.py's `classify_images`). A bad
input is reported on one stderr line and skipped; the exit code is 1 at the end if any input
failed — the rules of `detect`, whose SOURCE arguments it takes (data/sources.py).
"""
from __future__ import annotations

import click

from .options import check_size_option, echo_to_stderr, precision_option


@click.command("classify")
@click.argument("sources", nargs=-1, required=True)
@click.option("--weights", type=click.Path(dir_okay=False), required=True,
              help="A classifier: an .h5 checkpoint from `yolo9000 train` (carries its cfg, "
                   "names and input size) or darknet .weights with --cfg/--model.")
@click.option("--model", help="Bundled classifier cfg name (e.g. darknet19, darknet-mini).")
@click.option("--cfg", type=click.Path(dir_okay=False), help="Darknet classifier .cfg file.")
@click.option("--names", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--size", type=int, callback=check_size_option,
              help="Network input size, a multiple of 32 [default: the checkpoint's / cfg's].")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many classes to list per image.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per forward pass.")
@click.option("--save-json", "json_path", metavar="FILE",
              help="Write the classes and probabilities as JSON to FILE ('-' = stdout).")
@precision_option
def command(sources, weights, model, cfg, names, size, top, batch, json_path, precision):
    """Classify images: SOURCE is image files, directories or glob patterns."""
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    from ..data.sources import expand_sources
    from ..fileio import check_output_path
    from ..inference.classifier import classify_images
    check_output_path(json_path, "classifications")
    to_err = json_path == "-"      # stdout then carries only the JSON

    def say(msg):
        click.echo(msg, err=to_err)

    def fail(message):
        echo_to_stderr(f"error: {message}")

    paths, errors, notes = expand_sources(sources)
    for note in notes:
        echo_to_stderr(f"note: {note}")
    for e in errors:
        fail(e)
    failures = len(errors)
    if not paths:
        fail("no images to process")
        return 1
    failures += classify_images(paths, model=model, cfg=cfg, weights=weights, names=names,
                                size=size, top=top, batch=batch, json_path=json_path, say=say,
                                fail=fail, precision=precision, warn=echo_to_stderr)
    if failures:
        echo_to_stderr(f"{failures} input{'s' if failures != 1 else ''} failed")
        return 1
    return 0
