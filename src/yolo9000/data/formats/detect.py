"""Which detection format a path holds, and the file or folder its reader starts from."""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import UserError
from ..images import is_image_name


def detect_format(path: Path, split):
    """(format, source) of a dataset path: the layout found there and what its reader starts
    from (the VOC root, the COCO json, the YOLO folder, list or .data file)."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco", path
        if suffix == ".xml":
            raise UserError("a single VOC .xml file is not a dataset: pass the folder "
                            "holding Annotations/", path=path)
        return "yolo", path            # a .data file or a list of image paths
    voc_root = _find_voc_root(path)
    if voc_root is not None:
        return "voc", voc_root
    coco_jsons = _find_coco_jsons(path)
    if coco_jsons:
        return "coco", _choose_coco_json(path, coco_jsons, split)
    if _has_images(path):
        return "yolo", path
    raise UserError("no boxes found: no VOC Annotations/*.xml, no COCO instances_*.json and no "
                    "images with YOLO label files (formats tried: voc, coco, yolo)", path=path)


def source_for_format(path: Path, format, split):
    """What the reader of a format given by the user starts from (as detect_format)."""
    if format == "voc":
        root = _find_voc_root(path) if path.is_dir() else None
        if root is None:
            raise UserError("no Annotations/*.xml folder here (VOC layout expected)", path=path)
        return root
    if format == "coco":
        if path.is_file():
            return path
        jsons = _find_coco_jsons(path) or sorted(path.glob("*.json"))
        if not jsons:
            raise UserError("no COCO instances_*.json file here", path=path)
        return _choose_coco_json(path, jsons, split)
    return path


def _find_voc_root(path: Path):
    """The folder holding Annotations/: path itself or its only child that has one."""
    if (path / "Annotations").is_dir():
        return path
    found = [c for c in sorted(path.iterdir()) if c.is_dir() and (c / "Annotations").is_dir()]
    if len(found) > 1:
        raise UserError("several VOC folders here (" + ", ".join(c.name for c in found)
                        + "): pass one of them", path=path)
    return found[0] if found else None


def _find_coco_jsons(path: Path):
    found = sorted(path.glob("instances_*.json"))
    if (path / "annotations").is_dir():
        found += sorted((path / "annotations").glob("instances_*.json"))
    return found


def _choose_coco_json(path: Path, jsons, split):
    if split is not None:
        chosen = [j for j in jsons if j.stem in (split, f"instances_{split}")]
        if not chosen:
            raise UserError(f"no COCO annotation file for split {split!r} (found: "
                            + ", ".join(j.name for j in jsons) + ")", path=path)
        return chosen[0]
    if len(jsons) > 1:
        raise UserError("several COCO annotation files (" + ", ".join(j.name for j in jsons)
                        + "): choose one with --split or pass the file", path=path)
    return jsons[0]


def _has_images(path: Path):
    for _, _, files in os.walk(path):
        if any(is_image_name(f) for f in files):
            return True
    return False
