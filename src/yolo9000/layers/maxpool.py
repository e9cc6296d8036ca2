"""darknet's [maxpool]: padding defaults to size − 1 and the window starts at −padding/2.

out = (in + padding − size)/stride + 1, so `size=2 stride=1` keeps 13×13 (the extra tap on the
right/bottom falls outside the image and is ignored) and `size=2 stride=2` halves.
"""
import numpy as np

from ..kernels import core
from .base import Layer


class MaxpoolLayer(Layer):
    kind = "max"
    forward_state = ("_x", "_y", "_argmax")

    def __init__(self, in_shape, size=2, stride=None, padding=None):
        super().__init__(in_shape)
        self.size = int(size)
        self.stride = int(stride if stride is not None else size)
        self.padding = int(padding if padding is not None else self.size - 1)
        if self.size <= 0 or self.stride <= 0 or self.padding < 0:
            raise ValueError("maxpool size and stride must be positive, padding non-negative")
        self.resize(in_shape)

    @classmethod
    def from_section(cls, s, in_shape, context):
        size = s.get_int("size", 1)
        return cls(in_shape, size=size, stride=s.get_int("stride", 1),
                   padding=s.get_int("padding", size - 1))

    def resize(self, in_shape):
        c, h, w = (int(v) for v in in_shape)
        out_h = (h + self.padding - self.size) // self.stride + 1
        out_w = (w + self.padding - self.size) // self.stride + 1
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"input {h}x{w} is too small for a {self.size}x{self.size} maxpool")
        self.in_shape = (c, h, w)
        self.out_shape = (c, out_h, out_w)

    @property
    def tiles(self):
        """Whether the windows are 2x2 with stride 2 tiling the input (even sizes): the
        pooling a convolution's epilogue can do (ConvolutionalLayer.forward_pooled)."""
        c, h, w = self.in_shape
        return bool(core.maxpool_tiles(self.size, self.stride, self.padding, h, w,
                                       *self.out_shape[1:]))

    @property
    def recomputed_backward(self):
        """The kernel whose backward finds each window's winner again from x and y, for
        darknet's two 2x2 windowings (stride 2 tiling the input, stride 1 keeping its size),
        so the forward stores no positions; None for other windows (argmax)."""
        c, h, w = self.in_shape
        shape = (self.size, self.stride, self.padding, h, w) + self.out_shape[1:]
        if core.maxpool_tiles(*shape):
            return core.maxpool_2x2_s2_backward
        if core.maxpool_same_2x2(*shape):
            return core.maxpool_2x2_s1_backward
        return None

    def forward(self, x, train=False):
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        y = np.empty((n,) + self.out_shape, np.float32)
        # the winners' positions are only needed by backward, and not even there for 2x2
        # (asked in training only: at inference its two window tests are per-call overhead)
        recompute = train and self.recomputed_backward is not None
        argmax = np.empty((n,) + self.out_shape, np.int32) if train and not recompute else None
        core.maxpool_forward(x, self.size, self.stride, self.padding, y, argmax)
        if train:
            self._argmax = argmax
            self._x, self._y = (x, y) if recompute else (None, None)
        return y

    def backward(self, dy, dy_is_scratch=False):
        dy = np.ascontiguousarray(dy, dtype=np.float32)
        dx = np.empty((dy.shape[0],) + self.in_shape, np.float32)
        if self._argmax is None:
            self.recomputed_backward(self._x, self._y, dy, dx)
        else:
            core.maxpool_backward(dy, self._argmax, dx)
        return dx

    def flops(self):
        c, oh, ow = self.out_shape
        return float(c * oh * ow * self.size * self.size)

    def to_onnx(self, graph, x):
        """MaxPool with darknet's windows: padding/2 before, the rest after (2x2/2 with
        padding 1: none before, one after, where an odd side's last window sticks out; 2x2/1:
        the 'same' pooling); ONNX ignores padded taps as darknet does."""
        before = self.padding // 2
        after = self.padding - before
        if after >= self.size:
            raise graph.cannot_export(f"padding={self.padding} leaves windows of a {self.size}x"
                                      f"{self.size} maxpool outside the image (ONNX needs "
                                      f"padding/2 below the size)")
        return graph.op("MaxPool", [x], "maxpool", kernel_shape=[self.size] * 2,
                        strides=[self.stride] * 2, pads=[before, before, after, after])

    def describe(self):
        return f"{self.size} x {self.size} / {self.stride}"
