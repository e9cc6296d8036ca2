"""Activation functions by darknet name, and their codes in the compiled kernels."""
from ..kernels import core

CODES = {"linear": core.ACT_LINEAR, "leaky": core.ACT_LEAKY, "relu": core.ACT_RELU,
         "logistic": core.ACT_LOGISTIC}
# darknet's leaky slope (the kernels' 0.1 * v)
LEAKY_SLOPE = 0.1
# the ONNX operator (and its attributes) of each activation; linear adds no node
ONNX_OPERATORS = {"leaky": ("LeakyRelu", {"alpha": LEAKY_SLOPE}), "relu": ("Relu", {}),
                  "logistic": ("Sigmoid", {})}


def activation_code(name):
    if name not in CODES:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(CODES)})")
    return CODES[name]


def activation_to_onnx(graph, x, name):
    """The activation `name` applied to tensor x in an ONNX graph (model/onnx_export.py)."""
    if name == "linear":
        return x
    op_type, attributes = ONNX_OPERATORS[name]
    return graph.op(op_type, [x], name, **attributes)
