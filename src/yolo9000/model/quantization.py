"""Post-training int8 quantization: what an int8 checkpoint holds and how its scales are made.

- Weights: symmetric, per output channel, from the raw convolution weights
  (kernels/int8.quantize_weights): batch norm stays in the fp32 epilogue, as in bf16, and a
  per-filter scale absorbs its per-filter factor exactly.
- Activations: one symmetric scale per convolution input, calibrated on images. The fp32
  network runs over them (inference/calibration.py feeds them, preprocessed as detect and
  classify do) while a histogram of |x| is kept for each quantized convolution's input
  (AbsHistogram); a rule then picks the threshold T that maps to 127, scale = T / 127:
  - "percentile" (default, PERCENTILE): the P-th percentile of |x|, linearly interpolated
    within its bin;
  - "entropy": the threshold whose 128-level quantization of the histogram loses the least
    information, KL(P || Q), as TensorRT's entropy calibrator chooses it.
- The first and last convolutions stay fp32 by default (the image input, and the raw output
  the decode reads); the record says which layers are int8.

The record (Network.quantization, an int8 checkpoint's `quantization` attribute): precision,
rule, percentile, layers (the int8 ones), kept_fp32, and the calibration set's description
(calibration_description).
"""
import datetime
import hashlib
import os
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import UserError, shown_path
from ..kernels import int8
from ..layers.convolutional import ConvolutionalLayer

RULES = ("percentile", "entropy")
# Measured on the shapes demo model (200 fresh images, mAP@0.5, see README): 99.99 keeps the
# rare large activations of leaky layers that 99.9 clips, without spending the 127 levels on
# the single largest values as the maximum (100) does.
PERCENTILE = 99.99
# Bins of each |x| histogram. Its range doubles (pairs of bins merged) whenever a batch
# exceeds it, so the values always fill at least half of the bins: 2048 or more, the
# resolution TensorRT's entropy calibration works at.
HISTOGRAM_BINS = 4096
# int8's positive levels: a threshold T maps to 127
LEVELS = int8.QMAX + 1


class AbsHistogram:
    """A histogram of |x| over [0, range) in `bins` equal bins, the range growing by doubling
    as larger values arrive (two neighbours merged into one bin: counts stay exact)."""

    def __init__(self, bins=HISTOGRAM_BINS):
        if bins % 2:
            raise ValueError("the bins must be even, to merge in pairs")
        self.counts = np.zeros(bins, np.int64)
        self.range = 0.0

    @property
    def bin_width(self):
        return self.range / self.counts.size

    def add(self, x):
        values = np.abs(np.asarray(x, np.float32)).reshape(-1)
        if values.size == 0:
            return
        peak = float(values.max())
        if peak == 0.0 and self.range == 0.0:
            self.counts[0] += values.size       # all zeros so far: bin 0 of any range
            return
        if self.range == 0.0:
            self.range = peak
        while peak > self.range:
            self.counts = np.concatenate([self.counts.reshape(-1, 2).sum(axis=1),
                                          np.zeros(self.counts.size // 2, np.int64)])
            self.range *= 2
        index = np.minimum((values / np.float32(self.bin_width)).astype(np.int64),
                           self.counts.size - 1)
        self.counts += np.bincount(index, minlength=self.counts.size)


def percentile_threshold(counts, bin_width, percentile):
    """The `percentile`-th percentile of the values a histogram counts (bin k holding
    [k·w, (k+1)·w)), linear within the bin where it falls."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    target = total * percentile / 100.0
    cumulative = np.cumsum(counts)
    k = int(np.searchsorted(cumulative, target))
    k = min(k, counts.size - 1)
    before = cumulative[k] - counts[k]
    inside = (target - before) / counts[k] if counts[k] > 0 else 1.0
    return float((k + inside) * bin_width)


def _kl_divergence(p, q):
    """KL(p || q) of two histograms over the same bins, each normalised; q smoothed where p
    has mass and q none (the quantization lost a bin's values entirely)."""
    p = p / p.sum()
    q = q / q.sum()
    q = np.where((p > 0) & (q == 0), 1e-8, q)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def entropy_threshold(counts, bin_width, levels=LEVELS):
    """The threshold (bin edge i·w) minimising KL(P || Q), TensorRT's entropy calibration:
    P = the first i bins with everything above folded into its last bin; Q = those i bins
    (outliers not folded) merged into `levels` groups, each group's count spread evenly over
    the bins that are non-empty in P. i runs from `levels` to the last non-empty bin."""
    counts = np.asarray(counts, np.float64)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return 0.0
    last = int(used[-1]) + 1
    if last <= levels:
        return float(last * bin_width)      # every value is exact at this resolution
    best, best_i = np.inf, last
    for i in range(levels, last + 1):
        p = counts[:i].copy()
        p[-1] += counts[i:].sum()
        nonzero = p > 0
        # the groups of np.array_split(range(i), levels): the first i % levels one bin longer
        longer = i % levels
        sizes = np.full(levels, i // levels)
        sizes[:longer] += 1
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        sums = np.add.reduceat(counts[:i], starts)
        occupied = np.add.reduceat(nonzero.astype(np.int64), starts)
        q = np.repeat(sums / np.maximum(occupied, 1), sizes) * nonzero
        if q.sum() == 0:
            continue
        divergence = _kl_divergence(p, q)
        if divergence < best:
            best, best_i = divergence, i
    return float(best_i * bin_width)


def threshold(histogram, rule="percentile", percentile=PERCENTILE):
    if rule == "percentile":
        return percentile_threshold(histogram.counts, histogram.bin_width, percentile)
    if rule == "entropy":
        return entropy_threshold(histogram.counts, histogram.bin_width)
    raise UserError(f"unknown calibration rule {rule!r}; choose one of {', '.join(RULES)}")


def input_scale(histogram, rule="percentile", percentile=PERCENTILE):
    """The input scale (threshold / 127) a histogram of a convolution's |input| gives; an input
    that was always 0 gets 1/127 (any scale quantizes zeros exactly)."""
    t = threshold(histogram, rule, percentile)
    return np.float32((t if t > 0 else 1.0) / int8.QMAX)


def convolutions(net):
    return [i for i, layer in enumerate(net.layers) if isinstance(layer, ConvolutionalLayer)]


def layers_to_quantize(net, keep_ends=True):
    """The indices of the convolutions to make int8: all, or (keep_ends) all but the first
    and the last."""
    convs = convolutions(net)
    if not convs:
        raise UserError(f"{net.source} has no convolutional layer to quantize")
    if keep_ends:
        convs = convs[1:-1]
        if not convs:
            raise UserError(f"{net.source} has no convolution besides its first and last, "
                            "which stay fp32: quantize them too (--quantize-ends)")
    return convs


class Calibration:
    """The |x| histograms of the inputs of `layers` (convolution indices) over the batches
    given to observe() - the fp32 network's inference outputs."""

    def __init__(self, net, layers):
        self.net = net
        self.layers = list(layers)
        self.histograms = {i: AbsHistogram() for i in self.layers}
        self.images = 0

    def observe(self, batch):
        def record(i, inputs):
            if i in self.histograms:
                self.histograms[i].add(inputs)
        # an inference forward frees each output once read (forward_all would hold them all:
        # ~600 MB for a batch of 8 of yolov2-voc at 416)
        self.net.forward(batch, watch_inputs=record)
        self.images += len(batch)

    def input_scales(self, rule="percentile", percentile=PERCENTILE):
        if self.images == 0:
            raise UserError("no calibration image could be read")
        return {i: input_scale(h, rule, percentile) for i, h in self.histograms.items()}


def calibration_description(directory, paths, size, when=None):
    """How to tell the calibration set again: its folder, how many images, a digest of their
    names (paths within the folder, sorted, one a line), the network size, the date and this
    package's version."""
    names = "\n".join(sorted(Path(os.path.relpath(p, directory)).as_posix() for p in paths))
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return {"directory": str(directory), "images": len(paths),
            "names_sha256": hashlib.sha256(names.encode("utf-8")).hexdigest(),
            "size": [int(size[0]), int(size[1])],
            "date": when.replace(microsecond=0).isoformat(),
            "yolo9000_version": __version__}


def quantize_network(net, scales, rule, percentile, calibration):
    """Make the convolutions of `scales` ({layer index: input scale}) int8, their weights
    quantized per output channel, and record how (Network.quantization); the convolutions
    without a scale stay fp32."""
    for i, scale in scales.items():
        q, weight_scales = int8.quantize_weights(net.layers[i].weights)
        net.layers[i].quantize(q, weight_scales, scale)
    net.quantization = {"precision": "int8", "rule": rule,
                        "percentile": percentile if rule == "percentile" else None,
                        "layers": sorted(int(i) for i in scales),
                        "kept_fp32": [i for i in convolutions(net) if i not in scales],
                        "calibration": calibration}
    return net


def describe(record):
    """One line about an int8 checkpoint's record, for summary and notices."""
    c = record.get("calibration") or {}
    rule = record.get("rule")
    if rule == "percentile" and record.get("percentile") is not None:
        rule = f"percentile {record['percentile']:g}"
    kept = record.get("kept_fp32") or []
    size = "x".join(str(v) for v in c.get("size", [])) or "?"
    return (f"int8 checkpoint: {len(record.get('layers', []))} int8 convolutions"
            + (f", layers {', '.join(map(str, kept))} kept fp32" if kept else "")
            + f"; calibrated ({rule}) on {c.get('images', '?')} images of "
            f"{shown_path(c.get('directory', '?'))} at {size} (names sha256 "
            f"{str(c.get('names_sha256', '?'))[:12]}), {c.get('date', '?')}, yolo9000 "
            f"{c.get('yolo9000_version', '?')}")


def quantized_name(weights):
    """Where the convert command suggested for `weights` writes: NAME-int8.h5 in the current
    folder (the weights' own may be read-only: the bundled model's is inside the package)."""
    return Path(f"{Path(weights).stem}-int8.h5")


def not_quantized_message(net):
    """The one line for --precision int8 on fp32 weights: the command that makes an int8
    checkpoint of them."""
    source = net.weights_file
    if source is None:
        command = ("yolo9000 convert WEIGHTS --output WEIGHTS-int8.h5 --quantize int8 "
                   "--calibration DIR")
    else:
        from .checkpoint import is_hdf5
        cfg = "" if is_hdf5(source) else f" --cfg {net.source}"
        command = (f"yolo9000 convert {shown_path(source)}{cfg} --output "
                   f"{shown_path(quantized_name(source))} --quantize int8 --calibration DIR")
    return ("--precision int8 needs an int8 checkpoint and these weights are fp32: make one "
            f"with `{command}` (DIR: a folder of images like those it will see)")
