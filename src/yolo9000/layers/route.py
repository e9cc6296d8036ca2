"""darknet's [route]: concatenate the outputs of earlier layers along channels."""
import numpy as np

from .base import Layer


class RouteLayer(Layer):
    kind = "route"

    def __init__(self, in_shapes, sources):
        self.sources = list(sources)           # absolute layer indices
        self.in_shapes = [tuple(int(v) for v in s) for s in in_shapes]
        super().__init__(self.in_shapes[0])
        self.resize(self.in_shapes)

    @classmethod
    def from_section(cls, s, in_shape, context):
        refs = s.get_ints("layers", None)
        if not refs:
            raise ValueError("route needs layers=")
        index = context.index
        sources = []
        for r in refs:
            j = index + r if r < 0 else r     # darknet: negative = relative to this layer
            if not 0 <= j < index:
                raise ValueError(f"route refers to layer {r}, which is not an earlier layer")
            sources.append(j)
        return cls([context.shapes[j] for j in sources], sources)

    def resize(self, in_shapes):
        in_shapes = [tuple(int(v) for v in s) for s in in_shapes]
        hw = {s[1:] for s in in_shapes}
        if len(hw) != 1:
            raise ValueError("route sources differ in size: " + ", ".join(
                f"{c}x{h}x{w}" for c, h, w in in_shapes))
        self.in_shapes = in_shapes
        self.in_shape = in_shapes[0]
        _, h, w = in_shapes[0]
        self.out_shape = (sum(s[0] for s in in_shapes), h, w)

    def forward(self, xs, train=False):
        if len(xs) == 1:
            return xs[0]
        return np.concatenate(xs, axis=1)

    def backward(self, dy, dy_is_scratch=False):
        splits = np.cumsum([s[0] for s in self.in_shapes])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(dy, splits, axis=1)]

    def to_onnx(self, graph, xs):
        if len(xs) == 1:
            return xs[0]
        return graph.op("Concat", xs, "route", axis=1)

    def describe(self):
        return " ".join(str(s) for s in self.sources)
