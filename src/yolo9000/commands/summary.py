import click

from .options import check_size_option, precision_option


@click.command(help="Print a network's layers, shapes and BFLOPs (darknet's summary); with "
                    "--precision also the path each convolution takes at inference.")
@click.argument("cfg")
@click.option("--size", type=int, default=None, callback=check_size_option,
              help="Input size (multiple of 32) instead of the cfg's.")
@precision_option(default=None, also="Given, the table ends each convolution's row with its "
                                     "path (e.g. bf16 amx direct, fp32 winograd).")
def command(cfg, size, precision):
    from ..model.network import Network
    net = Network.from_cfg(cfg, width=size, height=size)
    if precision is None:
        click.echo(f"{net.source}: input {net.width} x {net.height} x {net.channels}")
        click.echo(net.summary())
        return
    note = net.set_precision(precision)
    click.echo(f"{net.source}: input {net.width} x {net.height} x {net.channels}, "
               f"precision {note}")
    click.echo(net.summary(paths=True))
