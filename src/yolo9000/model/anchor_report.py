"""What `cluster-anchors` reports: the anchors of a dataset's boxes (data/anchors.py's k-means)
as a cfg's [region] takes them, with their fit, as JSON fields, a table, and a plot of the
average IoU against k with the centroids.

Anchors are in grid cells of the network input (size / 32 per side); the JSON also gives them
in pixels and as the darknet `anchors = ...` line to paste into a cfg.
"""
import numpy as np

from ..errors import UserError


def require_matplotlib():
    """A UserError saying how to install matplotlib, when it is not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot needs matplotlib, which is not installed: "
                        "pip install 'yolo9000[plot]'") from None


def clustering_fields(result, wh, grid, size):
    """The JSON fields of one k-means result on the boxes wh (normalised widths, heights)."""
    from ..data.anchors import cluster_iou
    from .cfg import anchors_line

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


def cluster_report(dataset, ds, k, size, metric, restarts, seed, max_iter, compare=None,
                   sweep=None, plot=None):
    """The report (a dict, the --save-json layout) of k anchors for the dataset ds read from
    `dataset`: with `compare` ((n, 2) anchors in grid cells) the average IoU of those too; with
    `sweep` (a list of k) the average IoU of both metrics for each k; with `plot` (a path,
    needs sweep) the sweep and the centroids drawn there."""
    from ..data.anchors import avg_iou, box_wh, kmeans_anchors

    wh = box_wh(ds)
    grid = size / 32
    needed = max([k] + (sweep or []))
    if len(wh) < needed:
        raise UserError(f"only {len(wh)} boxes: too few for k = {needed}", path=dataset)

    result = kmeans_anchors(wh, k, metric=metric, restarts=restarts, seed=seed,
                            max_iter=max_iter)
    report = {
        "dataset": str(dataset), "format": ds.format, "images": len(ds),
        "boxes": int(len(wh)), "classes": len(ds.names), "size": size, "seed": seed,
        "restarts": restarts, "skipped_lines": ds.skipped_lines,
        "dropped_boxes": ds.dropped_boxes, **clustering_fields(result, wh, grid, size),
    }
    if compare is not None:
        report["compare"] = {
            "anchors": compare.tolist(), "k": len(compare),
            "avg_iou": round(avg_iou(wh, compare / grid), 6),
        }
    sweep_rows = None
    if sweep is not None:
        sweep_rows = []
        for kk in sweep:
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
        plot_sweep(plot, sweep_rows, centroids, k, size)
        report["plot"] = plot
    return report


def report_json_text(report):
    """The report as `--save-json` writes it (indented JSON)."""
    import json
    return json.dumps(report, indent=2)


def anchor_table(report):
    """One row per anchor: its size in grid cells and pixels, its boxes and their IoU."""
    lines = [f"{'#':>2}  {'w (cells)':>9}  {'h (cells)':>9}  {'w (px)':>7}  {'h (px)':>7}  "
             f"{'boxes':>7}  {'avg IoU':>7}"]
    for i, ((w, h), (pw, ph), pop, ciou) in enumerate(
            zip(report["anchors"], report["anchors_pixels"], report["populations"],
                report["cluster_iou"]), start=1):
        ciou_text = "-" if ciou is None else f"{ciou:.4f}"
        lines.append(f"{i:>2}  {w:>9.2f}  {h:>9.2f}  {pw:>7.1f}  {ph:>7.1f}  {pop:>7d}  "
                     f"{ciou_text:>7}")
    return "\n".join(lines)


def report_lines(report, plot, json_path):
    """The report as printed: the dataset, the clustering, the table, the cfg line, the fit;
    then where the plot and the JSON went."""
    metric_name = "1 - IoU" if report["metric"] == "iou" else "Euclidean"
    lines = [f"dataset: {report['dataset']} ({report['format']}, {report['images']} images, "
             f"{report['boxes']} boxes, {report['classes']} classes)",
             f"k-means ({metric_name}), k = {report['k']}, {report['restarts']} restarts, "
             f"seed {report['seed']}, network {report['size']} -> {report['size'] // 32}x"
             f"{report['size'] // 32} grid",
             "",
             anchor_table(report),
             "",
             report["cfg_line"],
             f"average IoU: {100 * report['avg_iou']:.2f}% (each box with its closest anchor)"]
    if "compare" in report:
        c = report["compare"]
        lines.append(f"given anchors (k = {c['k']}): average IoU {100 * c['avg_iou']:.2f}% "
                     f"vs {100 * report['avg_iou']:.2f}% for the clusters")
    if "sweep" in report:
        lines += ["", f"{'k':>3}  {'IoU k-means':>11}  {'Euclidean':>9}"]
        for row in report["sweep"]:
            lines.append(f"{row['k']:>3}  {100 * row['avg_iou_iou']:>10.2f}%  "
                         f"{100 * row['avg_iou_euclidean']:>8.2f}%")
    if plot is not None:
        lines.append(f"plot written to {plot}")
    if json_path is not None:
        lines.append(f"JSON written to {json_path}")
    return lines


def plot_sweep(path, sweep_rows, centroids, k, size):
    """Average IoU against k for both metrics, beside the k centroids drawn in pixels; the
    image format is the path's suffix."""
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
