"""Dataset readers, one module per layout on disk, all turning a dataset into records.

Detection (YOLO/darknet, PASCAL VOC and COCO: one ImageRecord per image):

    ds = load_dataset("VOCdevkit/VOC2007", split="trainval")
    for rec in ds.records:
        rec.path, rec.width, rec.height      # absolute image path, size in pixels
        rec.boxes                            # (n, 4) float32 [cx, cy, w, h] normalised to [0, 1]
        rec.classes, rec.difficult           # (n,) int64 class ids, (n,) bool
    ds.names                                 # class names, index = class id

The format is detected from the path (detect.py); ``format=`` forces one. Each layout is told
in its reader's module: yolo.py, voc.py, coco.py; records.py holds the records, the pixel
convention and what is skipped, clipped or dropped with a warning; darknet.py the ``.data`` and
list files that darknet's detector and classifier datasets share. Class names: an explicit
``names=`` (a list or a names file) wins; otherwise each format has its own source (see its
module), and failing that ``class0 .. classN``.

Classification (class folders, darknet's lists and classifier ``.data`` files: one
ClassificationRecord per image): load_classification_dataset, in classification.py.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ...names import names_argument
from .classification import (ClassificationDataset, ClassificationRecord,
                             classification_report, load_classification_dataset)
from .coco import load_coco
from .darknet import data_split_key, evaluation_list_key
from .detect import detect_format, source_for_format
from .records import Dataset, ImageRecord, Report, without_difficult
from .voc import VOC_CLASSES, load_voc
from .yolo import label_path_candidates, load_yolo

FORMATS = ("yolo", "voc", "coco")

__all__ = ["FORMATS", "VOC_CLASSES", "ClassificationDataset", "ClassificationRecord", "Dataset",
           "ImageRecord", "classification_report", "data_split_key", "evaluation_list_key",
           "label_path_candidates", "load_classification_dataset", "load_dataset"]


def load_dataset(path, format=None, names=None, split=None, strict=False,
                 use_difficult=True) -> Dataset:
    """Read a YOLO, VOC or COCO dataset (see the package docstring).

    path: a dataset folder, a darknet list or ``.data`` file, or a COCO ``.json`` file.
    format: 'yolo', 'voc' or 'coco' to skip detection.
    names: a list of class names or the path of a names file (one name per line).
    split: VOC ``ImageSets/Main/<split>.txt``; COCO ``instances_<split>.json``; the key of a
        ``.data`` file (``train``/``valid``); for a YOLO folder, its ``images/<split>`` or
        ``<split>`` sub-folder.
    strict: a malformed label line or annotation raises UserError instead of being skipped.
    use_difficult: False drops VOC difficult (and COCO crowd) boxes.
    Raises UserError when the path is missing, a file is malformed, or no box is found.
    """
    path = Path(path)
    if not path.exists():
        raise UserError("no such file or directory", path=path)
    if format is not None and format not in FORMATS:
        raise UserError(f"unknown dataset format {format!r} (choose from {', '.join(FORMATS)})")
    explicit_names = names_argument(names)
    report = Report(strict)

    if format is None:
        format, source = detect_format(path, split)
    else:
        source = source_for_format(path, format, split)

    if format == "voc":
        ds = load_voc(source, split, explicit_names, report)
    elif format == "coco":
        ds = load_coco(source, explicit_names, report)
    else:
        ds = load_yolo(source, split, explicit_names, report)

    if not use_difficult:
        ds.records = [without_difficult(r) for r in ds.records]
    ds.skipped_lines = report.skipped
    ds.dropped_boxes = report.dropped
    ds.clipped_boxes = report.clipped
    ds.skipped_images = report.skipped_images
    ds.warnings = report.warnings
    if ds.num_boxes == 0:
        raise UserError(f"no boxes found (read as {format}: {len(ds.records)} images, "
                        "0 boxes; formats: yolo, voc, coco)", path=path)
    return ds
