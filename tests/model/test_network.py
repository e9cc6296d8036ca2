"""Network construction, darknet golden numbers, weights and checkpoint files, cfg errors."""
import struct
import subprocess
import sys

import numpy as np
import pytest

from yolo9000 import Network, UserError
from yolo9000.model.darknet_weights import darknet_weights_bytes
from conftest import GOLDEN, REFERENCE_CFG


def random_weights(net, seed=0):
    rng = np.random.default_rng(seed)
    for _, name, p, _ in net.parameters():
        if name == "rolling_variance":
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        elif name == "scales":
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        elif name == "weights":
            fan_in = np.prod(p.shape[1:])
            p[...] = rng.standard_normal(p.shape) * np.sqrt(1.0 / fan_in)
        else:
            p[...] = rng.standard_normal(p.shape) * 0.1


def test_mini_forward_matches_darknet_every_layer():
    g = GOLDEN
    net = Network.from_cfg(g / "mini.cfg")
    net.load_weights(g / "mini.weights")
    outs = net.forward_all(np.load(g / "input.npy"))
    ref = np.load(g / "forward.npz")
    assert len(outs) == 16
    for i, out in enumerate(outs):
        r = ref[f"layer{i:02d}"]
        assert out.shape == r.shape, i
        assert np.all(np.abs(out - r) <= 1e-4 * (1 + np.abs(r))), f"layer {i}"


def test_mini_training_mode_forward_matches_darknet():
    """Batch statistics (unbiased variance, eps on the std) as darknet's training forward."""
    g = GOLDEN
    net = Network.from_cfg(g / "mini.cfg")
    net.load_weights(g / "mini.weights")
    outs = net.forward_all(np.load(g / "input.npy"), train=True)
    ref = np.load(g / "region_seen0.npz")
    assert np.all(np.abs(outs[14] - ref["raw"]) <= 1e-4 * (1 + np.abs(ref["raw"])))
    assert np.all(np.abs(outs[15] - ref["output"]) <= 1e-4 * (1 + np.abs(ref["output"])))


@pytest.mark.parametrize("name,size,shape", [
    ("yolov2-voc", 416, (125, 13, 13)),
    ("yolov2", 608, (425, 19, 19)),
    ("yolov2-tiny-voc", 416, (125, 13, 13)),
    ("yolov2-tiny", 416, (425, 13, 13)),
    ("yolo9000", 544, (28269, 17, 17)),
    ("darknet19", 256, (1000, 1, 1)),
    ("darknet19_448", 448, (1000, 1, 1)),
])
def test_reference_cfgs_parse_with_right_shapes(name, size, shape):
    net = Network.from_cfg(REFERENCE_CFG / f"{name}.cfg")
    assert (net.width, net.height) == (size, size)
    assert net.output_shape == shape
    bundled = Network.from_cfg(name)
    assert bundled.output_shape == shape
    if name in ("yolov2-voc", "yolo9000"):
        net.resize(416, 416)
        assert net.output_shape[1:] == (13, 13)
        assert net.output_shape[0] == (125 if name == "yolov2-voc" else 28269)


def test_yolov2_voc_flops_like_darknet():
    net = Network.from_cfg("yolov2-voc")
    assert abs(net.flops() / 1e9 - 29.37) < 0.1     # darknet prints 29.371 BFLOPs at 416


def test_weights_round_trip_is_byte_identical(tmp_path):
    g = GOLDEN
    net = Network.from_cfg(g / "mini.cfg")
    net.load_weights(g / "mini.weights")
    out = tmp_path / "copy.weights"
    net.save_weights(out)
    assert out.read_bytes() == (g / "mini.weights").read_bytes()


def test_64bit_seen_is_read_and_written(tmp_path):
    """A 0.2 header with a seen beyond 32 bits, built byte by byte, loads and saves unchanged."""
    seen = 123456789012                                   # > 2**32: needs all 64 bits
    header = struct.pack("<iiiQ", 0, 2, 5, seen)
    body = (GOLDEN / "mini.weights").read_bytes()[20:]    # mini.weights has a 20-byte header
    path = tmp_path / "seen.weights"
    path.write_bytes(header + body)
    net = Network.from_cfg(GOLDEN / "mini.cfg").load_weights(path)
    assert net.seen == seen
    assert tuple(net.weights_header) == (0, 2, 5)
    net.seen = seen + 1
    out = tmp_path / "saved.weights"
    net.save_weights(out)
    written = out.read_bytes()
    assert written[:20] == struct.pack("<iiiQ", 0, 2, 5, seen + 1)
    assert written[20:] == body


def test_old_header_with_32bit_seen_round_trips(tmp_path):
    net = Network.from_cfg("yolov2-tiny-voc")
    random_weights(net, 1)
    net.weights_header = (0, 1, 0)
    net.seen = 12345
    data = darknet_weights_bytes(net)
    assert len(data) == 16 + 4 * sum(p.size for _, n, p, _ in net.parameters())
    path = tmp_path / "old.weights"
    path.write_bytes(data)
    other = Network.from_cfg("yolov2-tiny-voc").load_weights(path)
    assert other.seen == 12345
    for (_, _, a, _), (_, _, b, _) in zip(net.parameters(), other.parameters()):
        np.testing.assert_array_equal(a, b)


def test_cutoff_loads_backbone_only(tmp_path):
    net = Network.from_cfg("yolov2-tiny-voc")
    random_weights(net, 2)
    path = tmp_path / "backbone.weights"
    net.save_weights(path, cutoff=13)
    fresh = Network.from_cfg("yolov2-tiny-voc")
    fresh.load_weights(path, cutoff=13)
    np.testing.assert_array_equal(fresh.layers[12].weights, net.layers[12].weights)
    assert not np.array_equal(fresh.layers[13].weights, net.layers[13].weights)
    with pytest.raises(UserError, match="expected .* floats, found"):
        Network.from_cfg("yolov2-tiny-voc").load_weights(path)


def test_wrong_size_weights_states_expected_and_found(tmp_path):
    net = Network.from_cfg("yolov2-tiny-voc")
    expected = sum(p.size for _, n, p, _ in net.parameters())
    path = tmp_path / "short.weights"
    path.write_bytes(np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<u8").tobytes()
                     + np.zeros(1000, "<f4").tobytes())
    with pytest.raises(UserError) as e:
        net.load_weights(path)
    assert f"expected {expected} floats, found 1000" in str(e.value)
    assert str(path) in str(e.value)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    net = Network.from_cfg("yolov2-tiny-voc", width=96, height=96)
    random_weights(net, 3)
    net.seen = 777
    x = np.random.default_rng(0).random((2, 3, 96, 96), dtype=np.float32)
    y = net.forward(x)
    path = tmp_path / "ckpt.h5"
    net.save(path, names=[f"c{i}" for i in range(20)], note="hello")
    assert not list(tmp_path.glob("*.tmp"))
    other = Network.load(path)
    assert other.seen == 777 and other.names[3] == "c3" and other.meta["note"] == "hello"
    np.testing.assert_array_equal(other.forward(x), y)
    # .h5 recognised by content through load_weights as well
    third = Network.from_cfg("yolov2-tiny-voc", width=96, height=96).load_weights(path)
    np.testing.assert_array_equal(third.forward(x), y)


def test_checkpoint_from_another_cfg_is_refused(tmp_path):
    net = Network.from_cfg("yolov2-tiny-voc", width=96, height=96)
    path = tmp_path / "ckpt.h5"
    net.save(path)
    with pytest.raises(UserError, match="different cfg"):
        Network.from_cfg("yolov2-voc").load_weights(path)


SMOOTH_CFG = """
[net]
width=24
height=24
channels=3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=linear
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=linear
[route]
layers=-2
[reorg]
stride=2
[route]
layers=-1,-3
[convolutional]
filters=5
size=1
stride=1
pad=1
activation=logistic
"""


def test_network_backward_matches_finite_differences():
    """route (with a fan-out), reorg, BN in training mode, stride 2: dL/dx by central
    differences. Smooth activations and no maxpool, so finite differences have no kinks
    (those layers have their own checks in test_layers.py; see test_against_torch.py for
    the full mini network against autograd)."""
    net = Network.from_cfg(SMOOTH_CFG)
    random_weights(net, 5)
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 24, 24), dtype=np.float32)
    y = net.forward(x, train=True)
    r = rng.standard_normal(y.shape).astype(np.float32)
    net.zero_grads()
    dx = net.backward(r)

    def loss(v):
        return float(np.sum(net.forward(v, train=True).astype(np.float64) * r))

    flat = x.reshape(-1)
    for i in rng.choice(flat.size, 30, replace=False):
        old = flat[i]
        flat[i] = old + 1e-2
        plus = loss(x)
        flat[i] = old - 1e-2
        minus = loss(x)
        flat[i] = old
        num = (plus - minus) / 2e-2
        assert abs(num - dx.reshape(-1)[i]) <= 0.02 * abs(num) + 2e-3, (i, num, dx.reshape(-1)[i])


def test_resize_changes_shapes_not_weights():
    net = Network.from_cfg("yolov2-tiny-voc")
    w = net.layers[0].weights
    net.resize(320, 320)
    assert net.output_shape == (125, 10, 10)
    assert net.layers[0].weights is w
    y = net.forward(np.zeros((1, 3, 320, 320), np.float32))
    assert y.shape == (1, 125, 10, 10)


@pytest.mark.parametrize("text,line,message", [
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=abc\n", 5, "not an integer"),
    ("[net]\nwidth=64\nheight=64\n[convolushional]\nfilters=4\n", 4, "unknown section"),
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters 4\n", 5, "key=value"),
    ("width=64\n[net]\n", 1, "before any"),
    ("[net]\nwidth=64\nheight=64\n[route]\nlayers=-3\n", 4, "not an earlier layer"),
    ("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=4\nactivation=swishy\n", 4, "unknown activation"),
])
def test_malformed_cfg_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        Network.from_cfg(path)
    assert str(e.value).startswith(f"{path}:{line}:")
    assert message in str(e.value)


def test_cli_reports_bad_cfg_in_one_line(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=abc\n")
    r = subprocess.run([sys.executable, "-m", "yolo9000", "summary", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}:5:" in lines[0]


def test_backward_leaves_the_callers_gradient_alone():
    """Layers may write over the gradients handed to them in Network.backward (they are the
    loop's own); the caller's gradient, and the result of a second call, are untouched by
    that. A passthrough network: route parts are views of their gradient."""
    net = Network.from_cfg(str(REFERENCE_CFG / "yolov2-voc.cfg"), width=64, height=64)
    rng = np.random.default_rng(3)
    x = rng.random((2,) + net.input_shape, dtype=np.float32)
    start = len(net.layers) - 3          # a batch-normalised leaky convolution
    net.forward(x, train=True)
    dy = rng.standard_normal((2,) + net.layers[start].out_shape).astype(np.float32)
    kept = dy.copy()
    first = net.backward(dy, start=start)
    assert np.array_equal(dy, kept)
    net.forward(x, train=True)
    assert np.array_equal(net.backward(dy, start=start), first)


def test_lazily_zeroed_gradients_equal_zeroed_ones():
    """zero_grads() leaves the convolutions' weight gradients to be written over by the next
    backward: the same bits as filling them with zeros first (im2col, Winograd and direct
    paths, a layer the gradient does not reach), zeros to anyone reading before a backward,
    and a second backward adds to the first."""
    net = Network.from_cfg(str(REFERENCE_CFG / "yolov2-tiny-voc.cfg"), width=64, height=64)
    random_weights(net, 4)
    rng = np.random.default_rng(8)
    x = rng.random((2,) + net.input_shape, dtype=np.float32)
    dy = rng.standard_normal((2,) + net.layers[-2].out_shape).astype(np.float32)
    start = len(net.layers) - 2

    def gradients():
        return [g.copy() for _, _, _, g in net.parameters() if g is not None]

    def step(lazy):
        if lazy:
            net.zero_grads()
        else:
            for _, _, _, g in net.parameters():
                if g is not None:
                    g.fill(0.0)
        net.forward(x, train=True)
        net.backward(dy, start=start, input_grad=False)
        return gradients()

    for _, _, _, g in net.parameters():
        if g is not None:
            g.fill(7.0)              # stale values that must not leak into the result
    lazy, filled = step(True), step(False)
    assert all(np.array_equal(a, b) for a, b in zip(lazy, filled))
    net.forward(x, train=True)
    net.backward(dy, start=start, input_grad=False)
    assert all(np.array_equal(a, 2 * b) for a, b in zip(gradients(), filled))
    net.zero_grads()
    assert not any(g.any() for g in gradients())
    net.zero_grads()
    net.forward(x, train=True)
    early = len(net.layers) - 4                                  # the last convs not reached
    net.backward(rng.standard_normal((2,) + net.layers[early].out_shape).astype(np.float32),
                 start=early, input_grad=False)
    assert not net.layers[-2].weight_grad.any()


def test_layer_seconds_time_every_layer_and_mark_the_fused_maxpools():
    """forward(layer_seconds=[]) (bench.py's profile): one entry a layer, None for the maxpools
    a convolution took in its epilogue (inference) or in its batch norm pass (training), the
    output unchanged; backward(layer_seconds={}) times every layer it ran, not those
    maxpools (their convolutions unpool)."""
    net = Network.from_cfg("yolov2-tiny-voc", width=96, height=96)
    x = np.random.default_rng(0).random((1,) + net.input_shape, np.float32)
    seconds = []
    out = net.forward(x, layer_seconds=seconds)
    np.testing.assert_array_equal(out, net.forward(x))
    assert len(seconds) == len(net.layers)
    # the maxpools after the Winograd layers at least (the RGB layer's too where its direct
    # kernel runs: not under YOLO9000_PORTABLE_KERNELS)
    fused = {i for i, t in enumerate(seconds) if t is None}
    assert {i + 1 for i in net.pooled_pairs if i > 0} <= fused <= {i + 1 for i in net.pooled_pairs}
    assert all(t >= 0 for t in seconds if t is not None)
    seconds = []
    out = net.forward(x, train=True, layer_seconds=seconds)
    assert len(seconds) == len(net.layers)
    # every pair is batch-normalised with an even output at 96 px; those of 16x16 outputs
    # and more run as one (TRAIN_POOLED_MIN_OUTPUTS), the 12x12 and 6x6 ones as two layers
    pooled = {i + 1 for i in net.pooled_pairs if net.layers[i].trains_pooled}
    assert {i for i, t in enumerate(seconds) if t is None} == pooled == {1, 3, 5}
    backward_seconds = {}
    net.backward(np.ones_like(out), input_grad=False, layer_seconds=backward_seconds)
    assert set(backward_seconds) == set(range(len(net.layers))) - pooled
    assert all(t >= 0 for t in backward_seconds.values())
