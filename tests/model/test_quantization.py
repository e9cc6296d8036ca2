"""Post-training int8 quantization (model/quantization.py): the calibration rules against values
worked out by hand on tiny histograms, the histogram's growing range, the layers chosen, an
int8 convolution against a NumPy reading of kernels/int8.py's contract, and the golden
network quantized within a stated bound of darknet's fp32 numbers."""
import math

import numpy as np
import pytest

from columns_reference import im2col
from conftest import GOLDEN
from yolo9000 import Network, UserError
from yolo9000.kernels import int8
from yolo9000.layers.convolutional import ConvolutionalLayer
from yolo9000.model import quantization


# -- the rules ------------------------------------------------------------------------------
@pytest.mark.parametrize("percentile,expected", [
    # counts [2, 0, 6, 2] in bins 0.5 wide; total 10, cumulative 2, 2, 8, 10
    (20, 0.5),      # 2 values: all of bin 0 -> its upper edge
    (50, 1.25),     # 5 values: bin 2 holds values 3..8, the 5th is half way: (2 + 3/6) x 0.5
    (95, 1.875),    # 9.5 values: bin 3 holds 9..10: (3 + 1.5/2) x 0.5
    (100, 2.0),     # all: the top edge
])
def test_percentile_threshold_by_hand(percentile, expected):
    got = quantization.percentile_threshold([2, 0, 6, 2], 0.5, percentile)
    assert math.isclose(got, expected, rel_tol=1e-12)


def test_entropy_threshold_by_hand():
    """counts [8, 2, 0, 1], bins 1 wide, 2 levels; KL(P || Q) by hand for each cut i:
    i=2: P = [8, 3]/11, Q = [8, 2]/10:          8/11 ln(10/11) + 3/11 ln(30/22) = 0.0153
    i=3: P = [8, 2, 1]/11, Q = [5, 5, 0]/10:    Q is empty where P is not       = large
    i=4: P = [8, 2, 0, 1]/11, Q = [5, 5, 0, 1]/11: 8/11 ln(8/5) + 2/11 ln(2/5)  = 0.1752
    so the cut is at 2 bins: the threshold is 2 x the bin width."""
    assert quantization.entropy_threshold([8, 2, 0, 1], 0.5, levels=2) == 1.0
    # the divergences themselves, as worked out above
    kl = quantization._kl_divergence
    assert math.isclose(kl(np.array([8., 3.]), np.array([8., 2.])),
                        8 / 11 * math.log(10 / 11) + 3 / 11 * math.log(30 / 22), rel_tol=1e-9)
    assert math.isclose(kl(np.array([8., 2., 0., 1.]), np.array([5., 5., 0., 1.])),
                        8 / 11 * math.log(8 / 5) + 2 / 11 * math.log(2 / 5), rel_tol=1e-9)


def test_entropy_keeps_the_whole_range_when_no_cut_loses_less():
    # [4, 4, 0, 1] in 2 levels: at 4 bins Q = P exactly (KL 0)
    assert quantization.entropy_threshold([4, 4, 0, 1], 1.0, levels=2) == 4.0
    # fewer used bins than levels: every value is exact, the top edge of the last used bin
    assert quantization.entropy_threshold([3, 1, 0, 0], 0.25, levels=8) == 0.5


def test_entropy_clips_a_long_sparse_tail():
    """A dense body in [0, 1) and a lone outlier at 100: 128 levels over the full range would
    put the body into one or two levels; the cut falls well below the outlier."""
    histogram = quantization.AbsHistogram(bins=4096)
    rng = np.random.default_rng(0)
    histogram.add(rng.uniform(0, 1, 100_000))
    histogram.add([100.0])
    assert 0.9 <= quantization.threshold(histogram, "entropy") <= 5.0
    assert quantization.threshold(histogram, "percentile", 100) > 99.0


def test_histogram_range_doubles_and_merges_bins_exactly():
    h = quantization.AbsHistogram(bins=4)
    h.add([0.5, -1.0])                 # range 1: bins 0.25 wide; 1.0 lands in the last bin
    assert h.range == 1.0 and h.counts.tolist() == [0, 0, 1, 1]
    h.add([3.0])                       # range 2 ([0, 2, 0, 0]), then 4 ([2, 0, 0, 0]), then 3.0
    assert h.range == 4.0 and h.counts.tolist() == [2, 0, 0, 1]
    h.add([0.0, 0.1])
    assert h.counts.tolist() == [4, 0, 0, 1]


def test_histogram_of_zeros_then_values():
    h = quantization.AbsHistogram(bins=4)
    h.add(np.zeros(3))
    assert h.range == 0.0 and h.counts.tolist() == [3, 0, 0, 0]
    h.add([2.0])
    assert h.range == 2.0 and h.counts.tolist() == [3, 0, 0, 1]
    # an input that was always zero gets a usable scale
    assert quantization.input_scale(quantization.AbsHistogram(bins=4)) == np.float32(1 / 127)


def test_input_scale_is_the_threshold_over_127():
    h = quantization.AbsHistogram(bins=4)
    h.add([0.25, 0.75, 1.25, 1.75, 2.0])   # range 2, bins of 0.5: counts [1, 1, 1, 2]
    assert h.range == 2.0 and h.counts.tolist() == [1, 1, 1, 2]
    assert quantization.input_scale(h, "percentile", 100) == np.float32(2.0 / 127)
    # the 40th: 2 values, the top of bin 1
    assert quantization.input_scale(h, "percentile", 40) == np.float32(1.0 / 127)


# -- which layers ---------------------------------------------------------------------------
def test_the_first_and_last_convolutions_are_kept_by_default():
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    convs = [i for i, layer in enumerate(net.layers) if layer.kind == "conv"]
    assert quantization.layers_to_quantize(net) == convs[1:-1]
    assert quantization.layers_to_quantize(net, keep_ends=False) == convs


def test_a_network_without_convolutions_is_one_line():
    net = Network.from_cfg("[net]\nwidth=32\nheight=32\nchannels=3\n[maxpool]\nsize=2\n"
                           "stride=2\n[softmax]\n")
    with pytest.raises(UserError, match="has no convolutional layer to quantize"):
        quantization.layers_to_quantize(net)
    two = Network.from_cfg("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\n"
                           "filters=4\nsize=1\n[convolutional]\nfilters=4\nsize=1\n")
    with pytest.raises(UserError, match="--quantize-ends"):
        quantization.layers_to_quantize(two)


# -- an int8 convolution --------------------------------------------------------------------
@pytest.mark.parametrize("kernel", list(int8.INT8_KERNELS))
@pytest.mark.parametrize("size,stride,pad,channels", [(3, 1, 1, 16), (1, 1, 0, 20),
                                                      (3, 2, 1, 5)])
def test_int8_layer_matches_the_contract_in_float64(size, stride, pad, channels, kernel):
    if int8.INT8_KERNELS[kernel] not in int8.core.int8_kernels():
        pytest.skip(f"this CPU (or YOLO9000_PORTABLE_KERNELS) has no {kernel} int8 unit")
    rng = np.random.default_rng(size + channels)
    layer = ConvolutionalLayer((channels, 11, 9), 21, size, stride, padding=pad,
                               batch_normalize=True, activation="leaky", rng=rng)
    layer.bn.scales[...] = rng.uniform(0.5, 1.5, 21)
    layer.bn.rolling_mean[...] = rng.standard_normal(21) * 0.1
    layer.biases[...] = rng.standard_normal(21) * 0.1
    x = rng.standard_normal((2, channels, 11, 9)).astype(np.float32)
    weights = layer.weights.copy()
    # per output channel, symmetric, by hand
    w_scale = np.abs(weights).reshape(21, -1).max(axis=1) / 127
    q_w = np.clip(np.rint(weights / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
    x_scale = np.float32(2.5 / 127)              # clips the rare |x| > 2.5
    layer.quantize(q_w, w_scale, x_scale)
    np.testing.assert_allclose(layer.weights, q_w * w_scale[:, None, None, None], rtol=1e-6)
    layer.set_precision("int8", kernel)
    # AMX convolves stride-1 layers of 16 channels or more in place, without a column matrix
    direct = kernel == "amx" and channels >= 16 and stride == 1
    assert layer.inference_path() == f"int8 {kernel} {'direct' if direct else 'im2col'}"
    got = layer.forward(x)
    assert layer._int8.direct == direct          # packed for the path it names
    a, b = layer._inference_affine()
    for i in range(2):
        q_x = np.clip(np.rint(x[i] / x_scale), -127, 127)
        sums = q_w.reshape(21, -1).astype(np.float64) @ im2col(q_x.astype(np.float64), size,
                                                              stride, pad)
        v = (a * w_scale * x_scale)[:, None] * sums + b[:, None]
        expected = np.where(v > 0, v, 0.1 * v).reshape(got[i].shape)
        np.testing.assert_allclose(got[i], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", list(int8.INT8_KERNELS))
def test_int8_layer_pools_in_its_epilogue_only_on_the_direct_kernel(kernel):
    """forward_pooled: the direct AMX kernel's pooled epilogue gives the bits of forward then
    the maxpool layer; the im2col kernels leave the pooling to the maxpool (None)."""
    if int8.INT8_KERNELS[kernel] not in int8.core.int8_kernels():
        pytest.skip(f"this CPU (or YOLO9000_PORTABLE_KERNELS) has no {kernel} int8 unit")
    from yolo9000.layers.maxpool import MaxpoolLayer
    rng = np.random.default_rng(12)
    layer = ConvolutionalLayer((64, 12, 10), 40, 3, 1, 1, batch_normalize=True,
                               activation="leaky", rng=rng)
    layer.bn.rolling_mean[...] = rng.standard_normal(40) * 0.1
    q, scales = int8.quantize_weights(layer.weights)
    layer.quantize(q, scales, 2.5 / 127)
    layer.set_precision("int8", kernel)
    x = rng.standard_normal((2, 64, 12, 10)).astype(np.float32)
    pooled = layer.forward_pooled(x)
    if kernel != "amx":
        assert pooled is None
        return
    unfused = MaxpoolLayer(layer.out_shape, 2, 2).forward(layer.forward(x))
    assert pooled.shape == (2, 40, 6, 5)
    np.testing.assert_array_equal(pooled, unfused)


def test_an_int8_layer_refuses_weights_written_after_it_was_quantized():
    layer = ConvolutionalLayer((4, 6, 6), 8, 3, 1, 1, activation="leaky")
    q, scales = int8.quantize_weights(layer.weights)
    layer.quantize(q, scales, 0.01)
    layer.set_precision("int8", "portable")
    layer.forward(np.ones((1, 4, 6, 6), np.float32))
    layer.weights[...] *= 2
    layer.weights_changed()
    with pytest.raises(ValueError, match="written after it was quantized"):
        layer.forward(np.ones((1, 4, 6, 6), np.float32))


def test_a_layer_not_quantized_runs_fp32_when_the_network_runs_int8():
    layer = ConvolutionalLayer((4, 6, 6), 8, 3, 1, 1, activation="leaky")
    x = np.random.default_rng(1).standard_normal((1, 4, 6, 6)).astype(np.float32)
    fp32 = layer.forward(x)
    layer.set_precision("int8", "portable")
    assert layer.precision == "fp32" and layer.inference_path().startswith("fp32")
    np.testing.assert_array_equal(layer.forward(x), fp32)


# -- the golden network ---------------------------------------------------------------------
def quantized_golden(keep_ends=True, rule="percentile"):
    """The golden network calibrated on its own input (one image), made int8."""
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    net.load_weights(GOLDEN / "mini.weights")
    x = np.load(GOLDEN / "input.npy")
    layers = quantization.layers_to_quantize(net, keep_ends)
    observed = quantization.Calibration(net, layers)
    observed.observe(x)
    scales = observed.input_scales(rule, 100.0 if rule == "percentile" else None)
    quantization.quantize_network(net, scales, rule, 100.0, {"images": 1})
    return net, x


@pytest.mark.parametrize("keep_ends", [True, False])
def test_golden_network_in_int8_is_within_its_bound_of_darknet(keep_ends):
    """The mini network (random weights), calibrated on its input with the maximum (nothing
    clipped), against darknet's fp32 numbers at every layer: int8's 255 levels per tensor
    through up to 8 int8 convolutions stay within 20% of (1 + |darknet's value|) everywhere
    and 2.5% on average per layer (measured: 10.2% and 1.6% with the ends kept, the RGB
    layer then in bf16 (12.2% with it fp32), 15.5% and 1.8% without; bf16 is within 5%)."""
    net, x = quantized_golden(keep_ends)
    assert net.set_precision("int8", kernel="portable") == "int8 on portable"
    outs = net.forward_all(x)
    ref = np.load(GOLDEN / "forward.npz")
    worst = 0.0
    for i, out in enumerate(outs):
        r = ref[f"layer{i:02d}"]
        error = np.abs(out - r) / (1 + np.abs(r))
        assert error.max() <= 0.2 and error.mean() <= 0.025, f"layer {i}"
        worst = max(worst, error.max())
    assert worst > 1e-2        # it did run in int8: fp32 is within 1e-4
    out = outs[-1]
    # fp32 on the same (now dequantized) weights is not int8's result, and says so
    note = net.set_precision("fp32")
    assert note == "fp32 (an int8 checkpoint: its weights dequantized)"
    assert not np.array_equal(net.forward(x), out)


def test_int8_paths_and_the_ends_kept():
    net, _ = quantized_golden()
    net.set_precision("int8", kernel="portable")
    convs = [i for i, layer in enumerate(net.layers) if layer.kind == "conv"]
    paths = net.layer_paths()
    assert all(paths[i] == "int8 portable im2col" for i in convs[1:-1])
    assert not paths[convs[0]].startswith("int8") and not paths[convs[-1]].startswith("int8")
    assert net.quantization["layers"] == convs[1:-1]
    assert net.quantization["kept_fp32"] == [convs[0], convs[-1]]    # the record says so too


def test_calibration_sees_each_quantized_layers_input():
    """Every quantized convolution's histogram counts its own input (the output of the layer
    before it, or of the route it follows), whose largest |x| sets the first range."""
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    net.load_weights(GOLDEN / "mini.weights")
    x = np.load(GOLDEN / "input.npy")
    ref = np.load(GOLDEN / "forward.npz")          # darknet's outputs of every layer
    layers = quantization.layers_to_quantize(net, keep_ends=False)
    observed = quantization.Calibration(net, layers)
    observed.observe(x)
    for i in layers:
        seen = x if i == 0 else ref[f"layer{i - 1:02d}"]
        histogram = observed.histograms[i]
        assert histogram.counts.sum() == seen.size, f"layer {i}"
        assert histogram.range == pytest.approx(float(np.abs(seen).max()), rel=1e-4)
