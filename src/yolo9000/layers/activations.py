"""Activation functions by darknet name; codes match the Cython kernels."""
from ..kernels import core

CODES = {"linear": 0, "leaky": 1, "relu": 2, "logistic": 3}


def activation_code(name):
    if name not in CODES:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(CODES)})")
    return CODES[name]


def activation_backward_inplace(y, dy, code):
    """dy *= act'(z) using the output y; both contiguous float32 of the same shape."""
    if code != 0:
        core.activation_backward(y.reshape(-1), dy.reshape(-1), code)
    return dy
