"""Classification datasets: one class label per image.

    ds = load_classification_dataset("voc2007-crops")          # ImageFolder layout
    ds = load_classification_dataset("imagenet1k.data", split="valid")
    train, held_out = ds.split(0.1, seed=0)                    # 10 % held out, by photo
    for line in classification_report(ds, "train"): print(line)

Layouts:

* A folder of class folders (torchvision's ImageFolder): the classes are the sub-folder names,
  sorted (hidden folders ignored); each class folder's images are found recursively. Images
  lying in the root itself belong to no class and are reported as skipped. ``names`` (a list
  or a names file) fixes the classes and their order instead; a class folder that is not one
  of them is an error, a name without a folder a class without images.
* darknet's form: a list file (one image path per line, relative paths resolved like the
  detection lists: against the list's folder, then the working folder) with class names from
  ``names``, else ``labels.txt`` next to the list, else the one ``*.names`` file there.
  Or a darknet classifier ``.data`` file: ``train =`` / ``valid =`` (``split``), a list file or
  a class-folder tree; ``labels =`` the names matched in the paths (else ``names =``);
  ``classes =``, when given, must agree. When the file has both, ``names =`` (darknet's
  display names, e.g. ImageNet's "tench" for n01440764) become the dataset's names.
  An image's label is found the way darknet's fill_truth finds it, a label name occurring in
  its path (as written in the list), but ranked instead of all-or-nothing: a name equal to a
  whole folder name or to the file name beats one bounded by non-alphanumeric characters (a
  file-name token like the "truck" of "1000_truck.png"), which beats a bare substring; among
  whole folder names the folder nearest the file wins (so train/cat/1.jpg is a cat even
  though "train" is a VOC class); a match lying inside a longer one ("lion" in "sea_lion")
  does not count. No match, or several equally good ones, skips the image with the reason.

Every image's header is read at load time (format and size, plus an end-of-file check for
JPEG and PNG: ``images.check_image_file``); an unreadable one is skipped and reported, so
training never meets it halfway through. Skipped files are listed in ``dataset.skipped``
as (path, reason) and told by ``classification_report``.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...names import names_argument, read_names
from ..images import check_image_file, is_image_name
from ..report import SHOWN_WARNINGS, _plural
from .darknet import (data_file_path, data_split_key, read_data_file, read_list_entries,
                      resolve_entry, scan_images)
from .records import absolute_path

# "<photo id>_<n>": the n-th crop of one photo (e.g. VOC object crops 000012_1, 000012_2)
_CROP_SUFFIX = re.compile(r"^(?P<photo>.*\d.*)_\d+$")


@dataclass
class ClassificationRecord:
    path: str      # absolute image path
    label: int     # class id (index into the dataset's names)


@dataclass
class ClassificationDataset:
    records: list[ClassificationRecord]
    names: list[str]                  # class names, index = class id
    source: str                       # the folder or file it was read from
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)

    def __len__(self) -> int:
        return len(self.records)

    def class_counts(self) -> np.ndarray:
        """(len(names),) int64 number of images of each class."""
        labels = np.array([r.label for r in self.records], np.int64)
        return np.bincount(labels, minlength=len(self.names)).astype(np.int64)

    def subset(self, indices) -> "ClassificationDataset":
        """The records at ``indices`` (same names, source and skipped list)."""
        return replace(self, records=[self.records[int(i)] for i in indices])

    def photo_groups(self) -> list[list[int]]:
        """Record indices grouped by photo (see ``photo_key``), groups in first-seen order."""
        groups: dict[str, list[int]] = {}
        for i, rec in enumerate(self.records):
            groups.setdefault(photo_key(rec.path, self.names[rec.label]), []).append(i)
        return list(groups.values())

    def split(self, fraction: float, seed: int = 0):
        """(train, held_out): about ``fraction`` of the images held out, whole photos at a time.

        Crops of one photo (``photo_key``) always land on the same side, so a held-out score
        never rates a photo the network trained on. Photos are visited in a seeded random
        order and a photo is held out while its main class is short of ``fraction`` of that
        class's images (so classes are held out in proportion, to within a photo); then any
        class with two or more photos that ended up wholly held out gets its smallest held-out
        photo back, so no class is missing from training. Deterministic for a seed."""
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"fraction must be in [0, 1), got {fraction}")
        groups = self.photo_groups()
        group_labels = [[self.records[i].label for i in members] for members in groups]
        quota = fraction * self.class_counts()
        held_counts = [0] * len(self.names)
        held = [False] * len(groups)
        for g in np.random.default_rng(seed).permutation(len(groups)).tolist():
            main, n_main = Counter(group_labels[g]).most_common(1)[0]
            # hold out while that brings the class nearer its quota than leaving it
            if held_counts[main] + n_main / 2 < quota[main]:
                held[g] = True
                for c in group_labels[g]:
                    held_counts[c] += 1
        photos_of_class: dict[int, list[int]] = {}
        for g, labels in enumerate(group_labels):
            for c in set(labels):
                photos_of_class.setdefault(c, []).append(g)
        for c, photos in sorted(photos_of_class.items()):
            if len(photos) >= 2 and all(held[g] for g in photos):
                held[min(photos, key=lambda g: (len(groups[g]), g))] = False
        train = sorted(i for g, members in enumerate(groups) if not held[g] for i in members)
        held_out = sorted(i for g, members in enumerate(groups) if held[g] for i in members)
        return self.subset(train), self.subset(held_out)


def photo_key(path, class_name=None) -> str:
    """Which photo an image file comes from: crops named ``<photo id>_<n>`` (VOC crops
    000012_1.jpg, 000012_2.jpg, possibly in different class folders) share the photo id.

    Only a prefix holding a digit counts as a photo id, so generic names (Caltech's
    image_0001.jpg) stay one photo per file; so does a prefix equal to the class or folder
    name (ImageNet's n01440764/n01440764_10026.JPEG, where the number is the image's)."""
    path = Path(path)
    m = _CROP_SUFFIX.match(path.stem)
    if m is None or m["photo"] in (class_name, path.parent.name):
        return str(path)
    return m["photo"]


def load_classification_dataset(path, names=None, split=None) -> ClassificationDataset:
    """Read a classification dataset (see the module docstring for the layouts).

    path: a folder of class folders, an image list file or a darknet classifier ``.data``.
    names: a list of class names or a names file; fixes the classes (their order is the
        class ids).
    split: for a ``.data`` file its list (``train`` by default, ``valid``); for a folder its
        sub-folder of that name (e.g. ImageNet-style train/ and val/).
    Raises UserError naming the path when it is missing, malformed or holds no usable image.
    """
    path = Path(path)
    if not path.exists():
        raise UserError("no such file or directory", path=path)
    explicit = names_argument(names)
    if path.is_dir():
        if split is not None:
            if not (path / split).is_dir():
                raise UserError(f"no {split!r} folder for split {split!r}", path=path)
            path = path / split
        _refuse_detection_layout(path)
        ds = _load_image_folder(path, explicit)
    elif path.suffix.lower() == ".data":
        ds = _load_data_file(path, explicit, split)
    else:
        if split is not None:
            raise UserError("a split applies to a .data file or a folder, not to an image list",
                            path=path)
        ds = _load_list(path, explicit or _list_names(path), display_names=None)
    if not ds.records:
        reason = f" ({_plural(len(ds.skipped), 'file')} skipped)" if ds.skipped else ""
        raise UserError(f"no usable images found{reason}", path=path)
    return ds


# -- layouts -----------------------------------------------------------------------------------

# the marks of a detection dataset's folder: darknet's labels/ (text files beside images/) or
# VOC's Annotations/; read as class folders they would train a classifier on "images" and "labels"
_DETECTION_FOLDERS = {"labels": "darknet/YOLO label files", "Annotations": "VOC annotations"}


def _refuse_detection_layout(root: Path):
    for folder, what in _DETECTION_FOLDERS.items():
        marks = root / folder
        if marks.is_dir() and any(f.suffix in (".txt", ".xml") for f in marks.rglob("*")):
            raise UserError(f"this is a detection dataset ({what} in {folder}/), not class "
                            "folders: a classifier trains on one folder of images per class",
                            path=root)


def _load_image_folder(root: Path, names) -> ClassificationDataset:
    folders = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if names is None:
        if not folders:
            raise UserError("no class folders here (expected one sub-folder of images per "
                            "class)", path=root)
        names = folders
    else:
        index = set(names)
        for folder in folders:
            if folder not in index:
                raise UserError(f"class folder {folder!r} is not one of the {len(names)} class "
                                "names", path=root / folder)
    skipped = [(str(absolute_path(root / f)), "not inside a class folder")
               for f in sorted(os.listdir(root)) if is_image_name(f) and (root / f).is_file()]
    candidates = []
    for label, name in enumerate(names):
        if (root / name).is_dir():
            candidates += [(p, label) for p in scan_images(root / name)]
    return _checked(candidates, names, root, skipped)


def _load_data_file(path: Path, names, split) -> ClassificationDataset:
    values = read_data_file(path)
    key = data_split_key(split)
    if key not in values:
        raise UserError(f"no '{key} =' entry", path=path)
    source = data_file_path(path, values, key, f"the {key} list")
    display = None
    if names is None:
        label_key = "labels" if "labels" in values else "names" if "names" in values else None
        if label_key is None:
            raise UserError("no 'labels =' (or 'names =') entry naming the classes", path=path)
        names = read_names(data_file_path(path, values, label_key, f"{label_key} file"))
        if label_key == "labels" and "names" in values:
            display = read_names(data_file_path(path, values, "names", "names file"))
            if len(display) != len(names):
                raise UserError(f"the names file has {len(display)} names but the labels file "
                                f"{len(names)}", path=path)
    if "classes" in values:
        try:
            declared = int(values["classes"])
        except ValueError:
            raise UserError(f"classes = {values['classes']!r} is not a whole number",
                            path=path) from None
        if declared != len(names):
            raise UserError(f"classes = {declared} but there are {len(names)} class names",
                            path=path)
    if source.is_dir():
        ds = _load_image_folder(source, names)
        if display is not None:
            ds.names = display
        return ds
    return _load_list(source, names, display)


def _list_names(list_path: Path):
    beside = list_path.parent
    if (beside / "labels.txt").is_file():
        return read_names(beside / "labels.txt")
    found = sorted(beside.glob("*.names"))
    if len(found) == 1:
        return read_names(found[0])
    raise UserError("no class names: pass them (a names file, one name per line), or put "
                    "labels.txt next to the list", path=list_path)


def _load_list(list_path: Path, names, display_names) -> ClassificationDataset:
    bases = [list_path.parent, Path.cwd()]
    candidates, skipped = [], []
    for entry in read_list_entries(list_path):
        image_path = resolve_entry(entry, bases)
        labels = match_labels(entry, names)
        if len(labels) == 1:
            candidates.append((image_path, labels[0]))
        elif labels:
            skipped.append((str(absolute_path(image_path)), "matches several labels equally well: "
                            + ", ".join(names[k] for k in labels)))
        else:
            skipped.append((str(absolute_path(image_path)), "no label name occurs in its path"))
    ds = _checked(candidates, names, list_path, skipped)
    if display_names is not None:
        ds.names = list(display_names)
    return ds


def _checked(candidates, names, source: Path, skipped) -> ClassificationDataset:
    """Records for the (path, label) candidates whose image header reads; others skipped."""
    records = []
    for image_path, label in candidates:
        image_path = absolute_path(image_path)
        try:
            check_image_file(image_path)
        except UserError as e:
            skipped.append((str(image_path), e.detail))
            continue
        records.append(ClassificationRecord(str(image_path), int(label)))
    return ClassificationDataset(records, list(names), str(absolute_path(source)), skipped)


# -- labels from paths ---------------------------------------------------------------------

def _split_path(entry: str) -> list[str]:
    """Folder names and the file name without its extension, as written (either slash)."""
    parts = [p for p in re.split(r"[\\/]+", entry) if p]
    if parts:
        parts[-1] = os.path.splitext(parts[-1])[0]
    return parts


def match_labels(entry: str, names) -> list[int]:
    """Class ids of the best-matching label names in an image path (see module docstring):
    one id, several (a tie) or none."""
    parts = _split_path(entry)
    # tiers: 0 whole component (value: its depth, nearer the file is better), 1 bounded, 2 any
    found: list[tuple[int, int, list[tuple[int, int, int]]]] = []   # (tier, -depth, spans)
    for k, name in enumerate(names):
        if not name:
            continue
        spans = []
        best = (3, 0)
        for depth, part in enumerate(parts):
            start = part.find(name)
            while start != -1:
                end = start + len(name)
                spans.append((depth, start, end))
                bounded = ((start == 0 or not part[start - 1].isalnum())
                           and (end == len(part) or not part[end].isalnum()))
                tier = 0 if (start, end) == (0, len(part)) else 1 if bounded else 2
                best = min(best, (tier, -depth if tier == 0 else 0))
                start = part.find(name, start + 1)
        if spans:
            found.append((k, best, spans))
    # a match lying inside a longer name's match ("lion" in "sea_lion") is not a match
    kept = [(k, best) for k, best, spans in found
            if not all(any(o != k and s[0] == t[0] and t[1] <= s[1] and s[2] <= t[2]
                           and t[2] - t[1] > s[2] - s[1]
                           for o, _, other in found for t in other) for s in spans)]
    if not kept:
        return []
    top = min(best for _, best in kept)
    return [k for k, best in kept if best == top]


# -- report --------------------------------------------------------------------------------

def classification_report(ds: ClassificationDataset, label=None,
                          shown=SHOWN_WARNINGS) -> list[str]:
    """Lines telling what was read and what was skipped (as ``report.dataset_report`` does
    for detection): the first ``shown`` skipped files with their reasons, classes without
    images, then one summary line with the counts."""
    lines = [f"warning: {path}: {reason} (skipped)" for path, reason in ds.skipped[:shown]]
    if len(ds.skipped) > shown:
        lines.append(f"warning: ... and {len(ds.skipped) - shown} more")
    counts = ds.class_counts()
    empty = [ds.names[k] for k in np.flatnonzero(counts == 0)]
    if empty:
        preview = ", ".join(empty[:shown]) + (f", ... ({len(empty) - shown} more)"
                                              if len(empty) > shown else "")
        lines.append(f"warning: {_plural(len(empty), 'class', 'classes')} without images: "
                     f"{preview}")
    what = f"{label} data" if label else "data"
    summary = (f"{what} {ds.source}: {_plural(len(ds), 'image')} in "
               f"{_plural(len(ds.names), 'class', 'classes')}")
    if len(ds):
        summary += f" ({int(counts.min())} to {int(counts.max())} per class)"
    if ds.skipped:
        summary += f"; skipped {_plural(len(ds.skipped), 'file')}"
    lines.append(summary)
    return lines
