"""int8 inference kernels: the quantization, the packings' layout, and each path (AMX direct,
AMX, AVX512-VNNI and the portable twin over im2col) against int64 sums of the same quantized
values, bit for bit, with the fp32 epilogue against float64. The expected values are computed
here, in NumPy, never with the kernels under test."""
import numpy as np
import pytest

from columns_reference import im2col
from yolo9000.kernels import core, int8

BLOCK = 32          # rows of W and columns of B are padded to it
DEPTH = 64          # K is padded to it
CL_SLACK = 1024  # zero bytes after the direct kernel's channels-last input
UNIT_OF = {"amx": "AMX-INT8 (with Linux's tile permission)", "vnni": "AVX512-VNNI",
           "portable": None}


def kernel_or_skip(name):
    """The kernel's name when this CPU (and the switch) allow it; else skip, saying which unit
    is missing."""
    if int8.INT8_KERNELS[name] not in core.int8_kernels():
        pytest.skip(f"this CPU (or YOLO9000_PORTABLE_KERNELS) has no {UNIT_OF[name]}")
    return name


KERNELS = pytest.mark.parametrize("kernel", list(UNIT_OF))


def padded(n, unit=BLOCK):
    return -(-n // unit) * unit


def reference_quantize(x, scale):
    """clip(rint(x / scale), -127, 127) in float32 division, rounding half to even, as int64."""
    with np.errstate(over="ignore"):       # a tiny scale: infinities, clipped
        ratio = np.asarray(x, np.float32) / np.float32(scale)
    return np.clip(np.rint(ratio), -127, 127).astype(np.int64)


def reference_sums(q, xq, size, stride, pad):
    """ACC (F, out_h·out_w) of quantized weights q (F, C, k, k) and one quantized image xq
    (C, H, W), in int64."""
    return q.reshape(q.shape[0], -1).astype(np.int64) @ im2col(
        np.asarray(xq, np.int64), size, stride, pad)


def expected_weight_packing(q):
    """W int8 (M, K) in blocks [M'/16][K'/64][16][64], zeros in the padding."""
    m, k = q.shape
    full = np.zeros((padded(m), padded(k, DEPTH)), np.int8)
    full[:m, :k] = q
    return full.reshape(padded(m) // 16, 16, -1, DEPTH).transpose(0, 2, 1, 3).ravel()


def expected_column_packing(b):
    """B int (K, N) in panels [N'/16][K'/64][16 image of k][16 columns][4]."""
    k, n = b.shape
    full = np.zeros((padded(k, DEPTH), padded(n)), np.int8)
    full[:k, :n] = b
    panels = full.reshape(-1, 16, 4, padded(n) // 16, 16)     # kb, quad, byte, p, column
    return panels.transpose(3, 0, 1, 4, 2).ravel()


def scratch(x):
    """int8_pack_im2col's scratch for the quantized image, filled with a value it must not
    leave anywhere in the packing."""
    return np.full(core.int8_image_size(*x.shape), 7, np.int8)


def filters(rng, f, c, size):
    """Random int8 weights in [-127, 127], each filter reaching one end of the range."""
    q = rng.integers(-127, 128, (f, c, size, size)).astype(np.int8)
    q.reshape(f, -1)[:, 0] = np.where(np.arange(f) % 2, 127, -127)
    return q


# -- quantization ------------------------------------------------------------------------------
def test_weights_are_quantized_per_output_channel_symmetric():
    w = np.zeros((3, 1, 1, 4), np.float32)
    w[0, 0, 0] = [15.875, -7.9375, 0.0625, -15.875]   # s = 1/8: 127, -63.5, 0.5, -127
    w[1, 0, 0] = [0.5, 0.25, -0.125, 1.5]         # s = 1.5 / 127
    q, scales = int8.quantize_weights(w)
    assert q.dtype == np.int8 and scales.dtype == np.float32 and q.shape == w.shape
    assert scales[0] == 0.125 and scales[1] == np.float32(np.float32(1.5) / np.float32(127))
    assert scales[2] == 1 and not q[2].any()      # a filter of zeros
    assert q[0, 0, 0].tolist() == [127, -64, 0, -127]    # ties to even
    assert q[1, 0, 0].tolist() == [42, 21, -11, 127]   # 42.33, 21.17, -10.58, 127
    assert q.min() >= -127


def test_activations_round_half_to_even_and_clip_at_127():
    s = 0.25                                      # x / s exact: the ties are ties
    x = np.array([0.125, 0.375, 0.625, -0.125, -0.625, 31.875, 100.0, -100.0, 0.0, -0.0])
    q = int8.quantize_activations(x.astype(np.float32), s)
    assert q.dtype == np.int8
    assert q.tolist() == [0, 2, 2, 0, -2, 127, 127, -127, 0, 0]


def near_ties(rng, scale, count):
    """float32 values whose x / scale lies at or next to a rounding tie k + 0.5, where dividing
    and multiplying by a rounded 1 / scale can disagree."""
    k = rng.integers(-130, 130, count) + 0.5
    x = (k * scale).astype(np.float32)
    nudge = rng.integers(-2, 3, count)
    return np.nextafter(x, np.where(nudge > 0, np.inf, -np.inf)).astype(np.float32) \
        * (nudge != 0) + x * (nudge == 0)


def assert_both_packers_give(x, scale, expected):
    """int8_pack_im2col (1x1 columns) and int8_pack_cl of x (64, 3, 16) at `scale` hold the
    quantized values `expected` (NumPy's rounding), each in its layout."""
    bp = np.full(padded(64, DEPTH) * padded(48), 7, np.int8)
    core.int8_pack_im2col(x, scale, 1, 1, 0, bp, scratch(x))
    np.testing.assert_array_equal(bp, expected_column_packing(expected.reshape(64, 48)))
    out = np.full(core.int8_cl_size(64, 3, 16, 0), 7, np.int8)
    core.int8_pack_cl(x, scale, 0, out)
    np.testing.assert_array_equal(out, expected_channels_last(expected.astype(np.int8), 64, 0))


@pytest.mark.parametrize("scale", [0.1, 0.3, 1 / 3, 0.0123, 7.0])
def test_the_packers_divide_as_numpy_does(scale):
    """x / s rounded once, as NumPy: a packer that multiplied by 1 / s would send some of these
    values to the other side of a tie."""
    rng = np.random.default_rng(int(scale * 1e4))
    x = near_ties(rng, np.float32(scale), 64 * 48).reshape(64, 3, 16)
    expected = reference_quantize(x, scale)
    assert_both_packers_give(x, scale, expected)
    np.testing.assert_array_equal(int8.quantize_activations(x, scale), expected)


@pytest.mark.parametrize("scale", [0.0123, 7.0, 1e-30, 3e37, 1e-39])
def test_the_packers_round_as_numpy_at_any_distance_from_a_tie(scale):
    """x / s against ties k + 1/2 at distances from 1e-6 to 0.01 either side (the AVX-512
    packers multiply by 1 / s and divide only near a tie), with scales whose reciprocal is
    huge, tiny or not a normal float (1e-39 is subnormal: 1 / s overflows)."""
    rng = np.random.default_rng(int(-np.log10(scale) * 100) % 2 ** 32)
    k = rng.integers(-130, 130, 64 * 48) + 0.5
    distance = np.geomspace(1e-6, 1e-2, k.size) * rng.choice([-1, 1], k.size)
    with np.errstate(over="ignore"):       # 3e37 times 12 or more: infinities
        x = ((k + distance) * np.float64(scale)).astype(np.float32).reshape(64, 3, 16)
    x.reshape(-1)[:20] = [0, -0.0, np.inf, -np.inf, np.nan] * 4
    expected = reference_quantize(np.where(np.isnan(x), -np.inf, x), scale)   # NaN: -127
    assert np.any(expected == 127) and np.any(expected == -127)
    assert_both_packers_give(x, scale, expected)


# -- packing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("m,k", [(1, 1), (16, 64), (17, 65), (40, 70), (125, 27), (33, 576)])
def test_weights_packing_layout(m, k):
    q = np.random.default_rng(m * 100 + k).integers(-127, 128, (m, k)).astype(np.int8)
    wp = np.full(core.int8_weights_size(m, k), 7, np.int8)
    core.int8_pack_weights(q, wp)
    np.testing.assert_array_equal(wp, expected_weight_packing(q))


@pytest.mark.parametrize("c,h,w,size,stride,pad", [
    (3, 17, 23, 3, 1, 1), (5, 9, 9, 3, 2, 1), (2, 6, 7, 1, 1, 0), (8, 13, 13, 3, 1, 1),
    (3, 8, 8, 2, 2, 0), (1, 5, 3, 3, 1, 1), (70, 5, 7, 3, 2, 0),
    # rows of whole panels (16 positions on one row, loaded at once), their edges padding
    (2, 4, 48, 3, 1, 1), (3, 3, 32, 1, 1, 0), (2, 5, 40, 3, 1, 1)])
def test_im2col_packing_is_the_quantized_packed_column_matrix(c, h, w, size, stride, pad):
    x = np.random.default_rng(c + h + w).standard_normal((c, h, w)).astype(np.float32)
    scale = 0.02                                  # |x| > 2.54 saturates
    col = im2col(reference_quantize(x, scale), size, stride, pad)
    bp = np.full(padded(col.shape[0], DEPTH) * padded(col.shape[1]), 7, np.int8)
    core.int8_pack_im2col(x, scale, size, stride, pad, bp, scratch(x))
    np.testing.assert_array_equal(bp, expected_column_packing(col))


def slots_of(c):
    """The channel slots of a tap in the direct kernel's 64-deep steps."""
    return 16 if c <= 16 else 32 if c <= 32 else padded(c, DEPTH)


def layout_geometry(h, w, pad):
    """(rows, width) of the direct kernel's channels-last input, in positions: rows of W + pad,
    H + 2 pad + ceil((pad + 31) / (W + pad)) of them."""
    width = w + pad
    return h + 2 * pad + -(-(pad + 31) // width), width


def expected_channels_last(xq, slots, pad):
    """The quantized image xq (C, H, W) channels last: [rows][W + pad][pitch] bytes, each row
    starting with `pad` zero positions (one border between two rows), `pad` zero rows above,
    below zero rows up to the geometry's count; zero slots from C on, the pitch the slots
    and, where they are 128 or more and fill an even number of 64-byte lines, one line more
    (zeros); then the slack's zero bytes."""
    c, h, w = xq.shape
    rows, width = layout_geometry(h, w, pad)
    lines = slots // 64
    pitch = slots + 64 if slots >= 128 and lines % 2 == 0 else slots
    full = np.zeros((rows, width, pitch), np.int8)
    full[pad:pad + h, pad:, :c] = xq.transpose(1, 2, 0)
    return np.concatenate([full.ravel(), np.zeros(CL_SLACK, np.int8)])


@pytest.mark.parametrize("c,h,w", [(2, 3, 5), (4, 13, 13), (6, 2, 40), (17, 3, 19), (65, 2, 2),
                                   (16, 4, 9), (32, 5, 18), (33, 3, 4), (130, 2, 3),
                                   (256, 3, 2)])
@pytest.mark.parametrize("pad", [0, 1, 2])
def test_channels_last_packing_layout(c, h, w, pad):
    x = np.random.default_rng(c * h + w).standard_normal((c, h, w)).astype(np.float32)
    out = np.full(core.int8_cl_size(c, h, w, pad), 7, np.int8)
    core.int8_pack_cl(x, 0.01, pad, out)
    expected = expected_channels_last(reference_quantize(x, 0.01).astype(np.int8), slots_of(c),
                                      pad)
    np.testing.assert_array_equal(out, expected)


def test_direct_weights_are_in_the_kernels_steps():
    """Below 64 channels a 64-deep step holds 64 / slots taps of a row: (F, k rows, taps
    grouped, slots), zeros past C and past the k taps; from 64 on, (F, blocks of 64 channels,
    k rows, k taps, 64), the slots past C zeros."""
    rng = np.random.default_rng(9)
    for c, groups_of in ((20, 2), (16, 4), (70, 1), (200, 1)):
        q = filters(rng, 3, c, 3)
        slots = slots_of(c)
        if groups_of == 1:
            ordered = np.zeros((3, slots // 64, 3, 3, 64), np.int8)
            for block in range(slots // 64):
                channels = q[:, 64 * block:64 * block + 64]        # (F, <=64, k, k)
                ordered[:, block, :, :, :channels.shape[1]] = channels.transpose(0, 2, 3, 1)
        else:
            taps_per_row = -(-3 // groups_of) * groups_of
            ordered = np.zeros((3, 3, taps_per_row, slots), np.int8)
            ordered[:, :, :3, :c] = q.transpose(0, 2, 3, 1)
        packed = int8.Int8Weights(q, np.ones(3), "amx", direct=True)
        assert packed.depth == core.int8_direct_depth(c, 3) == ordered[0].size
        np.testing.assert_array_equal(packed.data,
                                      expected_direct_packing(ordered.reshape(3, -1)))


def expected_direct_packing(w2d):
    """W (M, K) as the direct kernel's B tiles: per block of 32 filters, per 64-deep step, the
    tiles of filters 0-15 and 16-31, each [16 image of k][16 filters][4], zeros past M and
    K."""
    m, k = w2d.shape
    full = np.zeros((padded(m), padded(k, DEPTH)), np.int8)
    full[:m, :k] = w2d
    tiles = full.reshape(padded(m) // 32, 2, 16, padded(k, DEPTH) // 64, 16, 4)
    return tiles.transpose(0, 3, 1, 4, 2, 5).ravel()


def test_direct_weights_packing_breaks_when_a_tile_is_transposed():
    """The packing's test fails for the im2col kernels' layout (A tiles, filters as rows)."""
    w2d = filters(np.random.default_rng(2), 40, 64, 1).reshape(40, -1)
    assert not np.array_equal(expected_direct_packing(w2d), expected_weight_packing(w2d))


def test_packed_weights_keep_the_vnni_correction_and_their_size():
    rng = np.random.default_rng(3)
    q = filters(rng, 7, 5, 3)
    scales = rng.uniform(0.01, 0.1, 7).astype(np.float32)
    packed = int8.Int8Weights(q, scales, "portable")
    assert packed.rows == 7 and packed.depth == 45
    np.testing.assert_array_equal(packed.row_offsets[:7],
                                  128 * q.reshape(7, -1).astype(np.int64).sum(1))
    assert not packed.row_offsets[7:].any() and packed.row_offsets.size == BLOCK
    np.testing.assert_array_equal(packed.scales, scales)
    assert packed.nbytes == BLOCK * DEPTH + BLOCK * 4 + 7 * 4
    np.testing.assert_array_equal(packed.data, expected_weight_packing(q.reshape(7, -1)))


# -- the kernels -------------------------------------------------------------------------------
# (channels, filters, height, width, size, stride, padding, images): the channel counts of
# the issue, odd filter counts (partial row blocks), rows shorter than a tile's 16 positions
# and rows ending in a partial one, two blocks of 64 channels, a 1x1 image
SHAPES = [(3, 7, 13, 13, 3, 1, 1, 2), (5, 1, 5, 7, 3, 2, 1, 1), (17, 33, 13, 13, 3, 1, 1, 1),
          (33, 7, 26, 26, 1, 1, 0, 1), (70, 33, 5, 7, 3, 1, 0, 2), (17, 7, 26, 26, 3, 2, 1, 1),
          (33, 1, 13, 13, 3, 1, 1, 2), (70, 7, 26, 26, 3, 1, 1, 1), (5, 33, 26, 26, 1, 1, 0, 2),
          (64, 40, 9, 40, 3, 1, 1, 1), (16, 32, 10, 21, 3, 1, 1, 1), (130, 17, 3, 3, 3, 1, 1, 1),
          (33, 7, 1, 1, 1, 1, 0, 1), (17, 7, 5, 7, 3, 1, 0, 1),
          # 16 and 32 channels: taps sharing a step; a 5x5 kernel (a group past the row's end)
          (32, 40, 20, 37, 3, 1, 1, 1), (16, 9, 7, 18, 3, 1, 1, 2), (20, 5, 9, 9, 5, 1, 2, 1),
          (32, 8, 6, 6, 1, 1, 0, 1), (16, 3, 3, 17, 3, 1, 0, 1),
          # the direct kernel's spans: channel blocks resumed over a group of pieces (3x3 on
          # two channel blocks, 13 pieces: two groups; 1x1 on nine channel blocks)
          (128, 33, 20, 19, 3, 1, 1, 1), (576, 33, 5, 9, 1, 1, 0, 1)]
# (kernel, direct): every path a convolution can take
PATHS = [("amx", True), ("amx", False), ("vnni", False), ("portable", False)]


def path_params():
    params = []
    for shape in SHAPES:
        c, stride = shape[0], shape[5]
        for kernel, direct in PATHS:
            if not direct or int8.int8_direct_applies(kernel, c, stride):
                params.append(pytest.param(kernel, direct, shape,
                                           id=f"{kernel}{'-direct' if direct else ''}-{shape}"))
    return params


def convolve(kernel, direct, x, q, scales, input_scale, size, stride, pad, scale, bias, act):
    kernel_or_skip(kernel)
    n, _, h, w = x.shape
    oh, ow = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
    out = np.full((n, q.shape[0], oh, ow), np.nan, np.float32)
    packed = int8.Int8Weights(q, scales, kernel, direct=direct)
    returned = int8.convolve_int8(x, packed, input_scale, size, stride, pad, out, scale, bias,
                                  act, kernel)
    assert returned is out
    return out


@pytest.mark.parametrize("kernel,direct,shape", path_params())
def test_sums_are_exact(kernel, direct, shape):
    """Unit scales: the output is ACC itself (rounded once to fp32), ACC the int64 sum of the
    clipped, half-to-even rounded inputs (x ± 140 saturates, x + 0.5 ties) and ±127 weights."""
    c, f, h, w, size, stride, pad, n = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-140, 141, (n, c, h, w)).astype(np.float32)
    x[..., ::3] += 0.5
    q = filters(rng, f, c, size)
    ones = np.ones(f, np.float32)
    out = convolve(kernel, direct, x, q, ones, 1.0, size, stride, pad, ones,
                   np.zeros(f, np.float32), core.ACT_LINEAR)
    for i in range(n):
        acc = reference_sums(q, reference_quantize(x[i], 1.0), size, stride, pad)
        np.testing.assert_array_equal(out[i].reshape(f, -1), acc.astype(np.float32))


@pytest.mark.parametrize("kernel,direct,shape", path_params())
@pytest.mark.parametrize("act", [core.ACT_LEAKY, core.ACT_LINEAR])
def test_epilogue_is_the_folded_scales_bias_and_activation(kernel, direct, shape, act):
    """out = act(scale · s_w · s_x · ACC + bias) against float64, within fp32's roundings of
    the multiplier, ACC, the product and the sum."""
    c, f, h, w, size, stride, pad, n = shape
    rng = np.random.default_rng(sum(shape) + act)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weights = rng.standard_normal((f, c, size, size)).astype(np.float32)
    q, scales = int8.quantize_weights(weights)
    input_scale = float(np.abs(x).max()) / 127 * 0.8      # the largest inputs saturate
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    out = convolve(kernel, direct, x, q, scales, input_scale, size, stride, pad, scale, bias,
                   act)
    multiplier = scale.astype(np.float64) * scales * np.float32(input_scale)
    for i in range(n):
        acc = reference_sums(q, reference_quantize(x[i], input_scale), size, stride, pad)
        v = multiplier[:, None] * acc + bias[:, None]
        expected = np.where(v > 0, v, 0.1 * v) if act == core.ACT_LEAKY else v
        bound = 1e-6 * (np.abs(multiplier[:, None] * acc) + np.abs(bias[:, None])) + 1e-30
        assert np.all(np.abs(out[i].reshape(f, -1) - expected) <= bound)


@pytest.mark.parametrize("kernel,direct", PATHS)
@pytest.mark.parametrize("act", [core.ACT_LEAKY, core.ACT_LINEAR, core.ACT_RELU,
                                 core.ACT_LOGISTIC])
def test_epilogue_rounds_as_float32_numpy(kernel, direct, act):
    """The fp32 epilogue's exact bits: ACC rounded to fp32, times the multiplier (rounded,
    never fused with the bias's addition), plus the bias, leaky's 0.1 · v in double; what the
    portable twin's scalar C and the kernels' AVX-512 both give."""
    c, f, h, w = 40, 37, 6, 21
    rng = np.random.default_rng(act)
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    q, scales = int8.quantize_weights(rng.standard_normal((f, c, 3, 3)))
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    out = convolve(kernel, direct, x, q, scales, 0.013, 3, 1, 1, scale, bias, act)
    multiplier = (scale * scales) * np.float32(0.013)
    acc = reference_sums(q, reference_quantize(x[0], 0.013), 3, 1, 1).astype(np.float32)
    v = multiplier[:, None] * acc + bias[:, None]
    assert v.dtype == np.float32
    if act == core.ACT_LEAKY:
        leak = (0.1 * v.astype(np.float64)).astype(np.float32)
        v = np.where(v > leak, v, leak)
    elif act == core.ACT_RELU:
        v = np.where(v > 0, v, np.float32(0))
    got = out[0].reshape(f, -1)
    if act == core.ACT_LOGISTIC:      # libm's expf under -ffast-math against float64
        np.testing.assert_allclose(got, 1 / (1 + np.exp(-v.astype(np.float64))), rtol=1e-6,
                                   atol=1e-7)
    else:
        np.testing.assert_array_equal(got, v)


@pytest.mark.parametrize("kernel,direct", PATHS)
def test_leaky_takes_its_tenth_in_double_at_every_magnitude(kernel, direct):
    """leaky(v) = v > w ? v : w with w = 0.1 · v in double rounded to float32, bit for bit, for
    v of every exponent: normal, subnormal, the tiny negatives below 2^-120 (where the
    AVX-512 epilogue's float products would round otherwise), zeros of both signs, NaN. The
    input is zero, so each filter's value is its bias."""
    rng = np.random.default_rng(5)
    f = 1024
    bits = rng.integers(0, 2 ** 31, f, dtype=np.uint32) | np.where(
        rng.random(f) < 0.75, np.uint32(2 ** 31), np.uint32(0))
    bias = bits.view(np.float32).copy()
    bias[~np.isfinite(bias)] = -1.5
    tiny = rng.uniform(-2.0 ** -120, 0, 64) * 2.0 ** -rng.integers(0, 28, 64)
    bias[:64] = tiny.astype(np.float32)            # negatives smaller than 2^-120
    bias[64:70] = [0.0, -0.0, np.nan, -2.0 ** -149, -2.0 ** -126, -2.0 ** -120]
    x = np.zeros((1, 16, 2, 3), np.float32)
    q, scales = int8.quantize_weights(rng.standard_normal((f, 16, 1, 1)))
    scale = np.ones(f, np.float32)
    out = convolve(kernel, direct, x, q, scales, 0.02, 1, 1, 0, scale, bias, core.ACT_LEAKY)
    v = (scale * scales * np.float32(0.02)) * np.float32(0) + bias
    with np.errstate(under="ignore"):
        leak = (0.1 * v.astype(np.float64)).astype(np.float32)
    expected = np.where(v > leak, v, leak)
    got = out[0].reshape(f, -1)
    for column in got.T:
        np.testing.assert_array_equal(column.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_path_gives_the_portable_twins_bits(shape):
    c, f, h, w, size, stride, pad, n = shape
    rng = np.random.default_rng(sum(shape) + 1)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    q, scales = int8.quantize_weights(rng.standard_normal((f, c, size, size)))
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    args = (x, q, scales, 0.01, size, stride, pad, scale, bias, core.ACT_LEAKY)
    twin = convolve("portable", False, *args)
    ran = 0
    for kernel, direct in PATHS[:-1]:
        if (int8.INT8_KERNELS[kernel] in core.int8_kernels()
                and (not direct or int8.int8_direct_applies(kernel, c, stride))):
            np.testing.assert_array_equal(convolve(kernel, direct, *args), twin,
                                          err_msg=f"{kernel} direct={direct}")
            ran += 1
    if not ran:
        pytest.skip(f"this CPU (or YOLO9000_PORTABLE_KERNELS) has no {int8.INT8_UNITS}")


@pytest.mark.parametrize("kernel,direct", PATHS)
@pytest.mark.parametrize("sign", [1, -1])
def test_extreme_sums_stay_exact(kernel, direct, sign):
    """Every weight ±127 and every input saturated: |ACC| up to 127² · 2304 (past fp32's 2^24,
    rounded once, to nearest even); VNNI's u8 inputs at both ends, 1 and 255."""
    c, f, h, w = 256, 33, 5, 7
    rng = np.random.default_rng(sign + 2)
    x = np.full((1, c, h, w), sign * 1000.0, np.float32)
    x[0, ::2, 1] *= -1
    q = np.where(rng.random((f, c, 3, 3)) < 0.5, -127, 127).astype(np.int8)
    q[0], q[1] = 127, -127
    ones, halves = np.ones(f, np.float32), np.full(f, 0.5, np.float32)   # multiplier 1
    out = convolve(kernel, direct, x, q, halves, 2.0, 3, 1, 1, ones, np.zeros(f, np.float32),
                   core.ACT_LINEAR)
    acc = reference_sums(q, reference_quantize(x[0], 2.0), 3, 1, 1)
    assert np.abs(acc).max() == 127 * 127 * c * 9 > 2 ** 24
    np.testing.assert_array_equal(out[0].reshape(f, -1), acc.astype(np.float32))


def pool_2x2(v):
    """The 2x2/2 maxima of v (F, H, W), H and W even."""
    f, h, w = v.shape
    return v.reshape(f, h // 2, 2, w // 2, 2).max(axis=(2, 4))


# (channels, filters, height, width, size, padding): rows shorter than a segment and a partial
# filter block, two segments a row (the second overlapping the first), three whole segments,
# an unpadded row 36 wide (the overlapping segment at column 20), 1x1 on channels padded to
# 64, and the few-channel steps (16 and 32 channels: taps sharing a step, the next positions'
# channels)
POOLED_SHAPES = [(64, 17, 6, 8, 3, 1), (64, 40, 26, 26, 3, 1), (70, 33, 4, 48, 3, 1),
                 (128, 8, 10, 38, 3, 0), (48, 64, 12, 12, 1, 0), (32, 9, 8, 34, 3, 1),
                 (16, 33, 10, 20, 3, 1), (20, 5, 12, 14, 5, 2)]


@pytest.mark.parametrize("c,f,h,w,size,pad", POOLED_SHAPES, ids=str)
@pytest.mark.parametrize("act", [core.ACT_LEAKY, core.ACT_LINEAR])
def test_direct_amx_convolution_pools_in_its_epilogue(c, f, h, w, size, pad, act):
    """pool=True: the 2x2/2 maxima of act(multiplier · ACC + bias) in fp32 as NumPy rounds
    it (ACC the int64 sums rounded to fp32), bit for bit: one block takes the two rows a
    window spans."""
    kernel_or_skip("amx")
    rng = np.random.default_rng(c * w + f + act)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    q, scales = int8.quantize_weights(rng.standard_normal((f, c, size, size)))
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    multiplier = (scale * scales) * np.float32(0.02)
    image = np.empty(core.int8_cl_size(c, h, w, pad), np.int8)
    core.int8_pack_cl(x, 0.02, pad, image)
    packed = int8.Int8Weights(q, scales, "amx", direct=True)
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    out = np.full((f, oh // 2 * (ow // 2)), np.nan, np.float32)
    core.int8_conv_amx(packed.data, image, c, h, w, size, pad, multiplier, bias, act, out,
                       pool=True)
    acc = reference_sums(q, reference_quantize(x, 0.02), size, 1, pad).astype(np.float32)
    v = multiplier[:, None] * acc + bias[:, None]
    if act == core.ACT_LEAKY:
        v = np.maximum(v, (0.1 * v.astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(out, pool_2x2(v.reshape(f, oh, ow)).reshape(f, -1))


def test_direct_amx_pooling_refuses_an_odd_output():
    kernel_or_skip("amx")
    x = np.zeros((64, 5, 6), np.float32)
    image = np.empty(core.int8_cl_size(64, 5, 6, 1), np.int8)
    core.int8_pack_cl(x, 0.1, 1, image)
    packed = int8.Int8Weights(np.zeros((4, 64, 3, 3), np.int8), np.ones(4), "amx", direct=True)
    with pytest.raises(ValueError, match="even output"):
        core.int8_conv_amx(packed.data, image, 64, 5, 6, 3, 1, np.ones(4, np.float32),
                           np.zeros(4, np.float32), core.ACT_LINEAR,
                           np.empty((4, 6), np.float32), pool=True)


@KERNELS
def test_kernel_writes_only_the_output(kernel):
    """Partial tiles: the padding rows and columns of the 32x32 blocks are never stored."""
    kernel_or_skip(kernel)
    rng = np.random.default_rng(5)
    q = rng.integers(-127, 128, (17, 70)).astype(np.int8)
    x = rng.standard_normal((70, 1, 19)).astype(np.float32)
    wp = np.empty(core.int8_weights_size(17, 70), np.int8)
    core.int8_pack_weights(q, wp)
    bp = np.empty(core.int8_columns_size(70, 19), np.int8)
    core.int8_pack_im2col(x, 0.05, 1, 1, 0, bp, scratch(x))
    offsets = np.zeros(BLOCK, np.int32)
    offsets[:17] = 128 * q.astype(np.int64).sum(1)
    big = np.full((20, 25), -7.0, np.float32)
    core.int8_matmul(int8.INT8_KERNELS[kernel], wp, bp, 70, offsets, np.ones(17, np.float32),
                     np.zeros(17, np.float32), core.ACT_LINEAR, big[:17, :19])
    assert np.all(big[17:] == -7) and np.all(big[:, 19:] == -7)
    expected = q.astype(np.int64) @ reference_quantize(x.reshape(70, 19), 0.05)
    np.testing.assert_array_equal(big[:17, :19], expected.astype(np.float32))


def test_kernels_refuse_bad_operands():
    ones = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="too small"):
        core.int8_matmul(core.INT8_PORTABLE, np.zeros(10, np.int8), np.zeros(10, np.int8), 8,
                         np.zeros(BLOCK, np.int32), ones, ones, 0, np.empty((4, 4), np.float32))
    with pytest.raises(ValueError, match="too small"):
        core.int8_pack_weights(np.ones((4, 8), np.int8), np.zeros(10, np.int8))
    with pytest.raises(ValueError, match="image is too small"):
        core.int8_pack_im2col(np.ones((3, 5, 5), np.float32), 0.1, 3, 1, 1,
                              np.zeros(1 << 14, np.int8), np.zeros(75, np.int8))
    x = np.ones((3, 5, 5), np.float32)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="input scale"):
            core.int8_pack_im2col(x, bad, 3, 1, 1, np.zeros(1 << 14, np.int8), scratch(x))
        with pytest.raises(ValueError, match="input scale"):
            core.int8_pack_cl(x, bad, 1, np.zeros(1 << 14, np.int8))
    with pytest.raises(ValueError, match="only the amx kernel"):
        int8.Int8Weights(np.ones((2, 16, 3, 3), np.int8), np.ones(2), "vnni", direct=True)
    with pytest.raises(ValueError, match="int8"):
        int8.Int8Weights(np.ones((2, 16, 3, 3), np.float32), np.ones(2), "portable")
    with pytest.raises(ValueError, match="do not fit"):
        packed = int8.Int8Weights(np.ones((2, 16, 3, 3), np.int8), np.ones(2), "portable")
        int8.convolve_int8(np.ones((1, 8, 5, 5), np.float32), packed, 0.1, 3, 1, 1,
                           np.empty((1, 2, 5, 5), np.float32), np.ones(2, np.float32),
                           np.zeros(2, np.float32), core.ACT_LINEAR, "portable")


# -- the kernels' names ------------------------------------------------------------------------
def test_kernel_names_follow_the_cpu():
    codes = core.int8_kernels()
    assert codes[-1] == core.INT8_PORTABLE
    assert [int8.INT8_KERNEL_NAMES[code] for code in codes] == [
        name for name in int8.INT8_KERNELS if int8.INT8_KERNELS[name] in codes]
    features = core.cpu_features()
    assert (core.INT8_AMX in codes) == features["amx_int8"]
    assert (core.INT8_VNNI in codes) == features["avx512_vnni"]
    expected = "amx" if features["amx_int8"] else "vnni" if features["avx512_vnni"] else None
    assert int8.int8_hardware_kernel() == expected


def test_direct_applies_to_stride_1_amx_with_16_channels_or_more():
    assert int8.int8_direct_applies("amx", 16, 1)
    assert not int8.int8_direct_applies("amx", 15, 1)
    assert not int8.int8_direct_applies("amx", 64, 2)
    assert not int8.int8_direct_applies("vnni", 64, 1)
    assert not int8.int8_direct_applies("portable", 64, 1)
