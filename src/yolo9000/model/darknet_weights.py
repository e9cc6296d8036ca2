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
from ..fileio import atomic_write_bytes


def _layer_arrays(layer):
    """The arrays of one layer in file order (empty for layers without weights)."""
    if layer.kind == "conv":
        arrays = [layer.biases]
        if layer.bn is not None:
            arrays += [layer.bn.scales, layer.bn.rolling_mean, layer.bn.rolling_variance]
        return arrays + [layer.weights]
    if layer.kind == "batchnorm":
        return [layer.bn.scales, layer.bn.rolling_mean, layer.bn.rolling_variance]
    return []


def expected_floats(net, cutoff=None):
    layers = net.layers if cutoff is None else net.layers[:cutoff]
    return sum(a.size for layer in layers for a in _layer_arrays(layer))


def _header_size(major, minor):
    return 12 + (8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4)


def read_darknet_weights(net, path, cutoff=None):
    """Load weights into `net` (all layers, or the first `cutoff`). Returns the float count.

    Read array by array straight into the layers' buffers, so loading never holds a second
    copy of a large file in memory."""
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
        expected = expected_floats(net, cutoff)
        if found < expected or (cutoff is None and found != expected):
            what = f"the first {cutoff} layers of " if cutoff is not None else ""
            raise UserError(f"wrong size for {what}{net.source}: expected {expected} floats, "
                            f"found {found}", path=path)
        f.seek(header)
        layers = net.layers if cutoff is None else net.layers[:cutoff]
        try:
            for layer in layers:
                for a in _layer_arrays(layer):
                    values = np.fromfile(f, dtype="<f4", count=a.size)
                    a[...] = values.reshape(a.shape)
        finally:     # also after a partial read: whatever was cached from the old weights is stale
            net.weights_changed()
    net.seen = seen
    net.weights_header = (major, minor, revision)
    return found


def darknet_weights_bytes(net, cutoff=None):
    major, minor, revision = net.weights_header
    buf = io.BytesIO()
    buf.write(np.array([major, minor, revision], "<i4").tobytes())
    if _header_size(major, minor) == 20:
        buf.write(np.array([net.seen], "<u8").tobytes())
    else:
        buf.write(np.array([net.seen], "<u4").tobytes())
    layers = net.layers if cutoff is None else net.layers[:cutoff]
    for layer in layers:
        for a in _layer_arrays(layer):
            buf.write(np.ascontiguousarray(a, "<f4").tobytes())
    return buf.getvalue()


def write_darknet_weights(net, path, cutoff=None):
    atomic_write_bytes(path, darknet_weights_bytes(net, cutoff))
