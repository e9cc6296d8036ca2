"""The layer types a cfg may name: darknet's section name -> the layer class built from it.

Adding a layer type is one module in layers/ (a Layer subclass with a from_section classmethod)
and one line here. Building a layer also settles its section's keys: after from_section, any
key neither it nor the network read is an error at its line (see Section.check_all_read).
"""
from ..errors import UserError
from ..layers.batchnorm import BatchNormLayer
from ..layers.avgpool import AvgpoolLayer
from ..layers.cost import CostLayer
from ..layers.convolutional import ConvolutionalLayer
from ..layers.maxpool import MaxpoolLayer
from ..layers.region import RegionLayer
from ..layers.softmax import SoftmaxLayer
from ..layers.reorg import ReorgLayer
from ..layers.route import RouteLayer

# darknet's long and short spellings (string_to_layer_type)
LAYER_TYPES = {
    "convolutional": ConvolutionalLayer, "conv": ConvolutionalLayer,
    "maxpool": MaxpoolLayer, "max": MaxpoolLayer,
    "avgpool": AvgpoolLayer, "avg": AvgpoolLayer,
    "softmax": SoftmaxLayer, "soft": SoftmaxLayer,
    "route": RouteLayer,
    "reorg": ReorgLayer,
    "region": RegionLayer,
    "cost": CostLayer,
    "batchnorm": BatchNormLayer,
}

# Options darknet reads for every layer. These change which bytes of a .weights file belong to
# the layer, so only their defaults are accepted:
WEIGHTS_LAYOUT_KEYS = ("dontload", "dontloadscales", "numload", "dontsave")
# and these steer only darknet's own training (frozen layers, per-layer learning-rate scale,
# label smoothing); accepted so that darknet's cfgs load, without effect:
TRAINING_ONLY_KEYS = ("stopbackward", "onlyforward", "learning_rate", "smooth", "truth")


def build_layer(section, in_shape, context):
    """The layer of one cfg section; every problem is a UserError at the section's file:line."""
    layer_type = LAYER_TYPES.get(section.type)
    if layer_type is None:
        known = ", ".join(sorted(LAYER_TYPES))
        where = ("[net] belongs at the top of the cfg only" if section.type in ("net", "network")
                 else f"unknown section [{section.type}] (layer types: {known})")
        raise UserError(where, path=section.source, line=section.line)
    try:
        layer = layer_type.from_section(section, in_shape, context)
    except (ValueError, TypeError) as e:
        raise UserError(f"[{section.type}] layer {context.index}: {e}", path=section.source,
                        line=section.line) from None
    for key in WEIGHTS_LAYOUT_KEYS:
        section.expect_default(key, 0)
    section.ignore(*TRAINING_ONLY_KEYS)
    section.check_all_read()
    return layer
