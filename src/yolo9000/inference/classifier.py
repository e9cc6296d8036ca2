"""The Python classification API: a classifier cfg (ending in [softmax]) run on images.

    from yolo9000.inference.classifier import Classifier
    clf = Classifier(weights="runs/train/exp/weights/best.h5")
    for r in clf.stream(["cat.jpg", "dog.png"], batch_size=8):
        print(r.source, r.top(5))              # [(id, name, probability), ...] best first

The pipeline: centre crop (data/classification_augment.center_crop, darknet's
validate_classifier_single) ->
network -> the softmax's probabilities. `classify`, `evaluate` on a classifier and the
validation of `train` on a classifier all run it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..data.classification_augment import center_crop
from ..data.images import load_image
from ..errors import UserError, shown_path
from ..kernels.precisions import FP32
from .detector import _check_size, build_network, failure_message, resolve_class_names
from .prefetch import run_in_batches


@dataclass
class ClassResult:
    source: object
    index: int | None = None
    width: int = 0                      # the original image's size
    height: int = 0
    probabilities: np.ndarray | None = None   # (K,) float32
    names: list | None = None
    seconds: float = 0.0
    error: str | None = None

    tree: object = None

    def top(self, k=5):
        """[(class id, name, probability)] of the k most probable classes, best first (ties:
        lower id first); for a WordTree classifier, the nodes of highest absolute probability."""
        p = self.probabilities if self.tree is None else \
            self.tree.hierarchy_predictions(self.probabilities)
        order = np.argsort(-p, kind="stable")[:k]
        return [(int(i), self.names[i], float(p[i])) for i in order]


class Classifier:
    def __init__(self, model=None, cfg=None, weights=None, names=None, size=None, precision=FP32):
        net, self.notice = build_network(model, cfg, weights, size, classifier=True,
                                         precision=precision)
        self._setup(net, names)

    @classmethod
    def from_network(cls, network, names=None):
        self = cls.__new__(cls)
        self.notice = None
        self._setup(network, names)
        return self

    def _setup(self, net, names):
        self.net = net
        self.num_classes = int(np.prod(net.layers[net.classifier].out_shape))
        # a WordTree classifier's outputs are P(node | parent) (tree_probabilities: absolute)
        self.tree = net.layers[net.classifier].tree
        self.names, self.names_source = resolve_class_names(names, net, self.num_classes)

    @property
    def size(self):
        return int(self.net.width), int(self.net.height)

    def resize(self, size):
        size = _check_size(size)
        self.net.resize(size, size)

    def prepare(self, source):
        """(decoded image, network input) of one image."""
        image = load_image(source, net_size=self.size)
        return image, center_crop(image.rgb, *self.size)

    def probabilities(self, tensors):
        """(N, K) class probabilities of prepared inputs (N, 3, H, W), one forward pass."""
        if len(tensors) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        out = self.net.forward(np.stack(tensors))     # [cost] layers after the softmax pass it on
        return np.asarray(out, np.float32).reshape(len(tensors), -1)

    def stream(self, sources, batch_size=1, skip_errors=False):
        """A ClassResult per source, in order (images decoded ahead in background threads).
        An unreadable source raises, or with skip_errors comes out as a result with `error`."""
        def failed(source, index, exc):
            return ClassResult(source, index, error=failure_message(source, exc))
        return run_in_batches(self.prepare, sources, batch_size, self._run, failed, skip_errors)

    def _run(self, pending):
        start = time.perf_counter()
        probs = self.probabilities([tensor for _, _, (_, tensor) in pending])
        share = (time.perf_counter() - start) / len(pending)
        for (index, source, (image, _)), p in zip(pending, probs):
            yield ClassResult(source, index, image.width, image.height, p, self.names, share,
                              tree=self.tree)


def is_classifier_model(model=None, cfg=None, weights=None):
    """Whether the network a command is given is a classifier (its cfg ends in [softmax] and
    has no [region]). Problems with the files are left to the command that builds it."""
    from ..model.cfg import load_cfg, network_kind, parse_cfg_text
    from ..model.checkpoint import is_hdf5, read_checkpoint_cfg
    try:
        if cfg is not None or model is not None:
            config = load_cfg(cfg if cfg is not None else model)
        elif weights is not None and is_hdf5(weights):
            config = parse_cfg_text(read_checkpoint_cfg(weights)[0], str(weights))
        else:
            return False
    except (UserError, OSError):
        return False
    return network_kind(config) == "classification"


def predict_records(classifier, records, batch=32, progress=None):
    """((N, K) probabilities, [(width, height)] image sizes) of the records' images (records
    have .path), in order."""
    probabilities, sizes = [], []
    for result in classifier.stream([r.path for r in records], batch_size=batch):
        probabilities.append(result.probabilities)
        sizes.append((result.width, result.height))
        if progress is not None:
            progress.update(1)
    if not probabilities:
        return np.zeros((0, classifier.num_classes), np.float32), sizes
    return np.stack(probabilities), sizes


def evaluate_classifier(classifier, records, batch=32, progress=None):
    """ClassificationResult (metrics/classification.py) of the records (.path, .label), with
    the per-image `probabilities` and image `sizes` attached for the caller's outputs."""
    from ..metrics.classification import classification_metrics, tree_classification_metrics
    probabilities, sizes = predict_records(classifier, records, batch, progress)
    labels = np.array([r.label for r in records], np.int64)
    if classifier.tree is None:
        result = classification_metrics(probabilities, labels, classifier.num_classes)
    else:
        result = tree_classification_metrics(probabilities, labels, classifier.tree)
    result.probabilities, result.sizes = probabilities, sizes
    return result


def classify_images(paths, *, model, cfg, weights, names, size, top, batch, json_path, say,
                    fail, precision=FP32, warn=None):
    """`yolo9000 classify`: each image's `top` classes, said as a line (say) and written to
    json_path as JSON (inference/export.py's layout); fail(message) for each image that
    failed, warn(line) notes (the precision that runs). Returns how many failed."""
    from ..fileio import write_output
    from ..progress import images_rate_line
    from .export import classification_entry, json_list_text

    classifier = Classifier(model=model, cfg=cfg, weights=weights, names=names, size=size,
                            precision=precision)
    if classifier.notice and warn is not None:
        warn(f"note: {classifier.notice}")
    top = min(top, classifier.num_classes)
    say(f"model: {cfg or model or 'stored cfg'} + {weights} ({classifier.net.width}x"
        f"{classifier.net.height}, {classifier.num_classes} classes)")
    entries, done, failed, start = [], 0, 0, time.perf_counter()
    for result in classifier.stream(paths, batch_size=batch, skip_errors=True):
        if result.error is not None:
            fail(result.error)
            failed += 1
            continue
        best = result.top(top)
        say(f"{shown_path(result.source)} {result.width}x{result.height}: "
            + ", ".join(f"{name} {p:.3f}" for _, name, p in best))
        entries.append(classification_entry(result.source, result.width, result.height, best))
        done += 1
    elapsed = time.perf_counter() - start
    say(images_rate_line(done, elapsed))
    if json_path is not None:
        write_output(json_path, json_list_text(entries), "classifications")
        if json_path != "-":
            say(f"json: {json_path}")
    return failed
