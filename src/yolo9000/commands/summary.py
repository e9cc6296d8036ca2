import click

from .options import check_size_option, precision_option


@click.command(help="Print a network's layers, shapes and BFLOPs (darknet's summary); with "
                    "--precision also the path each convolution takes at inference. CFG is a "
                    "cfg (path or bundled name) or an .h5 checkpoint, whose stored cfg is shown "
                    "and, for an int8 checkpoint, its calibration.")
@click.argument("cfg")
@click.option("--size", type=int, default=None, callback=check_size_option,
              help="Input size (multiple of 32) instead of the cfg's.")
@precision_option(default=None, also="Given, the table ends each convolution's row with its "
                                     "path (e.g. bf16 amx direct, int8 vnni im2col, fp32 "
                                     "winograd).")
def command(cfg, size, precision):
    from ..model.checkpoint import is_hdf5
    from ..model.network import Network
    if is_hdf5(cfg):
        net = Network.load(cfg, width=size, height=size)
    else:
        net = Network.from_cfg(cfg, width=size, height=size)
    if net.quantization is not None:
        from ..model.quantization import describe
        click.echo(describe(net.quantization))
    if precision is None:
        click.echo(f"{net.source}: input {net.width} x {net.height} x {net.channels}")
        click.echo(net.summary())
        return
    note = net.set_precision(precision)
    click.echo(f"{net.source}: input {net.width} x {net.height} x {net.channels}, "
               f"precision {note}")
    click.echo(net.summary(paths=True))
