"""Inference in lower precision than fp32: which precision and kernel a network runs, the
weights packed once, and a convolution's products in bf16 (the C: csrc/lowp_x86.h).

bf16: the weights rounded once to bfloat16 (round to nearest even) and packed in AMX's
blocks; each layer's input rounded and packed per call; products summed in fp32; batch norm,
bias and the activation in the fp32 epilogue of the fp32 path. Two ways to the products:
- "direct" (AMX, stride 1, 16 channels or more: every YOLOv2 layer but the RGB one): the
  input rounded once into channel pairs with a zero border, which AMX's tiles read in place
  for every tap, 32 channels a tile (zero channels pad the count, at most doubling 16's
  work); no column matrix (yolov2-voc's second layer's is 25 MB in bf16). Where the next
  layer is a direct one that alone reads the output, the epilogue writes that layer's
  channel pairs itself (kernels/handoff.py: no fp32 output, no pack pass);
- "rgb" (AMX or the portable twin, stride 1, a depth C·k·k of at most 32: the RGB input
  layer's 3 x 3x3 = 27, one tile's depth): the image rounded once into bf16 planes, and for
  each 32 output positions their two tiles of columns built in L1 and multiplied at once, the
  2x2/2 maxpool taken in the epilogue; no column matrix (416x416's is 9.3 MB), no channel
  padding (direct's would make 3 channels 32). On AVX512-BF16 alone it is slower than the
  fp32 direct kernel, which that layer then keeps (see rgb_applies);
- "im2col": the column matrix packed in bf16 panels straight from the input (no fp32
  matrix), multiplied on AMX tiles, AVX512-BF16, or the portable twin (the same sums in
  scalar C) that tests and no-unit machines can ask for by name.
int8 (kernels/int8.py; the weights and input scales come from an int8 checkpoint,
model/quantization.py): resolved here like bf16, on AMX-INT8 or AVX512-VNNI; the layers
an int8 checkpoint keeps unquantized (the RGB and last ones) run bf16 ("rgb", "direct")
where the CPU has AMX (bf16_kernel_in_int8).
Only inference: training always runs fp32.
"""
import numpy as np

from ..errors import UserError
from . import core, int8, workspace
from .handoff import PackedActivation
from .precisions import AUTO, BF16, FP32, INT8, PRECISION_CHOICES, PRECISIONS  # noqa: F401

# the bf16 kernels by name (set_precision's `kernel`, summary, bench), fastest first
BF16_KERNELS = {"amx": core.BF16_AMX, "avx512_bf16": core.BF16_AVX512,
                "portable": core.BF16_PORTABLE}
BF16_KERNEL_NAMES = {code: name for name, code in BF16_KERNELS.items()}
BF16_UNITS = "AMX-BF16 or AVX512-BF16"


class PrecisionUnavailable(UserError):
    """A precision this CPU (or this build, or YOLO9000_PORTABLE_KERNELS) cannot run."""


def bf16_hardware_kernel():
    """The name of the fastest bf16 unit this CPU has ("amx", "avx512_bf16"), or None."""
    for code in core.bf16_kernels():
        if code != core.BF16_PORTABLE:
            return BF16_KERNEL_NAMES[code]
    return None


def _no_unit_reason(units=BF16_UNITS, amx_refused_fallback="AVX512-BF16"):
    features = core.cpu_features()
    if features["portable_kernels"]:
        return "YOLO9000_PORTABLE_KERNELS is set"
    if features["amx_refused"]:
        return ("the Linux kernel refused AMX's tile state and this CPU has no "
                f"{amx_refused_fallback}")
    return f"this CPU has neither {units}"


def _no_int8_unit_reason():
    return _no_unit_reason(int8.INT8_UNITS, "AVX512-VNNI")


def _check_kernel(precision, kernel):
    """Refuse a kernel name that `precision` has not, or that cannot run here."""
    if precision == INT8:
        known, runs, reason = int8.INT8_KERNELS, core.int8_kernels(), _no_int8_unit_reason
    else:
        known, runs, reason = BF16_KERNELS, core.bf16_kernels(), _no_unit_reason
    if kernel not in known:
        raise UserError(f"unknown {precision} kernel {kernel!r}; choose one of "
                        + ", ".join(known))
    if known[kernel] not in runs:
        raise PrecisionUnavailable(f"the {precision} kernel {kernel!r} cannot run here: "
                                   + reason())


def resolve_precision(precision, kernel=None, quantized=False):
    """(precision, kernel name or None for fp32, note) for a requested precision, given
    whether the loaded weights are an int8 checkpoint (`quantized`):
    - "fp32", "bf16": as asked; "bf16" without a unit (and no explicit `kernel`) raises
      PrecisionUnavailable in one line;
    - "int8": on the fastest int8 unit (AMX-INT8, then VNNI); PrecisionUnavailable without
      one. (That the weights must be an int8 checkpoint is Network.set_precision's check.)
    - "auto": int8 when the weights are an int8 checkpoint and the CPU has an int8 unit, else
      bf16 on the fastest unit the CPU has, else fp32; the note says which and why.
    `kernel` names a kernel of the precision that runs (BF16_KERNELS, int8.INT8_KERNELS) to
    use instead of the fastest, e.g. the portable twin."""
    if precision not in PRECISION_CHOICES:
        raise UserError(f"unknown precision {precision!r}; choose one of "
                        + ", ".join(PRECISION_CHOICES))
    if precision == FP32:
        return FP32, None, "fp32"
    if precision == INT8 or (precision == AUTO and quantized):
        if kernel is not None:
            _check_kernel(INT8, kernel)
        unit = kernel or int8.int8_hardware_kernel()
        if unit is not None:
            return INT8, unit, f"{'auto: ' if precision == AUTO else ''}int8 on {unit}"
        if precision == INT8:
            raise PrecisionUnavailable(f"--precision int8 needs {int8.INT8_UNITS}: "
                                       f"{_no_int8_unit_reason()}; use --precision fp32 "
                                       "(or auto)")
        int8_reason = _no_int8_unit_reason()
        resolved, unit, note = resolve_precision(AUTO)
        if resolved == BF16:
            return resolved, unit, f"{note} (no int8: {int8_reason})"
        bf16_reason = _no_unit_reason()
        reasons = (int8_reason if int8_reason == bf16_reason
                   else f"no int8: {int8_reason}; no bf16: {bf16_reason}")
        return FP32, None, f"auto: fp32 ({reasons})"
    if kernel is not None:
        _check_kernel(BF16, kernel)
    unit = kernel or bf16_hardware_kernel()
    if precision == AUTO:
        if unit is None:
            return FP32, None, f"auto: fp32 ({_no_unit_reason()})"
        return BF16, unit, f"auto: bf16 on {unit}"
    if unit is None:
        raise PrecisionUnavailable(f"--precision bf16 needs {BF16_UNITS}: {_no_unit_reason()}; "
                                   "use --precision fp32 (or auto)")
    return BF16, unit, f"bf16 on {unit}"


def direct_applies(kernel, channels, stride):
    """Whether a convolution runs "direct" on AMX (see the module docstring)."""
    return kernel == "amx" and channels >= 16 and stride == 1


# the kernels that take "rgb": on AVX512-BF16 its vdpbf16ps products (all 32 filters by 16
# pairs for every 16 positions) took 1.1x (32 filters) and 1.8x (16) the fp32 direct
# kernel's time at 416x416, where AMX took 0.31x and 0.40x (BENCHMARKS.md#bf16-products); the
# portable twin stands in for AMX
RGB_KERNELS = ("amx", "portable")


def rgb_applies(kernel, channels, size, stride):
    """Whether a convolution runs "rgb" (see the module docstring): a depth channels·size²
    of at most 32, stride 1, on a kernel of RGB_KERNELS, and not one AMX takes direct (the
    portable twin takes the layers AMX does)."""
    return (kernel in RGB_KERNELS and not direct_applies("amx", channels, stride)
            and core.bf16_rgb_applies(channels, size, stride))


def bf16_kernel_in_int8(int8_kernel, channels, size, stride):
    """The bf16 kernel a convolution an int8 network left unquantized (by default its first,
    the image, and its last, the predictions) runs on, or None (it stays fp32): AMX-INT8's
    CPUs have AMX-BF16, where the rgb kernel takes 0.3x the fp32 direct kernel's time on the
    RGB layer and the direct one 0.6x fp32 im2col's on the last 1x1 (the portable twins
    stand in for AMX: the rgb path only); VNNI's have neither."""
    bf16_kernel = {"amx": "amx", "portable": "portable"}.get(int8_kernel)
    if bf16_kernel is None or BF16_KERNELS[bf16_kernel] not in core.bf16_kernels():
        return None
    if bf16_path(bf16_kernel, channels, size, stride) == "im2col":
        return None
    return bf16_kernel


def bf16_path(kernel, channels, size, stride):
    """The way a bf16 convolution computes its products: "direct", "rgb" or "im2col"."""
    if direct_applies(kernel, channels, stride):
        return "direct"
    return "rgb" if rgb_applies(kernel, channels, size, stride) else "im2col"


class BF16Weights:
    """A convolution's weights (F, C, k, k) rounded to bf16 and packed for the kernels, once:
    as (F, C·k·k) for im2col's products, or with `taps_major` as (F, k·k·C) for the direct
    AMX kernel."""

    def __init__(self, weights, taps_major=False):
        weights = np.asarray(weights, np.float32)
        self.taps_major = bool(taps_major)
        if self.taps_major:
            channels = weights.shape[1]
            weights = np.pad(weights, ((0, 0), (0, core.bf16_padded(channels) - channels),
                                       (0, 0), (0, 0))).transpose(0, 2, 3, 1)
        w2d = np.ascontiguousarray(weights).reshape(weights.shape[0], -1)
        self.rows, self.depth = w2d.shape
        self.data = workspace.aligned_uint16(core.bf16_padded(self.rows)
                                             * core.bf16_padded(self.depth))
        core.bf16_pack_weights(w2d, self.data)

    @property
    def nbytes(self):
        return self.data.nbytes


def convolve_bf16(x, weights, size, stride, padding, out, scale, bias, act, kernel,
                  pool=False):
    """out (N, F, out_h, out_w) = act(scale · conv(x, W) + bias) with bf16 products: x (N, C,
    H, W) float32 rounded per call, W a BF16Weights, kernel a name of BF16_KERNELS. With
    `pool` (the direct or rgb path, an even output) out (N, F, out_h/2, out_w/2) is its
    2x2/2 maxpool, taken in the kernel's epilogue.

    On the direct kernel x may instead be a handoff.PackedActivation packed for this
    convolution (read in place), and out one to fill (the output packed for the next layer,
    the fp32 tensor never kept); the rgb kernel fills one too when it pools."""
    n, c, h, w = x.shape
    f = out.shape[1]
    out_h, out_w = out.shape[2:]
    positions = out_h * out_w
    rgb = not weights.taps_major and rgb_applies(kernel, c, size, stride)
    if pool and not (weights.taps_major or rgb):
        raise ValueError("only the direct and rgb kernels pool in their epilogue")
    depth = (core.bf16_padded(c) if weights.taps_major else c) * size * size
    if weights.depth != depth or weights.rows != f:
        raise ValueError(f"packed weights ({weights.rows}, {weights.depth}) do not fit a "
                         f"convolution of {c} channels, {f} filters, size {size}")
    packed_in, packed_out = isinstance(x, PackedActivation), isinstance(out, PackedActivation)
    if packed_in and not weights.taps_major:
        raise ValueError("only the direct AMX kernel reads packed activations")
    if packed_out and not (weights.taps_major or (rgb and pool)):
        raise ValueError("only the direct AMX kernel, and the rgb one pooling, write packed "
                         "activations")
    if packed_out and out.precision != BF16 and not (rgb and out.precision == INT8):
        raise ValueError(f"a bf16 convolution cannot write its output as {out!r}")
    if packed_in:
        x.check((n, c, h, w), padding, BF16)
    if weights.taps_major:
        if not direct_applies(kernel, c, stride):
            raise ValueError("weights packed for the direct AMX kernel, which this call "
                             "cannot take")
        if not packed_in:
            pairs = workspace.borrow_packed(core.bf16_pairs_size(c, h, w, padding))
        for i in range(n):
            if packed_in:
                pairs = x.image(i)
            else:
                core.bf16_pack_pairs(x[i], padding, pairs)
            if packed_out:
                core.bf16_conv_amx_pairs(weights.data, pairs, c, h, w, size, padding, scale,
                                         bias, act, f, out.image(i), out.padding, pool)
            else:
                core.bf16_conv_amx(weights.data, pairs, c, h, w, size, padding, scale, bias,
                                   act, out[i].reshape(f, positions), pool)
        return out
    code = BF16_KERNELS[kernel]
    if rgb:
        image = workspace.borrow_packed(core.bf16_image_size(c, h, w, padding))
        for i in range(n):
            core.bf16_pack_image(x[i], padding, image)
            if packed_out and out.precision == INT8:
                core.bf16_conv_rgb_cl(code, weights.data, image, c, h, w, size, padding,
                                         scale, bias, act, f, out.image(i), out.scale,
                                         out.padding)
            elif packed_out:
                core.bf16_conv_rgb_pairs(code, weights.data, image, c, h, w, size, padding,
                                         scale, bias, act, f, out.image(i), out.padding)
            else:
                core.bf16_conv_rgb(code, weights.data, image, c, h, w, size, padding, scale,
                                   bias, act, out[i].reshape(f, -1), pool)
        return out
    columns = workspace.borrow_packed(core.bf16_padded(depth) * core.bf16_padded(positions))
    pointwise = size == 1 and stride == 1 and padding == 0
    for i in range(n):
        if pointwise:
            core.bf16_pack_columns(x[i].reshape(c, h * w), columns)
        else:
            core.bf16_pack_im2col(x[i], size, stride, padding, columns)
        core.bf16_matmul(code, weights.data, columns, depth, scale, bias, act,
                         out[i].reshape(f, positions))
    return out
