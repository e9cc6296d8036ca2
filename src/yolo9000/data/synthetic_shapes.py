"""A synthetic detection dataset: coloured shapes on cluttered, noisy backgrounds.

Five classes (circle, square, triangle, star, cross); colour is NOT the class. Each image holds
1-6 shapes from ~8% to ~60% of the image side, randomly rotated, possibly overlapping but each
kept at least MIN_VISIBLE visible, on a background of colour gradients, soft blobs, lines and
Gaussian noise. Small enough to learn on a CPU, busy enough that a detector must look at shape.

Boxes come from the geometry: every shape is a polygon (a circle is a 64-gon), rotated and
placed in continuous pixel coordinates, and its box is the extent of its vertices. The polygon
is rasterised 4x supersampled, so the drawn pixels and the box agree to a fraction of a pixel.
A box is the full (amodal) extent of its shape even where another shape covers part of it.

Layout written by `make_shapes` (darknet's):

    OUT/images/{train,val}/000000.jpg    images
    OUT/labels/{train,val}/000000.txt    one "class cx cy w h" line per shape, normalised
    OUT/classes.names                    class names, one per line
    OUT/train.txt, OUT/val.txt           image paths RELATIVE TO OUT, one per line
    OUT/shapes.data                      classes=, train=, valid=, names= (relative to OUT)

Every image gets its own random stream seeded by (seed, split, index), so a seed fixes every
pixel and label byte regardless of worker count.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..boxes import clip_xyxy, xyxy_to_cxcywh
from ..errors import UserError
from ..fileio import atomic_write_text, check_output_path

CLASS_NAMES = ("circle", "square", "triangle", "star", "cross")
# more shapes, for the word-tree demo's hierarchy (data/synthetic_hierarchy.py)
REGULAR_POLYGONS = {"pentagon": 5, "hexagon": 6}
SHAPE_NAMES = CLASS_NAMES + ("pentagon", "hexagon", "ellipse", "ring")
MIN_SIZE, MAX_SIZE = 0.08, 0.60      # shape box side as a fraction of the image side
MAX_OBJECTS = 6
MIN_VISIBLE = 0.6                    # fraction of a shape's area that must stay uncovered
SUPERSAMPLE = 4
MIN_COLOR_DISTANCE = 70.0            # RGB distance between a shape and what lies under it
_SPLITS = {"train": 0, "val": 1}


@dataclass(frozen=True)
class Difficulty:
    """How hard the images are: shape sizes (fraction of the image side), shapes per image
    and the range of the Gaussian noise's sigma (0-255 scale)."""
    min_size: float = MIN_SIZE
    max_size: float = MAX_SIZE
    max_objects: int = MAX_OBJECTS
    noise: tuple = (3.0, 14.0)


STANDARD = Difficulty()
# The demo's setting: the same shapes, colours and clutter, but at most four shapes per image,
# milder noise and no shape under a fifth of the image side (at 128 px the 8 %-20 % shapes of
# STANDARD are 10-25 px, where stars, crosses and squares blur together after JPEG and most of
# a short run's classification errors were), so a small model gets to a high mAP in minutes on
# two CPU cores.
DEMO = Difficulty(min_size=0.2, max_size=0.6, max_objects=4, noise=(2.0, 8.0))
_OUR_FILE = re.compile(r"^\d{6}\.(jpg|png|txt)$")


# -- geometry ------------------------------------------------------------------------------

def _unit_polygon(name: str, rng) -> np.ndarray:
    """Vertices (k, 2) of a shape centred on 0 with circumradius 1 (a ring is one polygon
    running round the outer circle and back round the inner one, which Pillow fills as a
    ring)."""
    if name in REGULAR_POLYGONS:
        k = REGULAR_POLYGONS[name]
        a = -np.pi / 2 + np.arange(k) * 2 * np.pi / k
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "ellipse":
        a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack([np.cos(a), rng.uniform(0.35, 0.5) * np.sin(a)], 1)
    if name == "ring":
        a = np.linspace(0, 2 * np.pi, 65)
        inner = rng.uniform(0.5, 0.62)
        outer = np.stack([np.cos(a), np.sin(a)], 1)
        return np.concatenate([outer, inner * outer[::-1]])
    if name == "circle":
        a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "square":
        a = np.pi / 4 + np.arange(4) * np.pi / 2
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "triangle":
        a = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "star":
        inner = rng.uniform(0.38, 0.5)
        a = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if name == "cross":
        w = rng.uniform(0.26, 0.36)     # half-width of an arm, arms reach 1
        return np.array([[w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1],
                         [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w], [-w, -1]], float)
    raise ValueError(name)


def _random_shape(name: str, size: int, rng, difficulty=STANDARD) -> np.ndarray:
    """Polygon (k, 2) in pixel coordinates, rotated, scaled and placed inside the image."""
    poly = _unit_polygon(name, rng)
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    poly = poly @ np.array([[c, s], [-s, c]])
    extent = poly.max(0) - poly.min(0)
    # Log-uniform box side: as many small shapes per octave as large ones.
    side = size * np.exp(rng.uniform(np.log(difficulty.min_size), np.log(difficulty.max_size)))
    poly = poly * (side / extent.max())
    lo, hi = poly.min(0), poly.max(0)
    offset = rng.uniform(-lo, size - hi)
    return poly + offset


def _rasterise(poly: np.ndarray, size: int):
    """Coverage in [0, 1] of a polygon: (alpha (h, w) float32, x0, y0) of its pixel crop."""
    x0, y0 = np.floor(poly.min(0)).astype(int)
    x1, y1 = np.ceil(poly.max(0)).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(max(x1, x0 + 1), size), min(max(y1, y0 + 1), size)
    w, h = x1 - x0, y1 - y0
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    # Pillow puts sub-pixel k's centre at coordinate k, continuous u lies at u*SS - 0.5.
    pts = (poly - [x0, y0]) * SUPERSAMPLE - 0.5
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in pts], fill=255)
    alpha = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    return alpha, x0, y0


# -- appearance ----------------------------------------------------------------------------

def _hsv_to_rgb(h, s, v):
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i],
                    np.float32) * 255


def _random_color(rng):
    if rng.uniform() < 0.15:           # some greys, blacks and whites
        return np.full(3, rng.uniform(0, 255), np.float32)
    return _hsv_to_rgb(rng.uniform(), rng.uniform(0.4, 1.0), rng.uniform(0.35, 1.0))


def _background(size: int, rng) -> np.ndarray:
    """(size, size, 3) float32 in 0..255: gradient, colour blotches, soft blobs and lines."""
    axis = np.arange(size, dtype=np.float32) / size
    theta = rng.uniform(0, 2 * np.pi)
    ramp = axis[None, :] * np.float32(np.cos(theta)) + axis[:, None] * np.float32(np.sin(theta))
    ramp -= ramp.min()
    ramp /= max(float(ramp.max()), 1e-6)
    a, b = _random_color(rng), _random_color(rng)

    # Low-frequency colour blotches: a tiny random image blown up smoothly.
    grid = rng.integers(88, 169, (4, 4, 3)).astype(np.uint8)
    blotch = np.asarray(Image.fromarray(grid, "RGB").resize((size, size), Image.BICUBIC),
                        dtype=np.float32) - 128.0
    img = a + (b - a) * ramp[..., None] + blotch

    # Soft blobs: drawn and blurred at quarter resolution, then scaled up (cheap and smooth).
    small = max(size // 4, 8)
    k = small / size
    blobs = Image.new("RGBA", (small, small), (0, 0, 0, 0))
    draw = ImageDraw.Draw(blobs)
    for _ in range(rng.integers(2, 8)):
        cx, cy = rng.uniform(0, size, 2) * k
        rx, ry = rng.uniform(0.04, 0.25, 2) * size * k
        color = tuple(int(v) for v in _random_color(rng)) + (int(rng.uniform(40, 110)),)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=color)
    blobs = blobs.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.4, 1.0))))
    blobs = blobs.resize((size, size), Image.BILINEAR)
    layer = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    layer = Image.alpha_composite(layer, blobs)

    lines = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(lines)
    for _ in range(rng.integers(1, 6)):
        p = rng.uniform(-0.1, 1.1, 4) * size
        color = tuple(int(v) for v in _random_color(rng)) + (int(rng.uniform(70, 170)),)
        draw.line([tuple(p[:2]), tuple(p[2:])], fill=color,
                  width=int(rng.integers(1, max(2, size // 60) + 1)))
    layer = Image.alpha_composite(layer, lines).convert("RGB")
    return np.asarray(layer, dtype=np.float32)


def _shape_color(img, alpha, x0, y0, rng, overlapped=()):
    """A colour far enough from what the shape will cover and from the shapes it overlaps,
    so that touching shapes never merge into one blob (else the best of a few tries)."""
    h, w = alpha.shape
    under = img[y0:y0 + h, x0:x0 + w]
    weight = alpha.sum()
    mean_under = (under * alpha[..., None]).sum((0, 1)) / max(weight, 1e-6)
    avoid = [mean_under] + list(overlapped)
    best, best_d = None, -1.0
    for _ in range(12):
        color = _random_color(rng)
        d = min(float(np.linalg.norm(color - other)) for other in avoid)
        if d >= MIN_COLOR_DISTANCE:
            return color
        if d > best_d:
            best, best_d = color, d
    return best


# -- one sample ----------------------------------------------------------------------------

def render_sample(rng, size=160, return_masks=False, difficulty=STANDARD, class_names=CLASS_NAMES):
    """Render one image of shapes drawn from `class_names` (any of SHAPE_NAMES).

    rng: a numpy Generator (the only source of randomness). Returns
    (PIL RGB image, boxes (n, 4) float32 normalised [cx, cy, w, h], classes (n,) int64),
    plus, with return_masks=True, masks (n, size, size) float32: each shape's full pixel
    coverage in [0, 1] before anything is drawn over it. Objects are listed in drawing order
    (bottom first), so shape i is covered by shapes i+1.. only.
    """
    img = _background(size, rng)
    n_wanted = int(rng.integers(1, difficulty.max_objects + 1))
    full = []            # (alpha crop, x0, y0) per kept object
    visible = []         # (size, size) uncovered coverage per kept object
    full_area, visible_area = [], []
    colors = []
    polys, classes = [], []
    for _ in range(n_wanted):
        for _attempt in range(20):
            cls = int(rng.integers(len(class_names)))
            poly = _random_shape(class_names[cls], size, rng, difficulty)
            alpha, x0, y0 = _rasterise(poly, size)
            h, w = alpha.shape
            if alpha.sum() < 4:         # a sliver too thin to see; draw another
                continue
            covered = [float((vis[y0:y0 + h, x0:x0 + w] * alpha).sum()) for vis in visible]
            if all(left - c >= MIN_VISIBLE * area
                   for left, c, area in zip(visible_area, covered, full_area)):
                break
        else:
            continue                    # no room for this one; fewer objects is fine
        for i, vis in enumerate(visible):
            vis[y0:y0 + h, x0:x0 + w] *= 1.0 - alpha
            visible_area[i] -= covered[i]
        mine = np.zeros((size, size), np.float32)
        mine[y0:y0 + h, x0:x0 + w] = alpha
        visible.append(mine)
        full.append((alpha, x0, y0))
        full_area.append(float(alpha.sum()))
        visible_area.append(full_area[-1])
        polys.append(poly)
        classes.append(cls)

        color = _shape_color(img, alpha, x0, y0, rng,
                             [colors[i] for i, c in enumerate(covered) if c > 0])
        colors.append(color)
        # A gentle shading ramp across the shape so fills are not perfectly flat.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        g = rng.uniform(-0.25, 0.25, 2) / max(h, w)
        shade = 1.0 + (xx - w / 2) * g[0] + (yy - h / 2) * g[1]
        fill = np.clip(color * shade[..., None], 0, 255)
        region = img[y0:y0 + h, x0:x0 + w]
        region += (fill - region) * alpha[..., None]

    sigma = rng.uniform(*difficulty.noise)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    img += 0.5
    image = Image.fromarray(np.clip(img, 0, 255, out=img).astype(np.uint8), "RGB")

    corners = np.array([np.concatenate([poly.min(0), poly.max(0)]) for poly in polys],
                       np.float64).reshape(-1, 4)
    boxes = xyxy_to_cxcywh(clip_xyxy(corners, (0, 0, size, size))).astype(np.float32)
    boxes /= size
    classes = np.array(classes, np.int64)
    if not return_masks:
        return image, boxes, classes
    masks = np.zeros((len(full), size, size), np.float32)
    for i, (alpha, x0, y0) in enumerate(full):
        masks[i, y0:y0 + alpha.shape[0], x0:x0 + alpha.shape[1]] = alpha
    return image, boxes, classes, masks


def sample_rng(seed: int, split: str, index: int):
    """The random stream of one image: independent of every other image and of worker count."""
    return np.random.default_rng([int(seed), _SPLITS[split], int(index)])


def label_text(boxes, classes) -> str:
    return "".join(f"{int(c)} {b[0]:.6f} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f}\n"
                   for b, c in zip(boxes, classes))


# -- the dataset on disk -------------------------------------------------------------------

def _write_one(args):
    out_dir, split, index, size, seed, image_format, difficulty = args
    image, boxes, classes = render_sample(sample_rng(seed, split, index), size,
                                          difficulty=difficulty)
    stem = f"{index:06d}"
    image_path = out_dir / "images" / split / f"{stem}.{image_format}"
    if image_format == "jpg":
        image.save(image_path, quality=92)
    else:
        image.save(image_path, compress_level=1)
    (out_dir / "labels" / split / f"{stem}.txt").write_text(label_text(boxes, classes),
                                                             encoding="utf-8")
    return len(classes)


def _prepare_out_dir(out_dir: Path):
    check_output_path(out_dir, "dataset", folder=True)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "shapes.data").is_file():
        raise UserError("folder is not empty and holds no earlier shapes dataset "
                        "(no shapes.data); choose a new or empty folder", path=out_dir)
    for kind in ("images", "labels"):
        for split in _SPLITS:
            folder = out_dir / kind / split
            folder.mkdir(parents=True, exist_ok=True)
            # A previous, larger run would leave extra images that a folder scan would see.
            for f in folder.iterdir():
                if _OUR_FILE.match(f.name):
                    f.unlink()


def make_shapes(out_dir, n_train=2000, n_val=200, size=160, seed=0, image_format="jpg",
                workers=1, progress=None, difficulty=STANDARD) -> dict:
    """Write the dataset (layout in the module docstring) and return its paths.

    progress: optional callable(done, total) called as images are written. workers > 1 renders
    in that many processes; the output is identical either way.
    Returns {'root', 'data', 'names', 'train', 'val', 'images', 'labels'} -> Path, plus
    'objects' -> total number of shapes written.
    """
    if image_format not in ("jpg", "png"):
        raise UserError(f"image format must be jpg or png, not {image_format!r}")
    if size < 32:
        raise UserError(f"image size {size} is too small (at least 32 pixels)")
    if n_train < 0 or n_val < 0 or n_train + n_val == 0:
        raise UserError("need at least one image (train + val > 0, neither negative)")
    out_dir = Path(out_dir).expanduser().resolve()
    _prepare_out_dir(out_dir)

    jobs = [(out_dir, split, i, size, seed, image_format, difficulty)
            for split, n in (("train", n_train), ("val", n_val)) for i in range(n)]
    total_objects = 0
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done, n_obj in enumerate(pool.map(_write_one, jobs, chunksize=32), start=1):
                total_objects += n_obj
                if progress:
                    progress(done, len(jobs))
    else:
        for done, job in enumerate(jobs, start=1):
            total_objects += _write_one(job)
            if progress:
                progress(done, len(jobs))

    # Lists, names and .data last: a dataset interrupted mid-way has no usable .data file.
    paths = {"root": out_dir, "images": out_dir / "images", "labels": out_dir / "labels"}
    for split, n in (("train", n_train), ("val", n_val)):
        listing = "".join(f"images/{split}/{i:06d}.{image_format}\n" for i in range(n))
        paths[split] = out_dir / f"{split}.txt"
        atomic_write_text(paths[split], listing)
    paths["names"] = out_dir / "classes.names"
    atomic_write_text(paths["names"], "".join(f"{n}\n" for n in CLASS_NAMES))
    paths["data"] = out_dir / "shapes.data"
    atomic_write_text(paths["data"], f"classes = {len(CLASS_NAMES)}\ntrain = train.txt\n"
                                 f"valid = val.txt\nnames = classes.names\n")
    paths["objects"] = total_objects
    return paths
