"""`yolo9000 export WEIGHTS --format onnx`: a trained network as a file other runtimes run.

The graph is model/onnx_export.py's; this command loads the network as `detect` does (an .h5
checkpoint, or darknet .weights with --model/--cfg; the bundled shapes model without WEIGHTS)
and names its classes as `detect` does.
"""
from pathlib import Path

import click

from .options import check_size_option, tree_options

FORMATS = ("onnx",)
# the options that only steer --decode
DECODE_OPTIONS = ("thresh", "nms_thresh", "hier_thresh", "tree_walk")


def default_output(weights, export_format):
    """Beside the weights, their .h5/.weights suffix replaced (darknet's backbone names, like
    darknet19_448.conv.23, keep theirs); without weights (the bundled shapes model) here."""
    if weights is None:
        return Path(f"shapes.{export_format}")
    weights = Path(weights)
    if weights.suffix in (".h5", ".weights"):
        return weights.with_suffix(f".{export_format}")
    return weights.with_name(f"{weights.name}.{export_format}")


@click.command("export")
@click.argument("weights", required=False, type=click.Path(dir_okay=False))
@click.option("--format", "export_format", type=click.Choice(FORMATS), default="onnx",
              show_default=True, help="File format to write.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="File to write [default: beside WEIGHTS, its .h5 or .weights suffix "
                   "replaced by .onnx; without WEIGHTS shapes.onnx here].")
@click.option("--model", help="Bundled model name of darknet .weights (e.g. yolov2-voc).")
@click.option("--cfg", type=click.Path(dir_okay=False), help="Darknet .cfg of darknet .weights.")
@click.option("--names", type=click.Path(dir_okay=False),
              help="Class names, one per line, stored in the file [default: as detect names "
                   "them].")
@click.option("--size", type=int, callback=check_size_option,
              help="Network input size, a multiple of 32 [default: from the cfg or checkpoint].")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Images per run, fixed in the file [default: 1].")
@click.option("--dynamic-batch", is_flag=True,
              help="Leave the batch size free (the input's first dimension is 'batch').")
@click.option("--decode", is_flag=True,
              help="A detector's file outputs boxes: the region decode and non-maximum "
                   "suppression as detect runs them (--thresh, --nms, --hier-thresh, "
                   "--tree-walk), boxes in pixels of the letterboxed input [default: the "
                   "network's raw output, which detect decodes].")
@click.option("--thresh", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              show_default=True, help="With --decode: keep detections whose score "
                                      "(objectness x class) >= this.")
@tree_options
@click.option("--nms", "nms_thresh", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="With --decode: suppress a box whose IoU with a better box of its class "
                   "exceeds this.")
@click.pass_context
def command(ctx, weights, export_format, output, model, cfg, names, size, batch, dynamic_batch,
            decode, thresh, hier_thresh, tree_walk, nms_thresh):
    """Export a network (WEIGHTS: an .h5 checkpoint, or darknet .weights with --model/--cfg)
    to a file ONNX Runtime, OpenVINO and other runtimes run. Its metadata holds the class
    names, anchors, word tree and how to letterbox an image and map boxes back."""
    if model is not None and cfg is not None:
        raise click.UsageError("give --model or --cfg, not both")
    if batch is not None and dynamic_batch:
        raise click.UsageError("give --batch N or --dynamic-batch, not both")
    if not decode:
        given = [p.opts[0] for p in command.params if p.name in DECODE_OPTIONS
                 and ctx.get_parameter_source(p.name) != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'}"
                                   " with --decode")
    from ..errors import UserError
    from ..fileio import check_output_path
    from ..model.onnx_export import export_onnx, require_onnx

    if output is None:
        output = default_output(weights, export_format)
    if weights is not None and Path(output).resolve() == Path(weights).resolve():
        raise UserError("the output would overwrite the weights; choose another --output",
                        path=output)
    check_output_path(output, "exported model")
    require_onnx()      # before the network loads: a missing package costs nothing

    from ..inference.detector import build_network, resolve_class_names
    from ..model.onnx_export import output_classes
    net, notice = build_network(model, cfg, weights, size, classifier=None)
    if notice:
        click.echo(f"note: {notice}", err=True)
    count = output_classes(net)
    if count is not None:
        names, source = resolve_class_names(names, net, count)
        names = names if source is not None else None      # numbers name nothing
    elif names is not None:
        raise UserError("this network names no classes (it is neither a detector nor a "
                        "classifier): export it without --names", path=names)
    path = export_onnx(net, output, names=names, batch=batch or 1, dynamic_batch=dynamic_batch,
                       decode=decode, thresh=thresh, nms=nms_thresh, hier_thresh=hier_thresh,
                       tree_walk=tree_walk)
    shape = "x".join(str(v) for v in (("N" if dynamic_batch else batch or 1),) + net.input_shape)
    outputs = ("boxes, scores, classes, batch_index (after decode and NMS)" if decode else
               "output " + "x".join(str(v) for v in (("N" if dynamic_batch else batch or 1),)
                                    + tuple(net.output_shape)))
    click.echo(f"wrote {path}: input images {shape} (RGB in [0, 1]); {outputs}")
