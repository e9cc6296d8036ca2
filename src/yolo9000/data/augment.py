"""darknet-style data augmentation for YOLOv2 detection training.

Images come in as HWC RGB numpy arrays, uint8 (as decoded) or float32 in [0, 1], and leave as
the network's (3, H, W) float32 in [0, 1]. Boxes are normalised [cx, cy, w, h] rows (float32,
shape (n, 4)) with a parallel (n,) class array. All randomness comes from the numpy Generator
passed in, so a sample is a pure function of (image, boxes, config, rng seed).

Geometry: the jittered crop window is letterboxed by the detector's own code
(``data.images.letterbox``, so a non-augmented training input has exactly the pixels the
detector sees) and the boxes follow through the one letterbox map (``boxes.image_to_network``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..boxes import clip_xyxy, cxcywh_to_xyxy, image_to_network, visible_region, xyxy_to_cxcywh
from ..errors import UserError
from .images import letterbox, load_image, to_float

# A box is dropped when, after cropping and clipping to the image, its width or height is
# below this fraction of the image (it would be a sliver the network cannot localise) ...
MIN_BOX_SIDE = 0.005
# ... or when less than this fraction of its area is still inside the image: a box showing
# e.g. only a foot of a person would teach the detector to call a foot a person.
MIN_VISIBLE_FRACTION = 0.2


def visible_boxes(boxes: np.ndarray, classes: np.ndarray,
                  region=(0.0, 0.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Clip normalised cxcywh boxes to region (x0, y0, x1, y1), normalised, and drop the ones
    that became too thin or mostly invisible (see MIN_BOX_SIDE and MIN_VISIBLE_FRACTION)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    corners = cxcywh_to_xyxy(boxes)
    area = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
    bounds = (max(0.0, region[0]), max(0.0, region[1]), min(1.0, region[2]), min(1.0, region[3]))
    out = xyxy_to_cxcywh(clip_xyxy(corners, bounds))
    w, h = out[:, 2], out[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        visible = np.where(area > 0, (w * h) / area, 0.0)
    keep = (w >= MIN_BOX_SIDE) & (h >= MIN_BOX_SIDE) & (visible >= MIN_VISIBLE_FRACTION)
    return out[keep], classes[keep]


def letterbox_sample(img, boxes, classes, width, height, window=None):
    """Letterbox img (or a pixel window of it) into (3, height, width) and map its boxes along,
    clipped to the part that shows the image and filtered by visible_boxes."""
    out, info = letterbox(img, width, height, window=window)
    boxes, classes = visible_boxes(image_to_network(boxes, info), classes, visible_region(info))
    return out, boxes, classes


# --------------------------------------------------------------------------- augmentations

def random_place(img, boxes, classes, width, height, jitter, rng):
    """darknet's YOLOv2 jitter: move each side of the crop window by a random amount in
    [-jitter*w, jitter*w] (resp. h) pixels, then letterbox the window into (width, height).

    Positive offsets crop into the image, negative ones add .5 grey margins, so the objects
    shift, zoom and change aspect by up to the jitter. Boxes are clipped to the part of the
    output that shows image pixels (a box cut by the crop ends at the cut). Returns (image
    float32 (3, H, W), boxes (m, 4), classes (m,)) as letterbox_sample.
    """
    src_h, src_w = img.shape[:2]
    dw, dh = jitter * src_w, jitter * src_h
    # whole pixels, like darknet's int offsets: the window edges fall on pixel boundaries
    pleft, pright = (int(round(v)) for v in rng.uniform(-dw, dw, size=2))
    ptop, pbot = (int(round(v)) for v in rng.uniform(-dh, dh, size=2))
    x0, x1 = pleft, src_w - pright
    y0, y1 = ptop, src_h - pbot
    if x1 - x0 < 1:  # only reachable with jitter close to .5 on tiny images
        x1 = x0 + 1
    if y1 - y0 < 1:
        y1 = y0 + 1
    return letterbox_sample(img, boxes, classes, width, height, window=(x0, y0, x1, y1))


def random_flip(chw, boxes, rng):
    """Mirror a (3, H, W) image left-right with probability .5 (boxes follow)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if rng.random() < 0.5:
        boxes = boxes.copy()
        boxes[:, 0] = 1.0 - boxes[:, 0]
        return np.ascontiguousarray(chw[:, :, ::-1]), boxes
    return chw, boxes


def rand_scale(s: float, rng) -> float:
    """darknet's rand_scale: U(1, s), inverted with probability .5."""
    lo, hi = sorted((1.0, float(s)))
    scale = rng.uniform(lo, hi)
    return scale if rng.random() < 0.5 else 1.0 / scale


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """darknet's rgb_to_hsv, vectorised: H, S, V all in [0, 1] (H in [0, 1))."""
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = rgb.max(axis=-1)
    mn = rgb.min(axis=-1)
    delta = mx - mn
    safe_delta = np.where(delta > 0, delta, np.float32(1))
    safe_max = np.where(mx > 0, mx, np.float32(1))
    h = np.where(r == mx, (g - b) / safe_delta,
                 np.where(g == mx, 2 + (b - r) / safe_delta, 4 + (r - g) / safe_delta))
    h = np.where(h < 0, h + 6, h) / 6
    h = np.where(delta > 0, h, 0)
    s = np.where(mx > 0, delta / safe_max, 0)
    return np.stack([h, s, mx], axis=-1).astype(np.float32)


# For each hue sector, which of (v, t, p, q) becomes r, g and b (darknet's hsv_to_rgb table).
_SECTOR_TABLE = np.array([[0, 1, 2], [3, 0, 2], [2, 0, 1],
                          [2, 3, 0], [1, 2, 0], [0, 2, 3]], dtype=np.intp)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of rgb_to_hsv (darknet's hsv_to_rgb, vectorised). No clipping."""
    hsv = np.asarray(hsv, dtype=np.float32)
    h6 = hsv[..., 0] * 6
    s, v = hsv[..., 1], hsv[..., 2]
    sector = np.floor(h6)
    f = h6 - sector
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    candidates = np.stack([v, t, p, q], axis=-1)
    index = _SECTOR_TABLE[sector.astype(np.intp) % 6]
    return np.take_along_axis(candidates, index, axis=-1).astype(np.float32)


def distort_planes(rgb: np.ndarray, dhue: float, dsat: float, dexp: float) -> np.ndarray:
    """distort_image on a planar (3, H, W) float32 image; returns a new (3, H, W) array.

    Equal (to float rounding) to hsv_to_rgb of the scaled/shifted rgb_to_hsv, but written
    with in-place ops and without the sector table: channel c of an HSV colour is
    v - v*s*clamp(min(k, 4-k), 0, 1) with k = (n_c + 6h) mod 6, n = 5, 3, 1 for r, g, b,
    and v*s = dexp*dsat*(max - min) after scaling. About 10x faster than the reference.
    """
    r, g, b = (np.ascontiguousarray(c, dtype=np.float32) for c in rgb)
    mx = np.maximum(np.maximum(r, g), b)
    delta = mx - np.minimum(np.minimum(r, g), b)
    # 6*hue before the division by delta; precedence r > g > b as in darknet's rgb_to_hsv
    h6 = r - g
    h6 += 4 * delta
    is_g = g == mx
    np.subtract(b, r, out=h6, where=is_g)
    np.add(h6, 2 * delta, out=h6, where=is_g)
    np.subtract(g, b, out=h6, where=r == mx)
    has_hue = delta > 0
    np.divide(h6, delta, out=h6, where=has_hue)
    h6[~has_hue] = 0
    h6 += np.float32(6 * dhue)
    h6 -= np.float32(6) * np.floor(h6 * np.float32(1 / 6))  # wrap into [0, 6)
    vs = delta * np.float32(dexp * dsat)
    v = mx * np.float32(dexp)
    out = np.empty((3,) + r.shape, dtype=np.float32)
    k = np.empty_like(h6)
    ramp = np.empty_like(h6)
    for c, n in enumerate((5, 3, 1)):
        np.add(h6, np.float32(n), out=k)
        np.subtract(k, np.float32(6), out=k, where=k >= 6)
        np.subtract(np.float32(4), k, out=ramp)
        np.minimum(k, ramp, out=ramp)
        np.clip(ramp, 0, 1, out=ramp)
        ramp *= vs
        np.subtract(v, ramp, out=out[c])
    np.clip(out, 0, 1, out=out)
    return out


def distort_image(img: np.ndarray, dhue: float, dsat: float, dexp: float) -> np.ndarray:
    """darknet's distort_image on an HWC image: scale saturation by dsat and value by dexp,
    shift hue by dhue (wrapping), clip to [0, 1]. Returns float32 HWC."""
    planes = np.moveaxis(to_float(img), 2, 0)
    return np.ascontiguousarray(np.moveaxis(distort_planes(planes, dhue, dsat, dexp), 0, 2))


def sample_distortion(hue, saturation, exposure, rng) -> tuple[float, float, float]:
    """darknet's random_distort_image draws: dhue = U(-hue, hue), rand_scale(sat), rand_scale(exp)."""
    dhue = rng.uniform(-hue, hue)
    dsat = rand_scale(saturation, rng)
    dexp = rand_scale(exposure, rng)
    return dhue, dsat, dexp


def random_hsv(img, hue, saturation, exposure, rng):
    """darknet's random_distort_image: hue shift U(-hue, hue), saturation and exposure
    scaled by rand_scale(saturation) and rand_scale(exposure)."""
    return distort_image(img, *sample_distortion(hue, saturation, exposure, rng))


# --------------------------------------------------------------------------- configuration

def check_colour_options(hue, saturation, exposure):
    """darknet's HSV distortion settings, as both the detector's and the classifier's
    augmentation take them: a UserError for a value it cannot use."""
    if not 0 <= hue <= 1:
        raise UserError(f"hue must be in [0, 1], got {hue}")
    if not (math.isfinite(saturation) and saturation > 0
            and math.isfinite(exposure) and exposure > 0):
        raise UserError("saturation and exposure must be positive")


@dataclass
class AugmentConfig:
    jitter: float = 0.2
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    flip: bool = True
    enabled: bool = True

    def __post_init__(self):
        if not 0 <= self.jitter < 0.5:
            raise UserError(f"jitter must be in [0, 0.5), got {self.jitter}")
        check_colour_options(self.hue, self.saturation, self.exposure)

    def make_sample(self, image, record, width, height, rng, max_boxes=None):
        """The batch loader's entry point: (image (3, height, width) float32, truth (n, 5))."""
        return make_training_sample(image, record.boxes, record.classes, width, height, self,
                                    rng, max_boxes=max_boxes)


# --------------------------------------------------------------------------- one sample

def select_boxes(boxes, classes, max_boxes, rng, shuffle):
    """darknet's randomize_boxes + keep the first max_boxes. With shuffle False the order is
    kept and, only when there are too many, a seeded random subset survives."""
    n = len(classes)
    if shuffle:
        order = rng.permutation(n)
        if max_boxes is not None:
            order = order[:max_boxes]
    elif max_boxes is not None and n > max_boxes:
        order = np.sort(rng.choice(n, size=max_boxes, replace=False))
    else:
        return boxes, classes
    return boxes[order], classes[order]


def make_training_sample(record_or_image, boxes, classes, width, height, config, rng,
                         max_boxes=None):
    """One network input and its truth.

    record_or_image: an image array (uint8 or float32 HWC RGB) or a record with .path (and
    .boxes/.classes, used when boxes/classes are None). Returns (image (3, height, width)
    float32, truth (n, 5) float32 rows [cx, cy, w, h, class]).
    With config.enabled False: plain letterbox, boxes in their original order, no randomness
    (rng is only used to pick a subset when there are more than max_boxes boxes).
    """
    if isinstance(record_or_image, np.ndarray):
        img = record_or_image
    else:
        img = load_image(record_or_image.path).rgb
        if boxes is None:
            boxes = record_or_image.boxes
        if classes is None:
            classes = record_or_image.classes
    boxes = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), np.float32).reshape(-1, 4)
    classes = np.asarray(classes if classes is not None else np.zeros(0), np.int64).reshape(-1)
    if len(boxes) != len(classes):
        raise ValueError(f"{len(boxes)} boxes but {len(classes)} classes")

    if config.enabled:
        chw, boxes, classes = random_place(img, boxes, classes, width, height, config.jitter, rng)
        if config.flip:
            chw, boxes = random_flip(chw, boxes, rng)
        distortion = sample_distortion(config.hue, config.saturation, config.exposure, rng)
        chw = distort_planes(chw, *distortion)
    else:
        chw, boxes, classes = letterbox_sample(img, boxes, classes, width, height)
    boxes, classes = select_boxes(boxes, classes, max_boxes, rng, shuffle=config.enabled)

    truth = np.empty((len(classes), 5), dtype=np.float32)
    truth[:, :4] = boxes
    truth[:, 4] = classes
    return chw, truth
