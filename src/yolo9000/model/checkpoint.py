"""HDF5 checkpoints: the cfg text, every parameter and BN statistic, `seen`, class names,
anchors, optional optimiser state and the package version — one self-describing file.

Layout:  attrs: format, version, cfg, seen, names (json), anchors (json), meta (json),
                quantization (json, int8 checkpoints only: model/quantization.py's record)
         /layers/NNN/<param>          parameter arrays, NNN = layer index
         /optimizer/...               free-form arrays and attrs written by the trainer

An int8 checkpoint (`convert --quantize int8`) stores a quantized convolution without its
fp32 `weights`: int8_weights (int8, the weights' shape), weight_scales (per filter) and
input_scale (a scalar) instead, a quarter of the size; loading sets the layer's int8 state
and its fp32 weights to the dequantized values. Its `quantization` attribute lists those
layers.

Damage is found, not loaded: every array carries HDF5's Fletcher-32 checksum and every
metadata block (attributes included) HDF5's own, verified on read. Files written before
checksums (the bundled shapes.h5) load as they always did.
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
# HDF5 1.10's file format (readable by HDF5 >= 1.10): every metadata block - object headers
# with their attributes, chunk indexes, heaps - carries a checksum that is verified on read
CHECKSUMMED_FORMAT = ("v110", "v110")
# HDF5's largest chunk is 4 GiB; an array under this is stored as one chunk (no padding)
ONE_CHUNK_BYTES = 2**31


def is_hdf5(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def check_weights_format(path):
    """True for an HDF5 checkpoint, False for darknet .weights, told by content; a file named
    .h5 without the HDF5 signature is refused here (read as darknet floats it would only give
    a puzzling float-count mismatch)."""
    if is_hdf5(path):
        return True
    if Path(path).suffix.lower() in (".h5", ".hdf5"):
        raise UserError("not an HDF5 checkpoint: the file does not start with the HDF5 "
                        "signature (damaged, truncated, or not a checkpoint)", path=path)
    return False


@contextlib.contextmanager
def _open(path):
    """The checkpoint, open for reading. A damaged file can make h5py or libhdf5 raise almost
    anything (OSError, RuntimeError, KeyError, ValueError, ...) at any attribute or dataset
    read: inside this block every such error becomes one UserError naming the file."""
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
            fmt = f.attrs.get("format")
            if not isinstance(fmt, (str, bytes)) or fmt not in (FORMAT, FORMAT.encode()):
                raise UserError("HDF5 file is not a yolo9000 checkpoint", path=path)
            _refuse_links(f, path)
            yield f
    except UserError:
        raise
    except Exception as e:      # noqa: BLE001 - see the docstring
        raise UserError(f"damaged checkpoint ({type(e).__name__}: {_one_line(e)})",
                        path=path) from None


def _one_line(error):
    return " ".join(str(error).split())


def _refuse_links(group, path, seen=None):
    """Checkpoints hold only their own data. A crafted file could name other files through
    external links, external raw storage or virtual datasets, and make loading one read
    anything on disk; soft links and hard-link cycles are never written either."""
    import h5py
    seen = set() if seen is None else seen
    for name in group:
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
            raise UserError(f"refused: {group.name.rstrip('/')}/{name} is {kind}; a checkpoint "
                            "holds only its own data", path=path)
        item = group[name]
        if isinstance(item, h5py.Dataset):
            if item.is_virtual or item.id.get_create_plist().get_external_count():
                raise UserError(f"refused: {item.name} keeps its data in other files; a "
                                "checkpoint holds only its own data", path=path)
        elif item.id not in seen:
            seen.add(item.id)
            _refuse_links(item, path, seen)


def _write_tree(group, data):
    """dict of arrays / scalars / nested dicts -> HDF5 datasets and groups."""
    for key, value in data.items():
        if isinstance(value, dict):
            _write_tree(group.create_group(key), value)
        elif isinstance(value, (str, bytes)):
            group.attrs[key] = value
        else:
            _write_array(group, key, value)


def _write_array(group, name, data):
    """A dataset whose values a read verifies: an array with HDF5's Fletcher-32 checksum (the
    filter needs chunked storage), a scalar (which cannot be chunked) stored compact, inside
    its object header and so under the header's checksum."""
    import h5py
    data = np.asarray(data)
    if data.ndim == 0:
        compact = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        compact.set_layout(h5py.h5d.COMPACT)
        scalar = h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(data.dtype),
                                 h5py.h5s.create(h5py.h5s.SCALAR), dcpl=compact)
        scalar.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data))
        return
    if data.size == 0:          # nothing to check, and HDF5 has no empty chunk
        group.create_dataset(name, data=data)
        return
    chunks = data.shape if data.nbytes < ONE_CHUNK_BYTES else True
    group.create_dataset(name, data=data, chunks=chunks, fletcher32=True)


def _set_text(attrs, key, text):
    """A fixed-length text attribute: its bytes live in the object header, under its checksum
    (h5py's default variable-length strings go to a global heap, which has none)."""
    attrs.create(key, np.bytes_(text.encode("utf-8")))


def _read_array(dataset, path):
    """A dataset's values; a checksum mismatch is one line naming the damaged array."""
    try:
        return dataset[()]
    except OSError as e:
        if dataset.fletcher32:
            raise _damaged(path, f"{dataset.name} fails its checksum (the file was altered "
                           "after it was written)") from None
        raise _damaged(path, f"{dataset.name} cannot be read ({_one_line(e)})") from None


def _read_tree(group, path, expected=None):
    """The arrays, scalars and texts under `group` as nested dicts. With `expected` (a tree
    of the arrays the reader has room for), every stored array must be one of them, with its
    shape, before anything is read: a crafted file cannot make the reader allocate more."""
    import h5py
    out = {k: v for k, v in group.attrs.items()}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            inside = None if expected is None else expected.get(key)
            if expected is not None and not isinstance(inside, dict):
                inside = {}         # nothing expected there: only scalars may be read
            out[key] = _read_tree(item, path, inside)
            continue
        if item.dtype.kind not in "fiub":
            raise _damaged(path, f"{item.name} holds {item.dtype} values, not numbers")
        if expected is not None and item.shape != ():
            wanted = expected.get(key)
            if wanted is None or np.ndim(wanted) == 0:
                raise _damaged(path, f"{item.name} (shape {item.shape}) is no part of the "
                               "state this run's optimiser keeps")
            if item.shape != np.shape(wanted):
                raise _damaged(path, f"{item.name} holds shape {item.shape}, this run's "
                               f"optimiser needs {np.shape(wanted)}")
        out[key] = _read_array(item, path)
    return out


# room for what a checkpoint holds beside its arrays: attributes (the cfg, names, anchors),
# object headers, chunk indexes and checksums (about 40 kB for yolov2-shapes), with a margin
METADATA_ALLOWANCE = 1 << 20


def estimated_size(net, optimizer=None):
    """Bytes a checkpoint of `net` (with the optimiser state tree `optimizer`) takes on disk, a
    little over: its arrays are stored uncompressed."""
    def tree_bytes(value):
        if isinstance(value, dict):
            return sum(tree_bytes(v) for v in value.values())
        return np.asarray(value).nbytes if not isinstance(value, (str, bytes)) else len(value)
    params = sum(p.nbytes for layer in net.layers for p in layer.params.values())
    return params + tree_bytes(optimizer or {}) + len(net.config.text) + METADATA_ALLOWANCE


# what a quantized convolution stores instead of its fp32 `weights`
INT8_ARRAYS = ("int8_weights", "weight_scales", "input_scale")


def _quantized_layers(net):
    quantization = getattr(net, "quantization", None)
    return set(quantization["layers"]) if quantization else set()


def _stored_arrays(layer, quantized):
    """{name: array} a checkpoint holds for `layer` (quantized: an int8 convolution)."""
    arrays = dict(layer.params)
    if quantized:
        del arrays["weights"]
        arrays.update(int8_weights=layer.int8_weights, weight_scales=layer.weight_scales,
                      input_scale=np.float32(layer.input_scale))
    return arrays


def _expected_shapes(layer, quantized):
    """{name: shape} of what a checkpoint must hold for `layer`."""
    shapes = {name: p.shape for name, p in layer.params.items()}
    if quantized:
        shapes.update(int8_weights=shapes.pop("weights"), weight_scales=(layer.filters,),
                      input_scale=())
    return shapes


def save_checkpoint(net, path, names=None, optimizer=None, meta=None, input_size=None):
    """input_size: (width, height) the checkpoint is meant to run at (default: the network's
    current size, which during multi-scale training is not the run's base size)."""
    import h5py
    region = net.region
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver=CHECKSUMMED_FORMAT) as f:
            _set_text(f.attrs, "format", FORMAT)
            _set_text(f.attrs, "version", __version__)
            _set_text(f.attrs, "cfg", net.config.text)
            f.attrs["seen"] = int(net.seen)
            f.attrs["input_size"] = np.array(input_size or (net.width, net.height), np.int32)
            f.attrs["weights_header"] = np.array(net.weights_header, np.int32)
            _set_text(f.attrs, "names", json.dumps(list(names) if names is not None else None))
            _set_text(f.attrs, "anchors",
                      json.dumps(region.anchors.tolist() if region is not None else None))
            _set_text(f.attrs, "meta", json.dumps(meta or {}))
            _set_text(f.attrs, "files", json.dumps(getattr(net, "files", None) or {}))
            if getattr(net, "quantization", None):
                _set_text(f.attrs, "quantization", json.dumps(net.quantization))
            quantized = _quantized_layers(net)
            layers = f.create_group("layers")
            for i, layer in enumerate(net.layers):
                if layer.params:
                    g = layers.create_group(f"{i:03d}")
                    _set_text(g.attrs, "kind", layer.kind)
                    for name, p in _stored_arrays(layer, i in quantized).items():
                        _write_array(g, name, p)
            if optimizer:
                _write_tree(f.create_group("optimizer"), optimizer)


def _damaged(path, what):
    return UserError(f"damaged checkpoint: {what}", path=path)


def _text_attr(f, key, path):
    value = f.attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise _damaged(path, f"attribute '{key}' is " + ("missing" if value is None else
                                                        "not text"))
    return value


def _json_attr(f, key, path, expected, description):
    """A JSON attribute whose value must be one of `expected` types (None allowed)."""
    text = _text_attr(f, key, path)
    try:
        value = json.loads(text)
    except ValueError:
        raise _damaged(path, f"attribute '{key}' is not valid JSON") from None
    if value is not None and not isinstance(value, expected):
        raise _damaged(path, f"attribute '{key}' should be {description}")
    return value


def _int_attr(f, key, path, count=None, required=True):
    """An integer attribute (count=None) or a vector of `count` integers; None if absent and
    not required."""
    if key not in f.attrs:
        if required:
            raise _damaged(path, f"attribute '{key}' is missing")
        return None
    value = np.asarray(f.attrs[key])
    if value.dtype.kind not in "iu" or value.shape != (() if count is None else (count,)):
        raise _damaged(path, f"attribute '{key}' should be "
                       + ("an integer" if count is None else f"{count} integers"))
    return int(value) if count is None else tuple(int(v) for v in value)


def _header(f, path):
    """Every attribute, checked: a damaged file is a UserError naming what is wrong."""
    names = _json_attr(f, "names", path, list, "a list of class names")
    if names is not None and not all(isinstance(n, str) for n in names):
        raise _damaged(path, "attribute 'names' should be a list of class names")
    return {"cfg": _text_attr(f, "cfg", path),
            "version": _text_attr(f, "version", path),
            "seen": _int_attr(f, "seen", path),
            "input_size": _int_attr(f, "input_size", path, count=2, required=False),
            "weights_header": _int_attr(f, "weights_header", path, count=3, required=False),
            "names": names,
            "anchors": _json_attr(f, "anchors", path, list, "a list of numbers"),
            "meta": _json_attr(f, "meta", path, dict, "a JSON object"),
            "quantization": _quantization_attr(f, path)}


def _quantization_attr(f, path):
    """An int8 checkpoint's record (None for fp32 checkpoints), its layer list checked."""
    if "quantization" not in f.attrs:
        return None
    record = _json_attr(f, "quantization", path, dict, "a JSON object")
    layers = record.get("layers") if record else None
    if not (isinstance(layers, list)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers)):
        raise _damaged(path, "attribute 'quantization' should list its int8 layers")
    return record


def read_checkpoint_cfg(path):
    """(cfg text, (width, height) the network had when saved)."""
    with _open(path) as f:
        header = _header(f, path)
        return header["cfg"], header["input_size"] or (None, None)


def read_checkpoint_files(path):
    """{cfg value: text} of the files (word tree, class map) the checkpoint carries."""
    with _open(path) as f:
        if "files" not in f.attrs:
            return {}       # written before checkpoints carried files
        files = _json_attr(f, "files", path, dict, "a JSON object")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise _damaged(path, "attribute 'files' should map cfg values to file texts")
        return files


def read_checkpoint_info(path):
    """Everything but the parameters: names, anchors, seen, version, meta, cfg, quantization
    (None unless an int8 checkpoint)."""
    with _open(path) as f:
        header = _header(f, path)
        return {key: header[key] for key in ("names", "anchors", "seen", "version", "meta", "cfg",
                                             "quantization")}


def read_optimizer_state(path, expected=None):
    """The optimiser state a checkpoint holds (nested dicts), None if it has none. With
    `expected` (the state of the optimiser it is read for), an array that is not in it, or
    that has another shape, is refused before it is read (see _read_tree)."""
    with _open(path) as f:
        return _read_tree(f["optimizer"], path, expected) if "optimizer" in f else None


def load_checkpoint_into(net, path, cutoff=None):
    """The checkpoint's parameters into `net` (all layers, or the first `cutoff`), after
    checking every shape: a refused file leaves the network as it was."""
    try:
        _load_parameters(net, path, cutoff)
    finally:     # also after a partial load: whatever was cached from the old weights is stale
        net.weights_changed()


def _check_shapes(net, layers, stored, path, cutoff, quantized=()):
    import h5py

    from .darknet_weights import describe_layer
    hint = "; was it saved from a different cfg?"
    for i in quantized:
        if i >= len(net.layers) or net.layers[i].kind != "conv":
            raise _damaged(path, f"attribute 'quantization' names layer {i}, which is not a "
                           f"convolution of {net.source}")
    for i, layer in enumerate(layers):
        key = f"{i:03d}"
        where = describe_layer(net, i)
        if key not in stored:
            if layer.params:
                raise UserError(f"checkpoint has no parameters for {where}{hint}", path=path)
            continue
        group = stored[key]
        if not isinstance(group, h5py.Group):
            raise _damaged(path, f"/layers/{key} should be a group of parameter arrays")
        expected = _expected_shapes(layer, i in quantized)
        for name, shape in expected.items():
            array = group.get(name)
            if isinstance(array, h5py.Dataset) and array.dtype.kind not in "fiu":
                raise _damaged(path, f"{where} {name} holds {array.dtype} values, not numbers")
            if name == "int8_weights" and isinstance(array, h5py.Dataset) \
                    and array.dtype != np.int8:
                raise _damaged(path, f"{where} int8_weights holds {array.dtype} values")
            found = array.shape if isinstance(array, h5py.Dataset) else "nothing"
            if found != shape:
                raise UserError(f"{where} {name}: the network needs shape {shape}, the "
                                f"checkpoint holds {found}{hint}", path=path)
        extra = sorted(set(group) - set(expected))
        if extra:
            raise UserError(f"{where}: the checkpoint holds {', '.join(extra)}, which this "
                            f"layer does not have{hint}", path=path)
    if cutoff is None:
        misnamed = sorted(k for k in stored if not (len(k) == 3 and k.isdigit()))
        if misnamed:
            raise _damaged(path, f"/layers/{misnamed[0]} is not a layer number")
        beyond = sorted(int(k) for k in stored if int(k) >= len(net.layers))
        if beyond:
            raise UserError(f"checkpoint holds parameters for layer {beyond[0]}, beyond the "
                            f"{len(net.layers)} layers of {net.source}{hint}", path=path)


def _load_parameters(net, path, cutoff):
    import h5py

    from .darknet_weights import describe_layer
    layers = net.layers if cutoff is None else net.layers[:cutoff]
    with _open(path) as f:
        header = _header(f, path)
        stored = f.get("layers")
        if not isinstance(stored, h5py.Group):
            raise _damaged(path, "no 'layers' group of parameters")
        quantization = header["quantization"]
        if quantization is not None and cutoff is not None:
            raise UserError("an int8 checkpoint is loaded whole (no --cutoff): cut the fp32 "
                            "checkpoint it was quantized from instead", path=path)
        quantized = set(quantization["layers"]) if quantization else set()
        _check_shapes(net, layers, stored, path, cutoff, quantized)
        for i, layer in enumerate(layers):
            group = stored[f"{i:03d}"] if layer.params else None
            for name, p in layer.params.items():
                if not (i in quantized and name == "weights"):
                    p[...] = _read_array(group[name], path)
            if i in quantized:
                int8_weights, weight_scales, input_scale = (_read_array(group[name], path)
                                                            for name in INT8_ARRAYS)
                try:
                    layer.quantize(int8_weights, weight_scales, input_scale)
                except ValueError as e:
                    raise _damaged(path, f"{describe_layer(net, i)}: {e}") from None
        if quantization is None:
            net.clear_quantization()
        net.quantization = quantization
        net.seen = header["seen"]
        if header["weights_header"] is not None:
            net.weights_header = header["weights_header"]
        if len(layers) < len(net.layers):
            return      # the names and the rest describe the head that was not loaded
        if header["names"] is not None:
            net.names = header["names"]
        net.meta = header["meta"]
        net.meta["version"] = header["version"]
