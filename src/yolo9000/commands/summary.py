import click

from .options import check_size_option


@click.command(help="Print a network's layers, shapes and BFLOPs (darknet's summary).")
@click.argument("cfg")
@click.option("--size", type=int, default=None, callback=check_size_option,
              help="Input size (multiple of 32) instead of the cfg's.")
def command(cfg, size):
    from ..model.network import Network
    net = Network.from_cfg(cfg, width=size, height=size)
    click.echo(f"{net.source}: input {net.width} x {net.height} x {net.channels}")
    click.echo(net.summary())
