"""The YOLO/darknet detection layout: one label file per image, one ``class cx cy w h`` line per
box (normalised); a 6th number (the score ``yolo9000 detect --save-txt --save-conf`` appends) is
accepted and ignored.

The path may be a folder of images, a list file with one image path per line, or a darknet
``.data`` file (``train=``, ``valid=``, ``names=``). Each image's label file is found the way
darknet finds it — the folder ``images`` or ``JPEGImages`` replaced by ``labels``, extension by
``.txt`` — or else next to the image. Image sizes come from the image header (no decode), EXIF
orientation applied as when the image is loaded. An image without a label file is kept as a
background image (no boxes), as darknet does.

Class names: ``names=`` of the ``.data`` file, else ``classes.txt`` or a single ``*.names`` file
at the dataset root, else ``class0 .. classN``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...boxes import cxcywh_to_xyxy
from ...errors import UserError, shown_path
from ...names import default_names, read_names
from .darknet import (data_file_path, data_split_key, read_data_file, read_list_file,
                      scan_images)
from .records import Dataset, absolute_path, make_record, normalise_corners

# Folder names darknet swaps for "labels" to find an image's label file.
_IMAGE_DIR_NAMES = ("images", "JPEGImages")


def label_path_candidates(image_path) -> list[Path]:
    """Where darknet would look for an image's label file, then the file next to the image."""
    image_path = Path(image_path)
    candidates = []
    parts = list(image_path.parts)
    # The deepest images/JPEGImages folder is the one that pairs with a labels folder; darknet's
    # plain string replace would also hit a name like "my_images_project" higher up.
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in _IMAGE_DIR_NAMES:
            swapped = parts[:i] + ["labels"] + parts[i + 1:]
            candidates.append(Path(*swapped).with_suffix(".txt"))
            break
    candidates.append(image_path.with_suffix(".txt"))
    return candidates


def _yolo_sources(path: Path, split):
    """-> (image paths, dataset root, names file or None)."""
    if path.is_file() and path.suffix.lower() == ".data":
        values = read_data_file(path)
        key = data_split_key(split)
        if key not in values:
            raise UserError(f"no '{key} =' entry", path=path)
        list_path = data_file_path(path, values, key, f"the {key} list")
        images = scan_images(list_path) if list_path.is_dir() else \
            read_list_file(list_path, [list_path.parent, Path.cwd()])
        names_file = data_file_path(path, values, "names", "names file") \
            if "names" in values else None
        return images, list_path.parent if list_path.is_file() else list_path, names_file
    if path.is_file():
        return read_list_file(path, [path.parent, Path.cwd()]), path.parent, None
    folder = path
    if split is not None:
        for candidate in (path / "images" / split, path / split):
            if candidate.is_dir():
                folder = candidate
                break
        else:
            raise UserError(f"no images/{split} or {split} folder for split {split!r}", path=path)
    return scan_images(folder), path, None


def _root_names_file(root: Path):
    if (root / "classes.txt").is_file():
        return root / "classes.txt"
    found = sorted(root.glob("*.names"))
    return found[0] if len(found) == 1 else None


def _parse_label_file(label_path: Path, n_names, report):
    """-> (boxes (n, 4) float32 normalised, classes (n,) int64), bad lines reported."""
    try:
        text = label_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        report.note(f"cannot read label file: {e}", label_path)
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    rows, classes, line_numbers = [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        problem = None
        if len(tokens) not in (5, 6):
            problem = (f"expected 'class cx cy w h' (5 numbers, or 6 with a score), "
                       f"got {len(tokens)} fields")
        else:
            try:
                numbers = [float(t) for t in tokens]     # a 6th, the score, is read, not kept
                cls_value, values = numbers[0], numbers[1:5]
            except ValueError:
                problem = f"not a number in {line.strip()!r}"
            else:
                if not all(math.isfinite(v) for v in numbers):
                    problem = f"not a finite number in {line.strip()!r}"
                elif cls_value != int(cls_value) or cls_value < 0:
                    problem = f"class id {tokens[0]!r} is not a non-negative integer"
                elif n_names is not None and cls_value >= n_names:
                    problem = f"class id {int(cls_value)} out of range for {n_names} class names"
        if problem:
            report.malformed(problem, label_path, n)
            continue
        rows.append(values)
        classes.append(int(cls_value))
        line_numbers.append(n)
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    corners = cxcywh_to_xyxy(np.array(rows, np.float64))
    # Degenerate boxes (w or h <= 0) have x2 <= x1 and are dropped with the clipped-away ones.
    boxes, keep = normalise_corners(corners, 1.0, 1.0, report,
                                    [f"{label_path}:{n}" for n in line_numbers])
    return boxes[keep], np.array(classes, np.int64)[keep]


def load_yolo(path: Path, split, names, report):
    images, root, names_file = _yolo_sources(path, split)
    if names is None:
        names_file = names_file or _root_names_file(root)
        names = read_names(names_file) if names_file is not None else None

    records = []
    labelled = 0
    for image_path in images:
        label_path = next((c for c in label_path_candidates(image_path) if c.is_file()), None)
        if label_path is None:
            boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        else:
            labelled += 1
            boxes, classes = _parse_label_file(label_path, len(names) if names else None, report)
        size = report.image_size(image_path)
        if size is None:
            continue
        width, height = size
        records.append(make_record(absolute_path(image_path), width, height, boxes, classes,
                                   np.zeros(len(classes), bool)))
    if names is None:
        n_classes = max((int(r.classes.max()) + 1 for r in records if r.num_boxes), default=0)
        names = default_names(n_classes)
    ds = Dataset(records=records, names=list(names), format="yolo", root=str(absolute_path(root)))
    if labelled == 0 and images:
        report.warnings.append(f"{shown_path(path)}: none of the {len(images)} images has a label file")
    return ds
