"""Large images in training: decoded reduced where the format allows (JPEG's draft mode), and
an image whose decode would take more pixels than a data worker may (a 13000x13000 PNG, which
only decodes whole: 676 MB in Pillow) is skipped with one warning instead of costing a worker
gigabytes. Ordinary images decode to the very same pixels as before."""
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageOps

from yolo9000.data.images import ANY_NET_SIZE, image_size, load_image
from conftest import IMAGES, run_installed_peak

WORKER_PEAK_LIMIT = 300 * 2**20


def write_flat_png(path, width, height, rgb=(90, 120, 150), exif_after_data=None):
    """A width x height RGB PNG of one colour, compressed row by row so that the whole image
    is never in memory; with exif_after_data, an eXIf chunk after the image data."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    row = b"\x00" + bytes(rgb) * width          # filter type 0, then the pixels
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", data))
        if exif_after_data is not None:
            f.write(chunk(b"eXIf", exif_after_data))
        f.write(chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def shapes_with_a_huge_png(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    paths = make_shapes(tmp_path_factory.mktemp("large") / "data", n_train=5, n_val=0, size=64,
                        seed=4)
    huge = write_flat_png(paths["images"] / "train" / "huge.png", 13000, 13000)
    (paths["labels"] / "train" / "huge.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    with open(paths["train"], "a") as listing:
        listing.write(f"{huge}\n")
    return paths, huge


def test_a_13000_px_png_in_a_training_folder_is_skipped_within_300_mb(shapes_with_a_huge_png,
                                                                      tmp_path):
    paths, huge = shapes_with_a_huge_png
    result, peak = run_installed_peak("train", "--cfg", "yolov2-shapes", "--data", paths["train"],
                                      "--size", 64, "--batch", 3, "--max-batches", 4,
                                      "--workers", 1, "--no-multiscale", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    told = [line for line in result.stderr.splitlines() if "huge.png" in line]
    assert len(told) == 1, result.stderr
    assert told[0].startswith(f"warning: {huge}: 13000x13000 PNG image: decoding it takes 169 "
                              "Mpx") and told[0].endswith("; skipped"), told[0]
    assert "Traceback" not in result.stderr and "DecompressionBomb" not in result.stderr
    assert "data: 6 training images" in result.stdout
    assert peak < WORKER_PEAK_LIMIT, f"peak resident memory {peak / 2**20:.0f} MiB"


def test_ordinary_images_decode_to_the_same_pixels_for_training(tmp_path):
    """Training's decode (any network size, a worker's pixel limit) of images up to 2048 px:
    exactly Pillow's full decode."""
    rng = np.random.default_rng(5)
    png = tmp_path / "wide.png"
    Image.fromarray(rng.integers(0, 256, (300, 2048, 3), dtype=np.uint8)).save(png)
    for path in [*sorted(IMAGES.glob("*.jpg")), png]:
        with Image.open(path) as img:
            reference = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        loaded = load_image(path, net_size=ANY_NET_SIZE, max_pixels=64 * 2**20)
        assert not loaded.reduced and np.array_equal(loaded.rgb, reference), path


def test_training_decodes_a_large_jpeg_reduced(tmp_path):
    """6000x4000 decodes at half size (JPEG's draft: 3000x2000, the first scale still 2048 px
    or more on the long side) for any network size, with the original size kept."""
    path = tmp_path / "large.jpg"
    Image.new("RGB", (6000, 4000), (200, 40, 90)).save(path, quality=90)
    loaded = load_image(path, net_size=ANY_NET_SIZE)
    assert (loaded.width, loaded.height) == (6000, 4000)
    assert loaded.rgb.shape == (2000, 3000, 3)
    assert np.abs(loaded.rgb.astype(int) - (200, 40, 90)).max() <= 3


def too_large_loader(records, monkeypatch, max_pixels, **options):
    import yolo9000.data.loader as loader_module
    from yolo9000.data.augment import AugmentConfig
    monkeypatch.setattr(loader_module, "worker_pixel_limit", lambda workers: max_pixels)
    told = []
    loader = loader_module.BatchLoader(records, batch_size=3, workers=0, shuffle=False,
                                       augment=AugmentConfig(enabled=False), warn=told.append,
                                       **options)
    return loader, told


def record(path, width, height):
    return SimpleNamespace(path=str(path), width=width, height=height,
                           boxes=np.array([[0.5, 0.5, 0.5, 0.5]], np.float32),
                           classes=np.zeros(1, np.int64), difficult=np.zeros(1, bool))


def test_an_image_over_the_limit_gives_way_to_the_next(tmp_path, monkeypatch):
    """Records 0 (32x32), 1 (64x64: over a 40x40 limit), 2 (32x32): the first batch holds
    0, 2, 2, one warning names image 1, and no later batch warns about it again."""
    sizes = [(32, 32), (64, 64), (32, 32)]
    records = []
    for k, (w, h) in enumerate(sizes):
        path = tmp_path / f"{k}.png"
        Image.new("RGB", (w, h), (40 * k, 100, 200)).save(path)
        records.append(record(path, w, h))
    loader, told = too_large_loader(records, monkeypatch, 40 * 40)
    with loader:
        batch = loader.get(0, 64, 64)
        assert batch.record_indices == [0, 2, 2]
        assert batch.paths == [records[0].path, records[2].path, records[2].path]
        assert np.array_equal(batch.images[1], batch.images[2])
        assert told == [f"warning: {records[1].path}: 64x64 PNG image: decoding it takes 0 Mpx "
                        "(16.0 KiB), more than the 0 Mpx a data worker may decode; skipped"]
        loader.get(1, 64, 64)
        assert len(told) == 1


def test_a_jpeg_counts_at_its_reduced_size(tmp_path, monkeypatch):
    """A 6000x4000 JPEG (24 Mpx) decodes as 3000x2000 (6 Mpx): under a 10 Mpx limit, it is
    used, not skipped."""
    path = tmp_path / "large.jpg"
    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(path, quality=90)
    loader, told = too_large_loader([record(path, 6000, 4000)], monkeypatch, 10_000_000)
    with loader:
        batch = loader.get(0, 64, 64)
    assert told == [] and batch.record_indices == [0, 0, 0]


def test_a_png_orientation_after_its_data_is_read_without_decoding(tmp_path):
    """Pillow finds a PNG's eXIf chunk after the image data only by decoding the image; the
    header read finds it by walking the chunks, and agrees with the decode."""
    exif = Image.Exif()
    exif[0x0112] = 6                       # rotated 90 degrees: width and height swap
    path = write_flat_png(tmp_path / "rotated.png", 30, 20, exif_after_data=exif.tobytes())
    with Image.open(path) as img:
        assert "exif" not in img.info      # not seen before the decode
        img.load()
        decoded = ImageOps.exif_transpose(img).size
    assert decoded == (20, 30)
    assert image_size(path) == decoded
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == decoded and loaded.rgb.shape == (30, 20, 3)
