"""`yolo9000 convert`: darknet .weights <-> .h5 checkpoints, and darknet's `partial`."""
import click


@click.command(help="Convert weights between darknet .weights (+ .cfg) and .h5 checkpoints. "
                    "The input's format is told by its content, the output's by its name: "
                    "OUTPUT.h5 is a checkpoint (carrying cfg and names); any other name is a "
                    "darknet .weights file, written with its .cfg (and .names, when known) "
                    "beside it. With --cutoff N only the first N layers are kept (darknet's "
                    "`partial`, e.g. darknet19_448.conv.23).")
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
def command(source, output, cfg, names, cutoff):
    from ..model.conversion import convert
    for path in convert(source, output, cfg=cfg, names=names, cutoff=cutoff):
        click.echo(f"wrote {path}")
