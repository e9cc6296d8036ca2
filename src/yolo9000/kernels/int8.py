"""int8 inference products - a NumPy STAND-IN with the fixed interface of the int8 kernels
(branch int8k writes the real ones: VNNI, AMX-INT8 and a portable C twin). It computes the
same numbers for every kernel name: the exact integer sums of int8 weights and activations
(float64 products of integers are exact at these sizes), then the fp32 epilogue
act(scale · weight scale · input scale · sum + bias). Replaced whole at merge.
"""
import numpy as np

from . import core

# the int8 kernels by name, fastest first (codes: the stand-in has no C)
INT8_KERNELS = {"amx": 2, "vnni": 1, "portable": 0}
INT8_KERNEL_NAMES = {code: name for name, code in INT8_KERNELS.items()}
INT8_UNITS = "AMX-INT8 or AVX512-VNNI"
INT8_MAX = 127


def int8_hardware_kernel():
    """The name of the fastest int8 unit this CPU has ("amx", "vnni"), or None."""
    features = core.cpu_features()
    if features["portable_kernels"]:
        return None
    if features["amx_int8"] and not features["amx_refused"]:
        return "amx"
    if features["avx512_vnni"]:
        return "vnni"
    return None


def quantize_weights(weights):
    """(q int8 (F, C, k, k), scales float32 (F,)): symmetric per output channel,
    s[f] = max|w[f]| / 127 (1 for an all-zero filter), q = clip(rint(w / s), -127, 127)."""
    weights = np.asarray(weights, np.float32)
    peak = np.abs(weights).reshape(weights.shape[0], -1).max(axis=1)
    scales = np.where(peak > 0, peak / np.float32(INT8_MAX), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(weights / scales[:, None, None, None]), -INT8_MAX, INT8_MAX)
    return q.astype(np.int8), scales


def quantize_activations(x, input_scale):
    """int8 clip(rint(x / input_scale), -127, 127)."""
    q = np.clip(np.rint(np.asarray(x, np.float32) / np.float32(input_scale)),
                -INT8_MAX, INT8_MAX)
    return q.astype(np.int8)


class Int8Weights:
    """A convolution's int8 weights (F, C, k, k) and their per-filter scales, packed once for
    `kernel` (the stand-in keeps them as a float64 (F, C·k·k) matrix)."""

    def __init__(self, q, scales, kernel, direct=False):
        q = np.asarray(q)
        if q.dtype != np.int8:
            raise ValueError("int8 weights must be int8")
        self.kernel, self.direct = kernel, bool(direct)
        self.shape = q.shape
        self.matrix = q.reshape(q.shape[0], -1).astype(np.float64)
        self.scales = np.ascontiguousarray(scales, np.float32)

    @property
    def nbytes(self):
        return int(np.prod(self.shape)) + self.scales.nbytes


def int8_direct_applies(kernel, channels, stride):
    """Whether a convolution runs "direct" (no column matrix) on `kernel`."""
    return kernel == "amx" and channels >= 16 and stride == 1


def convolve_int8(x, weights, input_scale, size, stride, padding, out, scale, bias, act,
                  kernel):
    """out (N, F, OH, OW) = act(scale[f] · weights.scales[f] · input_scale · ACC + bias[f]),
    ACC the exact sum of int8 weights × quantize_activations(x, input_scale), zero padding."""
    if kernel not in INT8_KERNELS:
        raise ValueError(f"unknown int8 kernel {kernel!r}")
    n, c = x.shape[:2]
    f, oh, ow = out.shape[1:]
    if weights.matrix.shape != (f, c * size * size):
        raise ValueError(f"int8 weights {weights.shape} do not fit a convolution of {c} "
                         f"channels, {f} filters, size {size}")
    q = quantize_activations(x, input_scale)
    q = np.pad(q, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(q, (size, size), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride][:, :, :oh, :ow]       # (N, C, OH, OW, k, k)
    multiplier = (np.asarray(scale, np.float32) * weights.scales
                  * np.float32(input_scale)).astype(np.float32)
    bias = np.ascontiguousarray(bias, np.float32)
    for i in range(n):
        columns = windows[i].transpose(0, 3, 4, 1, 2).reshape(c * size * size, oh * ow)
        sums = weights.matrix @ columns.astype(np.float64)
        z = out[i].reshape(1, f, oh * ow)
        z[0] = sums
        core.scale_bias_activate(z, multiplier, bias, act)
    return out
