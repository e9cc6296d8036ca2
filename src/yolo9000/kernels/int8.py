"""int8 inference kernels: the quantization of weights and activations, the weights packed
once, and a convolution's products in exact int32 sums (the C: csrc/int8_x86.h).

Symmetric quantization: weights per output channel, s[f] = max|w[f]| / 127, activations per
tensor by a calibrated scale; both rounded half to even and clipped to [-127, 127] (never
-128: the range is symmetric, zero is exactly zero, and vpdpbusd's u8 operand X + 128 stays in
[1, 255]). A convolution sums q_w · q_x exactly in int32 and writes, in fp32,
out = act(scale · s_w · s_x · ACC + bias), the multiplier's three factors multiplied in that
order for every kernel, so that the three kernels give the same bits. Two ways to the sums,
as bf16's (kernels/lowp.py):
- "direct" (AMX, stride 1, 16 channels or more): the input quantized once into a channels-last
  layout with a zero border (a position's channels side by side), which AMX's tiles read in
  place for every tap, 16 positions by 64 channels a tile, every row on a cache line (zero
  channels pad the count; 16 or 32 channels fill a tile row with 4 or 2 taps of a kernel row:
  the next positions' channels); the weights are the tiles' second operand; no column
  matrix;
- "im2col": the column matrix quantized and packed in panels straight from the input (no fp32
  matrix), multiplied on AMX-INT8 tiles, AVX512-VNNI, or the portable twin (the same sums in
  scalar C).
"""
import numpy as np

from . import core, workspace
from .handoff import PackedActivation
from .precisions import BF16, INT8

# the int8 kernels by name, fastest first
INT8_KERNELS = {"amx": core.INT8_AMX, "vnni": core.INT8_VNNI, "portable": core.INT8_PORTABLE}
INT8_KERNEL_NAMES = {code: name for name, code in INT8_KERNELS.items()}
INT8_UNITS = "AMX-INT8 or AVX512-VNNI"

# the symmetric range's end: -128 is never produced
QMAX = 127


def int8_hardware_kernel():
    """The name of the fastest int8 unit this CPU has ("amx", "vnni"), or None."""
    for code in core.int8_kernels():
        if code != core.INT8_PORTABLE:
            return INT8_KERNEL_NAMES[code]
    return None


def quantize_weights(weights):
    """(q int8 (F, C, k, k), scales float32 (F,)) of a convolution's weights, per output
    channel and symmetric: s[f] = max|w[f]| / 127 (1 for a filter of zeros),
    q = clip(rint(w / s), -127, 127), rint rounding half to even."""
    weights = np.asarray(weights, np.float32)
    peak = np.abs(weights.reshape(weights.shape[0], -1)).max(axis=1)
    scales = np.where(peak > 0, peak / np.float32(QMAX), np.float32(1)).astype(np.float32)
    ratio = weights / scales.reshape((-1,) + (1,) * (weights.ndim - 1))
    return np.clip(np.rint(ratio), -QMAX, QMAX).astype(np.int8), scales


def quantize_activations(x, input_scale):
    """clip(rint(x / input_scale), -127, 127) as int8, in float32 arithmetic: what the packers
    (int8_pack_im2col, int8_pack_cl) compute in C for finite x, bit for bit; -128 never
    occurs."""
    ratio = np.asarray(x, np.float32) / np.float32(input_scale)
    return np.clip(np.rint(ratio), -QMAX, QMAX).astype(np.int8)


def aligned_int8(values):
    """An uninitialised int8 array of `values` whose first byte starts a cache line."""
    return workspace.aligned_uint16(-(-values // 2)).view(np.int8)[:values]


def int8_direct_applies(kernel, channels, stride):
    """Whether a convolution runs "direct" on AMX (see the module docstring)."""
    return kernel == "amx" and channels >= 16 and stride == 1


def direct_order(q):
    """q (F, C, k, k) in the direct kernel's steps (core.int8_direct_depth), the order it walks
    them: below 64 channels (F, k rows, taps of a row grouped by t, channel slots); from 64 on
    (F, blocks of 64 channels, k rows, k taps, 64 channels), a channel block's taps side by
    side (the span of weights the kernel holds in L1 is one run of memory, which it prefetches
    while computing the span before); zeros in the slots past C and the taps past k."""
    filters, channels, size = q.shape[0], q.shape[1], q.shape[2]
    depth = core.int8_direct_depth(channels, size)
    slots = core.int8_direct_slots(channels)
    taps_per_row = depth // (size * slots)
    ordered = np.zeros((filters, size, taps_per_row, slots), np.int8)
    ordered[:, :, :size, :channels] = q.transpose(0, 2, 3, 1)
    if slots >= 64:
        blocks = ordered.reshape(filters, size, size, slots // 64, 64)
        ordered = np.ascontiguousarray(blocks.transpose(0, 3, 1, 2, 4))
    return ordered


class Int8Weights:
    """A convolution's quantized weights q (F, C, k, k) and their scales (F,), packed for the
    kernels once: as (F, C·k·k) for im2col's products (one layout for the three kernels), or
    with `direct` in the direct AMX kernel's order (direct_order) as the B tiles of its
    products (core.int8_pack_direct_weights). `row_offsets` (128 · Σk q[f, k] per padded row)
    is the VNNI kernel's correction for its u8 activations."""

    def __init__(self, q, scales, kernel, direct=False):
        q = np.asarray(q)
        if q.dtype != np.int8 or q.ndim != 4:
            raise ValueError(f"quantized weights must be int8 (F, C, k, k), not {q.dtype} "
                             f"{q.shape}")
        if kernel not in INT8_KERNELS:
            raise ValueError(f"unknown int8 kernel {kernel!r}; choose one of "
                             + ", ".join(INT8_KERNELS))
        if direct and kernel != "amx":
            raise ValueError("only the amx kernel convolves direct")
        self.scales = np.ascontiguousarray(scales, np.float32)
        if self.scales.shape != (q.shape[0],):
            raise ValueError(f"{self.scales.shape} scales for {q.shape[0]} filters")
        self.kernel = kernel
        self.direct = bool(direct)
        if self.direct:
            q = direct_order(q)
        w2d = np.ascontiguousarray(q).reshape(q.shape[0], -1)
        self.rows, self.depth = w2d.shape
        self.data = aligned_int8(core.int8_weights_size(self.rows, self.depth))
        if self.direct:
            core.int8_pack_direct_weights(w2d, self.data)
        else:
            core.int8_pack_weights(w2d, self.data)
        self.row_offsets = np.zeros(core.bf16_padded(self.rows), np.int32)
        self.row_offsets[:self.rows] = 128 * w2d.sum(axis=1, dtype=np.int64)

    @property
    def nbytes(self):
        """The bytes held: the packed weights, the VNNI offsets and the scales."""
        return self.data.nbytes + self.row_offsets.nbytes + self.scales.nbytes


def _columns_buffer(values):
    """This thread's buffer for packed columns or a channels-last input (workspace.borrow_packed's
    bytes)."""
    return workspace.borrow_packed(-(-values // 2)).view(np.int8)[:values]


def convolve_int8(x, weights, input_scale, size, stride, padding, out, scale, bias, act,
                  kernel, pool=False):
    """out (N, F, out_h, out_w) = act(scale · weights.scales · input_scale · ACC + bias) with
    ACC the exact int32 sums of the quantized weights and input: x (N, C, H, W) float32
    quantized per call by input_scale, weights an Int8Weights, scale and bias (F,) batch
    norm's folded affine, act a core.ACT_* code, kernel a name of INT8_KERNELS. With `pool`
    (weights packed for the direct kernel, an even output) out (N, F, out_h/2, out_w/2) is
    its 2x2/2 maxpool, taken in the kernel's epilogue.

    On the direct kernel x may instead be a handoff.PackedActivation quantized and packed
    for this convolution (read in place), and out one to fill: the output quantized by the
    next layer's input scale into its channels-last input, or rounded into a bf16 direct layer's
    channel pairs (the same bytes as that layer's packing of the fp32 output), the fp32
    tensor never written."""
    n, c, h, w = x.shape
    f = out.shape[1]
    out_h, out_w = out.shape[2:]
    positions = out_h * out_w
    if pool and not weights.direct:
        raise ValueError("only the direct AMX kernel pools in its epilogue")
    depth = core.int8_direct_depth(c, size) if weights.direct else c * size * size
    if weights.depth != depth or weights.rows != f:
        raise ValueError(f"packed weights ({weights.rows}, {weights.depth}) do not fit a "
                         f"convolution of {c} channels, {f} filters, size {size}")
    packed_in, packed_out = isinstance(x, PackedActivation), isinstance(out, PackedActivation)
    if (packed_in or packed_out) and not weights.direct:
        raise ValueError("only the direct AMX kernel reads or writes packed activations")
    if packed_in:
        x.check((n, c, h, w), padding, INT8, input_scale)
    multiplier = (np.asarray(scale, np.float32) * weights.scales) * np.float32(input_scale)
    bias = np.ascontiguousarray(bias, np.float32)
    if weights.direct:
        if not int8_direct_applies(kernel, c, stride):
            raise ValueError("weights packed for the direct AMX kernel, which this call "
                             "cannot take")
        if packed_out and out.precision not in (INT8, BF16):
            raise ValueError(f"an int8 convolution cannot write its output as {out!r}")
        if not packed_in:
            image = _columns_buffer(core.int8_cl_size(c, h, w, padding))
        for i in range(n):
            if packed_in:
                image = x.image(i)
            else:
                core.int8_pack_cl(x[i], input_scale, padding, image)
            if packed_out and out.precision == BF16:
                core.int8_conv_amx_pairs(weights.data, image, c, h, w, size, padding,
                                         multiplier, bias, act, f, out.image(i), out.padding,
                                         pool)
            elif packed_out:
                core.int8_conv_amx_cl(weights.data, image, c, h, w, size, padding,
                                         multiplier, bias, act, f, out.image(i), out.scale,
                                         out.padding, pool)
            else:
                core.int8_conv_amx(weights.data, image, c, h, w, size, padding, multiplier,
                                   bias, act, out[i].reshape(f, positions), pool)
        return out
    code = INT8_KERNELS[kernel]
    columns_size = core.int8_columns_size(depth, positions)
    buffer = _columns_buffer(columns_size + core.int8_image_size(c, h, w))
    columns, image = buffer[:columns_size], buffer[columns_size:]
    for i in range(n):
        core.int8_pack_im2col(x[i], input_scale, size, stride, padding, columns, image)
        core.int8_matmul(code, weights.data, columns, depth, weights.row_offsets, multiplier,
                         bias, act, out[i].reshape(f, positions))
    return out
