"""The word-tree demo's data: YOLO9000's COCO + ImageNet situation, in synthetic shapes.

The hierarchy (the bundled `shapes.tree`):

    polygon -> triangle, square, hexagon
    round   -> circle, ellipse, ring
    spiky   -> star, cross

Three datasets, written by `make_hierarchy_data`:
- detection (COCO's role): every shape boxed, but named by its coarse node (polygon / round /
  spiky) except the shapes of BOXED_FINE, which keep their fine name;
- classification (ImageNet's role): one crop per image, folders named by every fine class;
- validation: detection images whose boxes carry the fine class.

A detector trained on the detection set alone can only name the fine classes it saw boxes of;
trained jointly with the classification set (training/tasks.py, layers/region.py) it learns
the others from crops alone — the paper's detection of classes without box labels.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_text
from .synthetic_shapes import DEMO, Difficulty, label_text, render_sample

HIERARCHY = {"polygon": ("triangle", "square", "hexagon"),
             "round": ("circle", "ellipse", "ring"),
             "spiky": ("star", "cross")}
COARSE = tuple(HIERARCHY)
FINE = tuple(name for group in HIERARCHY.values() for name in group)
PARENT = {fine: coarse for coarse, group in HIERARCHY.items() for fine in group}
# one fine class per coarse node keeps its boxes' fine name (COCO's role: a few fine classes)
BOXED_FINE = ("square", "circle", "star")
NEVER_BOXED = tuple(name for name in FINE if name not in BOXED_FINE)
DETECTION_NAMES = COARSE + BOXED_FINE
# a classification image: one shape, on the same backgrounds and at the same scales as the
# detection images (so that the prediction darknet's rule picks for its class, the one most
# sure of an object, is the shape's own once the detector finds shapes at all)
CROP = Difficulty(min_size=0.25, max_size=0.6, max_objects=1, noise=(2.0, 8.0))
_STREAMS = {"detection": 10, "val": 11, "crops": 12}


def detection_label(fine):
    """What the detection set calls a shape: its fine name if boxed fine, else its parent."""
    return fine if fine in BOXED_FINE else PARENT[fine]


def _rng(seed, stream, index):
    return np.random.default_rng([int(seed), _STREAMS[stream], int(index)])


def _write_detection_image(root, split, index, size, seed, names, label_of):
    image, boxes, classes = render_sample(_rng(seed, split, index), size, difficulty=DEMO,
                                          class_names=FINE)
    stem = f"{index:06d}"
    image.save(root / "images" / f"{stem}.jpg", quality=92)
    ids = [names.index(label_of(FINE[c])) for c in classes]
    (root / "labels" / f"{stem}.txt").write_text(label_text(boxes, ids), encoding="utf-8")
    return f"images/{stem}.jpg"


def _detection_set(root, split, count, size, seed, names, label_of):
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    listing = [_write_detection_image(root, split, i, size, seed, names, label_of)
               for i in range(count)]
    atomic_write_text(root / "classes.names", "".join(f"{n}\n" for n in names))
    atomic_write_text(root / "list.txt", "".join(f"{p}\n" for p in listing))
    return root / "list.txt"


def make_hierarchy_data(out_dir, n_detection=1500, n_val=200, crops_per_class=150, size=128,
                        crop_size=None, seed=0, progress=None):
    """Write the three datasets under out_dir; returns their paths ('detection', 'val':
    YOLO list files; 'crops': the class-folder root)."""
    out = Path(out_dir)
    total = n_detection + n_val + crops_per_class * len(FINE)
    done = 0

    def tick(n=1):
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    paths = {}
    paths["detection"] = _detection_set(out / "detection", "detection", n_detection, size, seed,
                                        list(DETECTION_NAMES), detection_label)
    tick(n_detection)
    paths["val"] = _detection_set(out / "val", "val", n_val, size, seed, list(FINE), str)
    tick(n_val)
    crops = out / "crops"
    crop_size = crop_size or size
    for k, fine in enumerate(FINE):
        (crops / fine).mkdir(parents=True, exist_ok=True)
        for i in range(crops_per_class):
            image, _, _ = render_sample(_rng(seed, "crops", k * 1_000_000 + i), crop_size,
                                        difficulty=CROP, class_names=(fine,))
            image.save(crops / fine / f"{i:06d}_0.jpg", quality=92)
            tick()
    paths["crops"] = crops
    return paths


def coarse_view(dataset):
    """A fine-labelled detection dataset with every box named by its coarse node instead."""
    table = np.array([COARSE.index(PARENT[name]) for name in dataset.names], np.int64)
    records = [replace(r, classes=table[r.classes]) for r in dataset.records]
    return replace(dataset, records=records, names=list(COARSE))

