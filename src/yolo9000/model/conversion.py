"""darknet interop: .weights + cfg <-> .h5 checkpoints, and darknet's `partial` (a cutoff).

The input's format is told by its content (HDF5 signature or not), the output's by its name: a
`.h5` output is a checkpoint (it carries the cfg and the class names), anything else a darknet
.weights file with its cfg, and its names when known, written beside it. A .weights file keeps
darknet's header (major, minor, revision, `seen`) through a checkpoint, so converting there and
back gives the same bytes.
"""
import os
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_write_text, check_output_path
from .cfg import cut_cfg_text, parse_cfg_text, set_net_options
from .checkpoint import check_weights_format, read_checkpoint_info
from .network import NetOptions, Network


def sibling(output, suffix):
    """The file written beside a .weights output: x.weights -> x.cfg, and for darknet's
    backbone names without that suffix darknet19_448.conv.23 -> darknet19_448.conv.23.cfg."""
    output = Path(output)
    if output.suffix == ".weights":
        return output.with_suffix(suffix)
    return output.with_name(output.name + suffix)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:          # one does not exist (yet)
        return Path(a).resolve() == Path(b).resolve()


def _cut(net, cutoff):
    """A network of the first `cutoff` layers of `net`, with their parameters."""
    text = cut_cfg_text(net.config, cutoff)
    cut = Network(parse_cfg_text(text, f"{net.source} (first {cutoff} layers)"),
                  net.width, net.height)
    for mine, theirs in zip(cut.layers, net.layers):
        for name, p in mine.params.items():
            p[...] = theirs.params[name]
    cut.weights_changed()
    cut.seen, cut.weights_header = net.seen, net.weights_header
    return cut


def convert(source, output, cfg=None, names=None, cutoff=None, quantize=None):
    """Convert `source` (.weights with `cfg`, or .h5) into `output`; returns the paths written.

    quantize: a function that makes the loaded network int8 in place (calibration's), for an
    int8 checkpoint `output` (only .h5). An int8 checkpoint is no `source`: it converts back
    to nothing but a loss, so its fp32 source is asked for.

    cutoff: keep only the first `cutoff` layers (darknet's `partial`, e.g. the backbone
    darknet19_448.conv.23); the cfg written or stored is then cut to those layers as well.
    names: a names file for the output (default: the checkpoint's, unless cut)."""
    from ..names import read_names
    from .darknet_weights import write_darknet_weights

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise UserError("input file not found", path=source)
    from_checkpoint = check_weights_format(source)
    if from_checkpoint and cfg is not None:
        raise UserError("a checkpoint carries its own cfg; --cfg is for darknet .weights inputs",
                        path=source)
    if from_checkpoint and read_checkpoint_info(source)["quantization"] is not None:
        raise UserError("an int8 checkpoint is not converted (its fp32 weights are gone): "
                        "convert the fp32 weights it was quantized from", path=source)
    if not from_checkpoint and cfg is None:
        raise UserError("darknet .weights files do not say which network they belong to; "
                        "give --cfg (a .cfg file or a bundled model name)", path=source)
    to_checkpoint = output.suffix == ".h5"
    if quantize is not None and not to_checkpoint:
        raise UserError("int8 weights are written only as a checkpoint: name the output "
                        "NAME.h5", path=output)
    targets = [output] if to_checkpoint else [output, sibling(output, ".cfg"),
                                               sibling(output, ".names")]
    inputs = [source] + [Path(p) for p in (cfg, names) if p is not None and Path(p).is_file()]
    for target in targets:
        for given in inputs:
            if _same_file(target, given):
                raise UserError(f"the output would overwrite the input {given}; choose another "
                                "--output", path=target)
        check_output_path(target, "converted weights")

    if from_checkpoint:
        net = Network.load(source)
    else:
        net = Network.from_cfg(cfg)
        net.load_weights(source, cutoff=cutoff)
    is_cut = cutoff is not None and cutoff < len(net.layers)
    out = _cut(net, cutoff) if is_cut else net
    # the names of a cut network's classes would belong to the head that was cut off
    class_names = read_names(names) if names is not None else (None if is_cut else net.names)
    region = out.region
    if class_names is not None and region is not None and len(class_names) != region.classes:
        raise UserError(f"{len(class_names)} class names but the network predicts "
                        f"{region.classes} classes", path=names or source)

    if quantize is not None:
        quantize(out)
    if to_checkpoint:
        meta = {} if is_cut else {k: v for k, v in net.meta.items() if k != "version"}
        out.save(output, names=class_names, **meta)
        return [output]
    text = out.config.text
    in_cfg = NetOptions.from_section(out.config.net)
    if (in_cfg.width, in_cfg.height) != (out.width, out.height):    # saved at another size
        text = set_net_options(out.config, width=out.width, height=out.height)
    write_darknet_weights(out, output)
    atomic_write_text(targets[1], text)
    written = [output, targets[1]]
    if class_names is not None:
        atomic_write_text(targets[2], "\n".join(class_names) + "\n")
        written.append(targets[2])
    return written
