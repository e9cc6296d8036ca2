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
