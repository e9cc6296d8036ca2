"""One scratch buffer per thread shared by every convolution (darknet's `workspace`).

im2col matrices are large (tens of MB at 416 px) and needed only inside one call, so all
layers borrow the same growing buffer instead of each holding its own. Per thread, so that
network replicas can run side by side (parallel subdivisions in training).
"""
import threading

import numpy as np

_local = threading.local()


def borrow(shape):
    """A float32 C-contiguous array of `shape` backed by this thread's buffer (contents undefined)."""
    n = 1
    for s in shape:
        n *= int(s)
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.size < n:
        buffer = _local.buffer = np.empty(n, np.float32)
    return buffer[:n].reshape(shape)


# AMX loads tiles by rows of 64 bytes: a row across two cache lines costs two
CACHE_LINE = 64


def aligned_uint16(values):
    """An uninitialised uint16 array of `values` whose first byte starts a cache line."""
    raw = np.empty(values + CACHE_LINE // 2, np.uint16)
    skip = (-raw.ctypes.data % CACHE_LINE) // 2
    return raw[skip:skip + values]


def borrow_packed(values):
    """This thread's cache-line-aligned buffer of `values` uint16 for the low-precision
    kernels' packed operands (bf16 columns or channel pairs, int8 ones viewed as bytes): one
    per thread whichever precision a network runs, reused between calls and layers."""
    buffer = getattr(_local, "packed", None)
    if buffer is None or buffer.size < values:
        buffer = _local.packed = aligned_uint16(values)
    return buffer[:values]
