"""Checks of the independent PyTorch darknet reference (tests/torch_darknet.py).

The golden-data tests validate the reference itself against numbers produced by
darknet; the other tests pin down darknet-specific layer semantics on small inputs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_darknet as td  # noqa: E402
from conftest import GOLDEN, REFERENCE_CFG, REFERENCE_NAMES




def assert_close(actual, expected, what):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected) - 1e-4 * (1 + np.abs(expected))
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() <= 0, (
        f"{what}: |d|={abs(actual[worst] - expected[worst]):.3g} at {worst} "
        f"(got {actual[worst]:.6g}, darknet {expected[worst]:.6g})")


def write_cfg(tmp_path, body, name="net.cfg"):
    path = tmp_path / name
    path.write_text(body)
    return path


@pytest.fixture(scope="module")
def mini_model():
    model = td.build_torch_net(GOLDEN / "mini.cfg")
    header = td.load_darknet_weights(model, GOLDEN / "mini.weights")
    x = torch.from_numpy(np.load(GOLDEN / "input.npy"))
    return model, header, x


# ------------------------------------------------------------------ golden data


def test_every_layer_matches_darknet_inference(mini_model):
    model, header, x = mini_model
    assert header == {"major": 0, "minor": 2, "revision": 0, "seen": 0}
    golden = np.load(GOLDEN / "forward.npz")
    with torch.no_grad():
        outputs = model(x)
    assert len(outputs) == 16 == len(golden.files)
    for i, out in enumerate(outputs):
        assert_close(out.numpy(), golden[f"layer{i:02d}"], f"layer {i} ({model.kinds[i]})")


def test_training_mode_batch_norm_matches_darknet(mini_model):
    model, _, x = mini_model
    golden = np.load(GOLDEN / "region_seen0.npz")
    td.set_train_mode_bn(model)
    try:
        with torch.no_grad():
            outputs = model(x)
    finally:
        td.set_train_mode_bn(model, train=False)
    assert_close(outputs[14].numpy(), golden["raw"], "training-mode layer 14")
    assert_close(outputs[15].numpy(), golden["output"], "training-mode region output")
    # batch statistics genuinely differ from the rolling ones on this data
    inference = np.load(GOLDEN / "forward.npz")["layer14"]
    assert np.abs(golden["raw"] - inference).max() > 1e-2


def test_idiomatic_batch_norm_is_batch_norm_too(mini_model):
    """The benchmark's F.batch_norm path normalises with the batch's statistics like darknet's
    formula (biased variance, eps inside the sqrt: about 1% apart here, the n/(n-1) of the
    variance on 8x8 maps of one image; darknet's own numbers are not its purpose)."""
    model, _, x = mini_model
    golden = np.load(GOLDEN / "region_seen0.npz")
    td.set_train_mode_bn(model, idiomatic=True)
    try:
        with torch.no_grad():
            raw = model(x)[14].numpy()
    finally:
        td.set_train_mode_bn(model, train=False)
    scale = np.abs(golden["raw"]).max()
    assert np.abs(raw - golden["raw"]).max() < 2e-2 * scale
    inference = np.load(GOLDEN / "forward.npz")["layer14"]
    assert np.abs(raw - inference).max() > 1e-2          # batch statistics, not the rolling ones


def test_train_mode_can_update_rolling_statistics(tmp_path):
    model = td.build_torch_net(GOLDEN / "mini.cfg")
    td.load_darknet_weights(model, GOLDEN / "mini.weights")
    first = model.conv_layers()[0]
    before_mean = first.rolling_mean.clone()
    before_var = first.rolling_var.clone()
    x = torch.from_numpy(np.load(GOLDEN / "input.npy"))
    y = torch.nn.functional.conv2d(x, first.weight, None, 1, 1)
    td.set_train_mode_bn(model, update_rolling=True)
    with torch.no_grad():
        model(x)
    expected_mean = 0.99 * before_mean + 0.01 * y.mean(dim=(0, 2, 3))
    expected_var = 0.99 * before_var + 0.01 * y.var(dim=(0, 2, 3), unbiased=True)
    assert torch.allclose(first.rolling_mean, expected_mean, atol=1e-6)
    assert torch.allclose(first.rolling_var, expected_var, atol=1e-6)


# -------------------------------------------------------------- layer semantics


def reorg_cpu_literal(x, stride):
    """Direct transcription of darknet reorg_cpu(x, w, h, c, batch, s, forward=0, out)."""
    batch, c, h, w = x.shape
    flat_in = x.reshape(-1)
    flat_out = np.empty_like(flat_in)
    out_c = c // (stride * stride)
    for b in range(batch):
        for k in range(c):
            for j in range(h):
                for i in range(w):
                    in_index = i + w * (j + h * (k + c * b))
                    c2, offset = k % out_c, k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
                    flat_out[in_index] = flat_in[out_index]
    return flat_out.reshape(batch, c * stride * stride, h // stride, w // stride)


def test_reorg_reproduces_darknet_index_arithmetic(tmp_path):
    cfg = write_cfg(tmp_path, "[net]\nwidth=6\nheight=4\nchannels=8\n[reorg]\nstride=2\n")
    model = td.build_torch_net(cfg)
    x = np.random.default_rng(0).random((2, 8, 4, 6), dtype=np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(x))[0].numpy()
    expected = reorg_cpu_literal(x, 2)
    np.testing.assert_array_equal(out, expected)
    # darknet's reorg is not the "natural" space-to-depth: make sure we did not build that
    natural = torch.nn.functional.pixel_unshuffle(torch.from_numpy(x), 2).numpy()
    assert not np.array_equal(out, natural)


def maxpool_literal(x, size, stride, padding):
    """darknet forward_maxpool_layer: offset -padding/2, out-of-range taps ignored."""
    n, c, h, w = x.shape
    out_h = (h + padding - size) // stride + 1
    out_w = (w + padding - size) // stride + 1
    out = np.full((n, c, out_h, out_w), -np.inf, dtype=x.dtype)
    off = -(padding // 2)
    for i in range(out_h):
        for j in range(out_w):
            for dy in range(size):
                for dx in range(size):
                    y, xx = off + i * stride + dy, off + j * stride + dx
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, y, xx])
    return out


@pytest.mark.parametrize("hw,size,stride,padding_line,out_hw", [
    (13, 2, 1, "", 13),  # yolov2-tiny's size-keeping pool: pads right/bottom only
    (8, 2, 2, "", 4),
    (7, 2, 2, "", 4),  # odd size: the extra tap is ignored, not zero
    (9, 3, 1, "", 9),
    (10, 3, 2, "padding=1\n", 5),
])
def test_maxpool_darknet_semantics(tmp_path, hw, size, stride, padding_line, out_hw):
    cfg = write_cfg(tmp_path, f"[net]\nwidth={hw}\nheight={hw}\nchannels=3\n"
                              f"[maxpool]\nsize={size}\nstride={stride}\n{padding_line}")
    model = td.build_torch_net(cfg)
    assert model.output_shapes[0] == (3, out_hw, out_hw)
    # negative values make an ignored tap distinguishable from zero padding
    x = np.random.default_rng(1).normal(size=(1, 3, hw, hw)).astype(np.float32) - 3
    with torch.no_grad():
        out = model(torch.from_numpy(x))[0].numpy()
    padding = int(padding_line.split("=")[1]) if padding_line else size - 1
    np.testing.assert_array_equal(out, maxpool_literal(x, size, stride, padding))


def test_conv_padding_and_activations(tmp_path):
    cfg = write_cfg(tmp_path, "\n".join([
        "[net]", "width=9", "height=9", "channels=2",
        "[convolutional]", "filters=4", "size=3", "stride=2", "pad=0", "padding=2",
        "activation=relu",
        "[convolutional]", "filters=3", "size=3", "stride=1", "pad=1", "activation=logistic",
        ""]))
    model = td.build_torch_net(cfg)
    assert model.output_shapes == [(4, 6, 6), (3, 6, 6)]
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.normal_()
    x = torch.randn(1, 2, 9, 9)
    with torch.no_grad():
        a, b = model(x)
    c0, c1 = model.conv_layers()
    ref_a = torch.relu(torch.nn.functional.conv2d(x, c0.weight, c0.bias, 2, 2))
    ref_b = torch.sigmoid(torch.nn.functional.conv2d(ref_a, c1.weight, c1.bias, 1, 1))
    assert torch.allclose(a, ref_a, atol=1e-5) and torch.allclose(b, ref_b, atol=1e-5)


def test_inference_bn_adds_eps_to_std_not_variance(tmp_path):
    # golden rolling variances are ~1, where the eps placement is invisible; a tiny
    # variance makes darknet's (x - mean)/(sqrt(var) + 1e-6) distinguishable.
    cfg = write_cfg(tmp_path, "[net]\nwidth=3\nheight=3\nchannels=1\n[convolutional]\n"
                              "batch_normalize=1\nfilters=2\nsize=1\nactivation=linear\n")
    model = td.build_torch_net(cfg)
    conv = model.conv_layers()[0]
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.rolling_mean.copy_(torch.tensor([0.5, -0.25]))
        conv.rolling_var.copy_(torch.tensor([1e-8, 4.0]))
        conv.scales.copy_(torch.tensor([2.0, 0.5]))
        conv.bias.copy_(torch.tensor([0.1, -0.2]))
        x = torch.linspace(-1, 1, 9).reshape(1, 1, 3, 3)
        out = model(x)[0]
    for f, (m, v, s, b) in enumerate([(0.5, 1e-8, 2.0, 0.1), (-0.25, 4.0, 0.5, -0.2)]):
        expected = (x[0, 0] - m) / (v ** 0.5 + 1e-6) * s + b
        assert torch.allclose(out[0, f], expected, rtol=1e-5, atol=1e-5)


def test_parse_cfg_spacing_comments_and_duplicates(tmp_path):
    cfg = write_cfg(tmp_path, "# header\n[net]\nbatch = 64\nbatch=1\n ; note\nwidth = 32\n"
                              "height=32\n\n[convolutional]\nanchors = 1.5, 2,  3,4\n")
    sections = td.parse_cfg(cfg)
    assert [s.kind for s in sections] == ["net", "convolutional"]
    assert sections[0].get_int("batch") == 64  # darknet's option_find returns the first
    assert sections[0].get_int("width") == 32
    assert sections[1].get_floats("anchors") == [1.5, 2.0, 3.0, 4.0]


def test_grouped_softmax_normalises_each_group():
    group = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    x = torch.randn(2, 3, 10, 4, 5) * 5
    y = td.grouped_softmax(x, group, 4, dim=2)
    for g in range(4):
        members = (group == g).nonzero().flatten()
        expected = torch.softmax(x[:, :, members], dim=2)
        assert torch.allclose(y[:, :, members], expected, atol=1e-6)


# ----------------------------------------------------------------------- weights


def test_random_weights_roundtrip_and_size_errors(tmp_path):
    cfg = GOLDEN / "mini.cfg"
    path_a, path_b, path_c = tmp_path / "a.weights", tmp_path / "b.weights", tmp_path / "c.weights"
    n = td.write_random_darknet_weights(cfg, path_a, seed=3)
    td.write_random_darknet_weights(cfg, path_b, seed=3)
    td.write_random_darknet_weights(cfg, path_c, seed=4)
    assert n == 139168  # the float count the golden README gives for mini.cfg
    assert path_a.read_bytes() == path_b.read_bytes()
    assert path_a.read_bytes() != path_c.read_bytes()
    assert path_a.stat().st_size == 20 + 4 * n

    model = td.build_torch_net(cfg)
    header = td.load_darknet_weights(model, path_a)
    assert header == {"major": 0, "minor": 2, "revision": 0, "seen": 0}
    payload = np.frombuffer(path_a.read_bytes(), dtype="<f4", offset=20)
    first = model.conv_layers()[0]
    np.testing.assert_array_equal(first.bias.detach().numpy(), payload[:8])
    last = model.conv_layers()[-1]  # no BN: biases then weights close the file
    np.testing.assert_array_equal(last.weight.detach().numpy().ravel(), payload[-40 * 64:])

    short = tmp_path / "short.weights"
    short.write_bytes(path_a.read_bytes()[:-8])
    with pytest.raises(ValueError, match="missing 2"):
        td.load_darknet_weights(model, short)
    long = tmp_path / "long.weights"
    long.write_bytes(path_a.read_bytes() + b"\0" * 12)
    with pytest.raises(ValueError, match="leftover 3"):
        td.load_darknet_weights(model, long)


def test_old_header_uses_32bit_seen(tmp_path):
    cfg = write_cfg(tmp_path, "[net]\nwidth=4\nheight=4\nchannels=1\n"
                              "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n")
    model = td.build_torch_net(cfg)
    floats = np.arange(4, dtype="<f4")  # 2 biases + 2 weights
    path = tmp_path / "old.weights"
    path.write_bytes(np.array([0, 1, 0, 77], "<i4").tobytes() + floats.tobytes())
    assert td.load_darknet_weights(model, path)["seen"] == 77
    conv = model.conv_layers()[0]
    assert conv.bias.tolist() == [0.0, 1.0] and conv.weight.flatten().tolist() == [2.0, 3.0]


# -------------------------------------------------------------- bundled cfgs


@pytest.mark.parametrize("name,size,final", [
    ("yolov2-voc", 416, (125, 13, 13)),
    ("yolov2", 416, (425, 13, 13)),
    ("yolov2-tiny-voc", 416, (125, 13, 13)),
    ("yolov2-tiny", 416, (425, 13, 13)),
    ("yolo9000", 416, (28269, 13, 13)),
    ("darknet19", 224, (1000, 1, 1)),
    ("darknet19_448", 448, (1000, 1, 1)),
])
def test_bundled_cfg_shapes(name, size, final):
    model = td.build_torch_net(REFERENCE_CFG / f"{name}.cfg", width=size, height=size)
    assert model.output_shapes[-1] == final
    assert model.kinds[-1] in ("region", "softmax", "cost")


@pytest.mark.parametrize("name", ["yolov2-tiny-voc", "yolov2-tiny", "darknet19"])
def test_bundled_cfg_runs_small(tmp_path, name):
    cfg = REFERENCE_CFG / f"{name}.cfg"
    weights = tmp_path / "w.weights"
    td.write_random_darknet_weights(cfg, weights, seed=0)
    model = td.build_torch_net(cfg, width=64, height=64)
    td.load_darknet_weights(model, weights)
    x = torch.from_numpy(np.random.default_rng(2).random((1, 3, 64, 64), dtype=np.float32))
    with torch.no_grad():
        outputs = model(x)
    assert [tuple(o.shape[1:]) for o in outputs] == model.output_shapes
    last = outputs[-1]
    assert torch.isfinite(last).all()
    if model.kinds[-1] == "softmax":
        assert torch.allclose(last.sum(), torch.tensor(1.0), atol=1e-5)
    else:
        region = model.layers[-1]
        per_anchor = last.reshape(1, region.num, -1, 2, 2)
        assert torch.allclose(per_anchor[:, :, 5:].sum(dim=2), torch.ones(1, region.num, 2, 2),
                              atol=1e-5)


def test_yolov2_voc_at_416_with_random_weights(tmp_path):
    cfg = REFERENCE_CFG / "yolov2-voc.cfg"
    weights = tmp_path / "voc.weights"
    td.write_random_darknet_weights(cfg, weights, seed=7)
    model = td.build_torch_net(cfg, width=416, height=416, return_all=False)
    td.load_darknet_weights(model, weights)
    x = torch.from_numpy(np.random.default_rng(3).random((1, 3, 416, 416), dtype=np.float32))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 125, 13, 13)
    assert torch.isfinite(out).all()
    # random weights are scaled to keep activations O(1) through the 23 convolutions
    assert 0.01 < float(out.reshape(5, 25, 13, 13)[:, 2:4].std()) < 10


def test_yolo9000_tree_softmax_sums_to_one_per_group():
    tree = REFERENCE_NAMES / "9k.tree"
    parents, groups = td.read_softmax_tree(tree)
    assert len(parents) == 9418 and parents[0] == -1
    model = td.build_torch_net(REFERENCE_CFG / "yolo9000.cfg", width=32, height=32, return_all=False)
    torch.manual_seed(0)
    with torch.no_grad():
        for conv in model.conv_layers():
            conv.weight.normal_(0, (2.0 / conv.weight[0].numel()) ** 0.5)
        out = model(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 28269, 1, 1)
    classes = out.reshape(3, 9423)[:, 5:]
    sums = torch.zeros(3, int(groups.max()) + 1).index_add_(
        1, torch.from_numpy(groups), classes)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4)
