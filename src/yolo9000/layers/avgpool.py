"""Global average pooling: (C, H, W) -> (C, 1, 1), the classifier head of Darknet-19."""
import numpy as np

from .base import Layer


class AvgpoolLayer(Layer):
    """Global average pooling: (C, H, W) -> (C, 1, 1)."""
    kind = "avg"

    def resize(self, in_shape):
        self.in_shape = tuple(int(v) for v in in_shape)
        self.out_shape = (self.in_shape[0], 1, 1)

    def __init__(self, in_shape):
        super().__init__(in_shape)
        self.resize(in_shape)

    def forward(self, x, train=False):
        return x.mean(axis=(2, 3), keepdims=True, dtype=np.float32)

    def backward(self, dy, dy_is_scratch=False):
        c, h, w = self.in_shape
        dx = np.empty((dy.shape[0], c, h, w), np.float32)
        dx[...] = dy / np.float32(h * w)
        return dx

    def to_onnx(self, graph, x):
        return graph.op("GlobalAveragePool", [x], "avgpool")
