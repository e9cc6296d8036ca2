"""What the convolution kernels' tests compare against: the 3x3 "same" convolution and its
gradients as literal float64 sums, darknet's column matrix of any convolution, a tolerance, layers with random parameters and a small
network that has every kind of 3x3 convolution."""
import numpy as np


MINI_CFG = """
[net]
width=20
height=18
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=12
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=10
size=3
stride=1
pad=1
activation=linear
"""


def direct_conv(x, w):
    """3x3 stride-1 padding-1 convolution as a literal sum over the 9 taps, in float64."""
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    out = np.zeros((n, w.shape[0], h, wd))
    for kh in range(3):
        for kw in range(3):
            out += np.einsum("fc,nchw->nfhw", w[:, :, kh, kw].astype(np.float64),
                             xp[:, :, kh:kh + h, kw:kw + wd])
    return out


def randomise(layer, rng):
    for name, p in layer.params.items():
        if name in ("rolling_variance", "scales"):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        else:
            p[...] = rng.standard_normal(p.shape) * 0.3
    layer.weights_changed()


def close(a, b, scale=None):
    scale = np.abs(b).max() if scale is None else scale
    return np.abs(np.asarray(a, np.float64) - b).max() <= 2e-6 * (1 + scale)


# F(4x4, 3x3)'s transforms round more than F(2x2, 3x3)'s (its matrices hold 2, 1/2, 4, 8 and
# G's thirds and fifteenths): measured up to 2.2e-6 of the largest output on 16 channels, so
# 5e-6 for its kernels and layers against close's 2e-6 (the network-level fidelity tests keep
# their tolerances)
F4_TOLERANCE = 5e-6


def close4(a, b):
    return np.abs(np.asarray(a, np.float64) - b).max() <= F4_TOLERANCE * (1 + np.abs(b).max())


def direct_input_grad(dz, w):
    """dL/dx of direct_conv given dL/dz, in float64: every output scatters dz·w back over the
    9 inputs it read (the adjoint of direct_conv's gather)."""
    n, f, h, wd = dz.shape
    dxp = np.zeros((n, w.shape[1], h + 2, wd + 2))
    for kh in range(3):
        for kw in range(3):
            dxp[:, :, kh:kh + h, kw:kw + wd] += np.einsum(
                "fc,nfhw->nchw", w[:, :, kh, kw].astype(np.float64), dz)
    return dxp[:, :, 1:-1, 1:-1]


def direct_weight_grad(x, dz):
    """dL/dw of direct_conv given dL/dz, in float64: each tap sums dz times the input it saw."""
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    dw = np.zeros((dz.shape[1], c, 3, 3))
    for kh in range(3):
        for kw in range(3):
            dw[:, :, kh, kw] = np.einsum("nfhw,nchw->fc", dz, xp[:, :, kh:kh + h, kw:kw + wd])
    return dw
