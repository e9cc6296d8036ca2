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

The flows are inference/evaluation.py's; the metrics.json layouts metrics/report.py's.
"""
from __future__ import annotations

import os

import click

from ..errors import UserError
from .options import (check_size_option, deprecated_option, echo_to_stderr, json_format_option,
                      precision_option, run_folder_options, tree_options)


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
@precision_option
def command(data, weights, cfg, model, names, size, split, data_format, voc07, thresh, hier_thresh,
            tree_walk, nms_thresh,
            batch, no_difficult, project, name, exist_ok, json_path, dets_path, json_format,
            precision):
    """Compute VOC mAP@0.5 and COCO mAP@[.5:.95] of a detector, or top-1 / top-5 accuracy
    of a classifier, on a labelled dataset.

    The metrics (metrics.json) and precision-recall curves (pr_curve.png; a classifier's
    confusion_matrix.png) go to a run folder.
    """
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    if json_path == "-" and dets_path == "-":
        raise click.UsageError("--metrics-json and --save-json cannot both write to stdout")
    from ..fileio import check_output_path
    check_output_path(project, "run folder", folder=True)
    check_output_path(json_path, "metrics")
    check_output_path(dets_path, "detections")
    # With JSON on stdout, everything else goes to stderr so stdout stays valid JSON.
    to_err = "-" in (json_path, dets_path)

    def say(msg=""):
        click.echo(msg, err=to_err)

    if not os.path.exists(data):
        raise UserError("dataset not found: no such file or directory", path=data)
    from ..inference.classifier import is_classifier_model
    from ..inference.evaluation import evaluate_classifier_dataset, evaluate_detector_dataset
    if is_classifier_model(model, cfg, weights):
        return evaluate_classifier_dataset(
            data, weights=weights, cfg=cfg, model=model, names=names, size=size, batch=batch,
            split=split, project=project, name=name, exist_ok=exist_ok, json_path=json_path,
            dets_path=dets_path, say=say, warn=echo_to_stderr, precision=precision)
    return evaluate_detector_dataset(
        data, weights=weights, cfg=cfg, model=model, names=names, size=size, split=split,
        data_format=data_format, voc07=voc07, thresh=thresh, hier_thresh=hier_thresh,
        tree_walk=tree_walk, nms_thresh=nms_thresh, batch=batch, no_difficult=no_difficult,
        project=project, name=name, exist_ok=exist_ok, json_path=json_path,
        dets_path=dets_path, json_format=json_format, say=say, warn=echo_to_stderr,
        precision=precision)
