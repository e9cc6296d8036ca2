"""HDF5 checkpoints: the cfg text, every parameter and BN statistic, `seen`, class names,
anchors, optional optimiser state and the package version — one self-describing file.

Layout:  attrs: format, version, cfg, seen, names (json), anchors (json), meta (json)
         /layers/NNN/<param>          parameter arrays, NNN = layer index
         /optimizer/...               free-form arrays and attrs written by the trainer
"""
import contextlib
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


@contextlib.contextmanager
def _open(path):
    """The checkpoint open for reading. A damaged file makes h5py raise almost anything
    (OSError, KeyError, RuntimeError, ValueError...) wherever the damage is met; every one
    becomes a UserError naming the file, and the file is closed whatever happens."""
    import h5py
    path = Path(path)
    if not path.exists():
        raise UserError("checkpoint not found", path=path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:      # noqa: BLE001 - see the docstring
        raise UserError(f"not a readable HDF5 checkpoint ({_one_line(e)})", path=path) from None
    try:
        with f:
            if _attr(f, "format", path, None) != FORMAT:
                raise UserError("HDF5 file is not a yolo9000 checkpoint", path=path)
            yield f
    except UserError:
        raise
    except Exception as e:      # noqa: BLE001 - see the docstring
        raise UserError(f"damaged checkpoint ({type(e).__name__}: {_one_line(e)})",
                        path=path) from None


def _one_line(error):
    return " ".join(str(error).split())


_REQUIRED = object()


def _attr(f, key, path, default=_REQUIRED):
    if key not in f.attrs:
        if default is _REQUIRED:
            raise UserError(f"damaged checkpoint: no '{key}' attribute", path=path)
        return default
    value = f.attrs[key]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _text_attr(f, key, path):
    value = _attr(f, key, path)
    if not isinstance(value, str):
        raise UserError(f"damaged checkpoint: attribute '{key}' is not text", path=path)
    return value


def _json_attr(f, key, path, kind):
    """A JSON attribute that must decode to ``kind`` (a type or tuple of types)."""
    try:
        value = json.loads(_text_attr(f, key, path))
    except json.JSONDecodeError:
        raise UserError(f"damaged checkpoint: attribute '{key}' is not valid JSON",
                        path=path) from None
    if not isinstance(value, kind):
        raise UserError(f"damaged checkpoint: attribute '{key}' holds a "
                        f"{type(value).__name__}", path=path)
    return value


def _int_attrs(f, key, path, count, default=_REQUIRED):
    """An attribute of ``count`` integers (count None: one integer, returned as an int)."""
    value = _attr(f, key, path, default)
    if value is default:
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.size != (count or 1):
        raise UserError(f"damaged checkpoint: attribute '{key}' is not "
                        + (f"{count} integers" if count else "an integer"), path=path)
    values = tuple(int(v) for v in array.reshape(-1))
    return values if count else values[0]


def _names(f, path):
    names = _json_attr(f, "names", path, (list, type(None)))
    if names is not None and not all(isinstance(n, str) for n in names):
        raise UserError("damaged checkpoint: attribute 'names' is not a list of strings",
                        path=path)
    return names


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
        size = _int_attrs(f, "input_size", path, 2, (None, None))
        return _text_attr(f, "cfg", path), size


def read_checkpoint_info(path):
    """Everything but the parameters: names, anchors, seen, version, meta, cfg."""
    with _open(path) as f:
        return {"names": _names(f, path),
                "anchors": _json_attr(f, "anchors", path, (list, type(None))),
                "seen": _int_attrs(f, "seen", path, None),
                "version": _text_attr(f, "version", path),
                "meta": _json_attr(f, "meta", path, dict), "cfg": _text_attr(f, "cfg", path)}


def read_optimizer_state(path):
    import h5py
    with _open(path) as f:
        group = f.get("optimizer")
        if group is not None and not isinstance(group, h5py.Group):
            raise UserError("damaged checkpoint: 'optimizer' is not a group", path=path)
        return _read_tree(group) if group is not None else None


def load_checkpoint_into(net, path, cutoff=None):
    """The checkpoint's parameters into `net` (all layers, or the first `cutoff`), after
    checking every shape: a refused file leaves the network as it was."""
    try:
        _load_parameters(net, path, cutoff)
    finally:     # also after a partial load: whatever was cached from the old weights is stale
        net.weights_changed()


def _check_shapes(net, layers, stored, path, cutoff):
    import h5py
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
        if not isinstance(group, h5py.Group):
            raise UserError(f"damaged checkpoint: layers/{key} is not a group", path=path)
        for name, p in layer.params.items():
            item = group.get(name)
            if isinstance(item, h5py.Dataset) and item.dtype.kind not in "fiu":
                raise UserError(f"{where} {name}: the checkpoint holds {item.dtype} values, "
                                "not numbers", path=path)
            found = item.shape if isinstance(item, h5py.Dataset) else "nothing"
            if found != p.shape:
                raise UserError(f"{where} {name}: the network needs shape {p.shape}, the "
                                f"checkpoint holds {found}{hint}", path=path)
        extra = sorted(set(group) - set(layer.params))
        if extra:
            raise UserError(f"{where}: the checkpoint holds {', '.join(extra)}, which this "
                            f"layer does not have{hint}", path=path)
    if cutoff is None:
        if not all(k.isdigit() for k in stored):
            raise UserError("damaged checkpoint: 'layers' holds something other than "
                            "numbered layers", path=path)
        beyond = sorted(int(k) for k in stored if int(k) >= len(net.layers))
        if beyond:
            raise UserError(f"checkpoint holds parameters for layer {beyond[0]}, beyond the "
                            f"{len(net.layers)} layers of {net.source}{hint}", path=path)


def _load_parameters(net, path, cutoff):
    layers = net.layers if cutoff is None else net.layers[:cutoff]
    import h5py
    with _open(path) as f:
        stored = f.get("layers")
        if not isinstance(stored, h5py.Group):
            raise UserError("damaged checkpoint: no 'layers' group", path=path)
        _check_shapes(net, layers, stored, path, cutoff)
        # Every attribute is checked before the first parameter is written, so a refused
        # file leaves the network as it was.
        seen = _int_attrs(f, "seen", path, None)
        header = _int_attrs(f, "weights_header", path, 3, None)
        whole = len(layers) == len(net.layers)
        if whole:     # else the names and the rest describe the head that is not loaded
            names = _names(f, path)
            meta = _json_attr(f, "meta", path, dict)
            version = _text_attr(f, "version", path)
        for i, layer in enumerate(layers):
            for name, p in layer.params.items():
                p[...] = stored[f"{i:03d}"][name][()]
        net.seen = seen
        if header is not None:
            net.weights_header = header
        if not whole:
            return
        if names is not None:
            net.names = names
        net.meta = meta
        net.meta["version"] = version
