"""Activations handed from one bf16 convolution to the next packed (kernels/handoff.py): which
edges the network plans, that a network handing off computes the same bits as one that does
not, and that a packed activation cannot be read by anything but the layer it was packed
for."""
import numpy as np
import pytest

from yolo9000 import Network
from yolo9000.kernels import core, handoff, lowp

# route and reorg around the hand-offs: 2 hands its pooled output to 4, 4 -> 5 -> 6 (48 and
# 33 filters: channel pairs padded with zero channels), 8 -> 9 on a 7x11 map; 6 and 9 feed a
# route, 11 a reorg, 15 is the last convolution
ROUTE_REORG_CFG = """
[net]
width=88
height=56
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=48
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=33
size=1
stride=1
pad=1
activation=relu

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=linear

[route]
layers=-4

[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=1
activation=leaky

[reorg]
stride=2

[route]
layers=-1,-4

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
"""


def amx_or_skip():
    if lowp.BF16_KERNELS["amx"] not in core.bf16_kernels():
        pytest.skip("hand-offs need the direct bf16 kernel: this CPU (or "
                    "YOLO9000_PORTABLE_KERNELS) has no AMX-BF16 (with Linux's tile permission)")


def with_random_statistics(net, seed=0):
    """Batch-norm statistics and biases away from their initial values, so that every
    activation's negative side and the rounding of varied magnitudes are exercised."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.kind != "conv":
            continue
        layer.biases[...] = rng.standard_normal(layer.biases.shape) * 0.1
        if layer.bn is not None:
            layer.bn.scales[...] = rng.uniform(0.5, 2, layer.bn.scales.shape)
            layer.bn.rolling_mean[...] = rng.standard_normal(layer.filters) * 0.1
            layer.bn.rolling_variance[...] = rng.uniform(0.5, 2, layer.filters)
    net.weights_changed()
    return net


def route_reorg_net():
    return with_random_statistics(Network.from_cfg(ROUTE_REORG_CFG))


def without_hand_offs(net, x):
    """The inference forward with every output in fp32 (watch_inputs turns hand-offs off,
    nothing else)."""
    return net.forward(x, watch_inputs=lambda i, inputs: None)


def test_the_plan_hands_off_only_to_the_next_convolution_alone():
    amx_or_skip()
    net = route_reorg_net()
    assert net.hand_offs == {}          # fp32 runs hand nothing off
    net.set_precision("bf16", kernel="amx")
    assert net.pooled_pairs == {0, 2}
    # 0 is the RGB layer on the rgb kernel, which hands off only what it pools; 6 and 9
    # feed a route, 11 a reorg, 15 is the last
    assert net.hand_offs == {0: handoff.HandOff(1, "bf16"),
                             2: handoff.HandOff(1, "bf16"), 4: handoff.HandOff(0, "bf16"),
                             5: handoff.HandOff(1, "bf16"), 8: handoff.HandOff(1, "bf16"),
                             14: handoff.HandOff(0, "bf16")}
    # the im2col bf16 kernels do not read packed inputs
    net.set_precision("bf16", kernel="portable")
    assert net.hand_offs == {}
    net.set_precision("fp32")
    assert net.hand_offs == {}


def test_the_plan_follows_resize():
    amx_or_skip()
    net = Network.from_cfg("yolov2-tiny-voc", width=160, height=128)
    net.set_precision("bf16", kernel="amx")
    assert set(net.hand_offs) == {0, 2, 4, 6, 8, 12, 13}
    net.resize(160, 136)        # 6's output 17x20 no longer pools: 6 and 8 hand nothing off
    assert set(net.hand_offs) == {0, 2, 4, 12, 13}
    net.resize(160, 128)
    assert set(net.hand_offs) == {0, 2, 4, 6, 8, 12, 13}


@pytest.mark.parametrize("batch", [1, 3])
def test_hand_offs_give_the_same_bits_with_route_and_reorg(batch):
    amx_or_skip()
    net = route_reorg_net()
    net.set_precision("bf16", kernel="amx")
    x = np.random.default_rng(batch).random((batch,) + net.input_shape, np.float32)
    expected = without_hand_offs(net, x)
    np.testing.assert_array_equal(net.forward(x), expected)
    np.testing.assert_array_equal(net.forward(x), expected)    # the buffers reused


def test_hand_offs_give_the_same_bits_on_tiny():
    amx_or_skip()
    net = with_random_statistics(Network.from_cfg("yolov2-tiny-voc", width=160, height=128))
    net.set_precision("bf16", kernel="amx")
    assert set(net.hand_offs) == {0, 2, 4, 6, 8, 12, 13}
    x = np.random.default_rng(1).random((2,) + net.input_shape, np.float32)
    np.testing.assert_array_equal(net.forward(x), without_hand_offs(net, x))


def test_forward_all_and_training_read_fp32_outputs():
    amx_or_skip()
    net = route_reorg_net()
    net.set_precision("bf16", kernel="amx")
    x = np.random.default_rng(2).random((1,) + net.input_shape, np.float32)
    assert all(isinstance(out, np.ndarray) and out.dtype == np.float32
               for out in net.forward_all(x))
    seen = []
    net.forward(x, watch_inputs=lambda i, inputs: seen.append(type(inputs)))
    assert handoff.PackedActivation not in seen
    assert all(isinstance(out, np.ndarray) for out in net.forward_all(x, train=True))


def packed_by(layer, x, hand_off):
    return layer.forward(x, hand_off=hand_off)


def test_a_packed_activation_is_read_only_by_its_layer():
    amx_or_skip()
    net = route_reorg_net()
    net.set_precision("bf16", kernel="amx")
    x = np.random.default_rng(3).random((1,) + net.input_shape, np.float32)
    inputs = {}
    net.forward(x, watch_inputs=lambda i, inputs_i: inputs.setdefault(i, inputs_i))
    packed = packed_by(net.layers[4], inputs[4], net.hand_offs[4])
    assert isinstance(packed, handoff.PackedActivation) and packed.shape == (1, 48, 14, 22)
    np.testing.assert_array_equal(net.layers[5].forward(packed),
                                  net.layers[5].forward(inputs[5]))
    # packed with a border layer 5 (1x1) does not read, or for a layer of other channels
    with pytest.raises(ValueError, match="padding 1"):
        net.layers[5].forward(packed_by(net.layers[4], inputs[4], handoff.HandOff(1)))
    with pytest.raises(ValueError, match="cannot be read as"):
        net.layers[6].forward(packed_by(net.layers[4], inputs[4], handoff.HandOff(1)))
    with pytest.raises(ValueError, match="cannot be read as an fp32 array"):
        np.asarray(packed)
    with pytest.raises(ValueError, match="never packed"):
        net.layers[5].forward(packed, train=True)
    net.layers[5].set_precision("fp32")
    with pytest.raises(ValueError, match="runs fp32"):
        net.layers[5].forward(packed)
    with pytest.raises(ValueError, match="cannot hand off"):
        net.layers[5].forward(inputs[5], hand_off=net.hand_offs[5])


def test_a_packed_activation_is_refused_once_its_buffer_is_reused():
    amx_or_skip()
    net = route_reorg_net()
    net.set_precision("bf16", kernel="amx")
    x = np.random.default_rng(4).random((1,) + net.input_shape, np.float32)
    inputs = {}
    net.forward(x, watch_inputs=lambda i, inputs_i: inputs.setdefault(i, inputs_i))
    first = packed_by(net.layers[4], inputs[4], net.hand_offs[4])
    packed_by(net.layers[4], inputs[4], net.hand_offs[4])       # the same buffer again
    with pytest.raises(ValueError, match="reused"):
        net.layers[5].forward(first)
