"""`yolo9000 evaluate --data VAL --weights W`: VOC and COCO mAP of a detector on a dataset, or
top-1 / top-5 accuracy of a classifier (a cfg ending in [softmax]) on a classification set.

A classifier's run folder gets metrics.json (top1, top5 as fractions, per-class accuracy, the
confusion matrix) and confusion_matrix.png; `--save-json` writes each image's top-5 classes.

The network runs over every image (the Detector pipeline `detect` and `train --val` use, through
`inference/evaluation.py`), then the detections are scored with the PASCAL VOC protocol (AP at IoU 0.5,
all-point or `--voc07` 11-point, per class) and the COCO protocol (AP@[.5:.95], AP50, AP75, AP
by object size, AR@1/10/100: COCOeval.summarize()'s numbers). VOC `difficult` (COCO `iscrowd`)
objects are ignored by both: finding them is not rewarded, missing them is not penalised.

The run folder (runs/evaluate/exp, exp2, ...) gets metrics.json and pr_curve.png (precision-
recall at IoU 0.5 per class; needs matplotlib). `--save-json` writes the detections in COCO's
results layout by default (inference/export.py), in the dataset's own ids for a COCO dataset,
so that pycocotools can score them.

Class ids: the model's classes and the dataset's must be the same list (data/classes.py
reconciles them). A word-tree (YOLO9000) model's classes are the entries of its cfg's map=
(every tree node without one), each scored with its absolute probability in the tree.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import click

from ..errors import UserError
from .options import (check_size_option, tree_options, deprecated_option, echo_dataset_report,
                      json_format_option, run_folder_options)



# -- results -----------------------------------------------------------------------------------
def _number(value, digits=6):
    """A float for JSON: rounded, and null instead of nan (a class with no ground truth)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _pct(value):
    value = float(value)
    return f"{100 * value:.1f}" if math.isfinite(value) else "-"


def result_dict(voc, coco, names, images, seconds, **info):
    """The machine-readable result: RUN/metrics.json and --metrics-json."""
    classes = [{"id": c, "name": names[c], "num_gt": int(voc.num_gt[c]),
                "num_det": int(voc.num_det[c]), "AP": _number(voc.ap[c]),
                "recall": _number(voc.recall[c]) if voc.num_gt[c] else None,
                "AP50_95": _number(coco.ap[c]), "AP75": _number(coco.ap75[c])}
               for c in range(len(voc.ap))]
    return {**info,
            "metric": "voc07 11-point" if voc.use_07_metric else "voc all-point",
            "mAP50": _number(voc.map), "mAP50_95": _number(coco.map),
            "AP50": _number(coco.map50), "AP75": _number(coco.map75),
            **{k: _number(v) for k, v in coco.stats().items() if k not in ("AP", "AP50", "AP75")},
            "images": int(images), "seconds": round(float(seconds), 3),
            "images_per_second": round(images / seconds, 3) if seconds > 0 else None,
            "classes": classes}


def summary_lines(voc, coco):
    metric = "VOC2007 11-point" if voc.use_07_metric else "VOC all-point"
    return [f"mAP@0.5 ({metric}): {_pct(voc.map)}",
            f"COCO mAP@[.5:.95]: {_pct(coco.map)}   AP50: {_pct(coco.map50)}   "
            f"AP75: {_pct(coco.map75)}",
            f"COCO AP small/medium/large: {_pct(coco.map_small)} / {_pct(coco.map_medium)} / "
            f"{_pct(coco.map_large)}   AR@1/10/100: {_pct(coco.ar1)} / {_pct(coco.ar10)} / "
            f"{_pct(coco.ar100)}"]


def detections_json(records, dets, names, json_format, category_ids=None):
    """(--save-json text, number of detections left out of it).

    COCO layout: a record's own image id (COCO datasets), else its position in the dataset;
    detections of a class with no category id in a COCO dataset are left out.
    """
    from ..inference.export import coco_results, image_entry, json_list_text

    if json_format == "yolo9000":
        entries = [image_entry(r.path, r.width, r.height, dets[k], names)
                   for k, r in enumerate(records)]
        return json_list_text(entries), 0
    entries = []
    for k, r in enumerate(records):
        entries += coco_results(k if r.image_id is None else r.image_id, dets[k], category_ids)
    total = sum(len(dets[k].scores) for k in range(len(records)))
    return json_list_text(entries), total - len(entries)


def plot_pr_curves(voc, names, path):
    """One PNG of every class's precision-recall curve (IoU 0.5), AP in the legend.

    The curves are the interpolated ones (precision_envelope) drawn as steps, so the area under
    each is its all-point AP.

    Returns False, writing nothing, when matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    import numpy as np

    from ..fileio import atomic_path
    from ..metrics.detection import precision_envelope

    shown = [c for c in range(len(voc.ap)) if voc.num_gt[c] > 0]
    columns = 1 + len(shown) // 25       # long legends (COCO's 80 classes) in columns
    fig, ax = plt.subplots(figsize=(6 + 2.2 * columns, 5.5))
    colours = plt.cm.tab20.colors
    for i, c in enumerate(shown):
        recall, precision = voc.curves[c]
        if recall.size == 0:                # no detections of the class: a point at (0, 0)
            recall, precision = np.zeros(1), np.zeros(1)
        envelope = precision_envelope(precision)
        ax.plot(np.concatenate([[0.0], recall]), np.concatenate([envelope[:1], envelope]),
                drawstyle="steps-pre", lw=1.2, color=colours[i % len(colours)],
                label=f"{names[c]} {voc.ap[c]:.3f}")
    metric = "VOC2007 11-point" if voc.use_07_metric else "VOC all-point"
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision (interpolated)",
           title=f"precision-recall at IoU 0.5: mAP {voc.map:.3f} ({metric})")
    ax.grid(alpha=0.3)
    ax.legend(title="class  AP", loc="upper left", bbox_to_anchor=(1.01, 1), ncol=columns,
              fontsize="small" if len(shown) <= 25 else "x-small", frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


def evaluated_split(data, split):
    """The list of a .data file to evaluate (the given split, else darknet's valid=), said on
    stderr: evaluating the training list by accident looks like a great model."""
    if Path(data).suffix.lower() != ".data" or not Path(data).is_file():
        return split
    from ..data.datasets import evaluation_list_key
    chosen = split or evaluation_list_key(data)
    click.echo(f"note: evaluating the {chosen!r} list of {data}"
               + (" (it has no 'valid =' entry)" if split is None and chosen == "train" else ""),
               err=True)
    return chosen


def write_run_results(run_dir, metrics, plot_name, plot, say):
    """metrics.json and the plot (plot(path) -> False without matplotlib) in the run folder;
    returns the metrics' JSON text."""
    from ..fileio import write_output
    metrics_text = json.dumps(metrics, indent=1) + "\n"
    write_output(run_dir / "metrics.json", metrics_text, "metrics")
    written = ["metrics.json"]
    if plot(run_dir / plot_name):
        written.append(plot_name)
    else:
        click.echo(f"note: matplotlib is not installed: {plot_name} skipped "
                   "(pip install 'yolo9000[plot]')", err=True)
    say(f"results: {run_dir} ({', '.join(written)})")
    return metrics_text


def classifier_result_dict(result, names, seconds, **info):
    """A classifier's metrics.json: top-1 and top-5 as fractions, per-class accuracy and the
    confusion matrix (rows: true class, columns: top-1 prediction)."""
    accuracy = result.class_accuracy
    return {**info, "task": "classification",
            "top1": _number(result.top1), "top5": _number(result.top5),
            "loss": _number(result.loss), "mean_class_accuracy": _number(result.mean_class_accuracy),
            "images": result.images, "seconds": round(float(seconds), 3),
            "classes": [{"id": c, "name": names[c], "images": int(result.class_totals[c]),
                         "top1": _number(accuracy[c])} for c in range(len(names))],
            "confusion": result.confusion.tolist()}


def evaluate_classifier_command(data, weights, cfg, model, names, size, batch, split, project,
                                name, exist_ok, json_path, dets_path, say):
    """`evaluate` of a classifier: top-1 / top-5, a per-class table, confusion_matrix.png."""
    from ..data.classification import classification_report, load_classification_dataset
    from ..fileio import write_output
    from ..inference.classifier import Classifier, evaluate_classifier
    from ..inference.export import classification_entry, json_list_text
    from ..metrics.classification import format_table, plot_confusion
    from ..progress import Progress
    from ..runs import new_run_dir

    classifier = Classifier(model=model, cfg=cfg, weights=weights, names=names, size=size)
    if classifier.names_source is None:
        raise UserError("the classifier's classes have no names (give --names) so its outputs "
                        "cannot be matched to the dataset's class folders", path=weights)
    split = evaluated_split(data, split)
    dataset = load_classification_dataset(data, names=classifier.names, split=split)
    for line in classification_report(dataset, "evaluation"):
        click.echo(line, err=True)
    records = dataset.records
    say(f"data: {data} ({len(records)} images, {len(dataset.names)} classes)")
    say(f"model: {cfg or model or 'stored cfg'} + {weights} ({classifier.net.width}x"
        f"{classifier.net.height}, classifier)")
    run_dir = new_run_dir(project, name, exist_ok)
    progress = Progress(len(records), desc="evaluating", unit="img", stream=sys.stderr)
    start = time.perf_counter()
    result = evaluate_classifier(classifier, records, batch=max(batch, 32), progress=progress)
    seconds = time.perf_counter() - start
    progress.close()
    say(format_table(result, classifier.names))
    say()
    say(f"top-1: {_pct(result.top1)}   top-5: {_pct(result.top5)}   mean per-class top-1: "
        f"{_pct(result.mean_class_accuracy)}   loss: {result.loss:.4f}")
    say(f"{len(records)} image{'s' if len(records) != 1 else ''} in {seconds:.2f} s "
        f"({len(records) / seconds if seconds > 0 else 0.0:.2f} images/s)")
    metrics = classifier_result_dict(result, classifier.names, seconds, data=str(data),
                                     weights=str(weights), cfg=cfg, model=model,
                                     size=[int(classifier.net.width), int(classifier.net.height)])
    metrics_text = write_run_results(run_dir, metrics, "confusion_matrix.png",
                                     lambda path: plot_confusion(result, classifier.names, path),
                                     say)
    if dets_path is not None:
        entries = []
        for record, p, (width, height) in zip(records, result.probabilities, result.sizes):
            order = [int(i) for i in (-p).argsort(kind="stable")[:5]]
            entries.append(classification_entry(record.path, width, height, [
                (i, classifier.names[i], p[i]) for i in order]))
        write_output(dets_path, json_list_text(entries), "classifications")
    if json_path is not None:
        write_output(json_path, metrics_text, "metrics")
        if json_path != "-":
            say(f"json: {json_path}")
    return 0


# -- the command -------------------------------------------------------------------------------
@click.command("evaluate")
@click.option("--data", required=True,
              help="Validation set: a YOLO folder, list or .data file, a VOC folder or a COCO "
                   "json; for a classifier, a folder of class folders or darknet's list/.data.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Darknet .weights (needs --cfg or --model) or an .h5 checkpoint (carries its "
                   "cfg, names and input size).")
@click.option("--cfg", type=click.Path(dir_okay=False), help="Darknet .cfg file.")
@click.option("--model", help="Bundled model name (e.g. yolov2-voc, yolov2-tiny-voc).")
@click.option("--names", type=click.Path(dir_okay=False),
              help="Class names, one per line, for the model and the dataset (VOC/COCO objects "
                   "are mapped by name).")
@click.option("--size", type=int, callback=check_size_option,
              help="Network input size, a multiple of 32 [default: the cfg's / checkpoint's].")
@click.option("--split", help="VOC ImageSets split, COCO instances_<split>.json, .data key "
                              "[default for a .data file: valid, as darknet] or YOLO sub-folder.")
@click.option("--data-format", type=click.Choice(["yolo", "voc", "coco"]),
              help="Dataset format [default: detected].")
@deprecated_option("--format", "--data-format", lambda v: {"data_format": v},
                   type=click.Choice(["yolo", "voc", "coco"]))
@click.option("--voc07", is_flag=True, help="VOC2007 11-point AP instead of all-point AP.")
@click.option("--thresh", type=click.FloatRange(0, 1), default=0.005, show_default=True,
              help="Keep detections whose score >= this (low, so the whole PR curve counts).")
@tree_options
@click.option("--nms", "nms_thresh", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="NMS IoU threshold.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per forward pass.")
@click.option("--no-difficult", is_flag=True,
              help="Drop VOC difficult / COCO crowd objects from the ground truth, so detections "
                   "of them count as false positives [default: ignore them, as VOC does].")
@run_folder_options("evaluate")
@click.option("--metrics-json", "json_path", metavar="FILE",
              help="Also write the metrics (RUN/metrics.json) to FILE ('-' = stdout).")
@deprecated_option("--json", "--metrics-json", lambda v: {"json_path": v})
@click.option("--save-json", "dets_path", metavar="FILE",
              help="Write every detection as JSON to FILE ('-' = stdout).")
@json_format_option("coco", "in the dataset's own image and category ids for a COCO dataset, "
                            "else image_id = the image's position (from 0) in the dataset and "
                            "category_id = the class index (from 0)")
@deprecated_option("--save-dets", "--save-json FILE --json-format yolo9000",
                   lambda v: {"dets_path": v, "json_format": "yolo9000"},
                   type=click.Path(dir_okay=False))
def command(data, weights, cfg, model, names, size, split, data_format, voc07, thresh, hier_thresh,
            tree_walk, nms_thresh,
            batch, no_difficult, project, name, exist_ok, json_path, dets_path, json_format):
    """Compute VOC mAP@0.5 and COCO mAP@[.5:.95] of a detector, or top-1 / top-5 accuracy
    of a classifier, on a labelled dataset.

    The metrics (metrics.json) and precision-recall curves (pr_curve.png; a classifier's
    confusion_matrix.png) go to a run folder.
    """
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    if json_path == "-" and dets_path == "-":
        raise click.UsageError("--metrics-json and --save-json cannot both write to stdout")
    from ..fileio import check_output_path, write_output
    check_output_path(project, "run folder", folder=True)
    check_output_path(json_path, "metrics")
    check_output_path(dets_path, "detections")
    # With JSON on stdout, everything else goes to stderr so stdout stays valid JSON.
    to_err = "-" in (json_path, dets_path)

    def say(msg=""):
        click.echo(msg, err=to_err)

    from ..data.classes import reconcile_classes
    from ..data.datasets import load_dataset
    from ..inference.detector import Detector
    from ..runs import new_run_dir
    from ..progress import Progress
    from ..inference.evaluation import evaluate_records
    from ..parallel import world

    if not os.path.exists(data):
        raise UserError("dataset not found: no such file or directory", path=data)
    from ..inference.classifier import is_classifier_model
    if is_classifier_model(model, cfg, weights):
        return evaluate_classifier_command(data, weights, cfg, model, names, size, batch, split,
                                           project, name, exist_ok, json_path, dets_path, say)
    detector = Detector(model=model, cfg=cfg, weights=weights, names=names, size=size,
                        thresh=thresh, nms=nms_thresh, evaluation=True, hier_thresh=hier_thresh,
                        tree_walk=tree_walk)
    if detector.notice:
        click.echo(f"note: {detector.notice}", err=True)
    net = detector.net
    num_classes = detector.num_classes
    model_names = detector.names if detector.names_source else None

    split = evaluated_split(data, split)
    dataset = load_dataset(data, format=data_format, names=names, split=split,
                           use_difficult=not no_difficult)
    echo_dataset_report(dataset)
    if detector.tree is not None:
        # a word-tree model scores each dataset class as its tree node (by name or WordNet
        # id; through the cfg's map= for a dataset of the map's size, e.g. COCO)
        from ..data.classes import tree_nodes
        class_map = net.region.class_map
        if class_map is not None and len(dataset.names) != len(class_map):
            class_map = None
        detector.score_classes(tree_nodes(dataset.names, detector.tree, class_map, path=data),
                               dataset.names)
        class_names, num_classes = list(dataset.names), len(dataset.names)
    else:
        dataset, class_names, notes = reconcile_classes(dataset, num_classes, model_names,
                                                        detector.names_source, data_path=data)
        for n in notes:
            click.echo(f"note: {n}", err=True)

    records = dataset.records
    n_difficult = sum(int(r.difficult.sum()) for r in records)
    weights_used = weights if weights is not None else "bundled default"
    say(f"data: {data} ({dataset.format}, {len(records)} images, {dataset.num_boxes} boxes"
        + (f", {n_difficult} difficult" if n_difficult else "") + f", {num_classes} classes)")
    say(f"model: {cfg or model or 'stored cfg'} + {weights_used} "
        f"({net.width}x{net.height}), thresh {thresh:g}, nms {nms_thresh:g}")

    ranks = world()
    run_dir = ranks.from_main(lambda: new_run_dir(project, name, exist_ok))
    progress = Progress(len(records), desc="evaluating", unit="img", stream=sys.stderr)
    start = time.perf_counter()
    voc, coco, dets = evaluate_records(detector, records, batch=batch, progress=progress,
                                       use_07_metric=voc07)
    seconds = time.perf_counter() - start
    progress.close()
    if not ranks.is_main:       # the images were shared out; rank 0 reports and writes
        return 0

    from ..metrics.detection import format_table
    say(format_table(voc, class_names))
    say()
    for line in summary_lines(voc, coco):
        say(line)
    rate = len(records) / seconds if seconds > 0 else 0.0
    say(f"{len(records)} image{'s' if len(records) != 1 else ''} in {seconds:.2f} s "
        f"({rate:.2f} images/s)")

    result = result_dict(voc, coco, class_names, len(records), seconds,
                         data=str(data), format=dataset.format, split=split,
                         weights=str(weights_used), cfg=cfg, model=model,
                         size=[int(net.width), int(net.height)], thresh=thresh,
                         nms=nms_thresh, difficult="dropped" if no_difficult else "ignored")
    metrics_text = write_run_results(run_dir, result, "pr_curve.png",
                                     lambda path: plot_pr_curves(voc, class_names, path), say)

    if dets_path is not None:
        text, left_out = detections_json(records, dets, class_names, json_format,
                                         dataset.category_ids)
        if left_out:
            click.echo(f"note: {left_out} detections of classes with no category in {data} "
                       f"left out of {dets_path}", err=True)
        write_output(dets_path, text, "detections")
        if dets_path != "-":
            say(f"detections: {dets_path}")
    if json_path is not None:
        write_output(json_path, metrics_text, "metrics")
        if json_path != "-":
            say(f"json: {json_path}")
    return 0
