"""Activation functions by darknet name; codes match the Cython kernels."""
import numpy as np

from ..kernels import core

CODES = {"linear": 0, "leaky": 1, "relu": 2, "logistic": 3}


def activation_code(name):
    if name not in CODES:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(CODES)})")
    return CODES[name]


def activate_inplace(y, code):
    """y (N, C, S) float32 contiguous, in place."""
    if code == 0:
        return y
    ones = np.ones(y.shape[1], np.float32)
    zeros = np.zeros(y.shape[1], np.float32)
    core.scale_bias_activate(y, ones, zeros, code)
    return y


def activation_backward_inplace(y, dy, code):
    """dy *= act'(z) using the output y; both contiguous float32 of the same shape."""
    if code != 0:
        core.activation_backward(y.reshape(-1), dy.reshape(-1), code)
    return dy
