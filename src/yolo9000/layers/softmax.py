"""Softmax over channels (or over each WordTree group): the classifier's probabilities."""
import numpy as np

from .base import Layer


class SoftmaxLayer(Layer):
    """Softmax over channels, in `groups` equal consecutive groups (darknet's [softmax]).

    With a WordTree (`tree=`, darknet's hierarchical softmax, the WordTree classifier of the
    YOLO9000 paper) a separate softmax runs over each group of siblings, so channel k holds
    P(node k | its parent); backward is the exact adjoint of that."""
    kind = "softmax"

    def __init__(self, in_shape, groups=1, temperature=1.0, tree=None):
        super().__init__(in_shape)
        self.groups = int(groups)
        self.temperature = float(temperature)
        if self.in_shape[0] % self.groups:
            raise ValueError(f"softmax groups={groups} does not divide {self.in_shape[0]} channels")
        # tree: a WordTree (model/wordtree.py), read by whoever builds the layer
        self.tree = tree
        if tree is not None:
            if self.groups != 1:
                raise ValueError("softmax: tree= sets the groups itself; groups= must stay 1")
            if self.tree.n != self.in_shape[0]:
                raise ValueError(f"softmax: the tree has {self.tree.n} nodes but the input has "
                                 f"{self.in_shape[0]} channels (the layer before needs "
                                 f"filters={self.tree.n})")

    @classmethod
    def from_section(cls, s, in_shape, context):
        s.expect_default("spatial", 0)
        s.ignore("noloss")      # training only
        return cls(in_shape, groups=s.get_int("groups", 1),
                   temperature=s.get_float("temperature", 1.0), tree=context.word_tree(s))

    def _grouped(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w)

    def forward(self, x, train=False):
        if self.tree is not None:
            z = np.asarray(x, np.float32) / np.float32(self.temperature)
            y = self.tree.grouped_softmax(z, axis=1)
        else:
            z = self._grouped(np.asarray(x, np.float32)) / np.float32(self.temperature)
            z = z - z.max(axis=2, keepdims=True)
            e = np.exp(z)
            p = e / e.sum(axis=2, keepdims=True)
            y = p.reshape(x.shape).astype(np.float32)
        if train:
            self._y = y
        return y

    def backward(self, dy, dy_is_scratch=False):
        dy = np.asarray(dy, np.float32)
        if self.tree is not None:
            dx = self.tree.grouped_softmax_vjp(self._y, dy, axis=1) / np.float32(self.temperature)
            return dx.astype(np.float32)
        p = self._grouped(self._y)
        g = self._grouped(dy)
        dx = p * (g - (p * g).sum(axis=2, keepdims=True)) / np.float32(self.temperature)
        return dx.reshape(dy.shape).astype(np.float32)

    def to_onnx(self, graph, x):
        """Softmax over the channels: per sibling group with a word tree, else per `groups`."""
        if self.temperature != 1.0:
            x = graph.op("Div", [x, graph.constant(np.float32(self.temperature), "temperature")],
                         "tempered")
        if self.tree is not None:
            return graph.grouped_softmax(x, 4, 1, self.tree.group_size)
        if self.groups == 1:
            return graph.op("Softmax", [x], "softmax", axis=1)
        c, h, w = self.in_shape
        grouped = graph.reshape(x, [0, self.groups, c // self.groups, h, w], "grouped")
        p = graph.op("Softmax", [grouped], "grouped_softmax", axis=2)
        return graph.reshape(p, [0, c, h, w], "softmax")

    def describe(self):
        if self.tree is not None:
            return f"tree {self.tree.n} nodes, {len(self.tree.group_offset)} groups"
        return f"groups {self.groups}" if self.groups > 1 else ""
