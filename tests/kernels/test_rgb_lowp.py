"""bf16's "rgb" kernel (kernels/lowp.py; csrc/lowp_x86.h): convolutions whose depth C·k·k fits
one tile (the RGB input layer's 27), their tiles of columns built in L1 from an image rounded
once into bf16 planes. The image packing's layout, each kernel (AMX, AVX512-BF16, the
portable twin) against a float64 convolution of the same bf16-rounded inputs, the 2x2/2
maxpool in the epilogue, and the layer's and network's choice of it. Expected values are
computed here, in NumPy, never with the kernels under test."""
import numpy as np
import pytest

from columns_reference import im2col
from test_lowp import (KERNELS, accumulation_bound, bf16_round, expected_pairs, kernel_or_skip,
                       padded, pool_2x2)
from yolo9000.kernels import core, lowp
from yolo9000.layers.convolutional import ConvolutionalLayer
from yolo9000.layers.maxpool import MaxpoolLayer

ACTIVATIONS = {core.ACT_LINEAR: lambda v: v, core.ACT_LEAKY: lambda v: np.where(v > 0, v, 0.1 * v),
               core.ACT_RELU: lambda v: np.maximum(v, 0),
               core.ACT_LOGISTIC: lambda v: 1 / (1 + np.exp(-v))}


def expected_image(x, pad):
    """x (C, H, W) as bf16 bits in planes of rows W + pad wide, each starting with `pad`
    zeros; `pad` zero rows above, below `pad` and the slack of bf16_pack_pairs' planes
    (ceil((pad + 31) / (W + pad)) rows), zeros to a whole number of 64-byte lines."""
    c, h, w = x.shape
    width = w + pad
    rows = h + 2 * pad + -(-(pad + 31) // width)
    plane = -(-rows * width // 32) * 32
    full = np.zeros((c, rows, width), np.float32)
    full[:, pad:pad + h, pad:] = bf16_round(x)
    planes = np.zeros((c, plane), np.float32)
    planes[:, :rows * width] = full.reshape(c, -1)
    return (planes.view(np.uint32) >> 16).astype(np.uint16).ravel()


def convolve(kernel, x, weights, pad, scale, bias, act, pool=False):
    """bf16_conv_rgb on x (C, H, W) and weights (F, C, k, k), out filled with NaN first."""
    f, c, size = weights.shape[:3]
    h, w = x.shape[1:]
    image = np.full(core.bf16_image_size(c, h, w, pad), 7, np.uint16)
    core.bf16_pack_image(x, pad, image)
    packed = lowp.BF16Weights(weights)
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    out = np.full((f, oh // 2 * (ow // 2) if pool else oh * ow), np.nan, np.float32)
    core.bf16_conv_rgb(lowp.BF16_KERNELS[kernel], packed.data, image, c, h, w, size, pad, scale,
                       bias, act, out, pool)
    return out


def reference(x, weights, pad, scale, bias, act, pool=False):
    """(expected, bound): the float64 convolution of the bf16-rounded operands through the
    epilogue (and the 2x2/2 maxpool), and what fp32 accumulation in any order may add."""
    f, c, size = weights.shape[:3]
    h, w = x.shape[1:]
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    w2d = weights.reshape(f, -1)
    z = bf16_round(w2d).astype(np.float64) @ im2col(bf16_round(x).astype(np.float64), size, 1,
                                                   pad)
    v = ACTIVATIONS[act](scale[:, None] * z + bias[:, None])
    bound = scale[:, None] * accumulation_bound(w2d, im2col(x, size, 1, pad))
    if pool:
        v = pool_2x2(v.reshape(f, oh, ow)).reshape(f, -1)
        bound = pool_2x2(bound.reshape(f, oh, ow)).reshape(f, -1)
    return v, bound + 1e-6 * (1 + np.abs(v))


def operands(c, h, w, f, size, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    weights = rng.standard_normal((f, c, size, size)).astype(np.float32)
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    return x, weights, scale, bias


# -- the image packing ------------------------------------------------------------------------
@pytest.mark.parametrize("c,h,w,pad", [(3, 17, 23, 1), (3, 416, 416, 1), (1, 5, 3, 2),
                                       (2, 9, 40, 0), (3, 1, 1, 1), (3, 6, 33, 1)])
def test_image_packing_layout(c, h, w, pad):
    x = np.random.default_rng(c * h + w).standard_normal((c, h, w)).astype(np.float32)
    out = np.full(core.bf16_image_size(c, h, w, pad), 7, np.uint16)
    core.bf16_pack_image(x, pad, out)
    np.testing.assert_array_equal(out, expected_image(x, pad))


def test_a_broken_image_packing_is_caught():
    """The layout test guards the packing: an image one row shifted (what a wrong border
    gives) or with two channels swapped differs from the expected one."""
    x = np.random.default_rng(0).standard_normal((3, 9, 20)).astype(np.float32)
    out = np.empty(core.bf16_image_size(3, 9, 20, 1), np.uint16)
    core.bf16_pack_image(x, 1, out)
    good = expected_image(x, 1)
    assert np.array_equal(out, good)
    assert not np.array_equal(out, expected_image(np.roll(x, 1, axis=1), 1))
    assert not np.array_equal(out, expected_image(x[[1, 0, 2]], 1))


# -- the kernels ------------------------------------------------------------------------------
@KERNELS
@pytest.mark.parametrize("c,h,w,f,size,pad", [
    (3, 17, 23, 8, 3, 1),       # odd sizes, a partial filter block
    (3, 16, 16, 32, 3, 1),      # whole tiles
    (3, 9, 9, 33, 3, 0),        # unpadded; 33 filters: two blocks, the second of one row
    (2, 5, 7, 3, 3, 1),         # depth 18: pairs past it zeros
    (1, 6, 4, 5, 5, 2),         # 5x5 on one channel (25), a border of 2 shared by two rows
    (3, 1, 1, 2, 3, 1),         # one position
    (3, 3, 40, 17, 1, 0),       # 1x1 on 3 channels
    (3, 30, 50, 64, 3, 1)])     # several blocks of filters, rows of several tiles
def test_rgb_convolution_matches_float64(kernel, c, h, w, f, size, pad):
    kernel_or_skip(kernel)
    x, weights, scale, bias = operands(c, h, w, f, size, c + h + w + f)
    got = convolve(kernel, x, weights, pad, scale, bias, core.ACT_LINEAR)
    expected, slack = reference(x, weights, pad, scale, bias, core.ACT_LINEAR)
    assert np.all(np.abs(got - expected) <= slack)


@KERNELS
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("c,h,w,f,size,pad", [
    (3, 16, 20, 32, 3, 1),      # a row of a segment and a partial one (the last overlapping)
    (3, 6, 8, 17, 3, 1),        # rows shorter than a segment, a partial filter block
    (3, 10, 38, 40, 3, 0),      # unpadded, 36 wide: the overlapping segment at column 20
    (3, 4, 64, 16, 3, 1),       # four whole segments a row, 16 filters (tiny's)
    (1, 6, 6, 3, 5, 2)])
def test_rgb_convolution_pools_in_its_epilogue(kernel, act, c, h, w, f, size, pad):
    """pool=True: the 2x2/2 maxima of the activated output; and the maxima of the unpooled
    kernel's own values, bit for bit (the activations that never decrease are taken once,
    after the maximum: the same value)."""
    kernel_or_skip(kernel)
    x, weights, scale, bias = operands(c, h, w, f, size, c * w + f + act)
    got = convolve(kernel, x, weights, pad, scale, bias, act, pool=True)
    expected, slack = reference(x, weights, pad, scale, bias, act, pool=True)
    assert np.all(np.abs(got - expected) <= slack)
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    unfused = convolve(kernel, x, weights, pad, scale, bias, act)
    np.testing.assert_array_equal(got, pool_2x2(unfused.reshape(f, oh, ow)).reshape(f, -1))


@KERNELS
@pytest.mark.parametrize("c,h,w,f,size,pad", [
    (3, 16, 20, 32, 3, 1),      # the overlapping last segment of a row
    (3, 6, 8, 17, 3, 1),        # rows shorter than a segment, an odd filter count
    (3, 4, 64, 16, 3, 1),       # four whole segments a row, 16 filters (tiny's)
    (3, 10, 38, 40, 3, 0)])
@pytest.mark.parametrize("out_pad", [0, 1, 2])
def test_rgb_convolution_hands_off_packed_pairs(kernel, c, h, w, f, size, pad, out_pad):
    """bf16_conv_rgb_pairs: the pooled fp32 output of bf16_conv_rgb rounded and packed as the
    next (direct) layer's channel pairs in NumPy, border and zero channels written over
    whatever the buffer held; the same bits with the AVX-512 rounding and the portable one."""
    kernel_or_skip(kernel)
    x, weights, scale, bias = operands(c, h, w, f, size, c * w + f + out_pad)
    image = np.empty(core.bf16_image_size(c, h, w, pad), np.uint16)
    core.bf16_pack_image(x, pad, image)
    packed = lowp.BF16Weights(weights)
    oh, ow = (h + 2 * pad - size + 1) // 2, (w + 2 * pad - size + 1) // 2
    for act in (core.ACT_LEAKY, core.ACT_LINEAR, core.ACT_LOGISTIC):
        fp32 = convolve(kernel, x, weights, pad, scale, bias, act, pool=True)
        expected = expected_pairs(fp32.reshape(f, oh, ow), out_pad)
        for portable in (False, True):
            out = np.full(expected.size + 5, 0x7F7F, np.uint16)
            core.bf16_conv_rgb_pairs(lowp.BF16_KERNELS[kernel], packed.data, image, c, h, w,
                                     size, pad, scale, bias, act, f, out, out_pad,
                                     portable_rounding=portable)
            np.testing.assert_array_equal(out[:expected.size], expected,
                                          err_msg=f"act {act}, portable {portable}")
            assert np.all(out[expected.size:] == 0x7F7F)        # nothing written past it


def test_the_three_kernels_sum_the_same_products():
    """The portable twin and the units multiply the same bf16 operands: their outputs differ
    by the fp32 accumulation order at most."""
    x, weights, scale, bias = operands(3, 24, 36, 32, 3, 3)
    outs = {k: convolve(k, x, weights, 1, scale, bias, core.ACT_LEAKY, pool=True)
            for k in lowp.BF16_KERNELS if lowp.BF16_KERNELS[k] in core.bf16_kernels()}
    _, slack = reference(x, weights, 1, scale, bias, core.ACT_LEAKY, pool=True)
    for out in outs.values():
        assert np.all(np.abs(out - outs["portable"]) <= 2 * slack)


@KERNELS
def test_a_broken_packing_fails_the_comparison(kernel):
    """What the float64 comparisons catch: weights packed with two k swapped (taps 0 and 1 of
    the first channel, what a wrong pair order in the tiles gives) are far outside the bound."""
    kernel_or_skip(kernel)
    x, weights, scale, bias = operands(3, 12, 20, 16, 3, 9)
    swapped = weights.copy()
    swapped[:, 0, 0, [0, 1]] = weights[:, 0, 0, [1, 0]]
    got = convolve(kernel, x, swapped, 1, scale, bias, core.ACT_LINEAR)
    expected, slack = reference(x, weights, 1, scale, bias, core.ACT_LINEAR)
    assert np.mean(np.abs(got - expected) > slack) > 0.5


@KERNELS
def test_the_kernel_writes_only_its_output(kernel):
    kernel_or_skip(kernel)
    x, weights, scale, bias = operands(3, 6, 10, 5, 3, 4)
    image = np.empty(core.bf16_image_size(3, 6, 10, 1), np.uint16)
    core.bf16_pack_image(x, 1, image)
    packed = lowp.BF16Weights(weights)
    for pool, positions in ((False, 60), (True, 15)):
        # 5 filters of a block of 32, a partial last tile: nothing past the output is written
        big = np.full(5 * positions + 32 * 64, -7.0, np.float32)
        out = big[:5 * positions].reshape(5, positions)
        core.bf16_conv_rgb(lowp.BF16_KERNELS[kernel], packed.data, image, 3, 6, 10, 3, 1,
                           scale, bias, core.ACT_LEAKY, out, pool)
        assert np.all(big[5 * positions:] == -7) and np.all(np.isfinite(out))


def test_the_kernel_refuses_what_it_cannot_compute():
    kernel = lowp.BF16_KERNELS["portable"]
    packed = lowp.BF16Weights(np.zeros((4, 4, 3, 3), np.float32))
    image = np.zeros(core.bf16_image_size(4, 6, 6, 1), np.uint16)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="C·k·k <= 32"):      # 4 channels: a depth of 36
        core.bf16_conv_rgb(kernel, packed.data, image, 4, 6, 6, 3, 1, ones, zeros, 0,
                           np.empty((4, 36), np.float32))
    packed = lowp.BF16Weights(np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="even output"):
        core.bf16_conv_rgb(kernel, packed.data, image, 3, 5, 6, 3, 1, ones, zeros, 0,
                           np.empty((4, 6), np.float32), True)
    with pytest.raises(ValueError, match="too small"):
        core.bf16_conv_rgb(kernel, packed.data, image[:100], 3, 6, 6, 3, 1, ones, zeros, 0,
                           np.empty((4, 36), np.float32))
    assert not core.bf16_rgb_applies(3, 3, 2) and not core.bf16_rgb_applies(4, 3, 1)
    assert core.bf16_rgb_applies(3, 3, 1) and core.bf16_rgb_applies(32, 1, 1)


# -- the layer --------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["amx", "portable"])
def test_the_rgb_layer_runs_bf16_and_pools_in_its_epilogue(kernel):
    """On AMX and the portable twin the RGB layer runs "rgb": the float64 convolution of its
    bf16-rounded image and weights, and forward_pooled the maxima of forward's own values."""
    kernel_or_skip(kernel)
    rng = np.random.default_rng(2)
    layer = ConvolutionalLayer((3, 22, 18), 16, 3, 1, 1, batch_normalize=True,
                               activation="leaky", rng=rng)
    layer.bn.scales[...] = rng.uniform(0.5, 1.5, 16)
    layer.bn.rolling_mean[...] = rng.standard_normal(16) * 0.1
    layer.biases[...] = rng.standard_normal(16) * 0.1
    x = rng.random((2, 3, 22, 18)).astype(np.float32)
    layer.set_precision("bf16", kernel)
    assert layer.precision == "bf16" and layer.inference_path() == f"bf16 {kernel} rgb"
    got = layer.forward(x)
    a, b = layer._inference_affine()
    for i in range(2):
        expected, slack = reference(x[i], layer.weights, 1, a, b, core.ACT_LEAKY)
        assert np.all(np.abs(got[i].reshape(16, -1) - expected) <= slack)
    unfused = MaxpoolLayer(layer.out_shape, 2, 2).forward(got)
    np.testing.assert_array_equal(layer.forward_pooled(x), unfused)


def test_layers_too_deep_for_one_tile_keep_their_path():
    """8 channels (a depth of 72) stay on the fp32 direct kernel where the CPU has it, as
    before; stride 2 takes im2col."""
    deep = ConvolutionalLayer((8, 12, 12), 8, 3, 1, 1, activation="leaky")
    deep.set_precision("bf16", "portable")
    assert deep.inference_path() == ("fp32 direct" if deep.use_direct else
                                     "bf16 portable im2col")
    strided = ConvolutionalLayer((3, 12, 12), 8, 3, 2, 1, activation="leaky")
    strided.set_precision("bf16", "portable")
    assert strided.inference_path() == "bf16 portable im2col"


# -- int8 networks: the layers they keep unquantized --------------------------------------------
@pytest.mark.parametrize("int8_kernel,expected", [("amx", "bf16 amx rgb"),
                                                  ("portable", "bf16 portable rgb"),
                                                  ("vnni", None)])
def test_an_unquantized_rgb_layer_runs_bf16_rgb_in_an_int8_network(int8_kernel, expected):
    """AMX (and the portable twins standing in for it) run the RGB layer an int8 checkpoint
    keeps unquantized in bf16 on the rgb kernel; VNNI's CPUs have none: fp32 as before. Its
    output is then the bf16 layer's, bit for bit."""
    from yolo9000.kernels import int8
    if int8.INT8_KERNELS[int8_kernel] not in core.int8_kernels():
        pytest.skip(f"this CPU (or YOLO9000_PORTABLE_KERNELS) has no int8 kernel {int8_kernel}")
    if expected and lowp.BF16_KERNELS[expected.split()[1]] not in core.bf16_kernels():
        pytest.skip("this CPU (or YOLO9000_PORTABLE_KERNELS) has no AMX-BF16")
    rng = np.random.default_rng(8)
    layer = ConvolutionalLayer((3, 14, 12), 16, 3, 1, 1, batch_normalize=True,
                               activation="leaky", rng=rng)
    x = rng.random((1, 3, 14, 12)).astype(np.float32)
    fp32 = layer.forward(x)
    layer.set_precision("int8", int8_kernel)
    if expected is None:
        assert layer.precision == "fp32" and layer.inference_path().startswith("fp32")
        np.testing.assert_array_equal(layer.forward(x), fp32)
        return
    assert layer.precision == "bf16" and layer.inference_path() == expected
    got = layer.forward(x)
    layer.set_precision("bf16", expected.split()[1])
    np.testing.assert_array_equal(got, layer.forward(x))
    # a quantized layer of the same shape runs int8
    q, scales = int8.quantize_weights(layer.weights)
    layer.quantize(q, scales, 0.01)
    layer.set_precision("int8", int8_kernel)
    assert layer.inference_path().startswith(f"int8 {int8_kernel}")


def test_an_unquantized_last_layer_runs_bf16_direct_in_an_int8_network_on_amx():
    """The last layer an int8 checkpoint keeps unquantized (a 1x1 of many channels) runs
    bf16 on the direct AMX kernel, bit for bit the bf16 layer's; the portable int8 twin has
    no direct bf16 kernel to stand in for it: fp32."""
    from yolo9000.kernels import int8
    layer = ConvolutionalLayer((64, 7, 9), 25, 1, 1, 0, activation="linear",
                               rng=np.random.default_rng(3))
    x = np.random.default_rng(4).standard_normal((2, 64, 7, 9)).astype(np.float32)
    fp32 = layer.forward(x)
    layer.set_precision("int8", "portable")
    assert layer.inference_path() == "fp32 im2col"
    np.testing.assert_array_equal(layer.forward(x), fp32)
    if (int8.INT8_KERNELS["amx"] not in core.int8_kernels()
            or lowp.BF16_KERNELS["amx"] not in core.bf16_kernels()):
        pytest.skip("this CPU (or YOLO9000_PORTABLE_KERNELS) has no AMX-INT8 and AMX-BF16")
    layer.set_precision("int8", "amx")
    assert layer.precision == "bf16" and layer.inference_path() == "bf16 amx direct"
    got = layer.forward(x)
    layer.set_precision("bf16", "amx")
    np.testing.assert_array_equal(got, layer.forward(x))
