"""int8 checkpoints (model/checkpoint.py): the round trip of the int8 weights, their scales, the
input scales and the record; the file's layout and size; fp32 weights loaded over an int8
network make it fp32 again; what is refused, in one line."""
import h5py
import numpy as np
import pytest

from conftest import GOLDEN
from yolo9000 import Network, UserError
from yolo9000.kernels import int8
from yolo9000.model import quantization

RECORD = {"directory": "calibration/", "images": 3, "names_sha256": "ab" * 32,
          "size": [64, 64], "date": "2026-01-01T00:00:00+00:00", "yolo9000_version": "test"}


def golden():
    net = Network.from_cfg(GOLDEN / "mini.cfg")
    net.load_weights(GOLDEN / "mini.weights")
    return net


def quantized_golden():
    """The golden network made int8 with input scales chosen here (no calibration)."""
    net = golden()
    layers = quantization.layers_to_quantize(net)
    scales = {i: np.float32(0.01 * (k + 1)) for k, i in enumerate(layers)}
    quantization.quantize_network(net, scales, "percentile", 99.99, RECORD)
    return net, scales


@pytest.fixture
def saved(tmp_path):
    net, scales = quantized_golden()
    path = tmp_path / "int8.h5"
    net.save(path)
    return net, scales, path


def test_round_trip_keeps_every_int8_array_and_the_record(saved):
    net, scales, path = saved
    loaded = Network.load(path)
    assert loaded.precision_note == "fp32 (an int8 checkpoint: its weights dequantized)"
    assert loaded.quantization == net.quantization
    assert loaded.quantization["calibration"] == RECORD
    assert loaded.quantization["layers"] == sorted(scales)
    for i, layer in enumerate(net.layers):
        other = loaded.layers[i]
        if i in scales:
            assert other.int8_weights.dtype == np.int8
            np.testing.assert_array_equal(other.int8_weights, layer.int8_weights)
            np.testing.assert_array_equal(other.weight_scales, layer.weight_scales)
            assert other.input_scale == scales[i]
        elif layer.kind == "conv":
            assert not other.quantized
        for name, p in layer.params.items():
            np.testing.assert_array_equal(other.params[name], p)
    x = np.load(GOLDEN / "input.npy")
    net.set_precision("int8", "portable")
    loaded.set_precision("int8", "portable")
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))


def test_the_file_holds_int8_weights_not_fp32_ones(saved, tmp_path):
    net, scales, path = saved
    with h5py.File(path, "r") as f:
        for i in scales:
            group = f[f"layers/{i:03d}"]
            assert "weights" not in group
            assert group["int8_weights"].dtype == np.int8
            assert group["weight_scales"].shape == (net.layers[i].filters,)
            assert group["input_scale"].shape == ()
    fp32 = tmp_path / "fp32.h5"
    golden().save(fp32)
    assert path.stat().st_size < fp32.stat().st_size


def test_the_weights_are_quantized_per_output_channel(saved):
    net, scales, _ = saved
    original = golden()
    for i in scales:
        w = original.layers[i].weights
        peak = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        np.testing.assert_allclose(net.layers[i].weight_scales, peak / 127, rtol=1e-6)
        assert np.abs(net.layers[i].int8_weights).reshape(w.shape[0], -1).max(axis=1).tolist() \
            == [127] * w.shape[0]
        # the fp32 weights are the dequantized ones: within half a step of the originals
        step = net.layers[i].weight_scales[:, None, None, None]
        assert np.all(np.abs(net.layers[i].weights - w) <= 0.5 * step * (1 + 1e-6))


def test_fp32_weights_loaded_over_an_int8_network_make_it_fp32(saved):
    net, scales, _ = saved
    net.set_precision("int8", "portable")
    net.load_weights(GOLDEN / "mini.weights")
    assert net.quantization is None and net.precision == "fp32"
    assert not any(layer.quantized for layer in net.layers if layer.kind == "conv")
    x = np.load(GOLDEN / "input.npy")
    np.testing.assert_array_equal(net.forward(x), golden().forward(x))


def test_int8_on_fp32_weights_names_the_convert_command():
    net = golden()
    with pytest.raises(UserError) as caught:
        net.set_precision("int8", "portable")
    message = str(caught.value)
    assert "\n" not in message
    assert (f"yolo9000 convert {GOLDEN / 'mini.weights'} --cfg {GOLDEN / 'mini.cfg'} --output "
            "mini-int8.h5 --quantize int8 --calibration DIR") in message


def test_an_int8_checkpoint_is_not_loaded_in_part(saved):
    _, _, path = saved
    with pytest.raises(UserError, match="loaded whole"):
        golden().load_weights(path, cutoff=3)


def test_an_int8_layer_list_naming_a_non_convolution_is_refused(saved):
    _, _, path = saved
    with h5py.File(path, "r+") as f:
        f.attrs["quantization"] = np.bytes_(b'{"layers": [1]}')
    with pytest.raises(UserError, match="names layer 1, which is not a convolution"):
        Network.load(path)


def test_int8_weights_stored_as_floats_are_refused(saved):
    _, scales, path = saved
    i = min(scales)
    with h5py.File(path, "r+") as f:
        stored = f[f"layers/{i:03d}/int8_weights"][()]
        del f[f"layers/{i:03d}/int8_weights"]
        f[f"layers/{i:03d}/int8_weights"] = stored.astype(np.float32)
    with pytest.raises(UserError, match="int8_weights holds float32 values"):
        Network.load(path)


def test_the_int8_interface_rounds_half_to_even_and_clips():
    # the interface's rounding: half to even (np.rint), clipped symmetric
    q = int8.quantize_activations(np.array([0.5, 1.5, 2.5, -300.0, 300.0], np.float32), 1.0)
    assert q.tolist() == [0, 2, 2, -127, 127]
    w = np.zeros((2, 1, 1, 1), np.float32)
    w[1] = -2.54
    q, s = int8.quantize_weights(w)
    assert s.tolist() == [1.0, np.float32(2.54 / 127)] and q.ravel().tolist() == [0, -127]
