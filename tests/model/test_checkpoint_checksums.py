"""Checkpoints find their own damage: every array carries HDF5's Fletcher-32 checksum and every
metadata block (attributes included) HDF5's own, so a flipped byte is one error line naming
what was damaged instead of a network that loads with altered weights. Files written before
the checksums still load."""
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import yolo9000
from yolo9000 import Network, UserError
from yolo9000.model.checkpoint import read_checkpoint_info, read_optimizer_state
from conftest import GOLDEN, IMAGES, run_installed

BUNDLED_CHECKPOINT = Path(yolo9000.__file__).parent / "model" / "bundled" / "shapes.h5"


def mini_network():
    return Network.from_cfg(str(GOLDEN / "mini.cfg")).load_weights(GOLDEN / "mini.weights")


@pytest.fixture
def checkpoint(tmp_path):
    """The golden mini network with names and an optimiser state, as the trainer saves it."""
    net = mini_network()
    path = tmp_path / "good.h5"
    velocity = {f"{i:03d}_{name}": np.full(p.shape, 0.25, np.float32)
                for i, name, p, g in net.parameters() if g is not None}
    net.save(path, names=["a", "b", "c"],
             optimizer={"velocity": velocity, "momentum": np.float64(0.9),
                        "iteration": np.int64(7)})
    return path


def array_bytes(path, name):
    """(offset, size) of a dataset's stored values in the file."""
    with h5py.File(path, "r") as f:
        dataset = f[name]
        if dataset.chunks:
            chunk = dataset.id.get_chunk_info(0)
            return chunk.byte_offset, chunk.size
        return dataset.id.get_offset(), dataset.id.get_storage_size()


def flip_byte(path, position, bit=0x04):
    data = bytearray(path.read_bytes())
    data[position] ^= bit
    path.write_bytes(bytes(data))


def test_a_flipped_weight_byte_is_one_line_naming_the_array(checkpoint, tmp_path):
    offset, size = array_bytes(checkpoint, "layers/000/weights")
    flip_byte(checkpoint, offset + size // 2)
    result = run_installed("detect", IMAGES / "dog.jpg", "--weights", checkpoint,
                           "--project", "runs", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {checkpoint}: damaged checkpoint: "
                                    "/layers/000/weights fails its checksum"), result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.jpg"))


def test_a_flipped_optimizer_byte_is_named_too(checkpoint):
    offset, size = array_bytes(checkpoint, "optimizer/velocity/000_weights")
    flip_byte(checkpoint, offset + size - 1)
    with pytest.raises(UserError, match="/optimizer/velocity/000_weights fails its checksum"):
        read_optimizer_state(checkpoint)


def test_a_flipped_cfg_byte_is_refused(checkpoint):
    """The cfg is an attribute: a digit changed in it (here 3x3 -> 2x3 filters, whose
    checkpoint then no longer fits) must not pass unnoticed; nor may any other attribute."""
    data = checkpoint.read_bytes()
    text = mini_network().config.text.encode()
    at = data.index(text) + text.index(b"filters=8")
    flip_byte(checkpoint, at + len("filters="), bit=0x01)      # '8' -> '9'
    with pytest.raises(UserError, match=f"^{checkpoint}: damaged checkpoint"):
        read_checkpoint_info(checkpoint)


def test_random_byte_flips_never_load_silently(checkpoint, tmp_path):
    """12 copies with 20 random bit flips each: every one is refused with one line (a flip in
    unused bytes may leave the file loadable, with the very same values); none loads altered
    weights or warns."""
    original = checkpoint.read_bytes()
    reference = mini_network()
    rng = np.random.default_rng(2024)
    refused = 0
    for trial in range(12):
        data = bytearray(original)
        for position in rng.integers(0, len(data), 20):
            data[position] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flipped{trial}.h5"
        path.write_bytes(bytes(data))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                loaded = Network.load(path)
                state = read_optimizer_state(path)
        except UserError as e:
            assert str(e).startswith(f"{path}: ") and "\n" not in str(e), str(e)
            refused += 1
            continue
        for (_, name, p, _), (_, _, q, _) in zip(reference.parameters(), loaded.parameters()):
            assert np.array_equal(p, q), f"trial {trial}: {name} loaded altered"
        assert loaded.config.text == reference.config.text
        assert int(state["iteration"]) == 7 and float(state["momentum"]) == 0.9
    assert refused >= 10


def test_a_new_checkpoint_checks_every_value(checkpoint):
    with h5py.File(checkpoint, "r") as f:
        datasets = []
        f.visititems(lambda name, item: datasets.append(item)
                     if isinstance(item, h5py.Dataset) else None)
        arrays = [d for d in datasets if d.ndim]
        scalars = [d for d in datasets if not d.ndim]
        assert arrays and all(d.fletcher32 for d in arrays)
        assert {d.name for d in scalars} == {"/optimizer/momentum", "/optimizer/iteration"}
        assert all(d.id.get_create_plist().get_layout() == h5py.h5d.COMPACT for d in scalars)
        # fixed-length text lives in the object header, under its checksum
        assert h5py.check_string_dtype(f.attrs.get_id("cfg").dtype).length is not None


def test_checkpoints_from_before_the_checksums_still_load(tmp_path):
    """The bundled demo checkpoint was written without checksums (variable-length text,
    contiguous arrays): it loads, every array as stored."""
    with h5py.File(BUNDLED_CHECKPOINT, "r") as f:
        stored = {}
        f["layers"].visititems(lambda name, item: stored.__setitem__(name, item[()])
                               if isinstance(item, h5py.Dataset) else None)
        assert not any(f["layers"][name].fletcher32 for name in stored)
    net = Network.load(BUNDLED_CHECKPOINT)
    loaded = {f"{i:03d}/{name}": p for i, name, p, _ in net.parameters()}
    assert loaded.keys() == stored.keys()
    for key, values in stored.items():
        assert np.array_equal(loaded[key], values), key
