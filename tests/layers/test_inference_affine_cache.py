"""A convolution's folded batch norm and bias (ConvolutionalLayer._inference_affine) kept
between inference calls: made once, and never older than the parameters it is made from,
whoever writes them and however (in place without a word, new arrays, a training forward's
rolling statistics, an optimiser, a loader), in every precision."""
import numpy as np
import pytest

from yolo9000 import Network
from yolo9000.kernels import int8
from yolo9000.layers.batchnorm import EPS
from yolo9000.layers.convolutional import ConvolutionalLayer
from yolo9000.training.optim import SGD

BN_PARAMETERS = ("biases", "scales", "rolling_mean", "rolling_variance")
# the portable twins run on any CPU
PRECISIONS = [("fp32", None), ("bf16", "portable"), ("int8", "portable")]


def conv_layer(rng, batch_normalize=True, channels=6):
    layer = ConvolutionalLayer((channels, 7, 9), filters=5, size=3, stride=1, pad=1,
                               batch_normalize=batch_normalize, activation="leaky")
    for name, p in layer.params.items():
        if name in ("rolling_variance", "scales"):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        else:
            p[...] = rng.standard_normal(p.shape) * 0.3
    layer.weights_changed()
    return layer


def expected_output(layer, x):
    """act(BN(conv(x)) + bias) in float64 from the layer's current parameters, with darknet's
    eps on the standard deviation; the convolution as a literal sum over the taps."""
    w = layer.weights.astype(np.float64)
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    z = np.zeros((n, w.shape[0], h, wd))
    for kh in range(3):
        for kw in range(3):
            z += np.einsum("fc,nchw->nfhw", w[:, :, kh, kw], xp[:, :, kh:kh + h, kw:kw + wd])
    p = {k: v.astype(np.float64) for k, v in layer.params.items()}
    if layer.bn is not None:
        a = p["scales"] / (np.sqrt(p["rolling_variance"]) + EPS)
        z = a[None, :, None, None] * (z - p["rolling_mean"][None, :, None, None])
    z = z + p["biases"][None, :, None, None]
    return np.where(z > 0, z, 0.1 * z)


def close(got, expected):
    return np.abs(got - expected).max() <= 2e-5 * (1 + np.abs(expected).max())


def fresh_copy(layer):
    """A new layer with the same parameters (and quantization), nothing cached."""
    other = ConvolutionalLayer(layer.in_shape, filters=layer.filters, size=layer.size,
                               stride=layer.stride, pad=1,
                               batch_normalize=layer.batch_normalize,
                               activation=layer.activation)
    for name, p in layer.params.items():
        other.params[name][...] = p
    other.weights_changed()
    if layer.quantized:
        other.quantize(layer.int8_weights, layer.weight_scales, layer.input_scale)
    other.set_precision(layer.precision, layer.bf16_kernel or layer.int8_kernel)
    return other


def in_precision(layer, precision, kernel):
    if precision == "int8":
        q, scales = int8.quantize_weights(layer.weights)
        layer.quantize(q, scales, 0.02)
    layer.set_precision(precision, kernel)
    return layer


@pytest.mark.parametrize("name", BN_PARAMETERS)
def test_a_parameter_written_in_place_unannounced_changes_the_output(name):
    rng = np.random.default_rng(1)
    layer = conv_layer(rng)
    x = rng.standard_normal((2, 6, 7, 9)).astype(np.float32)
    before = layer.forward(x)
    assert close(before, expected_output(layer, x))
    layer.params[name][2] += 0.25 if name != "rolling_variance" else 0.5   # no weights_changed()
    after = layer.forward(x)
    assert close(after, expected_output(layer, x))
    assert not np.array_equal(after[:, 2], before[:, 2])
    np.testing.assert_array_equal(after[:, [0, 1, 3, 4]], before[:, [0, 1, 3, 4]])


def test_the_bias_of_a_layer_without_batch_norm():
    rng = np.random.default_rng(2)
    layer = conv_layer(rng, batch_normalize=False)
    x = rng.standard_normal((1, 6, 7, 9)).astype(np.float32)
    layer.forward(x)
    layer.biases[4] -= 1.0
    assert close(layer.forward(x), expected_output(layer, x))


def test_new_arrays_in_place_of_the_parameters():
    rng = np.random.default_rng(3)
    layer = conv_layer(rng)
    x = rng.standard_normal((1, 6, 7, 9)).astype(np.float32)
    layer.forward(x)
    layer.biases = layer.params["biases"] = layer.biases + 1
    layer.bn.rolling_mean = layer.params["rolling_mean"] = layer.bn.rolling_mean * 2
    assert close(layer.forward(x), expected_output(layer, x))


def test_made_once_and_read_only():
    rng = np.random.default_rng(4)
    layer = conv_layer(rng)
    a, b = layer._inference_affine()
    again = layer._inference_affine()
    assert again[0] is a and again[1] is b            # kept, not recomputed
    with pytest.raises(ValueError):
        a[0] = 1.0                                    # nobody can write the cache itself


def test_a_training_forward_moves_the_rolling_statistics_the_next_inference_reads():
    rng = np.random.default_rng(5)
    layer = conv_layer(rng)
    x = rng.standard_normal((2, 6, 7, 9)).astype(np.float32)
    before = layer.forward(x)
    mean = layer.bn.rolling_mean.copy()
    layer.forward(x * 3 + 1, train=True)
    assert not np.array_equal(layer.bn.rolling_mean, mean)
    after = layer.forward(x)
    assert close(after, expected_output(layer, x))
    assert not np.array_equal(after, before)


@pytest.mark.parametrize("precision,kernel", PRECISIONS)
def test_every_precision_reads_the_current_parameters(precision, kernel):
    """The same bits as a layer made afresh with the new values, after each kind of write."""
    rng = np.random.default_rng(6)
    layer = in_precision(conv_layer(rng, channels=16), precision, kernel)
    x = rng.standard_normal((1, 16, 7, 9)).astype(np.float32)
    outputs = [layer.forward(x)]
    layer.bn.scales[0] *= 1.5
    outputs.append(layer.forward(x))
    np.testing.assert_array_equal(outputs[-1], fresh_copy(layer).forward(x))
    layer.forward(x, train=True)                      # rolling statistics move
    outputs.append(layer.forward(x))
    np.testing.assert_array_equal(outputs[-1], fresh_copy(layer).forward(x))
    layer.biases[1] += 0.5
    outputs.append(layer.forward(x))
    np.testing.assert_array_equal(outputs[-1], fresh_copy(layer).forward(x))
    for earlier, later in zip(outputs, outputs[1:]):
        assert not np.array_equal(earlier, later)


GOLDEN_CFG = """
[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=4
size=1
stride=1
pad=0
activation=linear
"""


def test_network_optimiser_step_and_loaded_weights(tmp_path):
    net = Network.from_cfg(GOLDEN_CFG)
    rng = np.random.default_rng(7)
    for layer in net.layers:
        layer.bn.rolling_variance[...] = rng.uniform(0.5, 1.5, layer.filters)
        layer.bn.rolling_mean[...] = rng.standard_normal(layer.filters) * 0.1
    net.weights_changed()
    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    saved = tmp_path / "before.h5"
    net.save(saved)
    first = net.forward(x)
    # a training step: the forward moves the rolling statistics, SGD the scales and biases
    net.zero_grads()
    y = net.forward(x, train=True)
    net.backward(np.ones_like(y))
    SGD(net, momentum=0.0, decay=0.0).step(0.1, 1)
    stepped = net.forward(x)
    assert not np.array_equal(stepped, first)
    reference = Network.from_cfg(GOLDEN_CFG)
    for mine, theirs in zip(net.layers, reference.layers):
        for name, p in mine.params.items():
            theirs.params[name][...] = p
    reference.weights_changed()
    np.testing.assert_array_equal(stepped, reference.forward(x))
    net.load_weights(saved)                           # back to the first parameters
    np.testing.assert_array_equal(net.forward(x), first)
