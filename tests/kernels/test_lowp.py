"""bf16 inference: the rounding, the packings' layout, each kernel (AMX, AVX512-BF16, the
portable twin) against a float64 product of the same bf16-rounded inputs, the fp32 epilogue,
and the precision a network runs in. The expected values are computed here, in NumPy, never
with the kernels under test."""
import subprocess
import sys

import numpy as np
import pytest

from columns_reference import im2col
from conftest import GOLDEN
from yolo9000 import Network
from yolo9000.kernels import core, lowp
from yolo9000.layers.convolutional import ConvolutionalLayer

BLOCK = 32          # the packing's unit: rows of W, columns of B and depth padded to it
UNIT_OF = {"amx": "AMX-BF16 (with Linux's tile permission)", "avx512_bf16": "AVX512-BF16",
           "portable": None}


def kernel_or_skip(name):
    """The kernel's name when this CPU (and the switch) allow it; else skip, saying which unit
    is missing."""
    if lowp.BF16_KERNELS[name] not in core.bf16_kernels():
        pytest.skip(f"this CPU (or YOLO9000_PORTABLE_KERNELS) has no {UNIT_OF[name]}")
    return name


KERNELS = pytest.mark.parametrize("kernel", list(UNIT_OF))


def bf16_round(x):
    """float32 -> bf16 (round to nearest even) -> float32, by integer arithmetic on the bits;
    NaN stays NaN."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), out)


def padded(n):
    return -(-n // BLOCK) * BLOCK


def expected_weight_packing(w):
    """W (M, K) as bf16 bits in blocks [M'/16][K'/32][16][32], zeros in the padding."""
    m, k = w.shape
    full = np.zeros((padded(m), padded(k)), np.float32)
    full[:m, :k] = bf16_round(w)
    bits = (full.view(np.uint32) >> 16).astype(np.uint16)
    return bits.reshape(padded(m) // 16, 16, padded(k) // 32, 32).transpose(0, 2, 1, 3).ravel()


def expected_column_packing(b):
    """B (K, N) as bf16 bits in panels [N'/16][K'/32][16 pairs of k][16 columns][2]."""
    k, n = b.shape
    full = np.zeros((padded(k), padded(n)), np.float32)
    full[:k, :n] = bf16_round(b)
    bits = (full.view(np.uint32) >> 16).astype(np.uint16)
    panels = bits.reshape(padded(k) // 32, 16, 2, padded(n) // 16, 16)   # kb, pair, h, p, col
    return panels.transpose(3, 0, 1, 4, 2).ravel()




def pack(w, b):
    wp = np.empty(padded(w.shape[0]) * padded(w.shape[1]), np.uint16)
    core.bf16_pack_weights(np.ascontiguousarray(w), wp)
    bp = np.empty(padded(b.shape[0]) * padded(b.shape[1]), np.uint16)
    core.bf16_pack_columns(np.ascontiguousarray(b), bp)
    return wp, bp


def product(kernel, w, b, scale=None, bias=None, act=core.ACT_LINEAR):
    m, n = w.shape[0], b.shape[1]
    wp, bp = pack(w, b)
    out = np.full((m, n), np.nan, np.float32)
    scale = np.ones(m, np.float32) if scale is None else scale
    bias = np.zeros(m, np.float32) if bias is None else bias
    core.bf16_matmul(lowp.BF16_KERNELS[kernel], wp, bp, w.shape[1], scale, bias, act, out)
    return out


def accumulation_bound(w, b):
    """What summing K products in fp32, in any order, may add to the exact sum."""
    magnitude = np.abs(bf16_round(w)).astype(np.float64) @ np.abs(bf16_round(b)).astype(np.float64)
    return 2 * w.shape[1] * 2.0 ** -24 * magnitude + 1e-30


# -- rounding and packing ---------------------------------------------------------------------
def test_rounding_is_to_nearest_even_and_keeps_nan_and_inf():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)              # bf16's spacing at 1
    x = np.array([one + ulp / 2,             # a tie: to the even neighbour, 1
                  one + 3 * ulp / 2,         # a tie: to the even neighbour, 1 + 2 ulp
                  one + ulp / 2 + 2.0 ** -20,  # just above the tie: up
                  -(one + ulp / 2), np.inf, -np.inf, np.nan, 3.0e38, 1e-40],
                 np.float32)
    w = x.reshape(1, -1)
    wp = np.empty(padded(1) * padded(x.size), np.uint16)
    core.bf16_pack_weights(w, wp)
    got = (wp[:x.size].astype(np.uint32) << 16).view(np.float32)
    assert got[0] == 1.0 and got[1] == one + 2 * ulp and got[2] == one + ulp
    assert got[3] == -1.0 and got[4] == np.inf and got[5] == -np.inf and np.isnan(got[6])
    assert np.isfinite(got[7]) and got[8] != 0      # no overflow to inf, no flush to zero
    np.testing.assert_array_equal(got, bf16_round(x))


@pytest.mark.parametrize("m,k", [(1, 1), (16, 32), (17, 33), (40, 70), (125, 27)])
def test_weights_packing_layout(m, k):
    w = np.random.default_rng(m * 100 + k).standard_normal((m, k)).astype(np.float32)
    wp = np.empty(padded(m) * padded(k), np.uint16)
    core.bf16_pack_weights(w, wp)
    np.testing.assert_array_equal(wp, expected_weight_packing(w))


@pytest.mark.parametrize("k,n", [(1, 1), (32, 16), (33, 17), (70, 50), (27, 169)])
def test_columns_packing_layout(k, n):
    b = np.random.default_rng(k * 100 + n).standard_normal((k, n)).astype(np.float32)
    bp = np.full(padded(k) * padded(n), 7, np.uint16)
    core.bf16_pack_columns(b, bp)
    np.testing.assert_array_equal(bp, expected_column_packing(b))


@pytest.mark.parametrize("c,h,w,size,stride,pad", [
    (3, 17, 23, 3, 1, 1), (5, 9, 9, 3, 2, 1), (2, 6, 7, 1, 1, 0), (4, 13, 13, 3, 1, 1),
    (3, 8, 8, 2, 2, 0), (1, 5, 3, 3, 1, 1),
    # rows of whole panels (16 positions on one row, loaded at once), their edges padding
    (2, 4, 48, 3, 1, 1), (3, 3, 32, 1, 1, 0), (2, 5, 40, 3, 1, 1)])
def test_im2col_packing_is_the_packed_column_matrix(c, h, w, size, stride, pad):
    x = np.random.default_rng(c + h + w).standard_normal((c, h, w)).astype(np.float32)
    col = im2col(x, size, stride, pad)
    bp = np.full(padded(col.shape[0]) * padded(col.shape[1]), 7, np.uint16)
    core.bf16_pack_im2col(x, size, stride, pad, bp)
    np.testing.assert_array_equal(bp, expected_column_packing(col))


def test_a_broken_packing_is_caught():
    """The layout tests are what guard the packing: a packing with two k swapped (what a
    wrong pair order gives) differs from the expected one."""
    b = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    good = expected_column_packing(b)
    swapped = expected_column_packing(b[[1, 0] + list(range(2, 64))])
    assert not np.array_equal(good, swapped)
    bp = np.empty(good.size, np.uint16)
    core.bf16_pack_columns(b, bp)
    assert np.array_equal(bp, good) and not np.array_equal(bp, swapped)


# -- the kernels -----------------------------------------------------------------------------
@KERNELS
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 27, 37), (16, 32, 16), (17, 33, 15),
                                   (33, 70, 65), (64, 288, 100), (125, 1024, 13)])
def test_kernel_matches_float64_on_rounded_inputs(kernel, m, k, n):
    kernel_or_skip(kernel)
    rng = np.random.default_rng(m * 7 + k * 3 + n)
    w = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    exact = bf16_round(w).astype(np.float64) @ bf16_round(b).astype(np.float64)
    got = product(kernel, w, b)
    assert np.all(np.abs(got - exact) <= accumulation_bound(w, b))


@KERNELS
@pytest.mark.parametrize("act", [core.ACT_LINEAR, core.ACT_LEAKY, core.ACT_RELU,
                                 core.ACT_LOGISTIC])
def test_kernel_epilogue_is_scale_bias_activation_in_fp32(kernel, act):
    kernel_or_skip(kernel)
    rng = np.random.default_rng(act)
    m, k, n = 37, 45, 41
    w = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    scale = rng.uniform(0.5, 2, m).astype(np.float32)
    bias = rng.standard_normal(m).astype(np.float32)
    z = bf16_round(w).astype(np.float64) @ bf16_round(b).astype(np.float64)
    v = scale[:, None] * z + bias[:, None]
    expected = {core.ACT_LINEAR: v, core.ACT_LEAKY: np.where(v > 0, v, 0.1 * v),
                core.ACT_RELU: np.maximum(v, 0), core.ACT_LOGISTIC: 1 / (1 + np.exp(-v))}[act]
    got = product(kernel, w, b, scale, bias, act)
    slack = scale[:, None] * accumulation_bound(w, b) + 1e-6 * (1 + np.abs(v))
    assert np.all(np.abs(got - expected) <= slack)


@KERNELS
def test_kernel_writes_only_the_output(kernel):
    """Partial tiles: the padding rows and columns of the 32x32 blocks are never stored."""
    kernel_or_skip(kernel)
    rng = np.random.default_rng(5)
    w = rng.standard_normal((17, 40)).astype(np.float32)
    b = rng.standard_normal((40, 19)).astype(np.float32)
    wp, bp = pack(w, b)
    big = np.full((20, 25), -7.0, np.float32)
    core.bf16_matmul(lowp.BF16_KERNELS[kernel], wp, bp, 40, np.ones(17, np.float32),
                     np.zeros(17, np.float32), core.ACT_LINEAR, big[:17, :19])
    assert np.all(big[17:] == -7) and np.all(big[:, 19:] == -7)


@pytest.mark.parametrize("c,h,w", [(2, 3, 5), (4, 13, 13), (6, 2, 40), (17, 3, 19), (33, 2, 2)])
@pytest.mark.parametrize("pad", [0, 1])
def test_channel_pairs_packing_layout(c, h, w, pad):
    """[C'/2][H'][W + pad][2]: channel pairs side by side, rows starting with `pad` zeros (one
    border between two rows), `pad` zero rows above, `pad` below and the slack a block of 32
    positions past the last output reads (H' = H + 2 pad + ceil((pad + 31) / (W + pad))), then
    zeros up to the next plane, an odd number of 64-byte lines (16 pairs) on; zero channels up
    to C' (a multiple of 32)."""
    x = np.random.default_rng(c * h + w).standard_normal((c, h, w)).astype(np.float32)
    out = np.full(core.bf16_pairs_size(c, h, w, pad), 7, np.uint16)
    core.bf16_pack_pairs(x, pad, out)
    np.testing.assert_array_equal(out, expected_pairs(x, pad))


def expected_pairs(x, pad):
    """x (C, H, W) as bf16 bits in the channel-pair layout (test_channel_pairs_packing_layout
    says what it is), in NumPy."""
    c, h, w = x.shape
    width = w + pad
    rows = h + 2 * pad + -(-(pad + 31) // width)
    lines = -(-rows * width // 16)
    plane = 16 * (lines if lines % 2 else lines + 1)
    full = np.zeros((padded(c), rows, width), np.float32)
    full[:c, pad:pad + h, pad:] = bf16_round(x)
    planes = np.zeros((padded(c), plane), np.float32)
    planes[:, :rows * width] = full.reshape(padded(c), -1)
    bits = (planes.view(np.uint32) >> 16).astype(np.uint16)
    return bits.reshape(padded(c) // 2, 2, plane).transpose(0, 2, 1).ravel()


@pytest.mark.parametrize("c,h,w,f,size,pad", [
    (32, 5, 7, 17, 3, 1), (64, 13, 13, 64, 3, 1), (32, 20, 37, 40, 3, 1), (64, 16, 16, 32, 1, 0),
    (32, 3, 3, 8, 3, 1), (96, 26, 26, 125, 1, 0), (32, 9, 40, 33, 3, 0), (32, 1, 1, 1, 1, 0),
    (16, 10, 21, 32, 3, 1), (47, 6, 6, 9, 3, 1),
    # 5x5 (a border of 2 shared by two rows), and a border wider than the kernel needs (the
    # output wider than the input: its last columns read the next row's border)
    (32, 7, 9, 5, 5, 2), (32, 6, 6, 4, 3, 2),
    # sums kept between spans of channel blocks: 3x3 a block a span (one group of pieces,
    # and 14 pieces: a group of 8 and one of 6), 1x1 eight (nine blocks: a span and one)
    (100, 9, 9, 40, 3, 1), (64, 20, 20, 40, 3, 1), (288, 5, 7, 33, 1, 0)])
def test_direct_amx_convolution_matches_float64(c, h, w, f, size, pad):
    """Odd filter counts (partial row blocks), maps narrower than a tile's 16 positions (a
    block's 32 flat positions span several rows), rows wider, unpadded (the positions past
    each row's outputs computed and dropped)."""
    kernel_or_skip("amx")
    rng = np.random.default_rng(c + h + w + f)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    weights = rng.standard_normal((f, c, size, size)).astype(np.float32)
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    pairs = np.empty(core.bf16_pairs_size(c, h, w, pad), np.uint16)
    core.bf16_pack_pairs(x, pad, pairs)
    packed = lowp.BF16Weights(weights, taps_major=True)
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    out = np.full((f, oh * ow), np.nan, np.float32)
    core.bf16_conv_amx(packed.data, pairs, c, h, w, size, pad, scale, bias, core.ACT_LINEAR, out)
    w2d = bf16_round(weights.reshape(f, -1)).astype(np.float64)
    col = im2col(bf16_round(x).astype(np.float64), size, 1, pad)
    z = w2d @ col
    bound = accumulation_bound(weights.reshape(f, -1), im2col(x, size, 1, pad))
    assert np.all(np.abs(out - (scale[:, None] * z + bias[:, None]))
                  <= scale[:, None] * bound + 1e-6 * (1 + np.abs(z)))


def pool_2x2(v):
    """The 2x2/2 maxima of v (F, H, W), H and W even."""
    f, h, w = v.shape
    return v.reshape(f, h // 2, 2, w // 2, 2).max(axis=(2, 4))


@pytest.mark.parametrize("c,h,w,f,size,pad", [
    (32, 6, 8, 17, 3, 1),      # rows shorter than a segment, a partial filter block
    (64, 26, 26, 40, 3, 1),    # two segments a row, the second overlapping the first
    (32, 4, 48, 33, 3, 1),     # three whole segments a row
    (32, 10, 38, 8, 3, 0),     # unpadded, 36 wide: the overlapping segment at column 20
    (48, 12, 12, 64, 1, 0)])   # 1x1, channels padded to 64
def test_direct_amx_convolution_pools_in_its_epilogue(c, h, w, f, size, pad):
    """pool=True: the 2x2/2 maxima of the activated output, the pair of rows a window spans
    taken by one block."""
    kernel_or_skip("amx")
    rng = np.random.default_rng(c * w + f)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    weights = rng.standard_normal((f, c, size, size)).astype(np.float32)
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    pairs = np.empty(core.bf16_pairs_size(c, h, w, pad), np.uint16)
    core.bf16_pack_pairs(x, pad, pairs)
    packed = lowp.BF16Weights(weights, taps_major=True)
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    out = np.full((f, oh // 2 * (ow // 2)), np.nan, np.float32)
    core.bf16_conv_amx(packed.data, pairs, c, h, w, size, pad, scale, bias, core.ACT_LEAKY,
                       out, pool=True)
    z = bf16_round(weights.reshape(f, -1)).astype(np.float64) @ im2col(
        bf16_round(x).astype(np.float64), size, 1, pad)
    v = scale[:, None] * z + bias[:, None]
    expected = pool_2x2(np.where(v > 0, v, 0.1 * v).reshape(f, oh, ow)).reshape(f, -1)
    bound = scale[:, None] * accumulation_bound(weights.reshape(f, -1), im2col(x, size, 1, pad))
    slack = pool_2x2(bound.reshape(f, oh, ow)).reshape(f, -1) + 1e-6 * (1 + np.abs(expected))
    assert np.all(np.abs(out - expected) <= slack)


@pytest.mark.parametrize("c,h,w,f,size,pad,pool", [
    (32, 5, 7, 17, 3, 1, False),     # rows narrower than a tile, an odd filter count
    (64, 13, 13, 64, 1, 0, False),   # 32 positions across three rows
    (32, 20, 37, 40, 3, 1, False),   # rows wider than 32 positions
    (96, 26, 26, 5, 1, 0, False),    # fewer filters than a pair of planes holds
    (32, 9, 40, 33, 3, 0, False),    # unpadded: the positions past each row dropped
    (32, 6, 8, 17, 3, 1, True),      # pooled rows shorter than a segment
    (64, 26, 26, 40, 3, 1, True),    # the overlapping last segment
    (32, 10, 38, 9, 3, 0, True),
    (48, 12, 12, 64, 1, 0, True)])
@pytest.mark.parametrize("out_pad", [0, 1, 2])
def test_direct_amx_convolution_hands_off_packed_pairs(c, h, w, f, size, pad, pool, out_pad):
    """bf16_conv_amx_pairs: bf16_conv_amx's fp32 output (pooled or not) rounded and packed as
    the next layer's input, its border and zero channels written over whatever the buffer
    held, the same bits with the AVX-512 rounding and the portable twin's."""
    kernel_or_skip("amx")
    rng = np.random.default_rng(c * h + w * f + out_pad)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    weights = rng.standard_normal((f, c, size, size)).astype(np.float32)
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    pairs = np.empty(core.bf16_pairs_size(c, h, w, pad), np.uint16)
    core.bf16_pack_pairs(x, pad, pairs)
    packed = lowp.BF16Weights(weights, taps_major=True)
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    if pool:
        oh, ow = oh // 2, ow // 2
    for act in (core.ACT_LEAKY, core.ACT_RELU, core.ACT_LINEAR, core.ACT_LOGISTIC):
        fp32 = np.empty((f, oh * ow), np.float32)
        core.bf16_conv_amx(packed.data, pairs, c, h, w, size, pad, scale, bias, act, fp32,
                           pool=pool)
        expected = expected_pairs(fp32.reshape(f, oh, ow), out_pad)
        for portable in (False, True):
            out = np.full(expected.size + 5, 0x7F7F, np.uint16)
            core.bf16_conv_amx_pairs(packed.data, pairs, c, h, w, size, pad, scale, bias,
                                     act, f, out, out_pad, pool=pool,
                                     portable_rounding=portable)
            np.testing.assert_array_equal(out[:expected.size], expected,
                                          err_msg=f"act {act}, portable {portable}")
            assert np.all(out[expected.size:] == 0x7F7F)        # nothing written past it


def test_direct_amx_hand_off_refuses_a_short_buffer():
    kernel_or_skip("amx")
    pairs = np.zeros(core.bf16_pairs_size(32, 6, 6, 1), np.uint16)
    packed = lowp.BF16Weights(np.zeros((4, 32, 3, 3), np.float32), taps_major=True)
    one = np.ones(4, np.float32)
    short = np.zeros(core.bf16_pairs_size(4, 6, 6, 1) - 1, np.uint16)
    with pytest.raises(ValueError, match="too small"):
        core.bf16_conv_amx_pairs(packed.data, pairs, 32, 6, 6, 3, 1, one, one,
                                 core.ACT_LINEAR, 4, short, 1)


def test_direct_amx_pooling_refuses_an_odd_output():
    kernel_or_skip("amx")
    x = np.zeros((32, 5, 6), np.float32)
    pairs = np.empty(core.bf16_pairs_size(32, 5, 6, 1), np.uint16)
    core.bf16_pack_pairs(x, 1, pairs)
    packed = lowp.BF16Weights(np.zeros((4, 32, 3, 3), np.float32), taps_major=True)
    with pytest.raises(ValueError, match="even output"):
        core.bf16_conv_amx(packed.data, pairs, 32, 5, 6, 3, 1, np.ones(4, np.float32),
                           np.zeros(4, np.float32), core.ACT_LINEAR,
                           np.empty((4, 6), np.float32), pool=True)


def test_kernels_refuse_short_operands():
    w = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError):
        core.bf16_matmul(core.BF16_PORTABLE, np.zeros(10, np.uint16), np.zeros(10, np.uint16), 8,
                         np.ones(4, np.float32), np.zeros(4, np.float32), 0,
                         np.empty((4, 4), np.float32))
    with pytest.raises(ValueError):
        core.bf16_pack_weights(w, np.zeros(10, np.uint16))


# -- layers and networks ---------------------------------------------------------------------
def best_kernel_or_skip():
    name = lowp.bf16_hardware_kernel()
    if name is None:
        pytest.skip("this CPU (or YOLO9000_PORTABLE_KERNELS) has neither AMX-BF16 nor "
                    "AVX512-BF16")
    return name


def path_of(kernel, channels, stride, size=3):
    """The bf16 path the module docstring of kernels/lowp.py promises: direct on AMX from 16
    channels, rgb on AMX and the portable twin below that for a depth of 32 at most."""
    if stride == 1 and channels >= 16:
        return f"bf16 {kernel} {'direct' if kernel == 'amx' else 'im2col'}"
    rgb = kernel in ("amx", "portable") and stride == 1 and channels * size * size <= 32
    return f"bf16 {kernel} {'rgb' if rgb else 'im2col'}"


@KERNELS
@pytest.mark.parametrize("size,stride,pad,channels", [(3, 1, 1, 9), (3, 1, 1, 16), (1, 1, 0, 20),
                                                      (3, 2, 1, 5), (3, 1, 1, 32), (1, 1, 0, 64),
                                                      (3, 2, 1, 32)])
def test_bf16_convolution_layer_matches_float64(kernel, size, stride, pad, channels):
    kernel_or_skip(kernel)
    rng = np.random.default_rng(size + channels)
    layer = ConvolutionalLayer((channels, 11, 9), 21, size, stride, padding=pad,
                               batch_normalize=True, activation="leaky", rng=rng)
    layer.bn.scales[...] = rng.uniform(0.5, 1.5, 21)
    layer.bn.rolling_mean[...] = rng.standard_normal(21) * 0.1
    layer.biases[...] = rng.standard_normal(21) * 0.1
    x = rng.standard_normal((2, channels, 11, 9)).astype(np.float32)
    layer.set_precision("bf16", kernel)
    assert layer.inference_path() == path_of(kernel, channels, stride, size)
    got = layer.forward(x)
    a, b = layer._inference_affine()
    w2d = bf16_round(layer.weights.reshape(21, -1)).astype(np.float64)
    for i in range(2):
        z = w2d @ im2col(bf16_round(x[i]).astype(np.float64), size, stride, pad)
        v = a[:, None] * z + b[:, None]
        expected = np.where(v > 0, v, 0.1 * v).reshape(got[i].shape)
        assert np.allclose(got[i], expected, rtol=1e-5, atol=1e-5)


@KERNELS
def test_bf16_layer_pools_in_its_epilogue_only_on_the_direct_kernel(kernel):
    """forward_pooled: the direct AMX kernel's pooled epilogue, the maxima of forward's own
    values (the same bits as forward, then the maxpool layer); the im2col kernels leave the
    pooling to the maxpool (None)."""
    kernel_or_skip(kernel)
    from yolo9000.layers.maxpool import MaxpoolLayer
    rng = np.random.default_rng(11)
    layer = ConvolutionalLayer((32, 12, 10), 40, 3, 1, 1, batch_normalize=True,
                               activation="leaky", rng=rng)
    layer.bn.rolling_mean[...] = rng.standard_normal(40) * 0.1
    x = rng.standard_normal((2, 32, 12, 10)).astype(np.float32)
    layer.set_precision("bf16", kernel)
    pooled = layer.forward_pooled(x)
    if path_of(kernel, 32, 1).endswith("im2col"):
        assert pooled is None
        return
    unfused = MaxpoolLayer(layer.out_shape, 2, 2).forward(layer.forward(x))
    assert pooled.shape == (2, 40, 6, 5)
    np.testing.assert_array_equal(pooled, unfused)


def test_the_rgb_layer_stays_fp32_on_the_direct_kernel_where_bf16_has_no_rgb_kernel():
    """On AVX512-BF16 alone the fp32 direct kernel beats the rgb one: the layer keeps it (on
    AMX and the portable twin it runs rgb: tests/kernels/test_rgb_lowp.py)."""
    kernel_or_skip("avx512_bf16")
    layer = ConvolutionalLayer((3, 16, 16), 8, 3, 1, 1, activation="leaky")
    if not layer.use_direct:
        pytest.skip("this CPU (or YOLO9000_PORTABLE_KERNELS) has no AVX2+FMA direct kernel")
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    fp32 = layer.forward(x)
    layer.set_precision("bf16", "avx512_bf16")
    assert layer.precision == "fp32" and layer.inference_path() == "fp32 direct"
    np.testing.assert_array_equal(layer.forward(x), fp32)


def expected_paths(net, kernel):
    def path(layer):
        bf16 = path_of(kernel, layer.in_shape[0], layer.stride, layer.size)
        return "fp32 direct" if layer.use_direct and not bf16.endswith("rgb") else bf16
    return {i: path(layer) for i, layer in enumerate(net.layers) if layer.kind == "conv"}


def test_golden_network_in_bf16_is_within_its_bound_of_darknet():
    """The mini network against darknet's fp32 numbers, every layer: bf16's 8-bit mantissa
    (relative rounding 2^-9 per operand) through 8 bf16 convolutions stays within 5% of
    (1 + |darknet's value|) everywhere and 0.6% on average per layer (measured: 2.1% and
    0.31% with the RGB layer bf16 on AMX or the portable twin; 3.3% and 0.29% with it fp32)."""
    kernel = best_kernel_or_skip()
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    net.load_weights(GOLDEN / "mini.weights")
    assert net.set_precision("bf16") == f"bf16 on {kernel}"
    outs = net.forward_all(np.load(GOLDEN / "input.npy"))
    ref = np.load(GOLDEN / "forward.npz")
    worst = 0.0
    for i, out in enumerate(outs):
        r = ref[f"layer{i:02d}"]
        error = np.abs(out - r) / (1 + np.abs(r))
        assert error.max() <= 0.05 and error.mean() <= 0.006, f"layer {i}"
        worst = max(worst, error.max())
    assert worst > 1e-4       # it did run in bf16: fp32 is within 1e-4 (test_network.py)


def test_bf16_network_forward_equals_per_layer_bf16_and_fp32_is_untouched():
    kernel = best_kernel_or_skip()
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    net.load_weights(GOLDEN / "mini.weights")
    x = np.load(GOLDEN / "input.npy")
    fp32 = net.forward(x)
    net.set_precision("bf16")
    assert net.layer_paths() == expected_paths(net, kernel)
    # forward pools in the direct AMX kernel's epilogue (forward_all never fuses): the
    # maxima of the same values, the same bits
    np.testing.assert_array_equal(net.forward(x), net.forward_all(x)[-1])
    net.set_precision("fp32")
    assert not any(path.startswith("bf16") for path in net.layer_paths().values())
    np.testing.assert_array_equal(net.forward(x), fp32)


def test_bf16_weights_follow_weights_changed():
    kernel = best_kernel_or_skip()
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    net.load_weights(GOLDEN / "mini.weights")
    x = np.load(GOLDEN / "input.npy")
    net.set_precision("bf16", kernel)
    before = net.forward(x)
    net.layers[0].weights[...] *= 2          # in place, then told
    net.weights_changed()
    after = net.forward(x)
    assert not np.allclose(before, after)
    fresh = Network.from_cfg(GOLDEN / "mini.cfg")
    fresh.load_weights(GOLDEN / "mini.weights")
    fresh.layers[0].weights[...] *= 2
    fresh.set_precision("bf16", kernel)
    np.testing.assert_array_equal(after, fresh.forward(x))


def test_training_forward_stays_fp32():
    best_kernel_or_skip()
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    net.load_weights(GOLDEN / "mini.weights")
    x = np.load(GOLDEN / "input.npy")
    fp32 = net.forward(x, train=True)
    net.set_precision("bf16")
    np.testing.assert_array_equal(net.forward(x, train=True), fp32)


def test_the_portable_twin_can_be_asked_for_by_name():
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    assert net.set_precision("bf16", kernel="portable") == "bf16 on portable"
    assert net.layer_paths() == expected_paths(net, "portable")


def test_unknown_precisions_and_kernels_are_one_line_errors():
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    with pytest.raises(lowp.UserError, match="unknown precision 'fp16'"):
        net.set_precision("fp16")
    with pytest.raises(lowp.UserError, match="unknown bf16 kernel 'tpu'"):
        net.set_precision("bf16", kernel="tpu")


NO_UNIT = """
import json
from yolo9000 import Network, UserError
from yolo9000.kernels import lowp
net = Network.from_cfg("yolov2-tiny-voc")
try:
    net.set_precision("bf16")
    bf16 = "ran"
except UserError as e:
    bf16 = str(e)
auto = net.set_precision("auto")
print(json.dumps({"bf16": bf16, "auto": auto, "precision": net.precision,
                  "paths": sorted(set(net.layer_paths().values()))}))
"""


def test_without_a_unit_bf16_says_so_and_auto_falls_back_to_fp32():
    """YOLO9000_PORTABLE_KERNELS stands in for a CPU without AMX or AVX512-BF16."""
    import json
    import os
    env = dict(os.environ, YOLO9000_PORTABLE_KERNELS="1")
    run = subprocess.run([sys.executable, "-c", NO_UNIT], env=env, capture_output=True,
                         text=True, check=True)
    report = json.loads(run.stdout)
    assert report["bf16"] == ("--precision bf16 needs AMX-BF16 or AVX512-BF16: "
                              "YOLO9000_PORTABLE_KERNELS is set; use --precision fp32 (or auto)")
    assert report["auto"] == "auto: fp32 (YOLO9000_PORTABLE_KERNELS is set)"
    assert report["precision"] == "fp32" and report["paths"] == ["fp32 im2col",
                                                                 "fp32 winograd"]


def test_auto_picks_the_fastest_unit():
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    unit = lowp.bf16_hardware_kernel()
    expected = f"auto: bf16 on {unit}" if unit else net.set_precision("auto")
    assert net.set_precision("auto") == expected
    features = core.cpu_features()
    if features["amx_bf16"]:
        assert unit == "amx"
    elif features["avx512_bf16"]:
        assert unit == "avx512_bf16"
