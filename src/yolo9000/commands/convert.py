"""`yolo9000 convert`: darknet .weights <-> .h5 checkpoints, darknet's `partial`, and int8
checkpoints (--quantize int8, calibrated on a folder of images)."""
import click

from .options import check_size_option


@click.command(help="Convert weights between darknet .weights (+ .cfg) and .h5 checkpoints. "
                    "The input's format is told by its content, the output's by its name: "
                    "OUTPUT.h5 is a checkpoint (carrying cfg and names); any other name is a "
                    "darknet .weights file, written with its .cfg (and .names, when known) "
                    "beside it. With --cutoff N only the first N layers are kept (darknet's "
                    "`partial`, e.g. darknet19_448.conv.23). With --quantize int8 --calibration "
                    "DIR the output is an int8 checkpoint: weights per output channel, each "
                    "convolution's input scale calibrated on DIR's images (run it with "
                    "--precision int8 or auto).")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="File to write: NAME.h5, or darknet weights (NAME.weights -> NAME.cfg, "
                   "NAME.names beside it; another name gets .cfg/.names appended).")
@click.option("--cfg", help="Network cfg of a darknet .weights SOURCE: a .cfg path or a bundled "
                            "model name.")
@click.option("--names", type=click.Path(dir_okay=False),
              help="Class names file for the output (default: the checkpoint's).")
@click.option("--cutoff", type=click.IntRange(min=1),
              help="Keep only the first N layers' weights (a backbone); the cfg is cut to match.")
@click.option("--quantize", type=click.Choice(["int8"]),
              help="Write an int8 checkpoint (post-training quantization; needs --calibration).")
@click.option("--calibration", type=click.Path(file_okay=False),
              help="--quantize: a folder of images like those the network will see, run through "
                   "it as detect / classify prepare them.")
@click.option("--calibration-rule", type=click.Choice(["percentile", "entropy"]),
              default="percentile", show_default=True,
              help="--quantize: how an input's scale is chosen from its |x| histogram: a "
                   "percentile (--percentile) or the least KL divergence (TensorRT's entropy).")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=None,
              help="--calibration-rule percentile: which percentile of |x| maps to 127 "
                   "[default: 99.99].")
@click.option("--calibration-images", type=click.IntRange(min=1), default=100,
              show_default=True,
              help="--quantize: how many of the folder's images (spread over its sorted names).")
@click.option("--size", type=int, default=None, callback=check_size_option,
              help="--quantize: the input size to calibrate at and store (default: the "
                   "network's).")
@click.option("--quantize-ends", is_flag=True,
              help="--quantize: make the first and last convolutions int8 too (kept fp32 by "
                   "default: the image input and the raw output lose the most).")
def command(source, output, cfg, names, cutoff, quantize, calibration, calibration_rule,
            percentile, calibration_images, size, quantize_ends):
    from ..errors import UserError
    from ..model.conversion import convert
    quantizer = None
    if quantize is None:
        given = [name for name, value in (("--calibration", calibration), ("--size", size),
                                          ("--percentile", percentile),
                                          ("--quantize-ends", quantize_ends)) if value]
        if given:
            raise UserError(f"{given[0]} is for --quantize int8")
    else:
        if calibration is None:
            raise UserError("--quantize int8 needs --calibration DIR: a folder of images like "
                            "those the network will see")
        if percentile is not None and calibration_rule != "percentile":
            raise UserError("--percentile is for --calibration-rule percentile")
        from ..inference.calibration import calibrate
        from ..model.quantization import PERCENTILE, describe

        def quantizer(net):
            if size is not None:
                net.resize(size, size)
            record = calibrate(net, calibration, images=calibration_images,
                               rule=calibration_rule,
                               percentile=PERCENTILE if percentile is None else percentile,
                               keep_ends=not quantize_ends)
            click.echo(describe(record))
    for path in convert(source, output, cfg=cfg, names=names, cutoff=cutoff, quantize=quantizer):
        click.echo(f"wrote {path}")
