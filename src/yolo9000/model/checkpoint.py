"""HDF5 checkpoints: the cfg text, every parameter and BN statistic, `seen`, class names,
anchors, optional optimiser state and the package version — one self-describing file.

Layout:  attrs: format, version, cfg, seen, names (json), anchors (json), meta (json)
         /layers/NNN/<param>          parameter arrays, NNN = layer index
         /optimizer/...               free-form arrays and attrs written by the trainer
"""
import json
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import UserError
from ..fileio import atomic_path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FORMAT = "yolo9000-checkpoint-1"


def is_hdf5(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def _open(path):
    import h5py
    path = Path(path)
    if not path.exists():
        raise UserError("checkpoint not found", path=path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"not a readable HDF5 checkpoint ({e})", path=path) from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise UserError("HDF5 file is not a yolo9000 checkpoint", path=path)
    return f


def _write_tree(group, data):
    """dict of arrays / scalars / nested dicts -> HDF5 datasets and groups."""
    for key, value in data.items():
        if isinstance(value, dict):
            _write_tree(group.create_group(key), value)
        elif isinstance(value, (str, bytes)):
            group.attrs[key] = value
        else:
            group.create_dataset(key, data=np.asarray(value))


def _read_tree(group):
    import h5py
    out = {k: v for k, v in group.attrs.items()}
    for key, item in group.items():
        out[key] = _read_tree(item) if isinstance(item, h5py.Group) else item[()]
    return out


def save_checkpoint(net, path, names=None, optimizer=None, meta=None, input_size=None):
    """input_size: (width, height) the checkpoint is meant to run at (default: the network's
    current size, which during multi-scale training is not the run's base size)."""
    import h5py
    region = net.region
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = __version__
            f.attrs["cfg"] = net.config.text
            f.attrs["seen"] = int(net.seen)
            f.attrs["input_size"] = np.array(input_size or (net.width, net.height), np.int32)
            f.attrs["weights_header"] = np.array(net.weights_header, np.int32)
            f.attrs["names"] = json.dumps(list(names) if names is not None else None)
            f.attrs["anchors"] = json.dumps(region.anchors.tolist() if region is not None else None)
            f.attrs["meta"] = json.dumps(meta or {})
            layers = f.create_group("layers")
            for i, layer in enumerate(net.layers):
                if layer.params:
                    g = layers.create_group(f"{i:03d}")
                    g.attrs["kind"] = layer.kind
                    for name, p in layer.params.items():
                        g.create_dataset(name, data=p)
            if optimizer:
                _write_tree(f.create_group("optimizer"), optimizer)


def read_checkpoint_cfg(path):
    """(cfg text, (width, height) the network had when saved)."""
    with _open(path) as f:
        size = tuple(int(v) for v in f.attrs["input_size"]) if "input_size" in f.attrs else (None, None)
        return str(f.attrs["cfg"]), size


def read_checkpoint_info(path):
    """Everything but the parameters: names, anchors, seen, version, meta, cfg."""
    with _open(path) as f:
        return {"names": json.loads(f.attrs["names"]), "anchors": json.loads(f.attrs["anchors"]),
                "seen": int(f.attrs["seen"]), "version": str(f.attrs["version"]),
                "meta": json.loads(f.attrs["meta"]), "cfg": str(f.attrs["cfg"])}


def read_optimizer_state(path):
    with _open(path) as f:
        return _read_tree(f["optimizer"]) if "optimizer" in f else None


def load_checkpoint_into(net, path, cutoff=None):
    """The checkpoint's parameters into `net` (all layers, or the first `cutoff`), after
    checking every shape: a refused file leaves the network as it was."""
    try:
        _load_parameters(net, path, cutoff)
    finally:     # also after a partial load: whatever was cached from the old weights is stale
        net.weights_changed()


def _check_shapes(net, layers, stored, path, cutoff):
    from .darknet_weights import describe_layer
    hint = "; was it saved from a different cfg?"
    for i, layer in enumerate(layers):
        key = f"{i:03d}"
        where = describe_layer(net, i)
        if key not in stored:
            if layer.params:
                raise UserError(f"checkpoint has no parameters for {where}{hint}", path=path)
            continue
        group = stored[key]
        for name, p in layer.params.items():
            found = group[name].shape if name in group else "nothing"
            if found != p.shape:
                raise UserError(f"{where} {name}: the network needs shape {p.shape}, the "
                                f"checkpoint holds {found}{hint}", path=path)
        extra = sorted(set(group) - set(layer.params))
        if extra:
            raise UserError(f"{where}: the checkpoint holds {', '.join(extra)}, which this "
                            f"layer does not have{hint}", path=path)
    if cutoff is None:
        beyond = sorted(int(k) for k in stored if int(k) >= len(net.layers))
        if beyond:
            raise UserError(f"checkpoint holds parameters for layer {beyond[0]}, beyond the "
                            f"{len(net.layers)} layers of {net.source}{hint}", path=path)


def _load_parameters(net, path, cutoff):
    layers = net.layers if cutoff is None else net.layers[:cutoff]
    with _open(path) as f:
        stored = f["layers"]
        _check_shapes(net, layers, stored, path, cutoff)
        for i, layer in enumerate(layers):
            for name, p in layer.params.items():
                p[...] = stored[f"{i:03d}"][name][()]
        net.seen = int(f.attrs["seen"])
        if "weights_header" in f.attrs:
            net.weights_header = tuple(int(v) for v in f.attrs["weights_header"])
        if len(layers) < len(net.layers):
            return      # the names and the rest describe the head that was not loaded
        names = json.loads(f.attrs["names"])
        if names is not None:
            net.names = names
        net.meta = json.loads(f.attrs["meta"])
        net.meta["version"] = str(f.attrs["version"])
