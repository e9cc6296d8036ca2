"""`yolo9000 demo [--wordtree]`: the experiments of yolo9000/demos/ (shapes.py, wordtree.py),
end to end on synthetic data, in a run folder of their own."""
import click

from .options import (check_size_option, deprecated_option, echo_to_stderr,
                      out_folder_as_run_folder, run_folder_options)

# A model trained to convergence on shapes; the defaults are what the shipped model used.
DEFAULTS = dict(n_train=2000, n_val=200, size=128, iterations=3600, batch=8, lr=0.004)
WORDTREE_DEFAULTS = dict(n_train=1500, iterations=3000)


@click.command(help="Make a shapes dataset, cluster its anchors, train a small YOLOv2, "
                    "evaluate it and draw its detections — the whole pipeline end to end.")
@run_folder_options("demo")
@deprecated_option("--out", "--project/--name", out_folder_as_run_folder,
                   type=click.Path(file_okay=False))
@click.option("--train-images", "n_train", type=click.IntRange(min=16), default=DEFAULTS["n_train"],
              show_default=True, help="Training images to generate.")
@click.option("--val-images", "n_val", type=click.IntRange(min=1), default=DEFAULTS["n_val"],
              show_default=True, help="Validation images to generate.")
@deprecated_option("--train", "--train-images", lambda v: {"n_train": v}, type=click.IntRange(min=16))
@deprecated_option("--val", "--val-images", lambda v: {"n_val": v}, type=click.IntRange(min=1))
@click.option("--size", type=click.IntRange(min=64), default=DEFAULTS["size"], show_default=True,
              callback=check_size_option, help="Image and network input size (a multiple of 32).")
@click.option("--iterations", type=click.IntRange(min=1), default=DEFAULTS["iterations"], show_default=True,
              help="Training iterations (weight updates).")
@click.option("--batch", type=click.IntRange(min=1), default=DEFAULTS["batch"], show_default=True)
@click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True, help="Learning rate.")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Data-loading processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--detect-images", type=click.IntRange(min=0), default=12, show_default=True,
              help="Validation images to draw detections on.")
@click.option("--wordtree", is_flag=True,
              help="YOLO9000's joint training instead: a word tree of shapes, boxes that name "
                   "mostly coarse nodes, classification crops of every shape; detects shapes "
                   "that never had a box, against a detection-only baseline. Its own defaults: "
                   f"--train-images {WORDTREE_DEFAULTS['n_train']} --iterations "
                   f"{WORDTREE_DEFAULTS['iterations']}.")
@click.option("--crops-per-class", type=click.IntRange(min=1), default=200, show_default=True,
              help="--wordtree: classification crops of each fine shape.")
@click.option("--classification-ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.4, show_default=True,
              help="--wordtree: share of each mini-batch taken from the crops.")
@click.pass_context
def command(ctx, project, name, exist_ok, n_train, n_val, size, iterations, batch, lr, workers, seed,
            detect_images, wordtree, crops_per_class, classification_ratio):
    from ..errors import UserError
    from ..runs import new_run_dir, run_dir_entries
    root = new_run_dir(project, name, exist_ok)
    if run_dir_entries(root):
        # the demo makes a dataset and a training run here; another run's files would mix in
        raise UserError("run folder is not empty; choose another --name", path=root)
    if wordtree:
        from ..demos import wordtree as wordtree_demo     # the flag has the module's name
        given = {k: v for k, v in dict(n_train=n_train, iterations=iterations).items()
                 if ctx.get_parameter_source(k).name != "DEFAULT"}
        options = {**WORDTREE_DEFAULTS, **given}
        return wordtree_demo.run(root, options["n_train"], n_val, size, options["iterations"],
                                 batch, lr, workers, seed, detect_images, crops_per_class,
                                 classification_ratio, echo=click.echo, warn=echo_to_stderr)
    from ..demos import shapes
    shapes.run(root, n_train, n_val, size, iterations, batch, lr, workers, seed, detect_images,
               echo=click.echo, warn=echo_to_stderr)
