"""darknet's [cost] layer: the classifier's probabilities pass through; the loss is computed outside."""
from .base import Layer


class CostLayer(Layer):
    """darknet's [cost]: passes its input through (the loss is computed outside)."""
    kind = "cost"

    @classmethod
    def from_section(cls, s, in_shape, context):
        # darknet's loss settings for training a classifier; this layer only passes through
        s.ignore("type", "scale", "ratio", "noobj", "thresh")
        return cls(in_shape)

    def forward(self, x, train=False):
        return x

    def backward(self, dy):
        return dy
