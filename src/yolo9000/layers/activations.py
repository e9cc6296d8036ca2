"""Activation functions by darknet name, and their codes in the compiled kernels."""
from ..kernels import core

CODES = {"linear": core.ACT_LINEAR, "leaky": core.ACT_LEAKY, "relu": core.ACT_RELU,
         "logistic": core.ACT_LOGISTIC}


def activation_code(name):
    if name not in CODES:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(CODES)})")
    return CODES[name]
