"""What every detection reader produces: one ImageRecord per image, a Dataset of them, and
the Report of what was skipped, dropped or clipped on the way in.

Pixel convention: a box with continuous 0-based pixel corners (x1, y1, x2, y2) has
cx = (x1 + x2) / 2 / W and w = (x2 - x1) / W. Boxes partly outside the image are clipped to it
(``Dataset.clipped_boxes``); boxes of zero or negative size and boxes wholly outside the image
are dropped (``Dataset.dropped_boxes``); each gets a ``file:line`` warning. Malformed label lines
or annotation entries are skipped with a ``file:line: message`` warning (``Dataset.warnings``,
counted in ``Dataset.skipped_lines``), or raise :class:`UserError` when ``strict=True``. Every
format checks at load time that each image exists (YOLO, and VOC without ``<size>``, read its
header): a missing or unreadable image is skipped with a warning (``Dataset.skipped_images``),
or raises with ``strict=True``, so training never meets it halfway through.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...boxes import (clip_xyxy, cxcywh_to_xyxy, normalised_to_pixels, pixels_to_normalised,
                      xyxy_to_cxcywh)
from ...errors import UserError, shown_path
from ..images import image_size

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


class Report:
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
        where = f"{shown_path(path)}:{line}" if line is not None else shown_path(path)
        self.warnings.append(f"{where}: {message}")

    def note(self, message, path):
        """A problem that is not a malformed entry (e.g. an unreadable image) — also strict."""
        if self.strict:
            raise UserError(message, path=path)
        self.warnings.append(f"{shown_path(path)}: {message}")

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


def normalise_corners(corners, width, height, report, wheres):
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


def absolute_path(path) -> Path:
    """Absolute and free of '..' (symlinks kept, unlike resolve())."""
    return Path(os.path.abspath(path))


def make_record(path, width, height, boxes, classes, difficult, image_id=None):
    return ImageRecord(
        path=str(path), width=int(width), height=int(height),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        classes=np.asarray(classes, np.int64).reshape(-1),
        difficult=np.asarray(difficult, bool).reshape(-1),
        image_id=image_id,
    )


def without_difficult(rec):
    keep = ~rec.difficult
    if keep.all():
        return rec
    return replace(rec, boxes=rec.boxes[keep], classes=rec.classes[keep],
                   difficult=rec.difficult[keep])
