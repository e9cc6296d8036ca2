"""Dataset readers: YOLO/darknet, PASCAL VOC and COCO, all turned into one record per image.

    ds = load_dataset("VOCdevkit/VOC2007", split="trainval")
    for rec in ds.records:
        rec.path, rec.width, rec.height      # absolute image path, size in pixels
        rec.boxes                            # (n, 4) float32 [cx, cy, w, h] normalised to [0, 1]
        rec.classes, rec.difficult           # (n,) int64 class ids, (n,) bool
    ds.names                                 # class names, index = class id

Layouts understood (the format is detected from the path; ``format=`` forces one):

* ``yolo`` — darknet labels, one ``class cx cy w h`` line per box (normalised); a 6th number (the
  score ``yolo9000 detect --save-txt --save-conf`` appends) is accepted and ignored. The path may be
  a folder of images, a list file with one image path per line, or a darknet ``.data`` file
  (``train=``, ``valid=``, ``names=``). Each image's label file is found the way darknet finds
  it — the folder ``images`` or ``JPEGImages`` replaced by ``labels``, extension by ``.txt`` —
  or else next to the image. Image sizes come from the image header (no decode), EXIF
  orientation applied as when the image is loaded.
  An image without a label file is kept as a background image (no boxes), as darknet does.
* ``voc`` — ``Annotations/*.xml`` (``<size>``, ``<object>`` with ``<difficult>``), images in
  ``JPEGImages/``, an optional ``ImageSets/Main/<split>.txt`` chooses the images.
* ``coco`` — an ``instances_*.json`` file (bbox ``[x, y, w, h]`` in pixels). Category ids are
  remapped to class ids 0..K-1 in sorted id order; ``iscrowd`` boxes are flagged ``difficult`` so
  that evaluation can ignore them the way it ignores VOC's difficult objects. The file's own ids
  are kept (``ImageRecord.image_id``, ``Dataset.category_ids``) so that results can be written
  back in COCO's numbering.

Pixel convention: a box with continuous 0-based pixel corners (x1, y1, x2, y2) has
cx = (x1 + x2) / 2 / W and w = (x2 - x1) / W. VOC coordinates are 1-based inclusive, so
xmin..xmax maps to x1 = xmin - 1, x2 = xmax. Boxes partly outside the image are clipped to it
(``Dataset.clipped_boxes``); boxes of zero or negative size and boxes wholly outside the image
are dropped (``Dataset.dropped_boxes``); each gets a ``file:line`` warning. Malformed label lines
or annotation entries are skipped with a ``file:line: message`` warning (``Dataset.warnings``,
counted in ``Dataset.skipped_lines``), or raise :class:`UserError` when ``strict=True``. Every
format checks at load time that each image exists (YOLO, and VOC without ``<size>``, read its
header): a missing or unreadable image is skipped with a warning (``Dataset.skipped_images``),
or raises with ``strict=True``, so training never meets it halfway through.

Class names: an explicit ``names=`` (list or names file) wins; for VOC and COCO objects are then
mapped to it by name. Otherwise VOC uses the sorted set of names found — or the standard VOC
order when every name is one of VOC's 20 classes —, COCO its categories, YOLO ``classes.txt`` or
a single ``*.names`` file at the dataset root (or ``names=`` of the ``.data`` file), and failing
all of these ``class0 .. classN``.
"""
from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..boxes import (clip_xyxy, cxcywh_to_xyxy, normalised_to_pixels, pixels_to_normalised,
                     xyxy_to_cxcywh)
from ..errors import UserError
from .images import image_size, is_image_name

FORMATS = ("yolo", "voc", "coco")
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
# Folder names darknet swaps for "labels" to find an image's label file.
_IMAGE_DIR_NAMES = ("images", "JPEGImages")
# How far (fraction of the image) a box edge may stick out before its clipping is reported.
_CLIP_TOLERANCE = 1e-3


@dataclass
class ImageRecord:
    """One image and its ground truth."""

    path: str                 # absolute image path
    width: int                # original image size in pixels
    height: int
    boxes: np.ndarray         # (n, 4) float32, normalised [cx, cy, w, h] in [0, 1]
    classes: np.ndarray       # (n,) int64 class ids
    difficult: np.ndarray     # (n,) bool (VOC 'difficult', COCO 'iscrowd'; False elsewhere)
    image_id: object = None   # the annotation file's own image id (COCO 'id'); None elsewhere

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    def pixel_corners(self) -> np.ndarray:
        """(n, 4) float64 [x1, y1, x2, y2] in continuous 0-based pixel coordinates."""
        corners = cxcywh_to_xyxy(np.asarray(self.boxes, np.float64))
        return normalised_to_pixels(corners, self.width, self.height)


@dataclass
class Dataset:
    """Every image of a dataset with its boxes, plus what was skipped on the way in."""

    records: list[ImageRecord]
    names: list[str]          # class names (index = class id)
    format: str               # 'yolo' | 'voc' | 'coco'
    root: str
    skipped_lines: int = 0    # malformed label lines / annotation entries skipped
    dropped_boxes: int = 0    # boxes of zero or negative size, or wholly outside, dropped
    clipped_boxes: int = 0    # boxes partly outside the image, clipped to it
    skipped_images: int = 0   # images missing or unreadable at load time
    warnings: list[str] = field(default_factory=list)
    # COCO: the file's category id of each class (None for a class no category has); else None
    category_ids: list | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_boxes(self) -> int:
        return sum(r.num_boxes for r in self.records)

    def class_counts(self) -> np.ndarray:
        """(len(names),) number of boxes of each class."""
        counts = np.zeros(len(self.names), np.int64)
        for r in self.records:
            counts += np.bincount(r.classes, minlength=len(self.names))[: len(self.names)]
        return counts

    def subset(self, indices) -> "Dataset":
        """A dataset of the records at ``indices`` (same names, counters and warnings)."""
        return replace(self, records=[self.records[int(i)] for i in indices])

    def split(self, fraction: float, seed: int = 0) -> tuple["Dataset", "Dataset"]:
        """Shuffle the images with ``seed`` and cut them into (first ``fraction``, rest)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        order = np.random.default_rng(seed).permutation(len(self.records))
        cut = int(round(fraction * len(order)))
        return self.subset(order[:cut]), self.subset(order[cut:])


def load_dataset(path, format=None, names=None, split=None, strict=False,
                 use_difficult=True) -> Dataset:
    """Read a YOLO, VOC or COCO dataset (see the module docstring for the layouts).

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
    explicit_names = _read_names_argument(names)
    report = _Report(strict)

    if format is None:
        format, source = _detect_format(path, split)
    else:
        source = _source_for_format(path, format, split)

    if format == "voc":
        ds = _load_voc(source, split, explicit_names, report)
    elif format == "coco":
        ds = _load_coco(source, explicit_names, report)
    else:
        ds = _load_yolo(source, split, explicit_names, report)

    if not use_difficult:
        ds.records = [_without_difficult(r) for r in ds.records]
    ds.skipped_lines = report.skipped
    ds.dropped_boxes = report.dropped
    ds.clipped_boxes = report.clipped
    ds.skipped_images = report.skipped_images
    ds.warnings = report.warnings
    if ds.num_boxes == 0:
        raise UserError(f"no boxes found (read as {format}: {len(ds.records)} images, "
                        "0 boxes; formats: yolo, voc, coco)", path=path)
    return ds


def read_names(path) -> list[str]:
    """Class names from a names file: one per line (line k names class k, as in darknet);
    trailing blank lines are ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("names file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read names file: {e}", path=path) from None
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise UserError("names file is empty", path=path)
    return names


# -- problems --------------------------------------------------------------------------------

class _Report:
    """Collects skipped entries and dropped boxes; in strict mode the first problem is fatal."""

    def __init__(self, strict):
        self.strict = strict
        self.skipped = 0
        self.dropped = 0
        self.clipped = 0
        self.skipped_images = 0
        self.warnings = []

    def malformed(self, message, path, line=None):
        if self.strict:
            raise UserError(message, path=path, line=line)
        self.skipped += 1
        where = f"{path}:{line}" if line is not None else f"{path}"
        self.warnings.append(f"{where}: {message}")

    def note(self, message, path):
        """A problem that is not a malformed entry (e.g. an unreadable image) — also strict."""
        if self.strict:
            raise UserError(message, path=path)
        self.warnings.append(f"{path}: {message}")

    def box(self, message, where):
        """A box that was dropped or changed; never fatal (the label itself is well formed)."""
        self.warnings.append(f"{where}: {message}")

    def image_size(self, image_path, width=None, height=None):
        """(width, height) of an image that exists, or None after reporting it as skipped.

        A known size (VOC <size>, COCO width/height) spares reading the header; existence is
        checked either way so a missing image never surfaces mid-training."""
        try:
            if width is not None and height is not None and width > 0 and height > 0:
                if not Path(image_path).is_file():
                    raise UserError("image not found", path=image_path)
                return width, height
            return image_size(image_path)
        except UserError as e:
            self.note(e.detail + " (image skipped)", image_path)
            self.skipped_images += 1
            return None


# -- format detection ------------------------------------------------------------------------

def _detect_format(path: Path, split):
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


def _source_for_format(path: Path, format, split):
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


# -- class names -----------------------------------------------------------------------------

def _read_names_argument(names):
    if names is None:
        return None
    if isinstance(names, (str, os.PathLike)):
        return read_names(names)
    names = [str(n) for n in names]
    if not names:
        raise UserError("the list of class names is empty")
    return names


def default_names(n_classes):
    """The names a dataset without a names file gets: class0, class1, ..."""
    return [f"class{i}" for i in range(n_classes)]


def _voc_names(found):
    if found and found <= set(VOC_CLASSES):
        return list(VOC_CLASSES)
    return sorted(found)


# -- boxes -----------------------------------------------------------------------------------

def _normalise_corners(corners, width, height, report, wheres):
    """Pixel corners (n, 4) -> normalised [cx, cy, w, h], clipped; empty boxes dropped.

    wheres: the ``file:line`` (or ``file: entry``) of each box, for its warning."""
    corners = np.asarray(corners, np.float64).reshape(-1, 4)
    normalised = pixels_to_normalised(corners, width, height)
    clipped = clip_xyxy(normalised, (0.0, 0.0, 1.0, 1.0))
    empty = (normalised[:, 2] <= normalised[:, 0]) | (normalised[:, 3] <= normalised[:, 1])
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    # Rounding in label writers leaves edges a hair past the border: not worth a warning.
    changed = np.abs(clipped - normalised).max(axis=1, initial=0.0) > _CLIP_TOLERANCE \
        if len(corners) else np.zeros(0, bool)
    for j, where in enumerate(wheres):
        if empty[j]:
            report.box("box of zero or negative size dropped", where)
        elif not keep[j]:
            report.box("box wholly outside the image dropped", where)
        elif changed[j]:
            report.box("box partly outside the image clipped to it", where)
            report.clipped += 1
    report.dropped += int((~keep).sum())
    return xyxy_to_cxcywh(clipped).astype(np.float32), keep


def _absolute(path) -> Path:
    """Absolute and free of '..' (symlinks kept, unlike resolve())."""
    return Path(os.path.abspath(path))


def _make_record(path, width, height, boxes, classes, difficult, image_id=None):
    return ImageRecord(
        path=str(path), width=int(width), height=int(height),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        classes=np.asarray(classes, np.int64).reshape(-1),
        difficult=np.asarray(difficult, bool).reshape(-1),
        image_id=image_id,
    )


def _without_difficult(rec):
    keep = ~rec.difficult
    if keep.all():
        return rec
    return replace(rec, boxes=rec.boxes[keep], classes=rec.classes[keep],
                   difficult=rec.difficult[keep])


# -- PASCAL VOC ------------------------------------------------------------------------------

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
    image_path = _absolute(root / "JPEGImages" / filename)

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


def _load_voc(root: Path, split, names, report):
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
        boxes, keep = _normalise_corners([corners[j] for j in known], width, height, report,
                                         [f"{xml_path}: object {numbers[j]}" for j in known])
        classes = np.array([index[labels[j]] for j in known], np.int64)
        flags = np.array([difficult[j] for j in known], bool)
        records.append(_make_record(image_path, width, height, boxes[keep], classes[keep],
                                    flags[keep]))
    return Dataset(records=records, names=list(names), format="voc", root=str(_absolute(root)))


# -- COCO ------------------------------------------------------------------------------------

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


def _load_coco(json_path: Path, names, report):
    try:
        with open(json_path, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"malformed JSON: {e.msg} (column {e.colno})", path=json_path,
                        line=e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read JSON: {e}", path=json_path) from None
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
    image_dir = _absolute(_coco_image_dir(json_path, images[0][1] if images else None))
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
        boxes, keep = _normalise_corners(corners, width, height, report, wheres)
        records.append(_make_record(image_path, width, height, boxes[keep],
                                    np.array(classes, np.int64)[keep] if classes else [],
                                    np.array(crowd, bool)[keep] if crowd else [], image_id))
    return Dataset(records=records, names=list(names), format="coco",
                   root=str(_absolute(json_path)), category_ids=category_ids)


# -- YOLO / darknet --------------------------------------------------------------------------

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


def _resolve(entry: str, bases):
    p = Path(entry).expanduser()
    if p.is_absolute():
        return p
    for base in bases:
        if (base / p).exists():
            return base / p
    return bases[0] / p


def _read_data_file(data_path: Path):
    """key=value pairs of a darknet .data file."""
    try:
        text = data_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read .data file: {e}", path=data_path) from None
    values = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise UserError("expected 'key = value'", path=data_path, line=n)
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def data_split_key(split) -> str:
    """The key of a darknet ``.data`` file that names the list of ``split`` (default train;
    'val' and 'validation' mean darknet's ``valid``)."""
    key = split or "train"
    return {"val": "valid", "validation": "valid"}.get(key, key)


def _data_file_path(data_path: Path, values, key, what) -> Path:
    """The path a ``.data`` file's ``key =`` entry names, resolved against the file's own
    folder first (then the working folder and the folder above, darknet's usual root)."""
    resolved = _resolve(values[key], [data_path.parent, Path.cwd(), data_path.parent.parent])
    if not resolved.exists():
        raise UserError(f"{what} {values[key]!r} does not exist", path=data_path)
    return resolved


def evaluation_list_key(data_path) -> str:
    """The list of a darknet ``.data`` file that evaluation reads when no split is given:
    ``valid``, as darknet's validator does, or ``train`` when the file has no ``valid =``."""
    return "valid" if "valid" in _read_data_file(Path(data_path)) else "train"


def _read_list_entries(list_path: Path) -> list[str]:
    """The image paths of a list file as written (one per line, blank lines skipped)."""
    try:
        text = list_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read image list: {e}", path=list_path) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_list_file(list_path: Path, bases):
    return [_resolve(entry, bases) for entry in _read_list_entries(list_path)]


def _scan_images(folder: Path):
    found = []
    for dirpath, dirnames, files in os.walk(folder):
        # Never descend into label folders or hidden ones; keep the walk order stable.
        dirnames[:] = sorted(d for d in dirnames if d != "labels" and not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(files) if is_image_name(f)]
    return found


def _yolo_sources(path: Path, split):
    """-> (image paths, dataset root, names file or None)."""
    if path.is_file() and path.suffix.lower() == ".data":
        values = _read_data_file(path)
        key = data_split_key(split)
        if key not in values:
            raise UserError(f"no '{key} =' entry", path=path)
        list_path = _data_file_path(path, values, key, f"the {key} list")
        images = _scan_images(list_path) if list_path.is_dir() else \
            _read_list_file(list_path, [list_path.parent, Path.cwd()])
        names_file = _data_file_path(path, values, "names", "names file") \
            if "names" in values else None
        return images, list_path.parent if list_path.is_file() else list_path, names_file
    if path.is_file():
        return _read_list_file(path, [path.parent, Path.cwd()]), path.parent, None
    folder = path
    if split is not None:
        for candidate in (path / "images" / split, path / split):
            if candidate.is_dir():
                folder = candidate
                break
        else:
            raise UserError(f"no images/{split} or {split} folder for split {split!r}", path=path)
    return _scan_images(folder), path, None


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
    boxes, keep = _normalise_corners(corners, 1.0, 1.0, report,
                                     [f"{label_path}:{n}" for n in line_numbers])
    return boxes[keep], np.array(classes, np.int64)[keep]


def _load_yolo(path: Path, split, names, report):
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
        records.append(_make_record(_absolute(image_path), width, height, boxes, classes,
                                    np.zeros(len(classes), bool)))
    if names is None:
        n_classes = max((int(r.classes.max()) + 1 for r in records if r.num_boxes), default=0)
        names = default_names(n_classes)
    ds = Dataset(records=records, names=list(names), format="yolo", root=str(_absolute(root)))
    if labelled == 0 and images:
        report.warnings.append(f"{path}: none of the {len(images)} images has a label file")
    return ds
