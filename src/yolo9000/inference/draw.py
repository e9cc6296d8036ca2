"""Draw detections on an image: box, label background, "name score" text, one colour per class.

Line width and font size scale with the image's long side so labels stay legible on thumbnails
and on 20-megapixel photos alike; labels are always kept inside the image.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# 20 vivid colours, ordered so that neighbouring ids contrast; far enough apart that any two
# classes below 20 can be told apart on a photo.
PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 200, 20), (145, 30, 180),
    (70, 240, 240), (245, 130, 48), (240, 50, 230), (170, 255, 60), (0, 128, 128),
    (250, 150, 190), (110, 60, 0), (120, 120, 255), (128, 0, 0), (0, 255, 150),
    (128, 128, 0), (255, 215, 180), (0, 0, 128), (255, 100, 100), (200, 160, 255),
]


def class_colour(cls: int) -> tuple[int, int, int]:
    """Deterministic colour for a class id: the palette, then darker/lighter rounds of it."""
    cls = int(cls)
    base = PALETTE[cls % len(PALETTE)]
    lap = cls // len(PALETTE)
    if lap == 0:
        return base
    # later laps alternate darker and lighter versions, with a little hue rotation
    hue, sat, val = colorsys.rgb_to_hsv(*(c / 255 for c in base))
    hue = (hue + 0.03 * lap) % 1.0
    val = val * 0.6 if lap % 2 else 0.4 + 0.6 * val
    r, g, b = colorsys.hsv_to_rgb(hue, sat, min(val, 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def _text_colour(bg) -> tuple[int, int, int]:
    luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def line_width(width: int, height: int) -> int:
    return max(1, round(max(width, height) / 320))


def font_size(width: int, height: int) -> int:
    return max(10, round(max(width, height) / 45))


@lru_cache(maxsize=32)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)   # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()             # fixed bitmap font on older Pillow


def label_text(det, names=None) -> str:
    name = getattr(det, "name", None)
    if not name:
        name = names[det.cls] if names is not None and det.cls < len(names) else str(det.cls)
    return f"{name} {det.score:.2f}"


def draw_detections(image, detections, names=None, scale=(1.0, 1.0)) -> Image.Image:
    """Return an RGB copy of ``image`` with the detections drawn.

    image: PIL image or (h, w, 3) uint8 array. detections: objects with ``box`` (x1, y1, x2, y2),
    ``cls``, ``score`` and optionally ``name``. ``scale`` = (sx, sy) multiplies the boxes, for
    drawing on a reduced copy of the image the boxes refer to.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB") if image.mode != "RGB" else image.copy()
    W, H = image.size
    lw = line_width(W, H)
    font = _font(font_size(W, H))
    draw = ImageDraw.Draw(image)
    # Draw low scores first so the most confident labels end up on top.
    for det in sorted(detections, key=lambda d: d.score):
        x1, y1, x2, y2 = (float(v) for v in det.box)
        x1, x2 = x1 * scale[0], x2 * scale[0]
        y1, y2 = y1 * scale[1], y2 * scale[1]
        # Pixel corners -> the last pixel row/column inside the box, kept in the image.
        left, top = min(max(round(x1), 0), W - 1), min(max(round(y1), 0), H - 1)
        right, bottom = min(max(round(x2) - 1, left), W - 1), min(max(round(y2) - 1, top), H - 1)
        colour = class_colour(det.cls)
        draw.rectangle([left, top, right, bottom], outline=colour, width=lw)
        _draw_label(draw, label_text(det, names), font, colour, left, top, W, H, lw)
    return image


def _draw_label(draw, text, font, colour, left, top, W, H, lw):
    tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), text, font=font)
    pad = max(1, lw)
    box_w, box_h = tx1 - tx0 + 2 * pad, ty1 - ty0 + 2 * pad
    # Above the box when there is room, else just inside its top edge; shifted left if it
    # would leave the image on the right.
    y = top - box_h if top - box_h >= 0 else top
    y = min(y, max(H - box_h, 0))
    x = min(left, max(W - box_w, 0))
    draw.rectangle([x, y, x + box_w - 1, y + box_h - 1], fill=colour)
    draw.text((x + pad - tx0, y + pad - ty0), text, fill=_text_colour(colour), font=font)
