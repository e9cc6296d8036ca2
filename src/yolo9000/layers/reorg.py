"""darknet's [reorg] (the passthrough layer), with the index mapping its forward pass runs.

darknet's forward_reorg_layer calls reorg_cpu(input, w, h, c, stride, forward=0) with the
*input* dimensions. That reads the input buffer as if it were (c/s², h·s, w·s) and writes the
output buffer as (c, h, w) — not the textbook space-to-depth. Published YOLOv2 weights were
trained with this mapping, so it is reproduced exactly. As a permutation of the flat buffer:

    input  viewed as X[b, c2, j, dy, i, dx]  with shape (N, c/s², h, s, w, s)
    output viewed as O[b, dy, dx, c2, j, i]  with shape (N, s, s, c/s², h, w)
    O = X.transpose(0, 3, 5, 1, 2, 4)

and the output is then reinterpreted as (N, c·s², h/s, w/s). Backward is the inverse
permutation (a permutation's adjoint is its inverse).
"""
import numpy as np

from .base import Layer


class ReorgLayer(Layer):
    kind = "reorg"

    def __init__(self, in_shape, stride=2, reverse=False):
        super().__init__(in_shape)
        if reverse:
            raise ValueError("reorg reverse=1 is not supported")
        self.stride = int(stride)
        self.resize(in_shape)

    @classmethod
    def from_section(cls, s, in_shape, context):
        for key in ("flatten", "extra"):     # darknet's other reshapes, not YOLOv2's
            s.expect_default(key, 0)
        return cls(in_shape, stride=s.get_int("stride", 1), reverse=bool(s.get_int("reverse", 0)))

    def resize(self, in_shape):
        c, h, w = (int(v) for v in in_shape)
        s = self.stride
        if h % s or w % s or c % (s * s):
            raise ValueError(f"reorg stride {s} needs height, width divisible by {s} and "
                             f"channels by {s * s}; got {c}x{h}x{w}")
        self.in_shape = (c, h, w)
        self.out_shape = (c * s * s, h // s, w // s)

    def forward(self, x, train=False):
        n = x.shape[0]
        c, h, w = self.in_shape
        s = self.stride
        view = np.asarray(x, dtype=np.float32).reshape(n, c // (s * s), h, s, w, s)
        out = np.ascontiguousarray(view.transpose(0, 3, 5, 1, 2, 4))
        return out.reshape((n,) + self.out_shape)

    def backward(self, dy, dy_is_scratch=False):
        n = dy.shape[0]
        c, h, w = self.in_shape
        s = self.stride
        view = np.asarray(dy, dtype=np.float32).reshape(n, s, s, c // (s * s), h, w)
        dx = np.ascontiguousarray(view.transpose(0, 3, 4, 1, 5, 2))
        return dx.reshape((n,) + self.in_shape)

    def to_onnx(self, graph, x):
        """forward's permutation of the flat buffer: Reshape, Transpose, Reshape."""
        c, h, w = self.in_shape
        s = self.stride
        view = graph.reshape(x, [0, c // (s * s), h, s, w, s], "view")
        moved = graph.op("Transpose", [view], "permuted", perm=[0, 3, 5, 1, 2, 4])
        return graph.reshape(moved, [0, *self.out_shape], "reorg")

    def describe(self):
        return f"/ {self.stride}"
