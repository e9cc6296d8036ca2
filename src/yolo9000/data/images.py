"""Images, in one place: which files are images, decoding to RGB, the letterbox pixels, and the
format an image is written in.

``load_image`` turns any file / PIL image / array into an 8-bit RGB array (plus the original
size); ``letterbox`` resizes it (or a pixel window of it) into the network input keeping the
aspect ratio, for the detector and for training alike, and returns the placement
(``yolo9000.boxes.LetterboxInfo``) through which boxes are mapped both ways.

Conversion choices (all images end up 8-bit RGB, as darknet's stb_image loader does):
- EXIF orientation is applied first, so sizes and boxes refer to the image as it is displayed
  (``image_size`` reports that size too, without decoding).
- Greyscale / bilevel: replicated to three channels.
- Alpha (RGBA, LA, PA, palette with transparency): composited on 50 % grey, the letterbox
  padding colour, so transparent areas look like "nothing" to the network instead of whatever
  colour happens to be stored under the transparent pixels (often black).
- CMYK, YCbCr, HSV, ...: Pillow's conversion to RGB.
- 16-bit (I;16*, I): scaled by 1/257 to 8 bits, never clipped at 255.
- 32-bit float (F): taken as [0, 1] if its maximum is <= 1, else as [0, 255].

Large images are decoded at reduced size when they exceed ``REDUCE_ABOVE`` pixels on their long
side *and* twice the letterboxed size (JPEG: DCT-domain ``Image.draft``, cheap in time and
memory; others: ``Image.reduce``, a box filter). The network input is at most a few hundred
pixels anyway; ``LoadedImage.width/height`` always hold the original size, so boxes come out in
original pixels. Images over Pillow's decompression-bomb limit are refused with a clear error.
Training decodes every large image reduced (``ANY_NET_SIZE``: the size cannot depend on the
multi-scale size of the batch that first needs it), and a data worker refuses to decode more
than ``worker_pixel_limit`` pixels (``ImageTooLarge``): a PNG, which only decodes whole, of
13000x13000 would take 676 MB in Pillow alone.
"""
from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..boxes import letterbox_info, letterbox_size
from ..errors import UserError
from ..fileio import atomic_path
from ..memory import available_memory, describe_bytes

# The files taken for images when a folder is scanned (detect, datasets); compared lower-cased.
# Each with the Pillow format an image made from one (detect's annotated copy) is written in,
# when Pillow writes it losslessly or as the user expects; None: such an image becomes a PNG.
IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG",
                 ".bmp": "BMP", ".gif": None, ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
                 ".ppm": None, ".pgm": None, ".pbm": None, ".pnm": None, ".tga": None,
                 ".ico": None}
IMAGE_SUFFIXES = frozenset(IMAGE_FORMATS)
# darknet fills letterbox borders and out-of-image crop regions with grey .5
PAD_VALUE = 0.5
# Below this long side an image is never decoded at reduced size, so ordinary photos keep their
# full resolution (and annotated outputs look like the input).
REDUCE_ABOVE = 2048
# net_size for a decode that serves any network size: large images are reduced to REDUCE_ABOVE
# on their long side, more than twice the largest size training uses
ANY_NET_SIZE = "any"
# Pillow holds a decoded RGB image as 4 bytes a pixel: the peak of a decode, whatever is then
# reduced and kept of it
DECODE_BYTES_PER_PIXEL = 4
# The most pixels a data worker decodes for one image (a JPEG's counted as decoded reduced):
# 8192 x 8192, 256 MiB at the peak; the network sees a few hundred pixels a side
MAX_WORKER_DECODE_PIXELS = 8192 * 8192


class ImageTooLarge(UserError):
    """An image whose decode would take more pixels than the decoder may (load_image's
    max_pixels): training skips it with a warning."""


def worker_pixel_limit(workers):
    """The most pixels each of `workers` data processes may decode for one image: so that all
    of them decoding at once fit in half the memory available (the other half is the
    training's), and at most MAX_WORKER_DECODE_PIXELS."""
    limit = MAX_WORKER_DECODE_PIXELS
    available = available_memory()
    if available is not None:
        limit = min(limit, available // (2 * max(1, workers) * DECODE_BYTES_PER_PIXEL))
    return limit

_EXIF_ORIENTATION = 0x0112
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def is_image_name(path) -> bool:
    """Whether a file name has one of the image suffixes (any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def written_suffix(path) -> str:
    """The suffix of an image written from the image `path`: its own (lower-cased) when its
    format is kept (IMAGE_FORMATS), else .png."""
    suffix = Path(path).suffix.lower()
    return suffix if IMAGE_FORMATS.get(suffix) else ".png"


def save_image(image, path, what="image"):
    """Write a PIL image in the format its suffix names (PNG for a suffix whose format is not
    kept), atomically; JPEG and WebP at quality 92. A failure is a UserError naming `what`."""
    fmt = IMAGE_FORMATS.get(Path(path).suffix.lower()) or "PNG"
    options = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format=fmt, **options)
    except OSError as e:
        raise UserError(f"cannot write the {what}: {e}", path=path) from None


@dataclass
class LoadedImage:
    """An image ready for letterboxing. ``rgb`` may be smaller than ``width`` x ``height``."""
    rgb: np.ndarray        # uint8 (h, w, 3)
    width: int             # original width in pixels (after EXIF orientation)
    height: int            # original height in pixels
    path: str | None = None

    @property
    def reduced(self) -> bool:
        return self.rgb.shape[1] != self.width or self.rgb.shape[0] != self.height


# -- letterbox pixels -------------------------------------------------------------------------
def _lerp_axis(n_in: int, n_out: int):
    """Source index and weight for each output position, corners aligned (darknet resize_image)."""
    if n_in == 1 or n_out == 1:
        return np.zeros(n_out, np.intp), np.zeros(n_out, np.intp), np.zeros(n_out, np.float32)
    pos = np.arange(n_out, dtype=np.float64) * ((n_in - 1) / (n_out - 1))
    i0 = np.minimum(pos.astype(np.intp), n_in - 2)
    return i0, i0 + 1, (pos - i0).astype(np.float32)


def resize_bilinear(img: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """Bilinear resize of an (h, w, c) array with darknet's sampling grid; float32 out.

    Separable, columns first, so the full-size input is only ever gathered, never converted to
    float as a whole (uint8 input stays cheap for large images). Each pass is
    a + (b - a) * f, computed in place on b's gathered copy (`take` gathers several times
    faster than fancy indexing, and no temporaries are made): 640x360 -> 416x234 in 1.5 ms
    instead of 4.
    """
    h, w = img.shape[:2]
    x0, x1, fx = _lerp_axis(w, new_w)
    y0, y1, fy = _lerp_axis(h, new_h)
    left = img.take(x0, axis=1).astype(np.float32, copy=False)
    cols = img.take(x1, axis=1).astype(np.float32, copy=False)
    cols -= left
    cols *= fx[None, :, None]
    cols += left
    top = cols.take(y0, axis=0)
    out = cols.take(y1, axis=0)
    out -= top
    out *= fy[:, None, None]
    out += top
    return out


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 (0..255) -> float32 in [0, 1]; float input is taken as [0, 1] already."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.asarray(img, dtype=np.float32)


def _crop(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """img[y0:y1, x0:x1] where the window may leave the image; outside pixels are PAD_VALUE.

    A window inside the image stays a (uint8) view, so a training input without jitter is
    resized from the very same array as the detector's and gets the same pixels.
    """
    src_h, src_w = img.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= src_w and y1 <= src_h:
        return img[y0:y1, x0:x1]
    crop = np.full((y1 - y0, x1 - x0, 3), PAD_VALUE, dtype=np.float32)
    vx0, vx1 = max(x0, 0), min(x1, src_w)
    vy0, vy1 = max(y0, 0), min(y1, src_h)
    if vx1 > vx0 and vy1 > vy0:
        crop[vy0 - y0:vy1 - y0, vx0 - x0:vx1 - x0] = to_float(img[vy0:vy1, vx0:vx1])
    return crop


def letterbox(img: np.ndarray, width: int, height: int, orig_size=None, window=None):
    """darknet's letterbox_image: an (h, w, 3) RGB image into a (3, height, width) float32
    array in [0, 1], resized keeping its aspect ratio, centred, padded with PAD_VALUE.

    ``img`` is uint8 (0..255) or float (0..1). ``orig_size`` = (w, h) of the original image
    when ``img`` is a reduced decode of it, so the returned info maps boxes to original pixels.
    ``window`` = (x0, y0, x1, y1): place this integer pixel window of ``img`` instead of the
    whole image (darknet's crop for training jitter); parts beyond the image are PAD_VALUE.
    Returns (array, ``yolo9000.boxes.LetterboxInfo``).
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) image, got shape {img.shape}")
    h, w = img.shape[:2]
    info = letterbox_info(w, h, width, height, orig_size=orig_size, window=window)
    source = img if window is None else _crop(img, *info.placed_window)
    resized = resize_bilinear(source, info.new_w, info.new_h)
    if source.dtype == np.uint8:
        resized *= np.float32(1.0 / 255.0)
    np.clip(resized, 0.0, 1.0, out=resized)
    out = np.full((3, height, width), PAD_VALUE, dtype=np.float32)
    out[:, info.dy:info.dy + info.new_h, info.dx:info.dx + info.new_w] = resized.transpose(2, 0, 1)
    return out, info


# -- loading ------------------------------------------------------------------------------------
def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow image -> uint8 (h, w, 3) RGB array, following the module's conversion rules."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # Pillow's own convert("RGB") clips 16-bit values at 255; scale them instead.
        grey = np.asarray(img).astype(np.float32) / np.float32(257.0)
        return _grey_to_rgb(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    if mode == "F":
        grey = np.asarray(img, dtype=np.float32)
        finite_max = float(np.nanmax(grey)) if grey.size else 0.0
        scale = 255.0 if finite_max <= 1.0 else 1.0
        grey = np.nan_to_num(grey * np.float32(scale))
        return _grey_to_rgb(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    if mode in ("1", "L"):
        return _grey_to_rgb(np.asarray(img.convert("L")))
    has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] * np.float32(1.0 / 255.0)
        rgb = rgba[..., :3] * alpha + np.float32(255.0 * PAD_VALUE) * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """A user-supplied array -> uint8 RGB. Floats are taken as [0, 1], uint16 as 16-bit."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise UserError(f"expected an (h, w), (h, w, 3) or (h, w, 4) image array, got {arr.shape}")
    if arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / np.float32(257.0)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32) * np.float32(255.0)
    elif arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
    if arr.shape[2] == 4:
        alpha = arr[..., 3:].astype(np.float32) * np.float32(1.0 / 255.0)
        arr = arr[..., :3].astype(np.float32) * alpha + np.float32(255.0 * PAD_VALUE) * (1.0 - alpha)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = _grey_to_rgb(arr[..., 0])
    return np.ascontiguousarray(arr)


def _png_exif_after_data(fp) -> bytes | None:
    """The eXIf chunk of a PNG that stores it after its image data, or None: read from chunk
    header to chunk header. (Pillow looks for it by decoding the whole image, 676 MB for a
    13000x13000 PNG, only to learn its orientation.)"""
    start = fp.tell()
    try:
        fp.seek(len(b"\x89PNG\r\n\x1a\n"))
        while len(header := fp.read(8)) == 8:
            length, kind = struct.unpack(">I4s", header)
            if kind == b"eXIf":
                return fp.read(length)
            if kind == b"IEND":
                break
            fp.seek(length + 4, os.SEEK_CUR)         # the data and its CRC
        return None
    finally:
        fp.seek(start)


def _exif(img: Image.Image) -> Image.Exif:
    """The image's EXIF, read without decoding pixels."""
    if img.format == "PNG" and "exif" not in img.info and img.fp is not None:
        exif = Image.Exif()
        trailing = _png_exif_after_data(img.fp)
        if trailing is not None:
            exif.load(trailing)
        return exif
    return img.getexif()


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """The size after EXIF orientation, read without decoding pixels."""
    try:
        orientation = _exif(img).get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not make the image unreadable
        orientation = 1
    w, h = img.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _reduce_target(w: int, h: int, net_size) -> tuple[int, int] | None:
    """Smallest stored size we still want to decode, or None to decode at full size."""
    if net_size is None or max(w, h) <= REDUCE_ABOVE:
        return None
    scale = REDUCE_ABOVE / max(w, h)
    if net_size != ANY_NET_SIZE:
        new_w, new_h = letterbox_size(w, h, *net_size)
        scale = max(2 * new_w / w, 2 * new_h / h, scale)
    if scale >= 0.5:
        return None
    return max(1, int(np.ceil(w * scale))), max(1, int(np.ceil(h * scale)))


def _open_path(path, net_size=None, max_pixels=None) -> LoadedImage:
    """Read an image file; every failure becomes a one-line UserError naming the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError("no such file", path=path)
    if os.path.isdir(path):
        raise UserError("is a directory, not an image", path=path)
    if os.path.getsize(path) == 0:
        raise UserError("empty file, not an image", path=path)
    try:
        with warnings.catch_warnings():
            # The bomb *warning* (between 1x and 2x the limit) is fine: we decode reduced.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return _decode(img, path, net_size, max_pixels)
    except UserError:
        raise
    except Image.DecompressionBombError as e:
        raise UserError(f"image too large to decode safely ({e})", path=path) from None
    except UnidentifiedImageError:
        raise UserError("not an image (unrecognised format)", path=path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow reports truncated / corrupt data as OSError (sometimes SyntaxError/ValueError).
        raise UserError(f"cannot decode image (corrupt or truncated): {e}", path=path) from None
    except MemoryError:
        raise UserError("not enough memory to decode this image", path=path) from None


def _decode(img: Image.Image, path, net_size, max_pixels=None) -> LoadedImage:
    orig_w, orig_h = _oriented_size(img)
    target = _reduce_target(orig_w, orig_h, net_size)
    if target is not None and (orig_w, orig_h) != img.size:
        target = target[::-1]  # draft/reduce work on the stored (unrotated) pixels
    if target is not None and img.format == "JPEG":
        img.draft(None, target)
    decoded = img.size[0] * img.size[1]     # after draft: the pixels the decoder makes
    if max_pixels is not None and decoded > max_pixels:
        cost = describe_bytes(decoded * DECODE_BYTES_PER_PIXEL)
        raise ImageTooLarge(f"{orig_w}x{orig_h} {img.format or ''} image: decoding it takes "
                            f"{decoded / 1e6:.0f} Mpx ({cost}), more than the "
                            f"{max_pixels / 1e6:.0f} Mpx a data worker may decode", path=path)
    img.load()
    if target is not None:
        factor = min(img.size[0] // target[0], img.size[1] // target[1])
        if factor >= 2:
            img = img.reduce(factor)
    img = ImageOps.exif_transpose(img)
    return LoadedImage(rgb=pil_to_rgb(img), width=orig_w, height=orig_h, path=path)


def load_image(source, net_size=None, max_pixels=None) -> LoadedImage:
    """Path, PIL image or numpy array -> LoadedImage.

    ``net_size`` (w, h) lets large images be decoded at reduced size (see module docstring);
    ANY_NET_SIZE for a decode that serves every size. ``max_pixels``: a file whose decode takes
    more pixels is an ImageTooLarge error, raised before decoding.
    Arrays are taken as RGB (uint8 0..255, uint16 0..65535 or float 0..1). A file that is
    missing or cannot be decoded is a one-line UserError naming it.
    """
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, Image.Image):
        img = ImageOps.exif_transpose(source)
        return LoadedImage(rgb=pil_to_rgb(img), width=img.width, height=img.height,
                           path=getattr(source, "filename", None) or None)
    if isinstance(source, np.ndarray):
        rgb = array_to_rgb(source)
        return LoadedImage(rgb=rgb, width=rgb.shape[1], height=rgb.shape[0])
    if isinstance(source, (str, os.PathLike)):
        return _open_path(source, net_size, max_pixels)
    raise UserError(f"cannot read an image from a {type(source).__name__}")


def image_size(path) -> tuple[int, int]:
    """(width, height) of an image file as ``load_image`` returns it (EXIF orientation applied),
    read from the header without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            # between 1x and 2x Pillow's pixel limit: loadable, load_image decodes it reduced
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return _oriented_size(img)
    except FileNotFoundError:
        raise UserError("image not found", path=path) from None
    except Image.DecompressionBombError as e:
        raise UserError(f"image too large to decode safely ({e})", path=path) from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image header: {e}", path=path) from None


# How far from the end of a JPEG/PNG file its end marker is looked for: a writer may append a
# little data after it, and the tail read stays cheap next to a decode.
_END_MARKER_WINDOW = 64 * 1024
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}


def check_image_file(path) -> tuple[int, int]:
    """(width, height) of an image file, after a check that costs no decode: Pillow must
    recognise the header and find a positive size, and a JPEG or PNG must still hold its
    end-of-image marker near its end. A file cut short (an interrupted download or copy)
    fails that last test, so it is refused when a dataset is read rather than when training
    first decodes it. Raises a one-line UserError naming the file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError("is a directory, not an image", path=path)
    try:
        if os.path.getsize(path) == 0:
            raise UserError("empty file, not an image", path=path)
        with warnings.catch_warnings():
            # between 1x and 2x Pillow's pixel limit: loadable, load_image decodes it reduced
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = _oriented_size(img)
                image_format = img.format
        if width <= 0 or height <= 0:
            raise UserError(f"image size {width}x{height} is not positive", path=path)
        marker = _END_MARKERS.get(image_format)
        if marker is not None:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - _END_MARKER_WINDOW))
                if marker not in f.read():
                    raise UserError(f"{image_format} file has no end-of-image marker "
                                    "(truncated?)", path=path)
    except FileNotFoundError:
        raise UserError("image not found", path=path) from None
    except UnidentifiedImageError:
        raise UserError("not an image (unrecognised format)", path=path) from None
    except Image.DecompressionBombError as e:
        raise UserError(f"image too large to decode safely ({e})", path=path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UserError(f"cannot read image header: {e}", path=path) from None
    return width, height
