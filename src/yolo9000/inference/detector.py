"""The Python detection API.

    from yolo9000 import Detector
    det = Detector(model="yolov2-voc", weights="yolov2-voc.weights")
    for d in det("dog.jpg"):
        print(d.name, d.score, d.box)          # box = (x1, y1, x2, y2) in original pixels
    results = det.batch(["a.jpg", "b.png"])     # one list of Detection per image

Images: a path, a PIL image or an (h, w[, 3|4]) array (uint8, uint16 or float in [0, 1]).
The detector only needs the public Network API (from_cfg / load / load_weights / forward /
resize / region / names), so any network that keeps that contract can be wrapped with
``Detector.from_network``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.checkpoint import is_hdf5
from ..data.datasets import read_names
from ..errors import UserError
from ..model.zoo import DEFAULT_CHECKPOINT, bundled_names_for
from ..boxes import LetterboxInfo
from ..data.images import LoadedImage, letterbox, load_image
from .postprocess import postprocess


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

    def to_dict(self) -> dict:
        return {"class": self.cls, "name": self.name, "score": round(self.score, 6),
                "box": [round(v, 3) for v in self.box]}


@dataclass
class PreparedImage:
    """An image decoded and letterboxed, ready for the network."""
    image: LoadedImage
    tensor: np.ndarray        # (3, net_h, net_w) float32
    info: LetterboxInfo


def _check_size(size):
    if size is None:
        return None
    size = int(size)
    if size <= 0 or size % 32:
        raise UserError(f"size must be a positive multiple of 32, got {size}")
    return size


def build_network(model=None, cfg=None, weights=None, size=None):
    """Build the network and load its weights. Returns (network, notice or None)."""
    from ..model.network import Network

    if model is not None and cfg is not None:
        raise UserError("give either a model name or a cfg file, not both")
    size = _check_size(size)
    notice = None
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
        if not is_hdf5(weights):
            raise UserError("darknet .weights files do not say which network they belong to; "
                            "give --model NAME or --cfg FILE", path=weights)
        net = Network.load(weights, width=size, height=size)
    else:
        net = Network.from_cfg(os.fspath(spec), width=size, height=size)
        net.load_weights(weights)
    if net.region is None:
        raise UserError("this network has no region layer, so it is not a detector",
                        path=spec or weights)
    return net, notice


class Detector:
    """Detect objects in images with a YOLOv2 network."""

    def __init__(self, model=None, cfg=None, weights=None, names=None, size=None, thresh=0.5,
                 nms=0.45):
        net, self.notice = build_network(model, cfg, weights, size)
        self._setup(net, names, thresh, nms)

    @classmethod
    def from_network(cls, network, names=None, thresh=0.5, nms=0.45):
        """Wrap an already built network (with its weights loaded)."""
        self = cls.__new__(cls)
        self.notice = None
        self._setup(network, names, thresh, nms)
        return self

    def _setup(self, net, names, thresh, nms):
        if not 0.0 < float(thresh) <= 1.0:
            raise UserError(f"thresh must be in (0, 1], got {thresh}")
        if not 0.0 <= float(nms) <= 1.0:
            raise UserError(f"nms must be in [0, 1], got {nms}")
        self.net = net
        self.thresh = float(thresh)
        self.nms = float(nms)
        # YOLO9000 only: how sure the descent through the word tree must stay (darknet's .5)
        self.hier_thresh = 0.5
        region = net.region
        self.num_classes = int(region.classes)
        self.names = self._resolve_names(names, net)

    # -- configuration ---------------------------------------------------------------------
    def _resolve_names(self, names, net):
        source = None
        if names is None:
            names = getattr(net, "names", None)
            if names is None and bundled_names_for(self.num_classes) is not None:
                names = read_names(bundled_names_for(self.num_classes))
        elif isinstance(names, (str, os.PathLike)):
            source = names
            names = read_names(names)
        if names is None:
            return [str(i) for i in range(self.num_classes)]
        names = [str(n) for n in names]
        if len(names) != self.num_classes:
            raise UserError(f"{len(names)} class names but the network predicts "
                            f"{self.num_classes} classes", path=source)
        return names

    @property
    def size(self) -> tuple[int, int]:
        return int(self.net.width), int(self.net.height)

    def resize(self, size):
        size = _check_size(size)
        self.net.resize(size, size)

    # -- pipeline stages (the CLI runs prepare in a background thread) ---------------------
    def prepare(self, source) -> PreparedImage:
        """Decode and letterbox one image (path, PIL image, array or LoadedImage)."""
        net_size = self.size
        image = load_image(source, net_size=net_size)
        tensor, info = letterbox(image.rgb, *net_size, orig_size=(image.width, image.height))
        return PreparedImage(image, tensor, info)

    def predict(self, prepared) -> list[list[Detection]]:
        """Run the network on prepared images (one forward pass) and post-process."""
        if not prepared:
            return []
        x = np.stack([p.tensor for p in prepared])
        y = self.net.forward(x)
        return [self.detections_from_output(y[i], p.info) for i, p in enumerate(prepared)]

    def detections_from_output(self, output, info: LetterboxInfo) -> list[Detection]:
        """Region output of one image (C, H, W) -> detections in original pixels."""
        region = self.net.region
        boxes, scores, classes = postprocess(output, region.anchors, self.num_classes, info,
                                             self.thresh, self.nms, coords=int(region.coords),
                                             tree=getattr(region, "tree", None),
                                             hier_thresh=self.hier_thresh)
        return [Detection(tuple(float(v) for v in b), int(c), self.names[int(c)], float(s))
                for b, s, c in zip(boxes, scores, classes)]

    # -- convenience -----------------------------------------------------------------------
    def __call__(self, source) -> list[Detection]:
        return self.predict([self.prepare(source)])[0]

    def batch(self, sources, batch_size=8) -> list[list[Detection]]:
        """Detections for many images, ``batch_size`` images per forward pass."""
        sources = list(sources)
        results = []
        for start in range(0, len(sources), max(1, int(batch_size))):
            chunk = sources[start:start + max(1, int(batch_size))]
            results.extend(self.predict([self.prepare(s) for s in chunk]))
        return results
