"""darknet `.weights` files.

Layout: int32 major, minor, revision; then `seen` as uint64 when major·10 + minor ≥ 2 (else
uint32); then, for every convolutional layer in order: biases, [scales, rolling mean, rolling
variance when batch-normalised], weights (filters × channels × size × size). A standalone
[batchnorm] layer stores scales, rolling mean, rolling variance. Everything little-endian
float32.
"""
import io
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_open


# the arrays of a layer in file order, by parameter name (layers not listed have none on file;
# a [batchnorm] layer's biases are not saved by darknet)
FILE_ORDER = {"conv": ("biases", "scales", "rolling_mean", "rolling_variance", "weights"),
              "batchnorm": ("scales", "rolling_mean", "rolling_variance")}

# A version number in the header above this is not darknet's: random bytes give one almost
# always (darknet itself has used 0.1.0 and 0.2.0; 1000 is a case its loader provides for).
MAX_HEADER_NUMBER = 1 << 16


def _layer_arrays(layer):
    """The arrays of one layer in file order (empty for layers without weights)."""
    return [layer.params[name] for name in FILE_ORDER.get(layer.kind, ()) if name in layer.params]


def _layers_upto(net, cutoff):
    return net.layers if cutoff is None else net.layers[:cutoff]


def expected_floats(net, cutoff=None):
    return sum(a.size for layer in _layers_upto(net, cutoff) for a in _layer_arrays(layer))


def _header_size(major, minor):
    return 12 + (8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4)


def describe_layer(net, index):
    """'layer 13 [convolutional] (cfg line 85)', for messages about a layer's weights."""
    section = net.sections[index]
    return f"layer {index} [{section.type}] (cfg line {section.line})"


def _array_list(layer):
    return ", ".join(f"{name} {'x'.join(map(str, layer.params[name].shape))}"
                     for name in FILE_ORDER.get(layer.kind, ()) if name in layer.params)


def check_weights_fit(net, found, cutoff, path):
    """A .weights file has no shapes, only floats in layer order: a file made for another cfg
    is read misaligned without any error. So the count must be exactly what the layers to be
    filled need, or with a cutoff (darknet ignores the rest of the file) what the whole
    network needs. Otherwise the UserError names the first layer the file cannot fill, or
    the floats left over after the last one."""
    needed = expected_floats(net, cutoff)
    if found == needed or (cutoff is not None and found == expected_floats(net)):
        return
    layers = _layers_upto(net, cutoff)
    if len(layers) < len(net.layers):
        what = f"the first {len(layers)} layers of {net.source}"
    elif cutoff is not None:
        what = f"{net.source} (all its {len(net.layers)} layers; the cutoff {cutoff} is more)"
    else:
        what = net.source
    head = f"wrong size: expected {needed} floats, found {found}, for {what}"
    if found < needed:
        remaining = found
        for index, layer in enumerate(layers):
            size = sum(a.size for a in _layer_arrays(layer))
            if size > remaining:
                break
            remaining -= size
        short = f"only {remaining} remain" if remaining else "the file ends before it"
        raise UserError(f"{head}: {describe_layer(net, index)} needs {size} floats "
                        f"({_array_list(layer)}) but {short}; the file was made for another "
                        "cfg, or is cut short", path=path)
    filled = [i for i, layer in enumerate(layers) if _layer_arrays(layer)]
    after = describe_layer(net, filled[-1]) + ", the last layer to fill" if filled else "the header"
    left = found - needed
    whole = (f" (a complete file for it holds {expected_floats(net)})"
             if cutoff is not None and len(layers) < len(net.layers) else "")
    raise UserError(f"{head}{whole}: {left} floats ({4 * left} bytes) left over after "
                    f"{after}; the file was made "
                    "for another cfg (to keep only the first N layers of a file, cut it with "
                    "`yolo9000 convert FILE --cfg ITS_CFG --cutoff N`)", path=path)


def check_finite_weights(net, path, cutoff=None):
    """NaN or infinite weights (a damaged file, or one saved from a diverged run) would make
    every output NaN without a word: refuse them, naming the first layer that holds any."""
    for index, layer in enumerate(_layers_upto(net, cutoff)):
        for name, p in layer.params.items():
            bad = p.size - int(np.count_nonzero(np.isfinite(p)))
            if bad:
                raise UserError(f"{describe_layer(net, index)} {name}: {bad} of {p.size} values "
                                "are NaN or infinite; the file is damaged or was saved from a "
                                "diverged training run", path=path)


def read_darknet_weights(net, path, cutoff=None):
    """Load weights into `net` (all layers, or the first `cutoff`). Returns the float count.

    The size is checked against the layers first (check_weights_fit), then the file is read
    array by array straight into the layers' buffers, so loading never holds a second copy of
    a large file in memory."""
    path = Path(path)
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except FileNotFoundError:
        raise UserError("weights file not found", path=path) from None
    except IsADirectoryError:
        raise UserError("is a directory, not a weights file", path=path) from None
    except OSError as e:
        raise UserError(f"cannot read weights: {e.strerror}", path=path) from None
    with f:
        head = f.read(20)
        if len(head) < 16:
            raise UserError(f"too short to be a darknet .weights file ({size} bytes)", path=path)
        major, minor, revision = (int(v) for v in np.frombuffer(head[:12], "<i4"))
        if not all(0 <= v < MAX_HEADER_NUMBER for v in (major, minor, revision)):
            raise UserError(f"not a darknet .weights file: its header gives version {major}."
                            f"{minor}.{revision} (darknet's are small numbers such as 0.2.0)",
                            path=path)
        header = _header_size(major, minor)
        if header == 20:
            if len(head) < 20:
                raise UserError(f"too short to be a darknet .weights file ({size} bytes)", path=path)
            seen = int(np.frombuffer(head[12:20], "<u8")[0])
        else:
            seen = int(np.frombuffer(head[12:16], "<u4")[0])
        body = size - header
        if body % 4:
            raise UserError(f"size {size} bytes is not a header plus whole float32 values", path=path)
        found = body // 4
        check_weights_fit(net, found, cutoff, path)
        f.seek(header)
        try:
            for layer in _layers_upto(net, cutoff):
                for a in _layer_arrays(layer):
                    values = np.fromfile(f, dtype="<f4", count=a.size)
                    a[...] = values.reshape(a.shape)
        finally:     # also after a partial read: whatever was cached from the old weights is stale
            net.weights_changed()
    net.seen = seen
    net.weights_header = (major, minor, revision)
    return found


def _write_weights(net, f, cutoff):
    major, minor, revision = net.weights_header
    f.write(np.array([major, minor, revision], "<i4").tobytes())
    seen_type = "<u8" if _header_size(major, minor) == 20 else "<u4"
    f.write(np.array([net.seen], seen_type).tobytes())
    for layer in _layers_upto(net, cutoff):
        for a in _layer_arrays(layer):
            f.write(np.ascontiguousarray(a, "<f4").tobytes())


def darknet_weights_bytes(net, cutoff=None):
    buf = io.BytesIO()
    _write_weights(net, buf, cutoff)
    return buf.getvalue()


def write_darknet_weights(net, path, cutoff=None):
    """Written array by array into a temporary file renamed over `path` at the end."""
    with atomic_open(path) as f:
        _write_weights(net, f, cutoff)
