"""Every layout yolo9000 writes detections in, in one place, so that `detect`, `evaluate` and
the Python API (`Detection.to_dict`) write the same thing.

yolo9000 JSON (`--json-format yolo9000`, detect's default): a list with one object per image,
    {"path", "width", "height",
     "detections": [{"class", "name", "score", "box": [x1, y1, x2, y2]}, ...]}
    box: pixel corners in the original image (continuous, 0-based, 3 decimals); score 6 decimals.
    A word-tree (YOLO9000) model's detection also has "wnid" and "path": the nodes from the
    root down to the detected one, each {"node", "wnid", "name", "probability" (P(node |
    parent)), "absolute" (P(node))}.

yolo9000 JSON Lines (`detect --save-json` on videos and cameras): one line per frame, written
    as the frame is done, each line an image's object with the frame's place in the video,
    {"path", "frame", "time", "width", "height", "detections": [...]}
    frame: its index among all the video's frames (from 0; `--vid-stride` leaves gaps); time:
    seconds from the first frame (6 decimals); detections as above.

COCO results JSON (`--json-format coco`, evaluate's default): what pycocotools' COCO.loadRes
    reads, one entry per detection,
    {"image_id", "category_id", "bbox": [x, y, w, h], "score"}
    bbox in pixels, (x, y) its top-left corner. Ids: on a COCO dataset (`evaluate`) the
    annotation file's own image and category ids. Otherwise image_id is the image's position
    in the input order, from 0 (`detect`: after folders and patterns are expanded, the order
    it prints; `evaluate`: the dataset's order), and category_id is the class index, from 0
    (line k of the names file is class k).

YOLO label files (`detect --save-txt`): per image, a line `class cx cy w h` per box, normalised
    to the image size (darknet's training label format, which `load_dataset` reads back); with
    `--save-conf` the score is appended as a 6th column (the reader accepts and ignores it).

Classifications (`classify --save-json`): a list with one object per image,
    {"path", "width", "height", "top": [{"class", "name", "probability"}, ...]}
    the `--top` most probable classes, best first; probability 6 decimals.

The line `detect` prints per image (`summarise`): the number of detections and of the most
    confident classes, e.g. "3 detections (2 circle, 1 square)".

Detections may be given as a list of `inference.detector.Detection` or as a
`metrics.detection.Detections` (arrays), the two forms the pipeline produces.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np

from ..boxes import pixels_to_normalised, xyxy_to_cxcywh

BOX_DECIMALS = 3        # a thousandth of a pixel: finer than any detector's accuracy
SCORE_DECIMALS = 6
TIME_DECIMALS = 6       # a microsecond: finer than any frame rate


def detection_columns(detections):
    """(boxes (n, 4) xyxy pixels, scores (n,), classes (n,) int) of either detection form."""
    if hasattr(detections, "boxes"):
        return (np.asarray(detections.boxes, np.float64).reshape(-1, 4),
                np.asarray(detections.scores, np.float64).reshape(-1),
                np.asarray(detections.classes, np.int64).reshape(-1))
    detections = list(detections)
    return (np.array([d.box for d in detections], np.float64).reshape(-1, 4),
            np.array([d.score for d in detections], np.float64),
            np.array([d.cls for d in detections], np.int64))


def _round(values, decimals):
    return [round(float(v), decimals) for v in values]


# -- yolo9000 JSON -----------------------------------------------------------------------------
def detection_dict(box, cls, name, score, path=None) -> dict:
    """One detection in the yolo9000 layout; a word-tree model's also names its node's WordNet
    id and its path from the root, each node with P(node | parent) and P(node)."""
    entry = {"class": int(cls), "name": str(name), "score": round(float(score), SCORE_DECIMALS),
             "box": _round(box, BOX_DECIMALS)}
    if path:
        entry["wnid"] = str(path[-1][1])
        entry["path"] = [{"node": int(n), "wnid": str(w), "name": str(nm),
                          "probability": round(float(c), SCORE_DECIMALS),
                          "absolute": round(float(a), SCORE_DECIMALS)} for n, w, nm, c, a in path]
    return entry


def image_entry(path, width, height, detections, names) -> dict:
    """One image's detections in the yolo9000 layout; names[k] is the name of class k."""
    if isinstance(detections, list) and detections and detections[0].path is not None:
        listed = [d.to_dict() for d in detections]      # word-tree detections keep their paths
    else:
        boxes, scores, classes = detection_columns(detections)
        listed = [detection_dict(b, c, names[c], s) for b, s, c in zip(boxes, scores, classes)]
    return {"path": str(path), "width": int(width), "height": int(height), "detections": listed}


def frame_entry(path, frame, time, width, height, detections, names) -> dict:
    """One video frame's detections: image_entry's object with the frame's index and time."""
    entry = image_entry(path, width, height, detections, names)
    return {"path": entry.pop("path"), "frame": int(frame),
            "time": round(float(time), TIME_DECIMALS), **entry}


def json_line(entry) -> str:
    """One JSON Lines record: the entry on one line, newline-terminated."""
    return json.dumps(entry) + "\n"


# -- COCO results JSON -------------------------------------------------------------------------
def coco_results(image_id, detections, category_ids=None) -> list[dict]:
    """One image's detections as COCO result entries.

    category_ids[k] is the category id of class k (None: class k has no category, and its
    detections are left out, as no ground truth could match them); without category_ids the
    category id is the class index.
    """
    boxes, scores, classes = detection_columns(detections)
    sizes = xyxy_to_cxcywh(boxes)[:, 2:]
    entries = []
    for box, size, score, cls in zip(boxes, sizes, scores, classes):
        category = int(cls) if category_ids is None else category_ids[cls]
        if category is None:
            continue
        entries.append({"image_id": image_id, "category_id": category,
                        "bbox": _round([box[0], box[1], size[0], size[1]], BOX_DECIMALS),
                        "score": round(float(score), SCORE_DECIMALS)})
    return entries


# -- a dataset's detections (evaluate --save-json) ---------------------------------------------
def detections_json(records, dets, names, json_format, category_ids=None):
    """(--save-json text of `evaluate`, number of detections left out of it): dets[k] are the
    detections of records[k] (.path, .width, .height, .image_id) in the layout json_format;
    a record with no dets entry (not reached) is left out.

    COCO layout: a record's own image id (COCO datasets), else its position in the dataset;
    detections of a class with no category id in a COCO dataset are left out.
    """
    done = sorted(dets)     # all the records, or those finished before a run was cut short
    if json_format == "yolo9000":
        entries = [image_entry(records[k].path, records[k].width, records[k].height, dets[k],
                               names) for k in done]
        return json_list_text(entries), 0
    entries = []
    for k in done:
        r = records[k]
        entries += coco_results(k if r.image_id is None else r.image_id, dets[k], category_ids)
    total = sum(len(dets[k].scores) for k in done)
    return json_list_text(entries), total - len(entries)


def incomplete_record(done, total) -> dict:
    """The last record of a --save-json list whose run was cut short (a signal, a full disk):
    the entries before it are those of the `done` images finished, of `total`. A reader tells
    it by its "incomplete" key, which no image entry or COCO result has."""
    return {"incomplete": True, "images_done": int(done), "images_total": int(total)}


def mark_incomplete(text, done, total) -> str:
    """json_list_text's `text` with incomplete_record appended as its last record."""
    record = json.dumps(incomplete_record(done, total))
    return "[\n" + record + "\n]\n" if text == "[]\n" else text[:-3] + ",\n" + record + "\n]\n"


def json_list_text(entries) -> str:
    """A JSON list with one entry per line: valid JSON that still reads (and diffs) well."""
    if not entries:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n"


def classification_entry(path, width, height, top) -> dict:
    """One image's classification: `top` is [(class id, name, probability)], best first."""
    return {"path": str(path), "width": int(width), "height": int(height),
            "top": [{"class": int(c), "name": str(name),
                     "probability": round(float(p), SCORE_DECIMALS)} for c, name, p in top]}


# -- YOLO label files --------------------------------------------------------------------------
def yolo_label_text(detections, width, height, with_score=False) -> str:
    """`class cx cy w h` lines normalised to a width x height image (+ ` score` with_score)."""
    boxes, scores, classes = detection_columns(detections)
    normalised = pixels_to_normalised(xyxy_to_cxcywh(np.asarray(boxes, np.float64)), width, height)
    lines = []
    for cls, (cx, cy, w, h), score in zip(classes, normalised, scores):
        line = f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"
        lines.append(line + (f" {score:.6f}" if with_score else ""))
    return "".join(line + "\n" for line in lines)


# -- the line detect prints per image ----------------------------------------------------------
def summarise(detections, top=3):
    """How many detections, and of which classes (the `top` classes of highest score first)."""
    if not detections:
        return "no detections"
    counts = Counter(d.name for d in detections)
    best = {}
    for d in detections:
        best[d.name] = max(best.get(d.name, 0.0), d.score)
    names = sorted(counts, key=lambda n: -best[n])
    parts = [f"{counts[n]} {n}" for n in names[:top]]
    if len(names) > top:
        parts.append(f"+{len(names) - top} more classes")
    total = len(detections)
    return f"{total} detection{'s' if total != 1 else ''} ({', '.join(parts)})"
