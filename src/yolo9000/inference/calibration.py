"""int8 calibration on images: the fp32 network run over a folder of images, each prepared as
`detect` (letterbox) or `classify` (centre crop) prepares it - through the same Detector and
Classifier - while model/quantization.py's histograms record every quantized convolution's
input; then the scales, and the network made int8 (`convert --quantize int8`).
"""
import glob
import os
from pathlib import Path

import numpy as np

from ..data.sources import expand_sources
from ..errors import UserError, shown_path
from ..model import quantization
from ..progress import Progress
from .classifier import Classifier
from .detector import Detector, failure_message
from .prefetch import run_in_batches

DEFAULT_IMAGES = 100
BATCH = 8


def calibration_images(directory, count=DEFAULT_IMAGES):
    """`count` image files of `directory` and its subfolders (a classifier's class folders),
    spread evenly over their sorted paths (a folder sorted by class gives each class its
    share), or all when there are fewer."""
    if not Path(directory).is_dir():
        raise UserError("calibration images: not a folder", path=directory)
    paths, errors, _ = expand_sources([os.path.join(glob.escape(str(directory)), "**")])
    if errors or not paths:
        raise UserError("calibration images: no images in this folder or its subfolders",
                        path=directory)
    if count is not None and len(paths) > count:
        paths = [paths[(k * len(paths)) // count] for k in range(count)]
    return paths


def _preparer(net):
    """The one preprocessing of inference for this network: image path -> network input."""
    if net.classifier is not None:
        classifier = Classifier.from_network(net)
        return lambda path: classifier.prepare(path)[1]
    if net.region is None:
        raise UserError(f"{net.source} is neither a detector nor a classifier: no preprocessing "
                        "of images to calibrate it with")
    detector = Detector.from_network(net)
    return lambda path: detector.prepare(path).tensor


def calibrate(net, directory, *, images=DEFAULT_IMAGES, rule="percentile",
              percentile=quantization.PERCENTILE, keep_ends=True):
    """Make `net` (fp32 weights) int8: its convolutions' input scales calibrated on `images`
    images of `directory`, its weights quantized per output channel; the first and last
    convolutions stay fp32 with `keep_ends`. An image that cannot be read is skipped, one
    line on stderr. Returns the record (net.quantization)."""
    if rule not in quantization.RULES:
        raise UserError(f"unknown calibration rule {rule!r}; choose one of "
                        + ", ".join(quantization.RULES))
    if not 0 < percentile <= 100:
        raise UserError(f"percentile {percentile}: give a value in (0, 100]")
    if net.quantization is not None:
        raise UserError("these weights are already int8: calibrate their fp32 source")
    layers = quantization.layers_to_quantize(net, keep_ends)
    paths = calibration_images(directory, images)
    prepare = _preparer(net)
    net.set_precision("fp32")
    observed = quantization.Calibration(net, layers)
    used = []
    progress = Progress(len(paths), desc="calibration", unit="img")

    def run(pending):
        observed.observe(np.stack([tensor for _, _, tensor in pending]))
        used.extend(source for _, source, _ in pending)
        progress.update(len(pending))
        return ()

    def failed(source, index, exc):
        progress.update(1)
        progress.write(f"skipped: {failure_message(source, exc)}")
        return None

    for _ in run_in_batches(prepare, paths, BATCH, run, failed, skip_errors=True):
        pass
    progress.close()
    if not used:
        raise UserError(f"calibration images: none of the {len(paths)} images of "
                        f"{shown_path(directory)} could be read")
    scales = observed.input_scales(rule, percentile)
    description = quantization.calibration_description(directory, used, (net.width, net.height))
    quantization.quantize_network(net, scales, rule, percentile, description)
    return net.quantization
