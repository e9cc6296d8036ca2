"""`yolo9000 convert`: darknet .weights <-> .h5, byte-identical round trips (header and `seen`
included), identical outputs the other way, darknet's `partial` (--cutoff), safe outputs."""
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from yolo9000 import Network
from yolo9000.cli import cli, main
from yolo9000.model.checkpoint import read_checkpoint_info
from conftest import GOLDEN, REFERENCE_NAMES
from conftest import REPO, run_installed

MINI_CFG = GOLDEN / "mini.cfg"
MINI_WEIGHTS = GOLDEN / "mini.weights"
MINI_FLOATS = 139168          # the golden README's count
BACKBONE_5 = 6200             # mini's layers 0-4 (three convolutions), see test_weights_fit


def convert(*args):
    result = CliRunner().invoke(cli, ["convert", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def run_main(capsys, *args):
    """The real entry point (UserError -> one line on stderr, exit 1)."""
    with pytest.raises(SystemExit) as e:
        main(["convert", *map(str, args)])
    out, err = capsys.readouterr()
    return e.value.code, err


def darknet_header(major, minor, revision, seen):
    """darknet's load_weights: a 64-bit seen when major*10 + minor >= 2 (and both < 1000)."""
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    return struct.pack("<iii", major, minor, revision) + struct.pack("<Q" if wide else "<I", seen)


def mini_with_header(tmp_path, major, minor, revision, seen):
    body = MINI_WEIGHTS.read_bytes()[20:]
    path = tmp_path / "in.weights"
    path.write_bytes(darknet_header(major, minor, revision, seen) + body)
    return path


def test_golden_weights_round_trip_through_h5_is_byte_identical(tmp_path):
    h5 = tmp_path / "mini.h5"
    output = convert(MINI_WEIGHTS, "--cfg", MINI_CFG, "--output", h5)
    assert f"wrote {h5}" in output
    back = tmp_path / "back.weights"
    convert(h5, "--output", back)
    assert back.read_bytes() == MINI_WEIGHTS.read_bytes()
    assert (tmp_path / "back.cfg").read_bytes() == MINI_CFG.read_bytes()
    assert not (tmp_path / "back.names").exists()        # no names given, none invented
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("major,minor,revision,seen", [
    (0, 2, 7, 2**40 + 12345),       # darknet's 0.2 header: 64-bit seen
    (0, 2, 0, 2**63 + 5),           # beyond a signed 64-bit integer
    (0, 1, 3, 77_777),              # old header: 32-bit seen
    (1, 0, 0, 512),                 # 1*10 + 0 >= 2: 64-bit
    (1000, 2, 0, 99),               # major >= 1000: darknet reads 32 bits
])
def test_header_and_seen_survive_the_round_trip(tmp_path, major, minor, revision, seen):
    source = mini_with_header(tmp_path, major, minor, revision, seen)
    h5 = tmp_path / "x.h5"
    convert(source, "--cfg", MINI_CFG, "--output", h5)
    assert read_checkpoint_info(h5)["seen"] == seen
    back = tmp_path / "back.weights"
    convert(h5, "--output", back)
    assert back.read_bytes()[:24] == source.read_bytes()[:24]
    assert back.read_bytes() == source.read_bytes()


def random_checkpoint(tmp_path, width=64, height=64):
    net = Network.from_cfg(MINI_CFG, width=width, height=height)
    rng = np.random.default_rng(7)
    for _, name, p, _ in net.parameters():
        p[...] = (rng.uniform(0.5, 1.5, p.shape) if name in ("scales", "rolling_variance")
                  else rng.standard_normal(p.shape) * 0.2)
    net.seen = 4_321_000
    path = tmp_path / "model.h5"
    net.save(path, names=["circle", "square", "triangle"])
    return path


def test_h5_round_trip_through_weights_gives_identical_outputs(tmp_path):
    h5 = random_checkpoint(tmp_path)
    weights = tmp_path / "model.weights"
    convert(h5, "--output", weights)
    assert (tmp_path / "model.names").read_text() == "circle\nsquare\ntriangle\n"
    assert weights.stat().st_size == 20 + 4 * MINI_FLOATS
    again = tmp_path / "again.h5"
    convert(weights, "--cfg", tmp_path / "model.cfg", "--names", tmp_path / "model.names",
            "--output", again)
    first, second = Network.load(h5), Network.load(again)
    x = np.random.default_rng(1).random((2, 3, 64, 64), dtype=np.float32)
    np.testing.assert_array_equal(first.forward(x), second.forward(x))
    assert second.seen == 4_321_000 and second.names == ["circle", "square", "triangle"]


def test_checkpoint_at_another_input_size_keeps_it_in_the_cfg(tmp_path):
    h5 = random_checkpoint(tmp_path, width=96, height=128)
    convert(h5, "--output", tmp_path / "model.weights")
    text = (tmp_path / "model.cfg").read_text()
    assert "width=96\n" in text and "height=128\n" in text
    # everything else, comments included, is the stored cfg's
    assert text.replace("width=96", "width=64").replace("height=128", "height=64") == \
        MINI_CFG.read_text()


def test_cutoff_is_darknets_partial(tmp_path):
    out = tmp_path / "mini.conv.5"
    convert(MINI_WEIGHTS, "--cfg", MINI_CFG, "--cutoff", 5, "--output", out)
    assert out.read_bytes() == MINI_WEIGHTS.read_bytes()[:20 + 4 * BACKBONE_5]
    cut = Network.from_cfg(tmp_path / "mini.conv.5.cfg")
    assert [layer.kind for layer in cut.layers] == ["conv", "max", "conv", "max", "conv"]
    # the same through a checkpoint, which then holds the cut cfg
    h5 = tmp_path / "cut.h5"
    convert(MINI_WEIGHTS, "--cfg", MINI_CFG, "--cutoff", 5, "--output", h5)
    assert len(Network.load(h5).layers) == 5
    back = tmp_path / "cut.weights"
    convert(h5, "--output", back)
    assert back.read_bytes() == out.read_bytes()
    # a checkpoint's class names belong to the head a cut removes
    convert(random_checkpoint(tmp_path), "--cutoff", 5, "--output", tmp_path / "named.weights")
    assert (tmp_path / "named.cfg").is_file() and not (tmp_path / "named.names").exists()
    # the backbone loads into the whole network with --cutoff 5
    net = Network.from_cfg(MINI_CFG).load_weights(out, cutoff=5)
    full = Network.from_cfg(MINI_CFG).load_weights(MINI_WEIGHTS)
    np.testing.assert_array_equal(net.layers[4].weights, full.layers[4].weights)


def test_cutoff_refuses_a_file_made_for_another_cfg(tmp_path, capsys):
    tiny_backbone = tmp_path / "tiny.conv.3"
    convert(MINI_WEIGHTS, "--cfg", MINI_CFG, "--cutoff", 3, "--output", tiny_backbone)
    code, err = run_main(capsys, tiny_backbone, "--cfg", "yolov2-tiny-voc", "--cutoff", 3,
                         "--output", tmp_path / "x.h5")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    # tiny-voc's layer 0 has 16 filters (496 floats), mini's 8 (248): layer 2 cannot be filled
    assert err.startswith(f"error: {tiny_backbone}: wrong size: expected 5232 floats, found 1464")
    assert "layer 2 [convolutional]" in err and "needs 4736 floats" in err
    assert not (tmp_path / "x.h5").exists()


def test_names_count_must_match_the_classes(tmp_path, capsys):
    code, err = run_main(capsys, MINI_WEIGHTS, "--cfg", MINI_CFG, "--names",
                         REFERENCE_NAMES / "voc.names", "--output", tmp_path / "x.h5")
    assert code == 1 and "20 class names but the network predicts 3 classes" in err


def test_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    source = tmp_path / "mini.weights"
    source.write_bytes(MINI_WEIGHTS.read_bytes())
    cfg = tmp_path / "mini.cfg"
    cfg.write_text(MINI_CFG.read_text())
    # the input itself (however spelled), or the --cfg file as the .cfg beside the output
    for output in (source, tmp_path / "." / "mini.weights", tmp_path / "sub" / ".." / "mini.weights",
                   tmp_path / "mini.cfg"):
        code, err = run_main(capsys, source, "--cfg", cfg, "--output", output)
        assert code == 1 and "would overwrite the input" in err, err
    assert source.read_bytes() == MINI_WEIGHTS.read_bytes()
    assert cfg.read_text() == MINI_CFG.read_text()
    h5 = tmp_path / "mini.h5"
    convert(source, "--cfg", cfg, "--output", h5)
    code, err = run_main(capsys, h5, "--output", h5)
    assert code == 1 and "would overwrite the input" in err
    assert Network.load(h5).seen == 0


def test_format_mistakes_are_one_line_errors(tmp_path, capsys):
    code, err = run_main(capsys, MINI_WEIGHTS, "--output", tmp_path / "x.h5")
    assert code == 1 and "give --cfg" in err and str(MINI_WEIGHTS) in err
    h5 = tmp_path / "m.h5"
    convert(MINI_WEIGHTS, "--cfg", MINI_CFG, "--output", h5)
    code, err = run_main(capsys, h5, "--cfg", MINI_CFG, "--output", tmp_path / "y.weights")
    assert code == 1 and "carries its own cfg" in err
    code, err = run_main(capsys, tmp_path / "missing.weights", "--cfg", MINI_CFG,
                         "--output", tmp_path / "z.h5")
    assert code == 1 and "input file not found" in err


def test_round_trip_through_the_installed_script(tmp_path):
    h5 = tmp_path / "mini.h5"
    proc = run_installed("convert", MINI_WEIGHTS, "--cfg", MINI_CFG, "--output", h5, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_installed("convert", h5, "--output", tmp_path / "back.weights", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "back.weights").read_bytes() == MINI_WEIGHTS.read_bytes()
    proc = run_installed("convert", h5, "--output", h5, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
