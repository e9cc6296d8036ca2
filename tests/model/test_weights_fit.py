"""Loading weights checks that the file fits the layers it fills: darknet .weights by float
count (they hold no shapes), .h5 checkpoints layer by layer; with a cutoff, a backbone file."""
import re
from pathlib import Path

import numpy as np
import pytest

from yolo9000 import Network, UserError
from yolo9000.cli import main
from conftest import GOLDEN, REPO

MINI_CFG = GOLDEN / "mini.cfg"
MINI_WEIGHTS = GOLDEN / "mini.weights"
HEADER = 20            # mini.weights: major 0, minor 2, revision 0, uint64 seen
# Floats of mini.cfg's layers with weights, by hand: biases + 3 BN vectors + filters·c·k·k
# (layer 14: no batch norm). Their sum is the golden README's 139168.
MINI_FLOATS = {0: 4 * 8 + 8 * 3 * 9, 2: 4 * 16 + 16 * 8 * 9, 4: 4 * 32 + 32 * 16 * 9,
               6: 4 * 64 + 64 * 32 * 9, 8: 4 * 64 + 64 * 64 * 9, 10: 4 * 16 + 16 * 32,
               13: 4 * 64 + 64 * 128 * 9, 14: 40 + 40 * 64}
MINI_TOTAL = 139168
# [convolutional] header lines of mini.cfg's layers 2, 4 and 14
MINI_LINES = {2: 24, 4: 38, 14: 105}


def mini_file(tmp_path, floats, extra=0):
    """mini.weights' header and its first `floats` floats, then `extra` more."""
    data = MINI_WEIGHTS.read_bytes()[:HEADER + 4 * floats]
    path = tmp_path / f"mini_{floats}_{extra}.weights"
    path.write_bytes(data + np.arange(extra, dtype="<f4").tobytes())
    return path


def first_floats(upto):
    return sum(n for i, n in MINI_FLOATS.items() if i < upto)


def test_hand_counts_match_the_golden_file():
    assert sum(MINI_FLOATS.values()) == MINI_TOTAL
    assert MINI_WEIGHTS.stat().st_size == HEADER + 4 * MINI_TOTAL


def test_too_short_names_the_first_layer_it_cannot_fill(tmp_path):
    path = mini_file(tmp_path, MINI_FLOATS[0] + 100)
    net = Network.from_cfg(MINI_CFG)
    before = net.layers[0].weights.copy()
    with pytest.raises(UserError) as e:
        net.load_weights(path)
    assert str(e.value) == (
        f"{path}: wrong size: expected {MINI_TOTAL} floats, found {MINI_FLOATS[0] + 100}, for "
        f"{MINI_CFG}: layer 2 [convolutional] (cfg line {MINI_LINES[2]}) needs "
        f"{MINI_FLOATS[2]} floats (biases 16, scales 16, rolling_mean 16, rolling_variance 16, "
        "weights 16x8x3x3) but only 100 remain; the file was made for another cfg, or is cut short")
    np.testing.assert_array_equal(net.layers[0].weights, before)     # nothing was read


def test_too_long_says_how_much_is_left_over(tmp_path):
    path = mini_file(tmp_path, MINI_TOTAL, extra=7)
    with pytest.raises(UserError) as e:
        Network.from_cfg(MINI_CFG).load_weights(path)
    message = str(e.value)
    assert message.startswith(f"{path}: wrong size: expected {MINI_TOTAL} floats, found "
                              f"{MINI_TOTAL + 7}, for {MINI_CFG}: 7 floats (28 bytes) left over "
                              f"after layer 14 [convolutional] (cfg line {MINI_LINES[14]})")


def test_cutoff_takes_a_backbone_of_exactly_those_layers(tmp_path):
    path = mini_file(tmp_path, first_floats(5))
    full = Network.from_cfg(MINI_CFG).load_weights(MINI_WEIGHTS)
    net = Network.from_cfg(MINI_CFG, seed=1)
    untouched = net.layers[6].weights.copy()
    net.load_weights(path, cutoff=5)
    for i in (0, 2, 4):
        for name, p in net.layers[i].params.items():
            np.testing.assert_array_equal(p, full.layers[i].params[name])
    np.testing.assert_array_equal(net.layers[6].weights, untouched)
    with pytest.raises(UserError, match="layer 6 .* but the file ends before it"):
        Network.from_cfg(MINI_CFG).load_weights(path)      # not a whole network's file


def test_cutoff_takes_a_whole_network_file_reading_only_those_layers(tmp_path):
    """darknet's partial: the rest of a complete file is not read."""
    full = Network.from_cfg(MINI_CFG).load_weights(MINI_WEIGHTS)
    net = Network.from_cfg(MINI_CFG, seed=1)
    untouched = net.layers[6].weights.copy()
    net.load_weights(MINI_WEIGHTS, cutoff=5)
    np.testing.assert_array_equal(net.layers[4].weights, full.layers[4].weights)
    np.testing.assert_array_equal(net.layers[6].weights, untouched)


def test_cutoff_refuses_a_file_of_neither_size(tmp_path):
    long = mini_file(tmp_path, first_floats(5), extra=10)
    with pytest.raises(UserError) as e:
        Network.from_cfg(MINI_CFG).load_weights(long, cutoff=5)
    assert str(e.value).startswith(
        f"{long}: wrong size: expected {first_floats(5)} floats, found {first_floats(5) + 10}, "
        f"for the first 5 layers of {MINI_CFG} (a complete file for it holds {MINI_TOTAL}): "
        f"10 floats (40 bytes) left over after layer 4 [convolutional] (cfg line {MINI_LINES[4]})")
    short = mini_file(tmp_path, first_floats(3))
    with pytest.raises(UserError) as e:
        Network.from_cfg(MINI_CFG).load_weights(short, cutoff=5)
    assert (f"layer 4 [convolutional] (cfg line {MINI_LINES[4]}) needs {MINI_FLOATS[4]} floats "
            "(biases 32, scales 32, rolling_mean 32, rolling_variance 32, weights 32x16x3x3) but "
            "the file ends before it") in str(e.value)


# Darknet-19's first 23 layers (darknet19_448.conv.23), by hand: (filters, size) of each
# convolution, None for a maxpool; all batch-normalised, 3 input channels.
DARKNET19_23 = [(32, 3), None, (64, 3), None, (128, 3), (64, 1), (128, 3), None, (256, 3),
                (128, 1), (256, 3), None, (512, 3), (256, 1), (512, 3), (256, 1), (512, 3), None,
                (1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3)]


def darknet19_conv23_floats():
    total, channels = 0, 3
    for spec in DARKNET19_23:
        if spec is not None:
            filters, size = spec
            total += 4 * filters + filters * channels * size * size
            channels = filters
    return total


def readme_backbone_cfgs():
    """The --cfg of every README `train ... --weights darknet19_448.conv.23 --cutoff 23`."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    commands = [line for line in text.splitlines()
                if "yolo9000 train" in line and "darknet19_448.conv.23 --cutoff 23" in line]
    assert commands
    return [re.search(r"--cfg (\S+)", command).group(1) for command in commands]


def test_darknet19_backbone_fits_the_readme_cfg_and_not_tiny(tmp_path):
    floats = darknet19_conv23_floats()
    assert floats == 19831776
    path = tmp_path / "darknet19_448.conv.23"
    values = (np.arange(floats) % 65536).astype("<f4")      # exact in float32
    path.write_bytes(np.array([0, 2, 0], "<i4").tobytes() + np.array([1234], "<u8").tobytes()
                     + values.tobytes())
    cfgs = readme_backbone_cfgs()
    assert set(cfgs) <= {"yolov2-voc", "yolov2", "yolo9000"} and "yolov2-voc" in cfgs
    for cfg in cfgs:
        net = Network.from_cfg(cfg, width=320, height=320)
        net.load_weights(path, cutoff=23)
        assert net.layers[0].biases[0] == 0 and net.layers[0].biases[31] == 31
        assert net.layers[22].weights.reshape(-1)[-1] == (floats - 1) % 65536
        del net
    # tiny-voc's 16 layers are another network: the same file does not fit them
    for cutoff in (23, 13):
        with pytest.raises(UserError, match=r"left over after layer \d+ \[convolutional\]"):
            Network.from_cfg("yolov2-tiny-voc").load_weights(path, cutoff=cutoff)


def test_train_cutoff_refuses_a_misaligned_backbone(tmp_path, capsys):
    from yolo9000.data.synthetic_shapes import make_shapes
    data = make_shapes(tmp_path / "data", n_train=4, n_val=0, size=64, seed=1)["train"]
    args = ["train", "--cfg", str(MINI_CFG), "--data", str(data), "--max-batches", "1",
            "--batch", "2", "--workers", "0", "--project", str(tmp_path / "runs"),
            "--iterations", "0"]
    bad = mini_file(tmp_path, first_floats(5), extra=10)
    with pytest.raises(SystemExit) as e:
        main([*args, "--weights", str(bad), "--cutoff", "5"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {bad}: wrong size") and "10 floats (40 bytes) left over" in err


# -- .h5 checkpoints: shapes, layer by layer ----------------------------------------------------
def save_variant(tmp_path, old, new, name):
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text(MINI_CFG.read_text().replace(old, new, 1))
    path = tmp_path / f"{name}.h5"
    Network.from_cfg(cfg).save(path)
    return path


def test_checkpoint_names_the_layer_whose_shape_differs(tmp_path):
    # layer 2 with 12 filters instead of 16
    path = save_variant(tmp_path, "filters=16", "filters=12", "narrow")
    net = Network.from_cfg(MINI_CFG).load_weights(MINI_WEIGHTS)
    before = net.layers[0].weights.copy()
    with pytest.raises(UserError) as e:
        net.load_weights(path)
    assert str(e.value) == (f"{path}: layer 2 [convolutional] (cfg line {MINI_LINES[2]}) "
                            "weights: the network needs shape (16, 8, 3, 3), the checkpoint "
                            "holds (12, 8, 3, 3); was it saved from a different cfg?")
    np.testing.assert_array_equal(net.layers[0].weights, before)     # nothing was written


def test_checkpoint_batch_norm_difference_is_named(tmp_path):
    path = save_variant(tmp_path, "[convolutional]\nsize=1", "[convolutional]\nbatch_normalize=1\nsize=1",
                        "bn14")
    with pytest.raises(UserError, match=r"layer 14 \[convolutional\] \(cfg line 105\): the "
                                        "checkpoint holds rolling_mean, rolling_variance, scales"):
        Network.from_cfg(MINI_CFG).load_weights(path)


def test_checkpoint_cutoff_loads_a_backbone_and_checks_its_shapes(tmp_path):
    full = Network.from_cfg(MINI_CFG).load_weights(MINI_WEIGHTS)
    cfg = tmp_path / "backbone.cfg"
    cfg.write_text("".join(MINI_CFG.read_text().splitlines(keepends=True)[:46]))  # layers 0-4
    backbone = Network.from_cfg(cfg)
    assert len(backbone.layers) == 5
    for i in (0, 2, 4):
        for name, p in backbone.layers[i].params.items():
            p[...] = full.layers[i].params[name]
    path = tmp_path / "backbone.h5"
    backbone.save(path)
    net = Network.from_cfg(MINI_CFG, seed=1)
    untouched = net.layers[6].weights.copy()
    net.load_weights(path, cutoff=5)
    np.testing.assert_array_equal(net.layers[4].weights, full.layers[4].weights)
    np.testing.assert_array_equal(net.layers[6].weights, untouched)
    with pytest.raises(UserError, match=r"no parameters for layer 6 \[convolutional\]"):
        Network.from_cfg(MINI_CFG).load_weights(path)
    # a whole network's checkpoint into the backbone alone: its other layers are not dropped
    # silently
    whole = tmp_path / "whole.h5"
    full.save(whole)
    with pytest.raises(UserError, match="parameters for layer 6, beyond the 5 layers"):
        Network.from_cfg(cfg).load_weights(whole)
    Network.from_cfg(cfg).load_weights(whole, cutoff=5)
    narrow = save_variant(tmp_path, "filters=16", "filters=12", "narrow")
    with pytest.raises(UserError, match=r"layer 2 \[convolutional\]"):
        Network.from_cfg(MINI_CFG).load_weights(narrow, cutoff=3)
