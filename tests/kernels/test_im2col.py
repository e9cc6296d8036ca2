"""im2col and col2im of several images in one call: the columns and sums of one image at a
time, and both against loops in numpy."""
import numpy as np
import pytest

from yolo9000.kernels import core


def numpy_columns(image, k, stride, pad):
    """(C*k*k, out_h*out_w): tap (c, kh, kw) of every output position, 0 outside."""
    c, h, w = image.shape
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    rows = [padded[ci, kh:kh + stride * oh:stride, kw:kw + stride * ow:stride].reshape(-1)
            for ci in range(c) for kh in range(k) for kw in range(k)]
    return np.array(rows)


@pytest.mark.parametrize("shape,k,stride,pad", [
    ((6, 7, 5), 3, 1, 1), ((3, 2, 2), 3, 1, 1), ((4, 9, 8), 3, 2, 1), ((5, 6, 6), 1, 1, 0),
])
def test_images_side_by_side(shape, k, stride, pad):
    rng = np.random.default_rng(3)
    n, n0, n1 = 5, 1, 4
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    c, h, w = shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    s = oh * ow
    col = np.full((c * k * k, (n1 - n0) * s), np.nan, np.float32)
    core.im2col_images(x, n0, n1, k, stride, pad, col)
    for j in range(n1 - n0):
        assert np.array_equal(col[:, j * s:(j + 1) * s], numpy_columns(x[n0 + j], k, stride, pad))
    # the adjoint: <im2col(x), g> = <x, col2im(g)> for each image, and col2im of the images
    # together gives the bits of col2im image by image
    g = rng.standard_normal(col.shape).astype(np.float32)
    together = np.zeros_like(x)
    core.col2im_images(g, k, stride, pad, together, n0, n1)
    for j in range(n1 - n0):
        alone = np.zeros(shape, np.float32)
        core.col2im(np.ascontiguousarray(g[:, j * s:(j + 1) * s]), k, stride, pad, alone)
        assert np.array_equal(together[n0 + j], alone)
        inner = np.sum(numpy_columns(x[n0 + j], k, stride, pad).astype(np.float64)
                       * g[:, j * s:(j + 1) * s])
        assert np.isclose(inner, np.sum(x[n0 + j].astype(np.float64) * alone), rtol=1e-5)
    assert not together[:n0].any() and not together[n1:].any()


def test_images_check_their_range():
    x = np.zeros((2, 3, 4, 4), np.float32)
    col = np.zeros((27, 32), np.float32)
    with pytest.raises(ValueError):
        core.im2col_images(x, 1, 3, 3, 1, 1, col)
    with pytest.raises(ValueError):
        core.col2im_images(col, 3, 1, 1, x, 0, 3)
    with pytest.raises(ValueError):
        core.im2col_images(x, 0, 2, 3, 1, 1, col[:, :31])
