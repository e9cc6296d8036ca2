"""Box geometry, in one place: IoU, box formats, clipping, scaling and the letterbox map.

Conventions (each function names the ones it takes and returns):

* ``xyxy``: corners ``(x1, y1, x2, y2)`` in continuous coordinates, ``x2 >= x1``; the area is
  ``(x2 - x1) * (y2 - y1)``, with no darknet/VOC "+1".
* ``cxcywh``: centre and size ``(cx, cy, w, h)``.
* *normalised*: as fractions of the image's (or the network input's) width and height;
  *pixels*: in pixels of that image. A pixel corner ``x1`` is ``(cx - w / 2) * W``.
* ``wh``: widths and heights only, as of boxes that share a centre (anchor shapes).

Box arrays are ``(n, 4)`` unless a function says it broadcasts. Arithmetic happens in the
inputs' floating type: float32 stays float32 (the region loss and NMS run in float32), float64
stays float64, anything else (integers, lists) becomes float64. No function here changes its
input.

IoU of boxes whose union is empty (zero-area boxes that do not overlap) is 0, as darknet's
box_iou: never NaN.

The letterbox (darknet's letterbox_image): an image, or an integer pixel window of it, is
resized keeping its aspect ratio to ``new_w x new_h`` and placed at integer offset
``(dx, dy)`` in the ``net_w x net_h`` network input. :class:`LetterboxInfo` records that
placement; :func:`image_to_network` maps boxes forward (training truths),
:func:`network_to_image` back (detections). The pixels are placed by
``yolo9000.data.images.letterbox``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _floating(values) -> np.ndarray:
    """values as an array of float32 (kept) or float64 (everything else)."""
    values = np.asarray(values)
    if values.dtype == np.float32 or values.dtype == np.float64:
        return values
    return values.astype(np.float64)


def _boxes(boxes) -> np.ndarray:
    return _floating(boxes).reshape(-1, 4)


# -- IoU --------------------------------------------------------------------------------------
def _iou(inter, area_sum):
    """The one IoU formula the variants below share: inter / (area_sum - inter), 0 where that
    union is not positive (or NaN).

    inter: intersection areas; area_sum: area of a + area of b. Both are fresh arrays of the
    result's shape and are overwritten: no extra (n, m) allocation for NMS-sized matrices.
    """
    inter, union = np.asarray(inter), np.asarray(area_sum)
    union -= inter
    # the usual case, checked by one reduction (NaN fails it): a plain divide, no mask
    if union.size == 0 or np.minimum.reduce(union, axis=None) > 0:
        return np.divide(inter, union, out=inter)
    positive = union > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.divide(inter, union, out=inter)
    iou[~positive] = 0          # zero-area boxes (or NaN): 0, never NaN
    return iou


def _overlap_area(inter_w, inter_h):
    """Intersection area from the overlap's extents (negative when apart), in place."""
    inter = np.maximum(inter_w, 0, out=inter_w)
    inter *= np.maximum(inter_h, 0, out=inter_h)
    return inter


def box_area(boxes) -> np.ndarray:
    """(n,) areas ``(x2 - x1) * (y2 - y1)`` of xyxy boxes (n, 4)."""
    boxes = _boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def pairwise_iou(a, b) -> np.ndarray:
    """(n, m) IoU of every xyxy box of ``a`` (n, 4) with every xyxy box of ``b`` (m, 4)."""
    a, b = _boxes(a), _boxes(b)
    # contiguous columns: the outer products below stream through memory
    ax1, ay1, ax2, ay2 = (np.ascontiguousarray(a[:, i]) for i in range(4))
    bx1, by1, bx2, by2 = (np.ascontiguousarray(b[:, i]) for i in range(4))
    inter_w = np.minimum.outer(ax2, bx2)
    inter_w -= np.maximum.outer(ax1, bx1)
    inter_h = np.minimum.outer(ay2, by2)
    inter_h -= np.maximum.outer(ay1, by1)
    return _iou(_overlap_area(inter_w, inter_h), np.add.outer(box_area(a), box_area(b)))


def iou_one_to_many(box, boxes) -> np.ndarray:
    """(m,) IoU of one xyxy box (4,) with each xyxy box of ``boxes`` (m, 4): the row of
    ``pairwise_iou`` without its set-up cost (NMS calls it once per kept box)."""
    box, boxes = _floating(box).reshape(4), _boxes(boxes)
    inter_w = np.minimum(box[2], boxes[:, 2])
    inter_w -= np.maximum(box[0], boxes[:, 0])
    inter_h = np.minimum(box[3], boxes[:, 3])
    inter_h -= np.maximum(box[1], boxes[:, 1])
    return _iou(_overlap_area(inter_w, inter_h), box_area(box)[0] + box_area(boxes))


def iou_cxcywh(a, b) -> np.ndarray:
    """Element-wise IoU of cxcywh boxes ``a`` (..., 4) and ``b`` (..., 4), broadcasting over
    the leading axes. Areas are ``w * h``, as in darknet's box_iou (the region loss's IoU)."""
    a, b = _floating(a), _floating(b)
    half = a.dtype.type(0.5)
    ax, ay, aw, ah = (a[..., i] for i in range(4))
    bx, by, bw, bh = (b[..., i] for i in range(4))
    inter_w = np.minimum(ax + aw * half, bx + bw * half) - np.maximum(ax - aw * half, bx - bw * half)
    inter_h = np.minimum(ay + ah * half, by + bh * half) - np.maximum(ay - ah * half, by - bh * half)
    return _iou(_overlap_area(np.asarray(inter_w), np.asarray(inter_h)), aw * ah + bw * bh)


def iou_wh(w_a, h_a, w_b, h_b, area_a=None) -> np.ndarray:
    """Element-wise IoU of boxes that share a centre, from their (non-negative) widths and
    heights, broadcasting (``w_a[:, None], ..., w_b[None, :], ...`` gives all pairs).

    min(w_a, w_b) * min(h_a, h_b) / (w_a h_a + w_b h_b - that): anchor k-means' similarity and
    the region loss's choice of anchor. Widths and heights come as separate arrays, and
    ``area_a`` (= w_a * h_a) can be passed in, because k-means keeps contiguous columns of a
    million boxes and compares them with one centroid at a time.
    """
    w_a, h_a, w_b, h_b = (_floating(v) for v in (w_a, h_a, w_b, h_b))
    inter, inter_h = np.asarray(np.minimum(w_a, w_b)), np.minimum(h_a, h_b)
    # in place when the shapes allow (always, in k-means' inner loop)
    inter = np.multiply(inter, inter_h, out=inter) if inter.shape == inter_h.shape \
        else inter * inter_h
    area_sum = np.add(w_a * h_a if area_a is None else area_a, w_b * h_b)
    return _iou(inter, area_sum)


# -- formats, clipping, scaling ---------------------------------------------------------------
def cxcywh_to_xyxy(boxes) -> np.ndarray:
    """(n, 4) cxcywh -> (n, 4) xyxy, in the same units."""
    boxes = _boxes(boxes)
    half = boxes[:, 2:] * boxes.dtype.type(0.5)
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def xyxy_to_cxcywh(boxes) -> np.ndarray:
    """(n, 4) xyxy -> (n, 4) cxcywh, in the same units."""
    boxes = _boxes(boxes)
    return np.concatenate([(boxes[:, :2] + boxes[:, 2:]) * boxes.dtype.type(0.5),
                           boxes[:, 2:] - boxes[:, :2]], axis=1)


def clip_xyxy(boxes, bounds) -> np.ndarray:
    """xyxy boxes (n, 4) clipped to ``bounds`` = (x_min, y_min, x_max, y_max), same units."""
    x_min, y_min, x_max, y_max = bounds
    out = _boxes(boxes).copy()
    np.clip(out[:, 0::2], x_min, x_max, out=out[:, 0::2])
    np.clip(out[:, 1::2], y_min, y_max, out=out[:, 1::2])
    return out


def _image_scale(width, height, dtype):
    return np.array([width, height, width, height], dtype=dtype)


def normalised_to_pixels(boxes, width, height) -> np.ndarray:
    """(n, 4) normalised boxes (xyxy or cxcywh) -> pixels of a ``width x height`` image."""
    boxes = _boxes(boxes)
    return boxes * _image_scale(width, height, boxes.dtype)


def pixels_to_normalised(boxes, width, height) -> np.ndarray:
    """(n, 4) boxes (xyxy or cxcywh) in pixels of a ``width x height`` image -> normalised."""
    boxes = _boxes(boxes)
    return boxes / _image_scale(width, height, boxes.dtype)


# -- letterbox --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LetterboxInfo:
    """Where an image (or a pixel window of it) sits inside the network input."""
    net_w: int     # network input size
    net_h: int
    new_w: int     # size of the resized image (window) inside the network input
    new_h: int
    dx: int        # left / top offset of the resized image (integer, as darknet embeds it)
    dy: int
    orig_w: int    # the original image, whose pixels boxes are mapped to and from
    orig_h: int
    # (x0, y0, x1, y1): the integer pixel window of the original image that was placed; it may
    # reach beyond the image (training jitter). None: the whole image.
    window: tuple[int, int, int, int] | None = None

    @property
    def placed_window(self) -> tuple[int, int, int, int]:
        return self.window if self.window is not None else (0, 0, self.orig_w, self.orig_h)


def letterbox_size(img_w: int, img_h: int, net_w: int, net_h: int) -> tuple[int, int]:
    """darknet: fit the width if it is the tighter constraint, else the height (integer sizes)."""
    if net_w / img_w < net_h / img_h:
        new_w, new_h = net_w, (img_h * net_w) // img_w
    else:
        new_w, new_h = (img_w * net_h) // img_h, net_h
    return max(new_w, 1), max(new_h, 1)


def letterbox_info(img_w, img_h, net_w, net_h, orig_size=None, window=None) -> LetterboxInfo:
    """The placement of a ``img_w x img_h`` image in a ``net_w x net_h`` input.

    orig_size: (w, h) of the original when the image is a reduced decode of it; boxes are then
        mapped to and from original pixels.
    window: (x0, y0, x1, y1) integer pixels of the image to place instead of the whole image
        (may extend beyond it; the letterbox then keeps the window's aspect ratio).
    """
    if window is not None:
        if orig_size is not None:
            raise ValueError("a window is given in pixels of the decoded image: no orig_size")
        x0, y0, x1, y1 = (int(v) for v in window)
        window = (x0, y0, x1, y1)
        new_w, new_h = letterbox_size(x1 - x0, y1 - y0, net_w, net_h)
    else:
        new_w, new_h = letterbox_size(img_w, img_h, net_w, net_h)
    orig_w, orig_h = orig_size if orig_size is not None else (img_w, img_h)
    return LetterboxInfo(int(net_w), int(net_h), new_w, new_h, (net_w - new_w) // 2,
                         (net_h - new_h) // 2, int(orig_w), int(orig_h), window)


def _forward_affine(info: LetterboxInfo):
    """(scale_x, scale_y, offset_x, offset_y): normalised image -> normalised network input."""
    x0, y0, x1, y1 = info.placed_window
    sx, sy = info.new_w / (x1 - x0), info.new_h / (y1 - y0)     # network px per image px
    return (info.orig_w * sx / info.net_w, info.orig_h * sy / info.net_h,
            (info.dx - x0 * sx) / info.net_w, (info.dy - y0 * sy) / info.net_h)


def image_to_network(boxes, info: LetterboxInfo) -> np.ndarray:
    """Forward map: (n, 4) cxcywh normalised to the original image -> cxcywh normalised to the
    network input, float32, unclipped (see :func:`visible_region` for what shows the image)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scale_x, scale_y, offset_x, offset_y = _forward_affine(info)
    scale = np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
    offset = np.array([offset_x, offset_y, 0, 0], dtype=np.float32)
    return boxes * scale + offset


def network_to_image(boxes, info: LetterboxInfo, clip=True) -> np.ndarray:
    """Inverse map: (n, 4) cxcywh normalised to the network input -> xyxy pixels of the
    original image, float32; clipped to the image unless ``clip`` is False."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = info.placed_window
    sx = np.float32((x1 - x0) / info.new_w)     # original pixels per network pixel
    sy = np.float32((y1 - y0) / info.new_h)
    cx = (boxes[:, 0] * np.float32(info.net_w) - np.float32(info.dx)) * sx + np.float32(x0)
    cy = (boxes[:, 1] * np.float32(info.net_h) - np.float32(info.dy)) * sy + np.float32(y0)
    hw = boxes[:, 2] * np.float32(info.net_w) * sx * np.float32(0.5)
    hh = boxes[:, 3] * np.float32(info.net_h) * sy * np.float32(0.5)
    out = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
    return clip_xyxy(out, (0, 0, info.orig_w, info.orig_h)) if clip else out


def visible_region(info: LetterboxInfo) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) normalised to the network input: the part that shows image pixels
    (the placed window cut to the image; the rest is padding)."""
    x0, y0, x1, y1 = info.placed_window
    sx, sy = info.new_w / (x1 - x0), info.new_h / (y1 - y0)
    return ((info.dx + (max(x0, 0) - x0) * sx) / info.net_w,
            (info.dy + (max(y0, 0) - y0) * sy) / info.net_h,
            (info.dx + (min(x1, info.orig_w) - x0) * sx) / info.net_w,
            (info.dy + (min(y1, info.orig_h) - y0) * sy) / info.net_h)
