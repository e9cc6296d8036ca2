"""int8 activations handed from one int8 direct convolution to the next (kernels/handoff.py):
the kernel's epilogue quantizing its output by the next layer's input scale straight into
that layer's channels-last input gives the bytes the next layer's own packing of the fp32 output
gives; a network handing off computes the same bits as one that does not; a packed int8
activation is read only by the layer whose scale it was quantized by."""
import numpy as np
import pytest

from test_handoff import ROUTE_REORG_CFG, with_random_statistics, without_hand_offs
from test_int8 import expected_channels_last, reference_quantize, slots_of
from test_lowp import (KERNELS as BF16_KERNELS, expected_pairs,
                       kernel_or_skip as bf16_kernel_or_skip)
from test_rgb_lowp import convolve as rgb_convolve, operands as rgb_operands
from yolo9000 import Network
from yolo9000.kernels import core, handoff, int8, lowp
from yolo9000.model import quantization


def amx_or_skip():
    if int8.INT8_KERNELS["amx"] not in core.int8_kernels():
        pytest.skip("int8 hand-offs need the direct int8 kernel: this CPU (or "
                    "YOLO9000_PORTABLE_KERNELS) has no AMX-INT8 (with Linux's tile "
                    "permission)")


# (channels, filters, height, width, size, padding, the next layer's padding, pool): the next
# layer's input on 16 and 20 filters (4 and 2 taps a tile row), 33 (the slots up to 64 zeros),
# 64, 130 (a pitch of 192 slots), 96 and 160 (zero slots and pitch after the last block of
# 32 filters); odd and even maps, 1x1 and 3x3, pooled or not
HAND_OFFS = [(64, 64, 13, 13, 3, 1, 1, False), (32, 16, 12, 22, 3, 1, 1, True),
             (64, 20, 9, 17, 3, 1, 1, False), (16, 33, 10, 10, 3, 1, 0, True),
             (128, 130, 7, 11, 1, 0, 1, False), (64, 40, 26, 26, 3, 1, 1, True),
             (96, 64, 5, 7, 3, 1, 2, False), (20, 8, 8, 36, 3, 1, 1, True),
             (64, 96, 8, 10, 3, 1, 1, True), (32, 160, 6, 6, 1, 0, 1, False)]


def int8_layer_and_its_output(c, f, h, w, size, pad, pool, act, seed):
    """A random int8 direct layer (weights packed for AMX, its channels-last input at scale 0.02,
    the epilogue's multiplier and bias) and its fp32 output from int8_conv_amx: the sums
    the hand-off epilogues must write in the next layer's packing."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    q, scales = int8.quantize_weights(rng.standard_normal((f, c, size, size)))
    multiplier = rng.uniform(0.5, 2, f).astype(np.float32) * scales * np.float32(0.02)
    bias = rng.standard_normal(f).astype(np.float32)
    image = np.empty(core.int8_cl_size(c, h, w, pad), np.int8)
    core.int8_pack_cl(x, 0.02, pad, image)
    packed = int8.Int8Weights(q, scales, "amx", direct=True)
    oh, ow = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    if pool:
        oh, ow = oh // 2, ow // 2
    out = np.empty((f, oh, ow), np.float32)
    core.int8_conv_amx(packed.data, image, c, h, w, size, pad, multiplier, bias, act,
                       out.reshape(f, -1), pool)
    return packed, image, multiplier, bias, out


@pytest.mark.parametrize("c,f,h,w,size,pad,next_pad,pool", HAND_OFFS, ids=str)
@pytest.mark.parametrize("act", [core.ACT_LEAKY, core.ACT_LINEAR, core.ACT_RELU,
                                 core.ACT_LOGISTIC])
def test_the_epilogue_writes_the_next_layers_packing_of_its_output(c, f, h, w, size, pad,
                                                                   next_pad, pool, act):
    amx_or_skip()
    packed, image, multiplier, bias, out = int8_layer_and_its_output(
        c, f, h, w, size, pad, pool, act, seed=c + f + h + w)
    oh, ow = out.shape[1:]
    next_scale = float(np.abs(out).max()) / 127 * 0.7      # the largest values saturate
    expected = np.full(core.int8_cl_size(f, oh, ow, next_pad), 7, np.int8)
    core.int8_pack_cl(out, next_scale, next_pad, expected)
    got = np.full(expected.shape, 7, np.int8)
    core.int8_conv_amx_cl(packed.data, image, c, h, w, size, pad, multiplier, bias,
                             act, f, got, next_scale, next_pad, pool)
    assert np.abs(expected).max() == 127
    np.testing.assert_array_equal(got, expected)


# (channels, filters, height, width, size, padding, the next layer's padding, pool): voc's
# last two (1024 -> 125 at 13x13, 1x1 next), an odd filter count (a pair half zeros), filters
# past a block of 32, pooled or not
PAIRS_HAND_OFFS = [(128, 125, 13, 13, 3, 1, 0, False), (64, 33, 9, 17, 3, 1, 1, False),
                   (64, 17, 10, 12, 1, 0, 1, True), (32, 40, 8, 36, 3, 1, 2, True)]


@pytest.mark.parametrize("c,f,h,w,size,pad,next_pad,pool", PAIRS_HAND_OFFS, ids=str)
@pytest.mark.parametrize("act", [core.ACT_LEAKY, core.ACT_LINEAR, core.ACT_LOGISTIC])
def test_the_epilogue_writes_a_bf16_layers_pairs_of_its_output(c, f, h, w, size, pad,
                                                               next_pad, pool, act):
    """int8_conv_amx_pairs: the fp32 output of int8_conv_amx rounded to bf16 and laid out as
    the next (bf16 direct) layer's channel pairs in NumPy, border and zero channels written
    over whatever the buffer held; the AVX-512 rounding and the portable one."""
    amx_or_skip()
    packed, image, multiplier, bias, out = int8_layer_and_its_output(
        c, f, h, w, size, pad, pool, act, seed=c + f + h + w + act)
    oh, ow = out.shape[1:]
    expected = expected_pairs(out, next_pad)
    assert expected.size == core.bf16_pairs_size(f, oh, ow, next_pad)
    for portable in (False, True):
        got = np.full(expected.size + 3, 0x7F7F, np.uint16)
        core.int8_conv_amx_pairs(packed.data, image, c, h, w, size, pad, multiplier, bias, act,
                                 f, got, next_pad, pool, portable_rounding=portable)
        np.testing.assert_array_equal(got[:expected.size], expected,
                                      err_msg=f"portable {portable}")
        assert np.all(got[expected.size:] == 0x7F7F)        # nothing written past it
    with pytest.raises(ValueError, match="too small"):
        core.int8_conv_amx_pairs(packed.data, image, c, h, w, size, pad, multiplier, bias, act,
                                 f, np.zeros(expected.size - 1, np.uint16), next_pad, pool)


def test_the_hand_off_refuses_a_short_buffer():
    amx_or_skip()
    image = np.zeros(core.int8_cl_size(64, 5, 6, 1), np.int8)
    packed = int8.Int8Weights(np.zeros((4, 64, 3, 3), np.int8), np.ones(4), "amx", direct=True)
    with pytest.raises(ValueError, match="too small"):
        core.int8_conv_amx_cl(packed.data, image, 64, 5, 6, 3, 1, np.ones(4, np.float32),
                                 np.zeros(4, np.float32), core.ACT_LINEAR, 4,
                                 np.zeros(core.int8_cl_size(4, 5, 6, 1) - 1, np.int8),
                                 0.1, 1)


@BF16_KERNELS
@pytest.mark.parametrize("c,h,w,f,size,pad", [
    (3, 16, 20, 32, 3, 1),      # the overlapping last segment of a row
    (3, 6, 8, 17, 3, 1),        # rows shorter than a segment; 17 filters: a quad 1/4 full
    (3, 4, 64, 16, 3, 1),       # 16 filters (tiny's): 16 slots, four taps a tile row
    (3, 10, 38, 40, 3, 0)])     # 40 filters: slots up to 64, no copies
@pytest.mark.parametrize("next_pad", [0, 1, 2])
def test_the_rgb_kernel_hands_off_int8_input(kernel, c, h, w, f, size, pad, next_pad):
    """bf16_conv_rgb_cl: the rgb kernel's pooled fp32 output quantized by the next layer's
    scale (in NumPy) and laid out as its channels-last input, border and zero channels
    written over whatever the buffer held; the same bytes with the AVX-512
    requantization and the portable one, on every bf16 kernel (none needs AMX-INT8)."""
    bf16_kernel_or_skip(kernel)
    x, weights, scale, bias = rgb_operands(c, h, w, f, size, 3 * c * w + f + next_pad)
    image = np.empty(core.bf16_image_size(c, h, w, pad), np.uint16)
    core.bf16_pack_image(x, pad, image)
    packed = lowp.BF16Weights(weights)
    oh, ow = (h + 2 * pad - size + 1) // 2, (w + 2 * pad - size + 1) // 2
    for act in (core.ACT_LEAKY, core.ACT_LINEAR, core.ACT_LOGISTIC):
        pooled = rgb_convolve(kernel, x, weights, pad, scale, bias, act, pool=True)
        next_scale = float(np.abs(pooled).max()) / 127 * 0.7      # the largest saturate
        xq = reference_quantize(pooled.reshape(f, oh, ow), next_scale).astype(np.int8)
        expected = expected_channels_last(xq, slots_of(f), next_pad)
        assert expected.size == core.int8_cl_size(f, oh, ow, next_pad)
        assert np.abs(xq).max() == 127
        for portable in (False, True):
            out = np.full(expected.size + 5, 7, np.int8)
            core.bf16_conv_rgb_cl(lowp.BF16_KERNELS[kernel], packed.data, image, c, h, w,
                                     size, pad, scale, bias, act, f, out, next_scale,
                                     next_pad, portable_rounding=portable)
            np.testing.assert_array_equal(out[:expected.size], expected,
                                          err_msg=f"act {act}, portable {portable}")
            assert np.all(out[expected.size:] == 7)        # nothing written past it


def test_the_rgb_hand_off_refuses_a_short_buffer_and_a_bad_scale():
    kernel = next(k for k in lowp.BF16_KERNELS if lowp.BF16_KERNELS[k] in core.bf16_kernels())
    x, weights, scale, bias = rgb_operands(3, 6, 8, 8, 3, 1)
    image = np.empty(core.bf16_image_size(3, 6, 8, 1), np.uint16)
    core.bf16_pack_image(x, 1, image)
    packed = lowp.BF16Weights(weights)
    size = core.int8_cl_size(8, 3, 4, 1)
    args = (lowp.BF16_KERNELS[kernel], packed.data, image, 3, 6, 8, 3, 1, scale, bias,
            core.ACT_LEAKY, 8)
    with pytest.raises(ValueError, match="too small"):
        core.bf16_conv_rgb_cl(*args, np.zeros(size - 1, np.int8), 0.1, 1)
    with pytest.raises(ValueError, match="scale"):
        core.bf16_conv_rgb_cl(*args, np.zeros(size, np.int8), 0.0, 1)


def quantized(net, x, percentile=99.0):
    """net made int8 (its ends kept fp32), calibrated on x with a percentile that clips."""
    layers = quantization.layers_to_quantize(net, keep_ends=True)
    observed = quantization.Calibration(net, layers)
    observed.observe(x)
    scales = observed.input_scales("percentile", percentile)
    quantization.quantize_network(net, scales, "percentile", percentile, {"images": len(x)})
    net.set_precision("int8", kernel="amx")
    return net


def test_the_plan_hands_int8_off_with_the_consumers_scale():
    amx_or_skip()
    net = with_random_statistics(Network.from_cfg(ROUTE_REORG_CFG))
    x = np.random.default_rng(5).random((2,) + net.input_shape, np.float32)
    quantized(net, x)
    # 0 (the RGB layer) and 15 (the last) stay unquantized: 0 runs bf16 rgb, pooled, and
    # hands 2 its int8 input; 15 runs bf16 direct, which 14 hands bf16 pairs; 6 and 9 feed a
    # route, 11 a reorg
    int8_hand_offs = {i: handoff.HandOff(pad, "int8", net.layers[j].input_scale)
                      for i, j, pad in ((0, 2, 1), (2, 4, 1), (4, 5, 0), (5, 6, 1), (8, 9, 1))}
    assert net.hand_offs == {**int8_hand_offs, 14: handoff.HandOff(0, "bf16")}
    assert net.layers[0].inference_path() == "bf16 amx rgb"
    assert net.layers[15].inference_path() == "bf16 amx direct"
    assert all(net.layers[i].precision == "int8" for i in net.hand_offs if i)


@pytest.mark.parametrize("batch", [1, 3])
def test_int8_hand_offs_give_the_same_bits_with_route_and_reorg(batch):
    amx_or_skip()
    net = with_random_statistics(Network.from_cfg(ROUTE_REORG_CFG))
    x = np.random.default_rng(batch).random((batch,) + net.input_shape, np.float32)
    quantized(net, x)
    assert net.hand_offs
    expected = without_hand_offs(net, x)
    np.testing.assert_array_equal(net.forward(x), expected)
    np.testing.assert_array_equal(net.forward(x), expected)    # the buffers reused


def test_int8_hand_offs_give_the_same_bits_on_tiny():
    amx_or_skip()
    net = with_random_statistics(Network.from_cfg("yolov2-tiny-voc", width=160, height=128))
    x = np.random.default_rng(1).random((2,) + net.input_shape, np.float32)
    quantized(net, x)
    # 2 -> 4 on 32 channels reads two taps a tile row of the positions the epilogue writes,
    # 0 -> 2 (the rgb kernel's hand-off) on 16 channels four
    assert set(net.hand_offs) == {0, 2, 4, 6, 8, 12, 13}
    np.testing.assert_array_equal(net.forward(x), without_hand_offs(net, x))


def test_a_packed_int8_activation_is_read_only_with_its_scale():
    amx_or_skip()
    net = with_random_statistics(Network.from_cfg(ROUTE_REORG_CFG))
    x = np.random.default_rng(3).random((1,) + net.input_shape, np.float32)
    quantized(net, x)
    inputs = {}
    net.forward(x, watch_inputs=lambda i, inputs_i: inputs.setdefault(i, inputs_i))
    packed = net.layers[4].forward(inputs[4], hand_off=net.hand_offs[4])
    assert isinstance(packed, handoff.PackedActivation) and packed.precision == "int8"
    np.testing.assert_array_equal(net.layers[5].forward(packed),
                                  net.layers[5].forward(inputs[5]))
    other = handoff.HandOff(0, "int8", net.layers[5].input_scale * 2)
    with pytest.raises(ValueError, match="scale"):
        net.layers[5].forward(net.layers[4].forward(inputs[4], hand_off=other))
    # an int8 layer may write bf16 pairs (for a bf16 direct layer), which no int8 layer reads
    as_pairs = net.layers[4].forward(inputs[4], hand_off=handoff.HandOff(0, "bf16"))
    assert as_pairs.precision == "bf16"
    with pytest.raises(ValueError, match="packed bf16 activation handed to a layer that runs "
                                         "int8"):
        net.layers[5].forward(as_pairs)
