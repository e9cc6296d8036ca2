"""`yolo9000 make-shapes OUT`: write the synthetic shapes detection dataset."""
import os
import time

import click

from .options import deprecated_option


@click.command("make-shapes")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--train-images", "n_train", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Number of training images.")
@click.option("--val-images", "n_val", type=click.IntRange(min=0), default=200, show_default=True,
              help="Number of validation images.")
@deprecated_option("--train", "--train-images", lambda v: {"n_train": v}, type=click.IntRange(min=0))
@deprecated_option("--val", "--val-images", lambda v: {"n_val": v}, type=click.IntRange(min=0))
@click.option("--image-size", "size", type=click.IntRange(min=32, max=4096), default=160,
              show_default=True, help="Image side in pixels (images are square).")
@deprecated_option("--size", "--image-size", lambda v: {"size": v},
                   type=click.IntRange(min=32, max=4096))
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed gives identical files.")
@click.option("--image-format", type=click.Choice(["jpg", "png"]), default="jpg",
              show_default=True, help="Image file format.")
@deprecated_option("--format", "--image-format", lambda v: {"image_format": v},
                   type=click.Choice(["jpg", "png"]))
@click.option("--difficulty", type=click.Choice(["standard", "demo"]), default="standard",
              show_default=True, help="'demo': no tiny shapes, at most 4 per image, milder noise.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes used to render (default: all CPUs). Output does not depend on it.")
def command(out, n_train, n_val, size, seed, image_format, difficulty, workers):
    """Generate a synthetic shapes dataset (circle, square, triangle, star, cross) in OUT.

    Darknet layout: OUT/images/{train,val}, OUT/labels/{train,val}, OUT/train.txt and
    OUT/val.txt (image paths relative to OUT), OUT/classes.names and OUT/shapes.data.
    """
    from ..data.synthetic_shapes import CLASS_NAMES, DEMO, STANDARD, make_shapes
    from ..progress import Progress

    workers = workers or os.cpu_count() or 1
    total = n_train + n_val
    start = time.perf_counter()
    bar = None

    def progress(done, _total):
        # Opened on the first image, so a refused output folder prints only the error.
        nonlocal bar
        if bar is None:
            bar = Progress(total, desc=f"rendering {total} images", unit="img")
        bar.update(done - bar.n)

    try:
        paths = make_shapes(out, n_train=n_train, n_val=n_val, size=size, seed=seed,
                            image_format=image_format, workers=workers, progress=progress,
                            difficulty=DEMO if difficulty == "demo" else STANDARD)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    root = paths["root"]
    click.echo(f"wrote {n_train} train + {n_val} val images ({size}x{size} {image_format}, "
               f"{paths['objects']} objects, seed {seed}) in {elapsed:.1f} s to {root}")
    click.echo(f"  images:  {root / 'images' / 'train'}  {root / 'images' / 'val'}")
    click.echo(f"  labels:  {root / 'labels' / 'train'}  {root / 'labels' / 'val'}")
    click.echo(f"  lists:   {paths['train']}  {paths['val']}")
    click.echo(f"  classes: {paths['names']} ({', '.join(CLASS_NAMES)})")
    click.echo(f"  data:    {paths['data']}")
