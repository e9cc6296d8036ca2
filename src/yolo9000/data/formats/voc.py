"""The PASCAL VOC layout: ``Annotations/*.xml`` (``<size>``, ``<object>`` with ``<difficult>``),
images in ``JPEGImages/``; an optional ``ImageSets/Main/<split>.txt`` chooses the images.

VOC coordinates are 1-based inclusive, so xmin..xmax maps to the pixel corners x1 = xmin - 1,
x2 = xmax (records.py's convention). Class names: without ``names=``, the sorted set of names
found, or the standard VOC order when every name is one of VOC's 20 classes; with ``names=``
objects are mapped to it by name.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ...errors import UserError
from .records import Dataset, absolute_path, make_record, normalise_corners

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


def _voc_names(found):
    if found and found <= set(VOC_CLASSES):
        return list(VOC_CLASSES)
    return sorted(found)


def _voc_ids(root: Path, split):
    if split is None:
        return [p.stem for p in sorted((root / "Annotations").glob("*.xml"))]
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        main = root / "ImageSets" / "Main"
        available = sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem) \
            if main.is_dir() else []
        raise UserError(f"no split {split!r} (available: {', '.join(available) or 'none'})",
                        path=split_file)
    ids = []
    for line in split_file.read_text(encoding="utf-8").splitlines():
        tokens = line.split()
        if tokens:
            ids.append(tokens[0])
    return ids


def _xml_number(node, tag):
    text = node.findtext(tag)
    if text is None:
        raise ValueError(f"missing <{tag}>")
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"<{tag}> is not a number: {text.strip()!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"<{tag}> is not finite: {text.strip()!r}")
    return value


def _parse_voc_xml(xml_path: Path, root: Path, report):
    """-> (image path, width, height, pixel corners, object names, difficult flags, object
    numbers); width and height are 0 when <size> does not give them."""
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as e:
        raise UserError(f"malformed XML: {e}", path=xml_path) from None
    except OSError as e:
        raise UserError(f"cannot read annotation: {e}", path=xml_path) from None
    ann = tree.getroot()
    filename = (ann.findtext("filename") or "").strip() or xml_path.stem + ".jpg"
    image_path = absolute_path(root / "JPEGImages" / filename)

    width = height = 0
    size = ann.find("size")
    if size is not None:
        try:
            width, height = int(_xml_number(size, "width")), int(_xml_number(size, "height"))
        except ValueError:
            width = height = 0

    corners, labels, difficult, numbers = [], [], [], []
    for i, obj in enumerate(ann.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        try:
            if not name:
                raise ValueError("missing <name>")
            if box is None:
                raise ValueError("missing <bndbox>")
            xmin, ymin, xmax, ymax = (_xml_number(box, t) for t in ("xmin", "ymin", "xmax", "ymax"))
            flag = (obj.findtext("difficult") or "0").strip()
            is_difficult = bool(int(float(flag))) if flag else False
        except ValueError as e:
            report.malformed(f"object {i}: {e}", xml_path)
            continue
        corners.append((xmin - 1.0, ymin - 1.0, xmax, ymax))
        labels.append(name)
        difficult.append(is_difficult)
        numbers.append(i)
    return image_path, width, height, corners, labels, difficult, numbers


def load_voc(root: Path, split, names, report):
    parsed = []
    for image_id in _voc_ids(root, split):
        xml_path = root / "Annotations" / f"{image_id}.xml"
        if not xml_path.is_file():
            report.note("annotation listed in the split is missing", xml_path)
            continue
        parsed.append((xml_path, _parse_voc_xml(xml_path, root, report)))

    if names is None:
        names = _voc_names({n for _, p in parsed for n in p[4]})
    index = {n: i for i, n in enumerate(names)}

    records = []
    for xml_path, (image_path, width, height, corners, labels, difficult, numbers) in parsed:
        # Some VOC-style exports leave <size> empty; the image header knows.
        size = report.image_size(image_path, width, height)
        if size is None:
            continue
        width, height = size
        known = [j for j, n in enumerate(labels) if n in index]
        for j, n in enumerate(labels):
            if n not in index:
                report.malformed(f"class {n!r} is not in the class names", xml_path)
        boxes, keep = normalise_corners([corners[j] for j in known], width, height, report,
                                        [f"{xml_path}: object {numbers[j]}" for j in known])
        classes = np.array([index[labels[j]] for j in known], np.int64)
        flags = np.array([difficult[j] for j in known], bool)
        records.append(make_record(image_path, width, height, boxes[keep], classes[keep],
                                   flags[keep]))
    return Dataset(records=records, names=list(names), format="voc", root=str(absolute_path(root)))
