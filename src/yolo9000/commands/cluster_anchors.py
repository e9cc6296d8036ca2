"""`yolo9000 cluster-anchors`: anchors for a dataset by k-means on its box shapes.

The clustering is data/anchors.py's; the report (JSON fields, table, sweep plot)
model/anchor_report.py's."""
from __future__ import annotations

import re

import click
import numpy as np

from .options import check_size_option, deprecated_option, echo_dataset_report


def _parse_sweep(value):
    """'1-15' -> [1..15]; '3,5,9' -> [3, 5, 9]."""
    if value is None:
        return None
    ks = []
    for part in value.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise click.BadParameter(f"empty range {part!r}", param_hint="--sweep")
            ks.extend(range(lo, hi + 1))
        elif part.isdigit():
            ks.append(int(part))
        else:
            raise click.BadParameter(f"expected a range like 1-15 or a list like 3,5,9, got "
                                     f"{value!r}", param_hint="--sweep")
    if not ks or min(ks) < 1:
        raise click.BadParameter("k must be at least 1", param_hint="--sweep")
    return sorted(set(ks))


def _parse_anchors(value):
    """'1.32,1.73, 3.19,4.01' -> (n, 2) array in grid units."""
    try:
        numbers = [float(v) for v in re.split(r"[,\s]+", value.strip()) if v]
    except ValueError:
        raise click.BadParameter(f"anchors must be numbers 'w,h, w,h, ...', got {value!r}",
                                 param_hint="--compare") from None
    if not numbers or len(numbers) % 2 or min(numbers) <= 0:
        raise click.BadParameter("anchors must be an even number of positive numbers "
                                 "'w,h, w,h, ...'", param_hint="--compare")
    return np.array(numbers, np.float64).reshape(-1, 2)


@click.command("cluster-anchors")
@click.argument("dataset", type=click.Path())
@click.option("-k", "--clusters", "k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of anchors.")
@click.option("--size", type=click.IntRange(min=32), default=416, show_default=True,
              callback=check_size_option,
              help="Network input size; anchors are in grid cells of size/32.")
@click.option("--metric", type=click.Choice(["iou", "euclidean"]), default="iou",
              show_default=True, help="k-means distance: 1 - IoU, or Euclidean (the baseline).")
@click.option("--restarts", type=click.IntRange(min=1), default=10, show_default=True,
              help="k-means++ restarts; the best is kept.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the k-means++ starts; the same seed gives the same anchors.")
@click.option("--max-iter", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--data-format", "fmt", type=click.Choice(["yolo", "voc", "coco"]), default=None,
              help="Dataset format (default: detected from the path).")
@click.option("--split", default=None,
              help="VOC ImageSets/Main/<split>.txt, COCO instances_<split>.json, .data key.")
@click.option("--names", type=click.Path(), default=None, help="Class names file.")
@click.option("--no-difficult", is_flag=True, help="Drop VOC difficult (COCO crowd) boxes.")
@click.option("--strict", is_flag=True, help="A malformed label line is an error.")
@click.option("--sweep", default=None, metavar="K1-K2",
              help="Average IoU against k for both metrics, e.g. 1-15.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="With --sweep: save the sweep plot and the centroids (PNG).")
@click.option("--compare", default=None, metavar="'w,h, w,h, ...'",
              help="Average IoU of given anchors (grid units at --size) on the same boxes.")
@deprecated_option("--format", "--data-format", lambda v: {"fmt": v},
                   type=click.Choice(["yolo", "voc", "coco"]))
@click.option("--save-json", "json_path", metavar="FILE",
              help="Write the result as JSON to FILE ('-' = stdout, instead of the table).")
@deprecated_option("--json", "--save-json -", lambda v: {"json_path": "-"}, is_flag=True)
@deprecated_option("--out", "--save-json FILE", lambda v: {"json_path": v},
                   type=click.Path(dir_okay=False))
def command(dataset, k, size, metric, restarts, seed, max_iter, fmt, split, names,
            no_difficult, strict, sweep, plot, compare, json_path):
    """Cluster the box shapes of DATASET into anchors (YOLOv2's dimension clusters).

    DATASET is a VOC folder, a COCO instances_*.json (or its folder), a YOLO folder, a darknet
    image list or .data file. Prints a darknet `anchors = ...` line to paste into a cfg.
    """
    from ..data.formats import load_dataset
    from ..fileio import check_output_path, write_output
    from ..model.anchor_report import (cluster_report, report_json_text, report_lines,
                                       require_matplotlib)

    check_output_path(json_path, "anchors")
    check_output_path(plot, "plot")

    ks = _parse_sweep(sweep)
    given = _parse_anchors(compare) if compare is not None else None
    if plot is not None:
        if ks is None:
            raise click.UsageError("--plot needs --sweep")
        require_matplotlib()

    ds = load_dataset(dataset, format=fmt, names=names, split=split, strict=strict,
                      use_difficult=not no_difficult)
    echo_dataset_report(ds)
    report = cluster_report(dataset, ds, k, size, metric, restarts, seed, max_iter,
                            compare=given, sweep=ks, plot=plot)
    text = report_json_text(report)
    if json_path == "-":
        click.echo(text)
        return
    if json_path is not None:
        write_output(json_path, text + "\n", "anchors")
    for line in report_lines(report, plot, json_path):
        click.echo(line)
