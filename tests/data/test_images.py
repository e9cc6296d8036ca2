"""data/images.py: which files are images, loading (modes, EXIF, bad files, large images) and
darknet's letterbox pixels (whole image and training windows)."""
import io

import numpy as np
import pytest
from PIL import Image

from yolo9000.boxes import image_to_network
from yolo9000.data.images import (IMAGE_SUFFIXES, PAD_VALUE, LoadedImage, image_size,
                                  is_image_name, letterbox, load_image, pil_to_rgb,
                                  resize_bilinear, save_image, written_suffix)
from yolo9000.errors import UserError


# -- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.gif", "f.tif",
                                  "g.TIFF", "h.webp", "i.ppm", "j.pgm", "k.pbm", "l.pnm",
                                  "m.jfif", "n.jpe", "o.tga", "p.ico", "dir.v2/q.jpg"])
def test_image_names(name):
    assert is_image_name(name)


@pytest.mark.parametrize("name", ["a.txt", "b.xml", "c.jpg.txt", "jpg", "d.json", "e.npy",
                                  "f.data", "g"])
def test_not_image_names(name):
    assert not is_image_name(name)


def test_suffixes_are_lower_case_with_a_dot():
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


# -- writing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, suffix, pillow_format", [
    ("a.jpg", ".jpg", "JPEG"), ("b.JPEG", ".jpeg", "JPEG"), ("c.jfif", ".jfif", "JPEG"),
    ("d.jpe", ".jpe", "JPEG"), ("e.Png", ".png", "PNG"), ("f.bmp", ".bmp", "BMP"),
    ("g.tif", ".tif", "TIFF"), ("h.TIFF", ".tiff", "TIFF"), ("i.webp", ".webp", "WEBP"),
    ("j.gif", ".png", "PNG"), ("k.ppm", ".png", "PNG"), ("l.tga", ".png", "PNG"),
    ("m.ico", ".png", "PNG"), ("no_suffix", ".png", "PNG"), ("n.txt", ".png", "PNG")])
def test_an_image_written_from_another_keeps_its_format_or_becomes_a_png(
        tmp_path, name, suffix, pillow_format):
    assert written_suffix(f"folder/{name}") == suffix
    path = tmp_path / ("out" + suffix)
    save_image(Image.new("RGB", (8, 6), (10, 200, 30)), path)
    with Image.open(path) as written:
        assert written.format == pillow_format and written.size == (8, 6)


def test_an_image_that_cannot_be_written_is_a_user_error_naming_it(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(UserError, match="cannot write the annotated image") as error:
        save_image(Image.new("RGB", (4, 4)), tmp_path / "a_file" / "out.png", "annotated image")
    assert "out.png" in str(error.value)


# -- letterbox ---------------------------------------------------------------------------------
def test_letterbox_places_image_centred_on_grey():
    img = np.full((576, 768, 3), 200, np.uint8)
    chw, info = letterbox(img, 416, 416)
    assert chw.shape == (3, 416, 416) and chw.dtype == np.float32
    assert (info.new_w, info.new_h, info.dx, info.dy) == (416, 312, 0, 52)
    assert np.all(chw[:, :52] == 0.5) and np.all(chw[:, 52 + 312:] == 0.5)
    np.testing.assert_allclose(chw[:, 52:52 + 312], 200 / 255, rtol=1e-6)


def test_letterbox_float_and_uint8_inputs_agree():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    a, _ = letterbox(img, 64, 64)
    b, _ = letterbox(img.astype(np.float32) / 255, 64, 64)
    np.testing.assert_allclose(a, b, atol=1e-6)


def _darknet_resize_loops(im, w, h):
    """darknet image.c resize_image, written with loops (corners aligned, rows then columns)."""
    ih, iw, c = im.shape
    part = np.zeros((ih, w, c), np.float64)
    w_scale = (iw - 1) / (w - 1)
    h_scale = (ih - 1) / (h - 1)
    for r in range(ih):
        for x in range(w):
            if x == w - 1 or iw == 1:
                part[r, x] = im[r, iw - 1]
            else:
                sx = x * w_scale
                ix = int(sx)
                dx = sx - ix
                part[r, x] = (1 - dx) * im[r, ix] + dx * im[r, ix + 1]
    out = np.zeros((h, w, c), np.float64)
    for y in range(h):
        if y == h - 1 or ih == 1:
            out[y] = part[ih - 1]
            continue
        sy = y * h_scale
        iy = int(sy)
        dy = sy - iy
        out[y] = (1 - dy) * part[iy] + dy * part[iy + 1]
    return out


@pytest.mark.parametrize("src, dst", [((23, 31), (12, 17)), ((9, 7), (20, 25)), ((16, 16), (16, 5))])
def test_resize_matches_darknet_loops(src, dst):
    rng = np.random.default_rng(2)
    img = rng.random((*src, 3)).astype(np.float32)
    got = resize_bilinear(img, dst[1], dst[0])
    np.testing.assert_allclose(got, _darknet_resize_loops(img, dst[1], dst[0]), atol=1e-5)


def test_resize_keeps_the_bits_of_its_two_float32_passes():
    """The network sees the same input bits whatever gathers the pixels: each pass is
    a + (b - a) * f in float32, columns first (darknet's corner-aligned grid)."""
    def two_passes(img, new_w, new_h):
        h, w = img.shape[:2]
        xs = np.arange(new_w) * ((w - 1) / (new_w - 1))
        ys = np.arange(new_h) * ((h - 1) / (new_h - 1))
        x0 = np.minimum(xs.astype(np.intp), w - 2)
        y0 = np.minimum(ys.astype(np.intp), h - 2)
        fx = (xs - x0).astype(np.float32)[None, :, None]
        fy = (ys - y0).astype(np.float32)[:, None, None]
        left, right = img[:, x0].astype(np.float32), img[:, x0 + 1].astype(np.float32)
        cols = left + (right - left) * fx
        return cols[y0] + (cols[y0 + 1] - cols[y0]) * fy

    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for img in (photo, photo[7:300:2, 11:500], photo.astype(np.float32) / 255):
        for new_w, new_h in ((416, 234), (97, 51), (700, 401)):
            assert np.array_equal(resize_bilinear(img, new_w, new_h),
                                  two_passes(img, new_w, new_h))


def test_letterbox_pixels_agree_with_box_mapping():
    """A white rectangle lands where image_to_network says it does (within one network pixel)."""
    img = np.zeros((300, 500, 3), np.uint8)
    x1, y1, x2, y2 = 120, 60, 380, 210
    img[y1:y2, x1:x2] = 255
    chw, info = letterbox(img, 128, 96)
    ys, xs = np.nonzero(chw[0] > 0.75)
    found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    normalised = [[(x1 + x2) / 2 / 500, (y1 + y2) / 2 / 300, (x2 - x1) / 500, (y2 - y1) / 300]]
    cx, cy, w, h = image_to_network(normalised, info)[0]
    expected = np.array([(cx - w / 2) * 128, (cy - h / 2) * 96, (cx + w / 2) * 128,
                         (cy + h / 2) * 96])
    np.testing.assert_allclose(found, expected, atol=1.0)


def _box_to_pixels(box, width, height):
    cx, cy, bw, bh = box[:4]
    return ((cx - bw / 2) * width, (cy - bh / 2) * height,
            (cx + bw / 2) * width, (cy + bh / 2) * height)


@pytest.mark.parametrize("src, net, new, offset", [
    ((200, 100), (416, 416), (416, 208), (0, 104)),   # wide: width fits
    ((100, 200), (416, 416), (208, 416), (104, 0)),   # tall: height fits
    ((768, 576), (416, 320), (416, 312), (0, 4)),     # width/w < height/h, rounding down
    ((333, 100), (128, 96), (128, 38), (0, 29)),      # 100*128/333 = 38.4 -> 38
])
def test_letterbox_geometry(src, net, new, offset):
    w, h = src
    img = np.full((h, w, 3), 200, np.uint8)
    out, info = letterbox(img, *net)
    assert out.shape == (3, net[1], net[0]) and out.dtype == np.float32
    inside = np.zeros(out.shape[1:], bool)
    inside[offset[1]:offset[1] + new[1], offset[0]:offset[0] + new[0]] = True
    assert np.allclose(out[:, inside], 200 / 255)
    assert np.all(out[:, ~inside] == PAD_VALUE)
    # the whole image maps onto the placed rectangle
    full = image_to_network(np.array([[0.5, 0.5, 1.0, 1.0]]), info)[0]
    assert _box_to_pixels(full, *net) == pytest.approx(
        (offset[0], offset[1], offset[0] + new[0], offset[1] + new[1]), abs=1e-3)


def test_window_inside_the_image_is_the_letterboxed_crop():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(123, 171, 3), dtype=np.uint8)
    for net in [(416, 416), (320, 160), (96, 288)]:
        windowed, info = letterbox(img, *net, window=(20, 10, 150, 100))
        cropped, _ = letterbox(np.ascontiguousarray(img[10:100, 20:150]), *net)
        assert np.array_equal(windowed, cropped)
        assert info.placed_window == (20, 10, 150, 100) and (info.orig_w, info.orig_h) == (171, 123)


def test_window_outside_image_is_grey_and_boxes_follow():
    img = np.zeros((200, 300, 3), np.uint8)
    img[30:110, 40:150] = (255, 0, 0)                 # corners (40, 30)-(150, 110)
    red = [[95 / 300, 70 / 200, 110 / 300, 80 / 200]]
    # window starting 50 px left of and 20 px above the image, cropping 60 px on the right:
    # 290 x 220 px placed 1:1 in a 290 x 220 input, so the red box moves by (+50, +20)
    out, info = letterbox(img, 290, 220, window=(-50, -20, 240, 200))
    assert np.all(out[:, :, :50] == PAD_VALUE) and np.all(out[:, :20] == PAD_VALUE)
    moved = image_to_network(red, info)[0]
    assert _box_to_pixels(moved, 290, 220) == pytest.approx((90, 50, 200, 130), abs=1e-3)
    ys, xs = np.nonzero(out[0] - out[1] > 0.5)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (90, 50, 200, 130)


# -- conversions -------------------------------------------------------------------------------
def test_greyscale_is_replicated():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = pil_to_rgb(Image.fromarray(g, "L"))
    assert rgb.shape == (3, 4, 3) and np.all(rgb == g[..., None])
    assert pil_to_rgb(Image.fromarray(g > 100)).max() == 255   # mode "1"


def test_alpha_is_composited_on_grey():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)      # opaque red stays red
    rgba[0, 1] = (255, 0, 0, 0)        # transparent -> padding grey
    rgba[1, 0] = (0, 0, 0, 128)        # half transparent black -> darker grey
    rgb = pil_to_rgb(Image.fromarray(rgba, "RGBA"))
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[0, 1]) == (128, 128, 128)
    assert np.all(np.abs(rgb[1, 0].astype(int) - 64) <= 1)       # 127.5 * 127/255
    la = pil_to_rgb(Image.fromarray(rgba[..., [0, 3]], "LA"))
    assert tuple(la[0, 1]) == (128, 128, 128) and tuple(la[0, 0]) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (10, 200, 30)
    pal = Image.fromarray(rgb).quantize(4)
    np.testing.assert_array_equal(pil_to_rgb(pal), rgb)
    index_of_black = pal.getpixel((0, 3))
    pal.info["transparency"] = index_of_black
    out = pil_to_rgb(pal)
    assert tuple(out[3, 0]) == (128, 128, 128) and tuple(out[0, 0]) == (10, 200, 30)


def test_cmyk_converted_to_rgb():
    cmyk = Image.new("CMYK", (3, 3), (0, 255, 255, 0))   # pure red in CMYK
    assert tuple(pil_to_rgb(cmyk)[1, 1]) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_scaled_not_clipped(mode):
    values = np.array([[0, 257 * 100, 65535]], np.uint16)
    img = Image.fromarray(values) if mode == "I;16" else Image.fromarray(values.astype(np.int32))
    assert img.mode == mode
    out = pil_to_rgb(img)
    assert out[0, :, 0].tolist() == [0, 100, 255]
    assert np.all(out == out[..., :1])


def test_16_bit_png_file(tmp_path):
    values = np.linspace(0, 65535, 16, dtype=np.uint16).reshape(4, 4)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    out = load_image(path).rgb
    np.testing.assert_array_equal(out[..., 0], np.rint(values / 257).astype(np.uint8))


def test_float_mode_and_arrays():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    assert pil_to_rgb(f)[0, :, 0].tolist() == [0, 128, 255]
    arr = load_image(np.array([[[0.0, 0.5, 1.0]]], np.float32)).rgb
    assert arr[0, 0].tolist() == [0, 128, 255]
    grey16 = load_image(np.array([[65535, 0]], np.uint16)).rgb
    assert grey16[0, 0].tolist() == [255] * 3 and grey16[0, 1].tolist() == [0] * 3


def test_exif_orientation_honoured(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)     # left half red
    stored[:, 20:] = (0, 0, 255)     # right half blue
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6                 # display = stored rotated 90 degrees clockwise
    path = tmp_path / "rotated.png"
    img.save(path, exif=exif)
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (20, 40)
    assert image_size(path) == (20, 40)              # the header read agrees, no decode
    assert loaded.rgb.shape == (40, 20, 3)
    assert tuple(loaded.rgb[5, 10]) == (255, 0, 0)    # the left half went to the top
    assert tuple(loaded.rgb[35, 10]) == (0, 0, 255)


def test_pil_image_source_keeps_size():
    img = Image.new("RGB", (31, 17), (1, 2, 3))
    loaded = load_image(img)
    assert isinstance(loaded, LoadedImage) and (loaded.width, loaded.height) == (31, 17)
    assert tuple(loaded.rgb[0, 0]) == (1, 2, 3)


# -- bad files ---------------------------------------------------------------------------------
def _jpeg_bytes(w=32, h=24, quality=90):
    buf = io.BytesIO()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG",
                                                                           quality=quality)
    return buf.getvalue()


def _assert_user_error(path, *words):
    with pytest.raises(UserError) as e:
        load_image(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    for w in words:
        assert w in msg
    return msg


def test_missing_file(tmp_path):
    _assert_user_error(tmp_path / "nope.jpg", "no such file")
    with pytest.raises(UserError, match="image not found"):
        image_size(tmp_path / "nope.jpg")


def test_image_size_of_a_text_file_is_a_clear_error(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n")
    with pytest.raises(UserError) as e:
        image_size(p)
    assert str(p) in str(e.value) and "cannot read image header" in str(e.value)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    _assert_user_error(p, "empty")


def test_text_file_is_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n")
    _assert_user_error(p, "not an image")


def test_truncated_jpeg(tmp_path):
    data = _jpeg_bytes(64, 48)
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    _assert_user_error(p, "truncated")


def test_directory_is_not_an_image(tmp_path):
    _assert_user_error(tmp_path, "directory")


def _with_jpeg_size(data, w, h):
    """Rewrite the frame header (SOF0) so the JPEG claims another size."""
    i = data.index(b"\xff\xc0")
    b = bytearray(data)
    b[i + 5:i + 7] = h.to_bytes(2, "big")
    b[i + 7:i + 9] = w.to_bytes(2, "big")
    return bytes(b)


def test_decompression_bomb_is_a_clear_error(tmp_path):
    p = tmp_path / "huge.jpg"
    p.write_bytes(_with_jpeg_size(_jpeg_bytes(), 20000, 20000))
    _assert_user_error(p, "too large")


def test_large_jpeg_decoded_at_reduced_size(tmp_path):
    w, h = 4800, 3200
    grad = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    img = np.broadcast_to(grad, (h, w, 3)).astype(np.uint8)
    p = tmp_path / "big.jpg"
    Image.fromarray(img).save(p, quality=80)
    loaded = load_image(p, net_size=(416, 416))
    assert (loaded.width, loaded.height) == (w, h)           # original size is kept
    assert loaded.reduced and loaded.rgb.shape[1] < w
    rh, rw = loaded.rgb.shape[:2]
    assert rw >= 2 * 416 and abs(rw / rh - w / h) < 0.01
    # the content is the same picture, just smaller: a horizontal ramp
    row = loaded.rgb[rh // 2, :, 0].astype(np.float32)
    np.testing.assert_allclose(row, np.linspace(0, 255, rw), atol=4)
    full = load_image(p)                                       # without a net size: full decode
    assert full.rgb.shape == (h, w, 3)


def test_large_png_reduced_with_box_filter(tmp_path):
    w, h = 4400, 2200
    img = np.zeros((h, w, 3), np.uint8)
    img[:, w // 2:] = 255
    p = tmp_path / "big.png"
    Image.fromarray(img).save(p, compress_level=1)
    loaded = load_image(p, net_size=(416, 416))
    assert (loaded.width, loaded.height) == (w, h) and loaded.reduced
    rh, rw = loaded.rgb.shape[:2]
    assert loaded.rgb[rh // 2, rw // 4, 0] == 0 and loaded.rgb[rh // 2, 3 * rw // 4, 0] == 255
