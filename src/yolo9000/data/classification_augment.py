"""darknet's classifier input pipeline: a randomly scaled, rotated, shifted crop for training,
a short-side resize and centre crop for evaluation.

Training (darknet's random_augment_image, then a random flip and random_distort_image): the
aspect ratio is stretched by rand_scale(aspect); the image is scaled so that its short side
becomes r = rand_int(min_crop, max_crop) pixels; it is rotated by U(-angle, angle) degrees
about its centre and a width x height window is cut from it at a uniform random offset within
the slack (the scaled image's excess over the window, both ways); pixels are bilinearly
sampled. Then a left-right flip with probability .5 (when ``flip``) and darknet's HSV
distortion (hue shift, saturation and exposure scales).

Evaluation (``enabled=False``, darknet's validate_classifier_single): the image is resized
(bilinear, darknet's resize grid) so that it just covers width x height with its short side,
then the centred width x height window is cut out.

Images come in as HWC RGB arrays (uint8 as decoded, or float32 in [0, 1]) and leave as the
network's (3, H, W) float32 in [0, 1], like the detection samples. All randomness comes from
the numpy Generator passed in.

Where this differs from darknet, on purpose:
- Window positions are pixel centres (output pixel x samples source x' such that the centres
  of both images line up), so an unrotated, unshifted crop is centred exactly and a 2:1
  downscale averages 2x2 blocks; darknet samples pixel corners (a half-pixel shift).
- The short side is min(h, w / aspect), the side that really becomes r after the stretch
  (darknet multiplies by aspect there, which only agrees for aspect 1); the vertical slack
  uses the window height (darknet uses its width).
- Samples outside the image take ``FILL_VALUE`` (.5 grey, the letterbox padding of the
  detector), not darknet's black (its get_pixel_extend returns 0 outside).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .augment import check_colour_options, distort_planes, rand_scale, sample_distortion
from .images import PAD_VALUE, resize_bilinear, to_float

FILL_VALUE = PAD_VALUE


@dataclass
class CropAugmentConfig:
    """Classifier augmentation, darknet's [net] keys min_crop, max_crop, aspect, angle, hue,
    saturation, exposure; ``flip`` mirrors half the samples; ``enabled=False`` gives the
    evaluation crop (no randomness)."""

    min_crop: int
    max_crop: int
    aspect: float = 1.0
    angle: float = 0.0
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    flip: bool = True
    enabled: bool = True

    def __post_init__(self):
        for key in ("min_crop", "max_crop"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise UserError(f"{key} must be a positive whole number of pixels, got {value!r}")
        if self.max_crop < self.min_crop:
            raise UserError(f"max_crop ({self.max_crop}) is below min_crop ({self.min_crop})")
        if not (math.isfinite(self.aspect) and self.aspect > 0):
            raise UserError(f"aspect must be positive, got {self.aspect}")
        if not (math.isfinite(self.angle) and 0 <= self.angle <= 180):
            raise UserError(f"angle must be in [0, 180] degrees, got {self.angle}")
        check_colour_options(self.hue, self.saturation, self.exposure)

    def make_sample(self, image, record, width, height, rng, max_boxes=None):
        """The batch loader's entry point: (image (3, height, width) float32, class id)."""
        return make_classification_sample(image, width, height, self, rng), int(record.label)


def make_classification_sample(img, width, height, config: CropAugmentConfig, rng):
    """One classifier input (3, height, width) float32 in [0, 1] from an HWC RGB image."""
    if not config.enabled:
        return center_crop(img, width, height)
    src_h, src_w = img.shape[:2]
    aspect = rand_scale(config.aspect, rng)
    short_side = int(rng.integers(config.min_crop, config.max_crop + 1))
    scale = short_side / min(src_h, src_w / aspect)
    angle = math.radians(rng.uniform(-config.angle, config.angle))
    # negative when the scaled image is smaller than the window: then it moves inside it
    slack_x = abs(src_w * scale / aspect - width) / 2
    slack_y = abs(src_h * scale - height) / 2
    dx = rng.uniform(-slack_x, slack_x)
    dy = rng.uniform(-slack_y, slack_y)
    chw = rotate_crop(img, width, height, scale, angle, dx, dy, aspect)
    if config.flip and rng.random() < 0.5:
        chw = np.ascontiguousarray(chw[:, :, ::-1])
    dhue, dsat, dexp = sample_distortion(config.hue, config.saturation, config.exposure, rng)
    if (dhue, dsat, dexp) != (0.0, 1.0, 1.0):   # the identity would only add rounding
        chw = distort_planes(chw, dhue, dsat, dexp)
    return chw


def rotate_crop(img, width, height, scale, angle=0.0, dx=0.0, dy=0.0, aspect=1.0):
    """darknet's rotate_crop_image with pixel-centre alignment: a (3, height, width) window of
    img scaled by ``scale`` (horizontally by scale / aspect), rotated by ``angle`` radians
    about the image centre, its centre moved by (dx, dy) output pixels from the image centre.
    Bilinear sampling; samples outside the image are FILL_VALUE."""
    src_h, src_w = img.shape[:2]
    # offsets of the output pixel centres from the window centre, in source pixels
    u = (np.arange(width) + (0.5 - width / 2 + dx)) * (aspect / scale)
    v = (np.arange(height) + (0.5 - height / 2 + dy)) / scale
    cos, sin = math.cos(angle), math.sin(angle)
    x = cos * u[None, :] - sin * v[:, None] + (src_w / 2 - 0.5)
    y = sin * u[None, :] + cos * v[:, None] + (src_h / 2 - 0.5)
    return bilinear_sample(img, x, y)


def bilinear_sample(img, x, y, fill=FILL_VALUE):
    """(3, *x.shape) float32 in [0, 1]: img bilinearly sampled at pixel positions (x, y)
    (pixel k's centre is at k); neighbours outside the image count as ``fill``."""
    src_h, src_w = img.shape[:2]
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    x0 = x0.astype(np.intp)
    y0 = y0.astype(np.intp)
    out = np.zeros(x.shape + (3,), np.float32)
    for oy, ox, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                           (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        xi, yi = x0 + ox, y0 + oy
        inside = (xi >= 0) & (xi < src_w) & (yi >= 0) & (yi < src_h)
        values = to_float(img[np.clip(yi, 0, src_h - 1), np.clip(xi, 0, src_w - 1)])
        if not inside.all():
            values = np.where(inside[..., None], values, np.float32(fill))
        out += weight * values
    np.clip(out, 0.0, 1.0, out=out)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def center_crop(img, width, height):
    """darknet's validation input: resize_min (bilinear) so the image just covers
    width x height, then the centred width x height window; (3, height, width) float32."""
    src_h, src_w = img.shape[:2]
    # integer arithmetic as darknet's resize_min, so the long side is never one pixel short
    if width * src_h >= height * src_w:     # the width is the side that limits
        new_w, new_h = width, max(height, src_h * width // src_w)
    else:
        new_w, new_h = max(width, src_w * height // src_h), height
    if (new_w, new_h) == (src_w, src_h):
        resized = to_float(img)
    else:
        resized = resize_bilinear(img, new_w, new_h)
        if img.dtype == np.uint8:
            resized *= np.float32(1.0 / 255.0)
    x0 = (new_w - width) // 2
    y0 = (new_h - height) // 2
    window = np.clip(resized[y0:y0 + height, x0:x0 + width], 0.0, 1.0)
    return np.ascontiguousarray(window.transpose(2, 0, 1), dtype=np.float32)
