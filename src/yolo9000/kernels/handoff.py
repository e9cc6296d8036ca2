"""Activations handed from one low-precision convolution to the next already packed.

A convolution whose output only the next low-precision direct convolution reads (directly,
or through the 2x2/2 maxpool fused in its epilogue) writes that output straight into the
next layer's packed input: bf16 channel pairs with that layer's zero border
(core.bf16_pack_pairs' layout), or the int8 channels-last input quantized by that layer's
input scale (core.int8_pack_cl's), instead of an fp32 tensor the next layer would read and
pack again. Network plans which edges do so (Network.hand_offs); a layer is told its target
per call (ConvolutionalLayer.forward's `hand_off`).

The packed images live in two buffers per thread, used in turn: a layer reading one writes
the other, so a chain of hand-offs never overwrites the input it is reading. A packed
activation remembers which use of its buffer it is and refuses to be read once the buffer
has been handed out again.
"""
import threading
from dataclasses import dataclass

import numpy as np

from . import core, workspace
from .precisions import BF16, INT8

_local = threading.local()


@dataclass(frozen=True)
class HandOff:
    """Where a layer writes its output: packed for a consumer with this padding, in this
    precision (int8: quantized by the consumer's input scale)."""
    padding: int
    precision: str = BF16
    scale: float = None


def packed_values(precision, shape, padding):
    """uint16 values one image (C, H, W) takes packed in `precision` with `padding` (int8's
    bytes in pairs: every image then starts on a 64-byte line, as the sizes are multiples
    of 64 bytes)."""
    c, h, w = shape
    if precision == BF16:
        return core.bf16_pairs_size(c, h, w, padding)
    if precision == INT8:
        return -(-core.int8_cl_size(c, h, w, padding) // 2)
    raise ValueError(f"no packed layout for precision {precision!r}")


class PackedActivation:
    """A batch (N, C, H, W) packed for a low-precision convolution: `data` holds N images of
    `image_values` uint16 each, packed with `padding` in `precision` (int8: quantized by
    `scale`)."""

    def __init__(self, data, shape, padding, precision, slot, use, scale=None):
        self.data, self.shape = data, tuple(int(v) for v in shape)
        self.padding, self.precision = int(padding), precision
        self.scale = scale
        self.image_values = packed_values(precision, self.shape[1:], self.padding)
        self._slot, self._use = slot, use

    def image(self, i):
        """Image i's packed values (the view a kernel reads or writes): uint16, int8's
        bytes as int8."""
        values = self.data[i * self.image_values:(i + 1) * self.image_values]
        return values.view(np.int8) if self.precision == INT8 else values

    def check(self, shape, padding, precision, scale=None):
        """Refuse (ValueError) to be read as anything but what was packed (int8: quantized
        by another scale), or after its buffer was handed out again."""
        wanted = (tuple(shape), int(padding), precision, scale)
        if (self.shape, self.padding, self.precision, self.scale) != wanted:
            raise ValueError(f"a packed activation {self.shape} (padding {self.padding}, "
                             f"{self.precision}, scale {self.scale}) cannot be read as "
                             f"{wanted[0]} (padding {wanted[1]}, {wanted[2]}, scale "
                             f"{wanted[3]})")
        if _uses()[self._slot] != self._use:
            raise ValueError("a packed activation was read after its buffer was reused")
        return self

    def __array__(self, *args, **kwargs):
        # an fp32 layer (or NumPy) handed a packed tensor fails here, not on garbage values
        raise ValueError(f"a packed {self.precision} activation {self.shape} cannot be read "
                         "as an fp32 array (only the convolution it was packed for reads it)")

    def __repr__(self):
        return (f"PackedActivation({self.shape}, padding={self.padding}, "
                f"{self.precision})")


def _uses():
    uses = getattr(_local, "uses", None)
    if uses is None:
        uses = _local.uses = [0, 0]
    return uses


def packed_output(hand_off, shape, reading=None):
    """A PackedActivation (contents undefined) for a batch of `shape` (N, C, H, W) packed as
    `hand_off` says, in this thread's buffer that `reading` (the caller's input, if packed)
    does not occupy."""
    slot = 1 - reading._slot if isinstance(reading, PackedActivation) else 0
    values = shape[0] * packed_values(hand_off.precision, shape[1:], hand_off.padding)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = [None, None]
    if buffers[slot] is None or buffers[slot].size < values:
        buffers[slot] = None        # free the old one before making the new
        buffers[slot] = workspace.aligned_uint16(values)
    uses = _uses()
    uses[slot] += 1
    return PackedActivation(buffers[slot][:values], shape, hand_off.padding,
                            hand_off.precision, slot, uses[slot], hand_off.scale)


def as_array_or_packed(x):
    """x unchanged if packed, else as a C-contiguous float32 array."""
    return x if isinstance(x, PackedActivation) else np.ascontiguousarray(x, dtype=np.float32)
