"""The COCO layout: an ``instances_*.json`` file (bbox ``[x, y, w, h]`` in pixels).

Category ids are remapped to class ids 0..K-1 in sorted id order (or, with ``names=``, to the
class of the same name); ``iscrowd`` boxes are flagged ``difficult`` so that evaluation can
ignore them the way it ignores VOC's difficult objects. The file's own ids are kept
(``ImageRecord.image_id``, ``Dataset.category_ids``) so that results can be written back in
COCO's numbering.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ...errors import UserError
from .records import Dataset, absolute_path, make_record, normalise_corners


def _coco_image_dir(json_path: Path, probe):
    """Where the images of a COCO json live: try the usual layouts, else the json's folder.
    probe: the file name of one image (None when there is none)."""
    split = json_path.stem[len("instances_"):] if json_path.stem.startswith("instances_") else ""
    base, parent = json_path.parent, json_path.parent.parent
    candidates = [parent / split, parent / "images" / split, base / split, base / "images" / split,
                  parent / "images", base / "images", parent, base]
    if probe:
        for c in candidates:
            if (c / probe).is_file():
                return c
    return next((c for c in candidates[:4] if split and c.is_dir()), base)


def load_coco(json_path: Path, names, report):
    try:
        with open(json_path, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"malformed JSON: {e.msg} (column {e.colno})", path=json_path,
                        line=e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read JSON: {e}", path=json_path) from None
    except RecursionError:      # Python's parser recurses once per nested list or object
        raise UserError("malformed JSON: nested too deeply to read", path=json_path) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise UserError("not a COCO instances file (needs 'images' and 'annotations' lists)",
                        path=json_path)
    try:
        categories = sorted(data.get("categories") or [], key=lambda c: int(c["id"]))
        category_names = {int(c["id"]): str(c.get("name", f"class{c['id']}")) for c in categories}
    except (KeyError, TypeError, ValueError, OverflowError):
        raise UserError("malformed 'categories' (each needs an integer 'id')",
                        path=json_path) from None
    if names is None:
        names = [category_names[i] for i in sorted(category_names)]
        category_to_class = {cid: k for k, cid in enumerate(sorted(category_names))}
    else:
        index = {n: i for i, n in enumerate(names)}
        category_to_class = {cid: index[n] for cid, n in category_names.items() if n in index}
    category_ids = [None] * len(names)
    for cid in sorted(category_to_class, reverse=True):   # a name used twice: the lower id
        category_ids[category_to_class[cid]] = cid

    images = []
    for i, img in enumerate(data["images"]):
        try:
            image_id = img["id"]
            # ids key a dict and come back in results: a number or a string, nothing else
            if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
                raise TypeError
            width, height = int(img["width"]), int(img["height"])
            file_name = img["file_name"]
            if not isinstance(file_name, str) or not file_name:
                raise TypeError
        except (KeyError, TypeError, ValueError, OverflowError):
            report.malformed(f"images[{i}]: needs an 'id', a 'file_name' string and integer "
                             "'width' and 'height'", json_path)
            continue
        if width <= 0 or height <= 0:
            report.malformed(f"images[{i}]: size {width}x{height} is not positive", json_path)
            continue
        images.append((image_id, file_name, width, height))
    image_dir = absolute_path(_coco_image_dir(json_path, images[0][1] if images else None))
    by_id = {}
    order = []
    for image_id, file_name, width, height in images:
        if image_id in by_id:
            report.malformed(f"image id {image_id!r} is used twice (the first is kept)",
                             json_path)
            continue
        by_id[image_id] = (image_dir / file_name, width, height, [], [], [], [])
        order.append(image_id)

    for i, ann in enumerate(data["annotations"]):
        try:
            entry = by_id.get(ann["image_id"])
            category = int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                raise ValueError
        except (KeyError, TypeError, ValueError, OverflowError):
            report.malformed(f"annotations[{i}]: needs 'image_id', 'category_id' and a bbox "
                             "of 4 numbers", json_path)
            continue
        if entry is None:
            report.malformed(f"annotations[{i}]: unknown image_id {ann['image_id']!r}", json_path)
            continue
        if category not in category_to_class:
            report.malformed(f"annotations[{i}]: category {category} is not in the class names",
                             json_path)
            continue
        entry[3].append((x, y, x + w, y + h))
        entry[4].append(category_to_class[category])
        entry[5].append(bool(ann.get("iscrowd", 0)))
        entry[6].append(f"{json_path}: annotations[{i}]")

    records = []
    for image_id in order:
        image_path, width, height, corners, classes, crowd, wheres = by_id[image_id]
        if report.image_size(image_path, width, height) is None:
            continue
        boxes, keep = normalise_corners(corners, width, height, report, wheres)
        records.append(make_record(image_path, width, height, boxes[keep],
                                   np.array(classes, np.int64)[keep] if classes else [],
                                   np.array(crowd, bool)[keep] if crowd else [], image_id))
    return Dataset(records=records, names=list(names), format="coco",
                   root=str(absolute_path(json_path)), category_ids=category_ids)
