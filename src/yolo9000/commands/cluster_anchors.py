"""`yolo9000 cluster-anchors`: anchors for a dataset by k-means on its box shapes."""
from __future__ import annotations

import json
import re

import click
import numpy as np

from ..errors import UserError
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


def _check_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot needs matplotlib, which is not installed: "
                        "pip install 'yolo9000[plot]'") from None




def _result_dict(result, wh, grid, size):
    from ..data.anchors import cluster_iou
    from ..model.cfg import anchors_line

    anchors = result.centroids * grid
    return {
        "metric": result.metric,
        "k": result.k,
        "anchors": [[round(float(w), 4), round(float(h), 4)] for w, h in anchors],
        "anchors_pixels": [[round(float(w), 2), round(float(h), 2)]
                           for w, h in result.centroids * size],
        "populations": [int(p) for p in result.populations],
        "cluster_iou": [None if np.isnan(v) else round(float(v), 6)
                        for v in cluster_iou(wh, result)],
        "avg_iou": round(result.avg_iou, 6),
        "iterations": result.iterations,
        "cfg_line": anchors_line(anchors, decimals=2),
    }


def _table(res, size):
    lines = [f"{'#':>2}  {'w (cells)':>9}  {'h (cells)':>9}  {'w (px)':>7}  {'h (px)':>7}  "
             f"{'boxes':>7}  {'avg IoU':>7}"]
    for i, ((w, h), (pw, ph), pop, ciou) in enumerate(
            zip(res["anchors"], res["anchors_pixels"], res["populations"],
                res["cluster_iou"]), start=1):
        ciou_text = "-" if ciou is None else f"{ciou:.4f}"
        lines.append(f"{i:>2}  {w:>9.2f}  {h:>9.2f}  {pw:>7.1f}  {ph:>7.1f}  {pop:>7d}  "
                     f"{ciou_text:>7}")
    return "\n".join(lines)


def _plot(path, sweep_rows, centroids, k, size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..fileio import atomic_path

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    ks = [r["k"] for r in sweep_rows]
    left.plot(ks, [100 * r["avg_iou_iou"] for r in sweep_rows], "o-", label="k-means, 1 − IoU")
    left.plot(ks, [100 * r["avg_iou_euclidean"] for r in sweep_rows], "s--",
              label="k-means, Euclidean")
    left.set_xlabel("# clusters (k)")
    left.set_ylabel("average IoU (%)")
    left.grid(alpha=0.3)
    left.legend()
    colours = plt.cm.tab10.colors
    for i, (w, h) in enumerate(centroids * size):
        right.add_patch(Rectangle((-w / 2, -h / 2), w, h, fill=False, lw=2,
                                  color=colours[i % len(colours)]))
    right.set_xlim(-size / 2, size / 2)
    right.set_ylim(-size / 2, size / 2)
    right.set_aspect("equal")
    right.set_title(f"k = {k} centroids (pixels at {size}×{size})")
    fig.tight_layout()
    suffix = path.rsplit(".", 1)[-1] if "." in path else "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=100)
    plt.close(fig)


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
    from ..data.anchors import avg_iou, box_wh, kmeans_anchors
    from ..data.formats import load_dataset
    from ..fileio import check_output_path, write_output

    check_output_path(json_path, "anchors")
    check_output_path(plot, "plot")

    ks = _parse_sweep(sweep)
    given = _parse_anchors(compare) if compare is not None else None
    if plot is not None:
        if ks is None:
            raise click.UsageError("--plot needs --sweep")
        _check_matplotlib()

    ds = load_dataset(dataset, format=fmt, names=names, split=split, strict=strict,
                      use_difficult=not no_difficult)
    echo_dataset_report(ds)
    wh = box_wh(ds)
    grid = size / 32
    needed = max([k] + (ks or []))
    if len(wh) < needed:
        raise UserError(f"only {len(wh)} boxes: too few for k = {needed}", path=dataset)

    result = kmeans_anchors(wh, k, metric=metric, restarts=restarts, seed=seed,
                            max_iter=max_iter)
    report = {
        "dataset": str(dataset), "format": ds.format, "images": len(ds),
        "boxes": int(len(wh)), "classes": len(ds.names), "size": size, "seed": seed,
        "restarts": restarts, "skipped_lines": ds.skipped_lines,
        "dropped_boxes": ds.dropped_boxes, **_result_dict(result, wh, grid, size),
    }
    if given is not None:
        report["compare"] = {
            "anchors": given.tolist(), "k": len(given),
            "avg_iou": round(avg_iou(wh, given / grid), 6),
        }
    sweep_rows = None
    if ks is not None:
        sweep_rows = []
        for kk in ks:
            row = {"k": kk}
            for m in ("iou", "euclidean"):
                r = result if (kk == k and m == metric) else kmeans_anchors(
                    wh, kk, metric=m, restarts=restarts, seed=seed, max_iter=max_iter)
                row[f"avg_iou_{m}"] = round(r.avg_iou, 6)
            sweep_rows.append(row)
        report["sweep"] = sweep_rows

    if plot is not None:
        centroids = result.centroids if result.metric == "iou" else kmeans_anchors(
            wh, k, restarts=restarts, seed=seed, max_iter=max_iter).centroids
        _plot(plot, sweep_rows, centroids, k, size)
        report["plot"] = plot

    text = json.dumps(report, indent=2)
    if json_path == "-":
        click.echo(text)
        return
    if json_path is not None:
        write_output(json_path, text + "\n", "anchors")
    _print_human(report, ds, plot, json_path)


def _print_human(report, ds, plot, out):
    metric_name = "1 - IoU" if report["metric"] == "iou" else "Euclidean"
    click.echo(f"dataset: {report['dataset']} ({report['format']}, {report['images']} images, "
               f"{report['boxes']} boxes, {report['classes']} classes)")
    click.echo(f"k-means ({metric_name}), k = {report['k']}, {report['restarts']} restarts, "
               f"seed {report['seed']}, network {report['size']} -> {report['size'] // 32}x"
               f"{report['size'] // 32} grid")
    click.echo("")
    click.echo(_table(report, report["size"]))
    click.echo("")
    click.echo(report["cfg_line"])
    click.echo(f"average IoU: {100 * report['avg_iou']:.2f}% "
               "(each box with its closest anchor)")
    if "compare" in report:
        c = report["compare"]
        click.echo(f"given anchors (k = {c['k']}): average IoU {100 * c['avg_iou']:.2f}% "
                   f"vs {100 * report['avg_iou']:.2f}% for the clusters")
    if "sweep" in report:
        click.echo("")
        click.echo(f"{'k':>3}  {'IoU k-means':>11}  {'Euclidean':>9}")
        for row in report["sweep"]:
            click.echo(f"{row['k']:>3}  {100 * row['avg_iou_iou']:>10.2f}%  "
                       f"{100 * row['avg_iou_euclidean']:>8.2f}%")
    if plot is not None:
        click.echo(f"plot written to {plot}")
    if out is not None:
        click.echo(f"JSON written to {out}")
