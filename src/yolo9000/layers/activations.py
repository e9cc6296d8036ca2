"""Activation functions by darknet name; codes match the Cython kernels."""

CODES = {"linear": 0, "leaky": 1, "relu": 2, "logistic": 3}


def activation_code(name):
    if name not in CODES:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(CODES)})")
    return CODES[name]

