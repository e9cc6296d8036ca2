"""The contract every layer keeps (darknet's verbs, Caffe's separation of resize and forward).

A layer is made for an input shape (C, H, W) — batch size is free — and owns only its own
state: parameters, their gradients, and whatever forward caches for backward.

    layer = SomeLayer(in_shape=(C, H, W), **cfg_options)
    layer = SomeLayer.from_section(section, in_shape, context)   # from its darknet cfg section
    layer.out_shape                  # (C', H', W')
    y  = layer.forward(x, train)     # x float32 (N, C, H, W); caches what backward needs when train
    dx = layer.backward(dy)          # dL/dx from dL/dy; accumulates dL/dparam into layer.grads
    layer.backward(dy, dy_is_scratch=True)   # ... and may write over dy (the caller is done
                                             # with it; layers that can save an array do)
    layer.resize((C, H2, W2))        # new spatial size, same parameters (multi-scale training)
    layer.flops()                    # floating-point operations for one image (2 per multiply-add)

Layers with several inputs (route) take and return lists instead of arrays.

from_section reads the layer's options from its cfg section with the section's typed getters,
which record each key read; a key no layer reads is then an error (see model/registry.py).
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..memory import memory_shortfall


@dataclass
class BuildContext:
    """What a layer may need from the network being built, besides its section and input."""
    rng: np.random.Generator       # darknet-style random initial weights, reproducible
    # The model side's readers of the files a cfg names (layers read no files): read_tree(value)
    # is the word tree a tree= value names, read_class_map(value) the dataset class -> tree node
    # list a map= value names; each raises ValueError when the file is not found.
    read_tree: Callable[[str], object] = None
    read_class_map: Callable[[str], object] = None
    shapes: list = field(default_factory=list)    # output shapes of the layers built so far
    parameters: int = 0            # float32 parameters claimed by the layers built so far

    @property
    def index(self):
        """The index of the layer being built."""
        return len(self.shapes)

    def claim_parameters(self, count):
        """Count the `count` float32 parameters of the layer about to allocate them: a
        ValueError (the layer's one-line error) when the network's parameters up to it cannot
        fit in the memory available, before anything is allocated."""
        self.parameters += int(count)
        problem = memory_shortfall(4 * self.parameters,
                                   f"the {self.parameters:,} parameters up to this layer")
        if problem:
            raise ValueError(problem)

    def word_tree(self, section):
        """The word tree the section's tree= names, or None without one."""
        value = section.get_str("tree")
        return self.read_tree(value) if value else None

    def class_map(self, section):
        """The class -> node list the section's map= names, or None without one."""
        value = section.get_str("map")
        return self.read_class_map(value) if value else None


class Layer:
    kind = "layer"

    def __init__(self, in_shape):
        self.in_shape = tuple(int(v) for v in in_shape)
        self.out_shape = self.in_shape
        self.params = {}      # name -> float32 array (trainable and statistics alike)
        self.grads = {}       # name -> float32 array, same shape, for trainable parameters only

    @classmethod
    def from_section(cls, section, in_shape, context):
        """The layer a cfg section describes (this default: a layer without options)."""
        return cls(in_shape)

    # -- the verbs -------------------------------------------------------------------------
    def resize(self, in_shape):
        self.in_shape = tuple(int(v) for v in in_shape)
        self.out_shape = self.in_shape

    def forward(self, x, train=False):
        raise NotImplementedError

    def backward(self, dy, dy_is_scratch=False):
        raise NotImplementedError

    def flops(self):
        return 0.0

    # -- helpers ---------------------------------------------------------------------------
    # what forward(train=True) keeps for backward, dropped by forget_forward()
    forward_state = ()

    def forget_forward(self):
        """Drop what the training forward kept for backward (Network.backward calls this once
        a layer's backward is done: its activations are then free for the next forward's)."""
        for name in self.forward_state:
            setattr(self, name, None)

    def weights_changed(self):
        """Called after the layer's parameters were written in place (layers that keep
        something derived from them, like the convolution's Winograd filters, drop it)."""

    def zero_grads(self):
        for g in self.grads.values():
            g.fill(0.0)

    def settle_grads(self):
        """Make every gradient array hold its value (a layer may zero one lazily, see
        ConvolutionalLayer.zero_grads); Network calls it before anyone else reads them."""

    def trainable(self):
        """Names of parameters the optimiser updates (those with a gradient)."""
        return list(self.grads)

    def describe(self):
        """Short text for the network summary's size/stride column."""
        return ""

    def to_onnx(self, graph, x):
        """Add this layer's inference forward to an ONNX graph (model/onnx_export.py's
        OnnxGraph) after the tensor named x (a list of names for a layer with several inputs);
        returns the name of its output."""
        raise graph.cannot_export(f"the ONNX export does not know [{self.kind}] layers")

    def __repr__(self):
        return f"{type(self).__name__}({self.in_shape} -> {self.out_shape})"


def as_f32(x):
    return np.ascontiguousarray(x, dtype=np.float32)
