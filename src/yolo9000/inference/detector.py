"""The Python detection API.

    from yolo9000 import Detector
    det = Detector(model="yolov2-voc", weights="yolov2-voc.weights")
    for d in det("dog.jpg"):
        print(d.name, d.score, d.box)          # box = (x1, y1, x2, y2) in original pixels
    results = det.batch(["a.jpg", "b.png"])     # one list of Detection per image
    for r in det.stream(paths, batch_size=8):   # images decoded ahead in background threads
        print(r.source, r.detections)
    for f in det.video("clip.mp4"):             # a video or a camera ("0"): needs [video]
        print(f.index, f.time, f.detections)

Images: a path, a PIL image or an (h, w[, 3|4]) array (uint8, uint16 or float in [0, 1]).
The detector only needs the public Network API (from_cfg / load / load_weights / forward /
resize / region / names), so any network that keeps that contract can be wrapped with
``Detector.from_network``.

This is the one inference pipeline (letterbox -> network -> decode -> NMS -> boxes in original
pixels): `detect`, `evaluate` and the validation of `train --val` all run it. With
``evaluation=True`` a word-tree (YOLO9000) model is scored as darknet's validation does: one
class per entry of the cfg's ``map=`` (every tree node without one), each box scored for each
class with objectness x the node's absolute probability (the product of the conditional
probabilities up the tree). Detection instead reports the one deepest node the tree descent is
sure of, as darknet's `detector test` does.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.cfg import check_input_size
from ..model.checkpoint import check_weights_format
from ..names import read_names
from ..errors import UserError, shown_path
from ..memory import check_memory
from ..kernels.precisions import FP32
from ..model.wordtree import WordTree
from ..model.zoo import DEFAULT_CHECKPOINT, bundled_names_for
from ..boxes import LetterboxInfo
from ..data.images import LoadedImage, letterbox, load_image
from .export import detection_dict
from .postprocess import postprocess
from .prefetch import run_in_batches


NO_WEIGHTS_MESSAGE = (
    "no weights given and no bundled default model is installed. Pass --weights FILE: darknet "
    "YOLOv2 weights from the darknet project (https://pjreddie.com/darknet/yolov2/, e.g. "
    "yolov2-voc.weights with --model yolov2-voc, yolov2.weights with --model yolov2), or a "
    ".h5 checkpoint you trained with `yolo9000 train` (or `yolo9000 demo`, which trains a small "
    "synthetic-shapes model end to end).")
SHAPES_NOTICE = ("no --weights given: using the bundled shapes demo model ({path}); it knows only "
                 "synthetic shapes, not real objects")



@dataclass(frozen=True)
class Detection:
    box: tuple          # (x1, y1, x2, y2) pixel corners in the original image
    cls: int
    name: str
    score: float
    # a word-tree model's: ((node, wnid, name, P(node | parent), P(node)), ...) root first
    path: tuple = None

    def to_dict(self) -> dict:
        """The detection as `yolo9000 detect --save-json` writes it (inference/export.py)."""
        return detection_dict(self.box, self.cls, self.name, self.score, self.path)


@dataclass
class PreparedImage:
    """An image decoded and letterboxed, ready for the network."""
    image: LoadedImage
    tensor: np.ndarray        # (3, net_h, net_w) float32
    info: LetterboxInfo


@dataclass
class ImageResult:
    """One source through the pipeline: its detections as arrays, or why it failed."""
    source: object
    index: int = None             # the source's position in the input of Detector.stream
    image: LoadedImage = None
    boxes: np.ndarray = None      # (n, 4) float32 x1, y1, x2, y2 in original pixels
    scores: np.ndarray = None     # (n,) float32, decreasing
    classes: np.ndarray = None    # (n,) int64
    names: list = None
    seconds: float = 0.0          # this image's share of its batch's network + decoding time
    error: str = None             # set (and nothing else) when the source could not be read
    paths: list = None            # word tree: each box's path from the root (Detection.path)

    @property
    def detections(self) -> list[Detection]:
        paths = self.paths if self.paths is not None else [None] * len(self.scores)
        return [Detection(tuple(float(v) for v in b), int(c), self.names[int(c)], float(s), p)
                for b, s, c, p in zip(self.boxes, self.scores, self.classes, paths)]


def _failed(source, index, exc):
    return ImageResult(source, index, error=failure_message(source, exc))


def failure_message(source, exc) -> str:
    """One line saying why a source could not be read."""
    if isinstance(exc, UserError):
        return str(exc)
    return f"{shown_path(source)}: cannot read image: {type(exc).__name__}: {exc}"


def default_class_names(net, num_classes, class_nodes=None):
    """(names, where they came from) of a network's classes when none are given: the
    checkpoint's, else bundled ones chosen by class count, else (word-tree classes) the tree
    nodes' names; (None, None) when nothing names them."""
    if getattr(net, "names", None):
        names = [str(n) for n in net.names]
        if class_nodes is not None and len(names) == net.region.tree.n:
            names = [names[int(k)] for k in class_nodes]     # a tree model's: node names
        return names, "the checkpoint"
    tree = getattr(net.region, "tree", None)
    if tree is not None:
        nodes = class_nodes if class_nodes is not None else range(tree.n)
        return [str(tree.names[int(n)]) for n in nodes], f"the word tree {tree.source}"
    bundled = bundled_names_for(num_classes)
    if bundled is not None:
        return read_names(bundled), f"bundled {bundled.name}"
    return None, None


def resolve_class_names(names, net, num_classes, class_nodes=None):
    """(names, where they came from) of a network's classes — the detector's and the
    classifier's: given as a list or a names file, else default_class_names; numbers, with
    source None, when nothing names them. A count that does not fit is a UserError."""
    path = None
    if names is None:
        names, source = default_class_names(net, num_classes, class_nodes)
    elif isinstance(names, (str, os.PathLike)):
        path = source = str(names)
        names = read_names(names)
    else:
        source = "the names given"
    if names is None:
        return [str(i) for i in range(num_classes)], None
    names = [str(n) for n in names]
    if len(names) != num_classes:
        raise UserError(f"{len(names)} class names but the network predicts {num_classes} "
                        "classes", path=path)
    return names, source


def _check_size(size):
    return None if size is None else check_input_size(int(size))


def build_network(model=None, cfg=None, weights=None, size=None, classifier=False,
                  precision=FP32):
    """Build the network (a detector, with `classifier` a classifier, with classifier=None
    any network), load its weights and set its inference precision (Network.set_precision).
    Returns (network, notice or None): the notice also says which precision runs, unless
    fp32 was asked of fp32 weights (an int8 checkpoint run in fp32 is said)."""
    from ..model.network import Network

    if model is not None and cfg is not None:
        raise UserError("give either a model name or a cfg file, not both")
    size = _check_size(size)
    notice = None
    if weights is None and classifier:
        raise UserError("a classifier needs --weights: an .h5 checkpoint from `yolo9000 train` "
                        "(it carries its cfg and class names) or darknet .weights with --cfg")
    if weights is None:
        # The bundled checkpoint carries its own cfg: it stands in only when no network was named.
        if model is not None or cfg is not None:
            raise UserError(NO_WEIGHTS_MESSAGE.replace("and no bundled default model is "
                                                       "installed", f"for {cfg or model}"))
        if not DEFAULT_CHECKPOINT.is_file():
            raise UserError(NO_WEIGHTS_MESSAGE)
        weights = DEFAULT_CHECKPOINT
        notice = SHAPES_NOTICE.format(path=DEFAULT_CHECKPOINT)
    weights = os.fspath(weights)
    if not os.path.isfile(weights):
        raise UserError("weights file not found", path=weights)
    spec = cfg if cfg is not None else model
    if spec is None:
        if not check_weights_format(weights):
            raise UserError("darknet .weights files do not say which network they belong to; "
                            "give --model NAME or --cfg FILE", path=weights)
        net = Network.load(weights, width=size, height=size)
    else:
        net = Network.from_cfg(os.fspath(spec), width=size, height=size)
        _check_kind(net, classifier, spec)      # before the weights: a clearer first problem
        net.load_weights(weights)
    _check_kind(net, classifier, spec or weights)
    check_memory(net.memory_needed(1), f"running this network at {net.width}x{net.height}",
                 path=spec or weights)
    said = net.set_precision(precision)
    if precision != FP32 or net.quantization is not None:
        notice = "; ".join(filter(None, [notice, f"precision {said}"]))
    return net, notice


def _check_kind(net, classifier, source):
    if classifier is None:
        return
    if classifier and net.classifier is None:
        raise UserError("this network does not end in [softmax], so it is not a classifier "
                        "(use `yolo9000 detect` for a detector)", path=source)
    if not classifier and net.region is None:
        hint = (" but a classifier: use `yolo9000 classify`" if net.classifier is not None
                else "")
        raise UserError(f"this network has no region layer, so it is not a detector{hint}",
                        path=source)


class Detector:
    """Detect objects in images with a YOLOv2 network (see the module docstring)."""

    def __init__(self, model=None, cfg=None, weights=None, names=None, size=None, thresh=0.5,
                 nms=0.45, evaluation=False, hier_thresh=0.5, tree_walk="paper", precision=FP32):
        net, self.notice = build_network(model, cfg, weights, size, precision=precision)
        self._setup(net, names, thresh, nms, evaluation, None, hier_thresh, tree_walk)

    @classmethod
    def from_network(cls, network, names=None, thresh=0.5, nms=0.45, evaluation=False,
                     class_nodes=None, hier_thresh=0.5, tree_walk="paper"):
        """Wrap an already built network (with its weights loaded). class_nodes: for a
        word-tree model in evaluation, the tree node each evaluated class stands for."""
        self = cls.__new__(cls)
        self.notice = None
        self._setup(network, names, thresh, nms, evaluation, class_nodes, hier_thresh, tree_walk)
        return self

    def _setup(self, net, names, thresh, nms, evaluation, class_nodes=None, hier_thresh=0.5,
               tree_walk="paper"):
        # Evaluation may keep every candidate (thresh 0): the whole precision-recall curve counts.
        if not (0.0 <= float(thresh) <= 1.0 if evaluation else 0.0 < float(thresh) <= 1.0):
            raise UserError(f"thresh must be in {'[0, 1]' if evaluation else '(0, 1]'}, "
                            f"got {thresh}")
        if not 0.0 <= float(nms) <= 1.0:
            raise UserError(f"nms must be in [0, 1], got {nms}")
        self.net = net
        self.thresh = float(thresh)
        self.nms = float(nms)
        self.evaluation = bool(evaluation)
        # YOLO9000 only: how sure the descent through the word tree must stay (darknet's .5),
        # and which descent: the paper's conditional probabilities or darknet's
        if not 0.0 <= float(hier_thresh) <= 1.0:
            raise UserError(f"hier_thresh must be in [0, 1], got {hier_thresh}")
        if tree_walk not in WordTree.WALKS:
            raise UserError(f"tree walk must be one of {', '.join(WordTree.WALKS)}, got {tree_walk!r}")
        self.hier_thresh = float(hier_thresh)
        self.tree_walk = tree_walk
        region = net.region
        self.tree = getattr(region, "tree", None)
        self.class_nodes = None
        self._set_classes(names, class_nodes)

    def _set_classes(self, names, class_nodes=None):
        """Word tree, evaluation: the tree node behind each class (given, else darknet's map=,
        else every node)."""
        region = self.net.region
        if self.tree is not None and self.evaluation:
            class_map = getattr(region, "class_map", None)
            if class_nodes is None:
                class_nodes = np.arange(self.tree.n) if class_map is None else class_map
            self.class_nodes = np.asarray(class_nodes, np.int64)
            self.num_classes = int(self.class_nodes.size)
        else:
            self.num_classes = int(region.classes)
        self.names = self._resolve_names(names, self.net)

    def score_classes(self, class_nodes, names):
        """Evaluate a word-tree model on these classes: class k is tree node class_nodes[k],
        scored with its absolute probability (which holds the probability of every node
        below it, so a box named by a descendant counts for the class)."""
        self._set_classes(list(names), class_nodes)

    # -- configuration ---------------------------------------------------------------------
    def _resolve_names(self, names, net):
        """The class names; sets names_source (where they came from, None when numbered)."""
        names, self.names_source = resolve_class_names(names, net, self.num_classes,
                                                       self.class_nodes)
        return names

    @property
    def size(self) -> tuple[int, int]:
        return int(self.net.width), int(self.net.height)

    def resize(self, size):
        size = _check_size(size)
        self.net.resize(size, size)

    # -- pipeline stages ---------------------------------------------------------------------
    def prepare(self, source) -> PreparedImage:
        """Decode and letterbox one image (path, PIL image, array or LoadedImage)."""
        net_size = self.size
        image = load_image(source, net_size=net_size)
        tensor, info = letterbox(image.rgb, *net_size, orig_size=(image.width, image.height))
        return PreparedImage(image, tensor, info)

    def predict(self, prepared) -> list[list[Detection]]:
        """Run the network on prepared images (one forward pass) and post-process."""
        return [self._result(None, p, arrays).detections
                for p, arrays in zip(prepared, self._decode(prepared))]

    def _decode(self, prepared):
        """(boxes, scores, classes) per prepared image, from one forward pass."""
        if not prepared:
            return []
        y = self.net.forward(np.stack([p.tensor for p in prepared]))
        return [self._arrays_from_output(y[i], p.info) for i, p in enumerate(prepared)]

    def detections_from_output(self, output, info: LetterboxInfo) -> list[Detection]:
        """Region output of one image (C, H, W) -> detections in original pixels."""
        return self._result(None, None, self._arrays_from_output(output, info)).detections

    def _arrays_from_output(self, output, info):
        region = self.net.region
        coords = int(region.coords)
        if self.class_nodes is not None:
            return postprocess(self._class_probabilities(output), region.anchors,
                               self.num_classes, info, self.thresh, self.nms, coords=coords)
        if self.tree is None:
            return postprocess(output, region.anchors, self.num_classes, info, self.thresh,
                               self.nms, coords=coords)
        *arrays, index = postprocess(output, region.anchors, self.num_classes, info, self.thresh,
                                     self.nms, coords=coords, tree=self.tree,
                                     hier_thresh=self.hier_thresh, tree_walk=self.tree_walk,
                                     return_index=True)
        return (*arrays, self._tree_paths(output, index, arrays[2]))

    def _tree_paths(self, output, index, nodes):
        """Each box's path from the root: (node, wnid, name, P(node | parent), P(node))."""
        region, tree = self.net.region, self.tree
        lead = int(region.coords) + 1
        per_anchor = output.reshape(int(region.num), lead + tree.n, -1)
        paths = []
        for k, node in zip(index, nodes):
            anchor, cell = divmod(int(k), per_anchor.shape[2])
            probs = per_anchor[anchor, lead:, cell]
            paths.append(tuple((n, tree.wnids[n], tree.names[n], round(c, 6), round(a, 6))
                               for n, c, a in tree.path_probabilities(probs, int(node))))
        return paths

    def _class_probabilities(self, output):
        """A word-tree region output rewritten as a flat one whose class channels hold each
        class node's absolute probability, so the flat decoding scores it class by class."""
        region = self.net.region
        lead = int(region.coords) + 1
        per_anchor = output.reshape(int(region.num), lead + self.tree.n, *output.shape[1:])
        absolute = self.tree.hierarchy_predictions(per_anchor[:, lead:], axis=1)
        flat = np.concatenate([per_anchor[:, :lead], absolute[:, self.class_nodes]], axis=1)
        return flat.reshape(-1, *output.shape[1:])

    def _result(self, source, prepared, arrays, seconds=0.0, index=None):
        boxes, scores, classes, *paths = arrays
        return ImageResult(source, index, prepared.image if prepared else None, boxes, scores,
                           classes, self.names, seconds, paths=paths[0] if paths else None)

    def stream(self, sources, batch_size=1, skip_errors=False):
        """An ImageResult per source, in order, ``batch_size`` images per forward pass; images
        are decoded and letterboxed ahead in background threads while the network runs.

        A source that cannot be read raises its error, or with ``skip_errors`` comes out at
        once as a result with ``error`` set (its batch is filled with the next images).
        """
        return run_in_batches(self.prepare, sources, batch_size, self._run, _failed, skip_errors)

    def _run(self, pending):
        start = time.perf_counter()
        decoded = self._decode([p for _, _, p in pending])
        share = (time.perf_counter() - start) / len(pending)
        for (index, source, prepared), arrays in zip(pending, decoded):
            yield self._result(source, prepared, arrays, share, index)

    def video(self, source, batch_size=1, vid_stride=1):
        """inference.video.FrameResult (index, time, detections, rgb) per vid_stride-th frame
        of a video file or a camera ("0", "/dev/video0"), ``batch_size`` frames per forward
        pass, decoded ahead in a thread. A video cut short raises its one-line UserError after
        the results of the frames before it (inference/video.py)."""
        from .video import detect_video
        return detect_video(self, source, batch_size, vid_stride)

    # -- convenience -----------------------------------------------------------------------
    def __call__(self, source) -> list[Detection]:
        return self.predict([self.prepare(source)])[0]

    def batch(self, sources, batch_size=8) -> list[list[Detection]]:
        """Detections for many images, ``batch_size`` images per forward pass."""
        return [r.detections for r in self.stream(sources, batch_size)]
