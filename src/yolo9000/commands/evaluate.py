"""`yolo9000 evaluate --data VAL --weights W`: VOC and COCO mAP of a model on a dataset.

The network runs over every image (the Detector pipeline `detect` and `train --val` use, through
`validate.py`), then the detections are scored with the PASCAL VOC protocol (AP at IoU 0.5,
all-point or `--voc07` 11-point, per class) and the COCO protocol (AP@[.5:.95], AP50, AP75).
VOC `difficult` (COCO `iscrowd`) objects are ignored by both: finding them is not rewarded,
missing them is not penalised.

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

import click

from ..errors import UserError
from .options import check_size_option, deprecated_option

# How many dataset reader warnings to show before summarising the rest.
SHOWN_WARNINGS = 5


# -- results -----------------------------------------------------------------------------------
def _number(value, digits=6):
    """A float for JSON: rounded, and null instead of nan (a class with no ground truth)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _pct(value):
    value = float(value)
    return f"{100 * value:.1f}" if math.isfinite(value) else "-"


def result_dict(voc, coco, names, images, seconds, **info):
    """The machine-readable result written by --json."""
    classes = [{"id": c, "name": names[c], "num_gt": int(voc.num_gt[c]),
                "num_det": int(voc.num_det[c]), "AP": _number(voc.ap[c]),
                "recall": _number(voc.recall[c]) if voc.num_gt[c] else None,
                "AP50_95": _number(coco.ap[c]), "AP75": _number(coco.ap75[c])}
               for c in range(len(voc.ap))]
    return {**info,
            "metric": "voc07 11-point" if voc.use_07_metric else "voc all-point",
            "mAP50": _number(voc.map), "mAP50_95": _number(coco.map),
            "AP50": _number(coco.map50), "AP75": _number(coco.map75),
            "images": int(images), "seconds": round(float(seconds), 3),
            "images_per_second": round(images / seconds, 3) if seconds > 0 else None,
            "classes": classes}


def summary_lines(voc, coco):
    metric = "VOC2007 11-point" if voc.use_07_metric else "VOC all-point"
    return [f"mAP@0.5 ({metric}): {_pct(voc.map)}",
            f"COCO mAP@[.5:.95]: {_pct(coco.map)}   AP50: {_pct(coco.map50)}   "
            f"AP75: {_pct(coco.map75)}"]


def detection_records(records, dets, names):
    """Per-image detections in the layout `yolo9000 detect --json` writes."""
    out = []
    for k, r in enumerate(records):
        d = dets[k]
        out.append({"path": r.path, "width": r.width, "height": r.height,
                    "detections": [{"class": int(c), "name": names[int(c)],
                                    "score": round(float(s), 6),
                                    "box": [round(float(v), 3) for v in b]}
                                   for b, s, c in zip(d.boxes, d.scores, d.classes)]})
    return out


def _write_json(path, text, what):
    from ..fileio import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write the {what}: {e.strerror or e}", path=path) from None


# -- the command -------------------------------------------------------------------------------
@click.command("evaluate")
@click.option("--data", required=True,
              help="Validation set: a YOLO folder, list or .data file, a VOC folder or a COCO json.")
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
@click.option("--split", help="VOC ImageSets split, COCO instances_<split>.json, .data key or "
                              "YOLO sub-folder.")
@click.option("--data-format", type=click.Choice(["yolo", "voc", "coco"]),
              help="Dataset format [default: detected].")
@deprecated_option("--format", "--data-format", lambda v: {"data_format": v},
                   type=click.Choice(["yolo", "voc", "coco"]))
@click.option("--voc07", is_flag=True, help="VOC2007 11-point AP instead of all-point AP.")
@click.option("--thresh", type=click.FloatRange(0, 1), default=0.005, show_default=True,
              help="Keep detections whose score >= this (low, so the whole PR curve counts).")
@click.option("--nms", "nms_thresh", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="NMS IoU threshold.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per forward pass.")
@click.option("--no-difficult", is_flag=True,
              help="Drop VOC difficult / COCO crowd objects from the ground truth, so detections "
                   "of them count as false positives [default: ignore them, as VOC does].")
@click.option("--metrics-json", "json_path", metavar="FILE",
              help="Write the metrics as JSON to FILE ('-' = stdout).")
@deprecated_option("--json", "--metrics-json", lambda v: {"json_path": v})
@click.option("--save-dets", type=click.Path(dir_okay=False),
              help="Write every detection as JSON (the `detect --json` layout) to FILE.")
def command(data, weights, cfg, model, names, size, split, data_format, voc07, thresh, nms_thresh,
            batch, no_difficult, json_path, save_dets):
    """Compute VOC mAP@0.5 and COCO mAP@[.5:.95] of a model on a labelled dataset."""
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    # With JSON on stdout, everything else goes to stderr so stdout stays valid JSON.
    to_err = json_path == "-"

    def say(msg=""):
        click.echo(msg, err=to_err)

    def warn(msg):
        click.echo(f"warning: {msg}", err=True)

    from ..data.classes import reconcile_classes
    from ..data.datasets import load_dataset
    from ..inference.detector import Detector
    from ..progress import Progress
    from ..inference.validate import evaluate_records

    if not os.path.exists(data):
        raise UserError("dataset not found: no such file or directory", path=data)
    detector = Detector(model=model, cfg=cfg, weights=weights, names=names, size=size,
                        thresh=thresh, nms=nms_thresh, evaluation=True)
    if detector.notice:
        click.echo(f"note: {detector.notice}", err=True)
    net = detector.net
    num_classes = detector.num_classes
    model_names = detector.names if detector.names_source else None

    dataset = load_dataset(data, format=data_format, names=names, split=split,
                           use_difficult=not no_difficult)
    for w in dataset.warnings[:SHOWN_WARNINGS]:
        warn(w)
    if len(dataset.warnings) > SHOWN_WARNINGS:
        warn(f"... and {len(dataset.warnings) - SHOWN_WARNINGS} more dataset problems")
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

    progress = Progress(len(records), desc="evaluating", unit="img", stream=sys.stderr)
    start = time.perf_counter()
    voc, coco, dets = evaluate_records(detector, records, batch=batch, progress=progress,
                                       use_07_metric=voc07)
    seconds = time.perf_counter() - start
    progress.close()

    from ..metrics.detection import format_table
    say(format_table(voc, class_names))
    say()
    for line in summary_lines(voc, coco):
        say(line)
    rate = len(records) / seconds if seconds > 0 else 0.0
    say(f"{len(records)} image{'s' if len(records) != 1 else ''} in {seconds:.2f} s "
        f"({rate:.2f} images/s)")

    if save_dets is not None:
        text = "[\n" + ",\n".join(json.dumps(r) for r in
                                  detection_records(records, dets, class_names)) + "\n]\n"
        _write_json(save_dets, text, "detections")
        say(f"detections: {save_dets}")
    if json_path is not None:
        result = result_dict(voc, coco, class_names, len(records), seconds,
                             data=str(data), format=dataset.format, split=split,
                             weights=str(weights_used), cfg=cfg, model=model,
                             size=[int(net.width), int(net.height)], thresh=thresh,
                             nms=nms_thresh, difficult="dropped" if no_difficult else "ignored")
        text = json.dumps(result, indent=1) + "\n"
        if json_path == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            _write_json(json_path, text, "results")
            say(f"json: {json_path}")
    return 0
