"""darknet's column matrix computed plainly in NumPy: the reference the low-precision kernels'
and layers' tests multiply against (tests/kernels, tests/model)."""
import numpy as np


def im2col(x, size, stride, pad):
    """The column matrix (C·k·k, out_h·out_w) of one image (C, H, W) for any size,
    stride and padding, in x's dtype (an integer one keeps integer sums exact)."""
    c, h, w = x.shape
    oh, ow = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
    xp = np.zeros((c, h + 2 * pad, w + 2 * pad), x.dtype)
    xp[:, pad:pad + h, pad:pad + w] = x
    col = np.empty((c, size, size, oh, ow), x.dtype)
    for ky in range(size):
        for kx in range(size):
            col[:, ky, kx] = xp[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
    return col.reshape(c * size * size, oh * ow)
