"""Softmax over channels (or over each WordTree group): the classifier's probabilities."""
import numpy as np

from .base import Layer


class SoftmaxLayer(Layer):
    """Softmax over channels, in `groups` equal consecutive groups (darknet's [softmax])."""
    kind = "softmax"

    def __init__(self, in_shape, groups=1, temperature=1.0):
        super().__init__(in_shape)
        self.groups = int(groups)
        self.temperature = float(temperature)
        if self.in_shape[0] % self.groups:
            raise ValueError(f"softmax groups={groups} does not divide {self.in_shape[0]} channels")

    @classmethod
    def from_section(cls, s, in_shape, context):
        if s.get_str("tree") is not None:
            raise s.error("tree= (a hierarchical softmax classifier) is not supported", "tree")
        s.expect_default("spatial", 0)
        s.ignore("noloss")      # training only
        return cls(in_shape, groups=s.get_int("groups", 1),
                   temperature=s.get_float("temperature", 1.0))

    def _grouped(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w)

    def forward(self, x, train=False):
        z = self._grouped(np.asarray(x, np.float32)) / np.float32(self.temperature)
        z = z - z.max(axis=2, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=2, keepdims=True)
        y = p.reshape(x.shape).astype(np.float32)
        if train:
            self._y = y
        return y

    def backward(self, dy):
        p = self._grouped(self._y)
        g = self._grouped(np.asarray(dy, np.float32))
        dx = p * (g - (p * g).sum(axis=2, keepdims=True)) / np.float32(self.temperature)
        return dx.reshape(dy.shape).astype(np.float32)

    def describe(self):
        return f"groups {self.groups}" if self.groups > 1 else ""
