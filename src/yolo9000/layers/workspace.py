"""One scratch buffer shared by every convolution in the process (darknet's `workspace`).

im2col matrices are large (tens of MB at 416 px) and needed only inside one call, so all
layers borrow the same growing buffer instead of each holding its own.
"""
import numpy as np

_buffer = np.empty(0, np.float32)


def borrow(shape):
    """A float32 C-contiguous array of `shape` backed by the shared buffer (contents undefined)."""
    global _buffer
    n = 1
    for s in shape:
        n *= int(s)
    if _buffer.size < n:
        _buffer = np.empty(n, np.float32)
    return _buffer[:n].reshape(shape)


def release():
    """Free the buffer (it grows again on the next borrow)."""
    global _buffer
    _buffer = np.empty(0, np.float32)
