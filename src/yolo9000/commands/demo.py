"""`yolo9000 demo`: the whole pipeline on synthetic shapes, end to end, in minutes on a CPU.

make-shapes -> cluster-anchors -> train (a small YOLOv2 with the passthrough layer) ->
evaluate -> detect, each step printing what it did and where its results went.
"""
import os
import time
from pathlib import Path

import click

from .options import (check_size_option, deprecated_option, echo_to_stderr,
                      out_folder_as_run_folder, run_folder_options)

# A model trained to convergence on shapes; the defaults are what the shipped model used.
DEFAULTS = dict(n_train=2000, n_val=200, size=128, iterations=3600, batch=8, lr=0.004)
WORDTREE_DEFAULTS = dict(n_train=1500, iterations=3000)
# --wordtree: the joint stage continues the boxes-only model for this share of --iterations
WORDTREE_JOINT_SHARE = 2 / 3
# Each batch is two mini-batches (darknet's subdivisions), computed side by side on two cores
# (parallel.py); the numbers are the same on one core, only slower.
SUBDIVISIONS = 2


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
    from ..runs import new_run_dir
    root = new_run_dir(project, name, exist_ok)
    if any(root.iterdir()):
        # the demo makes a dataset and a training run here; another run's files would mix in
        raise UserError("run folder is not empty; choose another --name", path=root)
    if wordtree:
        from . import demo_wordtree
        given = {k: v for k, v in dict(n_train=n_train, iterations=iterations).items()
                 if ctx.get_parameter_source(k).name != "DEFAULT"}
        options = {**WORDTREE_DEFAULTS, **given}
        return demo_wordtree.run(root, options["n_train"], n_val, size, options["iterations"],
                                 batch, lr, workers, seed, detect_images, crops_per_class,
                                 classification_ratio, WORDTREE_JOINT_SHARE)
    t_start = time.perf_counter()
    click.echo(f"yolo9000 demo: everything goes to {root}")

    # 1. data ------------------------------------------------------------------------------
    from ..data.synthetic_shapes import CLASS_NAMES, DEMO, make_shapes
    t0 = time.perf_counter()
    click.echo(f"[1/5] rendering {n_train} + {n_val} synthetic shape images ({size}x{size}) ...")
    paths = make_shapes(root / "data", n_train=n_train, n_val=n_val, size=size, seed=seed,
                        difficulty=DEMO, workers=os.cpu_count() or 1)
    click.echo(f"      {paths['objects']} objects of {len(CLASS_NAMES)} classes ({', '.join(CLASS_NAMES)}) "
               f"in {time.perf_counter() - t0:.1f} s: {paths['data']}")

    # 2. anchors -----------------------------------------------------------------------------
    from ..data.anchors import box_wh, kmeans_anchors
    from ..data.formats import load_dataset
    from ..fileio import atomic_write_text
    from ..model.cfg import anchors_line
    train_set = load_dataset(paths["train"])
    grid = size // _stride_of_shapes_model(size)
    t0 = time.perf_counter()
    result = kmeans_anchors(box_wh(train_set), 5, restarts=10, seed=seed)
    anchors = result.centroids * grid
    line = anchors_line(anchors, decimals=2)
    atomic_write_text(root / "anchors.txt", line + "\n")
    click.echo(f"[2/5] dimension clusters (k-means, d = 1 - IoU, k=5) on {len(box_wh(train_set))} boxes "
               f"in {time.perf_counter() - t0:.1f} s: avg IoU {100 * result.avg_iou:.1f}%")
    click.echo(f"      {line}   ({grid}x{grid} grid) -> {root / 'anchors.txt'}")

    # 3. training ----------------------------------------------------------------------------
    from ..kernels.threads import current_threads
    from ..training.settings import TrainSettings
    from ..training.trainer import Trainer
    subdivisions = SUBDIVISIONS if batch % SUBDIVISIONS == 0 else 1
    steps = [int(iterations * 0.8), int(iterations * 0.93)]
    settings = TrainSettings(
        cfg="yolov2-shapes", data=str(paths["train"]), val=str(paths["val"]), out=str(root / "train"),
        max_batches=iterations, batch=batch, subdivisions=subdivisions, learning_rate=lr,
        burn_in=min(50, iterations // 5), policy="steps", steps=steps, scales=[0.1, 0.1], size=size,
        anchors=[float(v) for v in anchors.reshape(-1)], workers=workers, seed=seed,
        parallel=min(subdivisions, current_threads()), optimizer="adam",
        eval_every=max(1, iterations // 4), save_every=max(50, iterations // 4))
    click.echo(f"[3/5] training yolov2-shapes (passthrough, batch norm, anchors, multi-scale) for "
               f"{iterations} iterations of {batch} images with Adam ...")
    t0 = time.perf_counter()
    trainer = Trainer(settings, echo=click.echo, warn=echo_to_stderr).setup()
    trainer.train()
    curves = trainer.run_dir / "results.png"
    click.echo(f"      trained in {time.perf_counter() - t0:.0f} s: {trainer.weights_dir / 'last.h5'}"
               + (f"; loss curves {curves}" if curves.is_file() else ""))

    # 4. evaluation --------------------------------------------------------------------------
    from ..metrics.detection import format_table
    voc, coco = trainer.last_voc, trainer.last_coco
    click.echo(f"[4/5] validation on {n_val} images: mAP@0.5 {voc.map:.4f}, mAP@[.5:.95] {coco.map:.4f}")
    click.echo(format_table(voc, trainer.names))
    model_path = root / "shapes.h5"
    trainer.net.resize(size, size)
    trainer.net.save(model_path, names=trainer.names, description="yolo9000 demo: synthetic shapes",
                     mAP50=float(voc.map), mAP50_95=float(coco.map))

    # 5. detections --------------------------------------------------------------------------
    from ..inference.detector import Detector
    from ..inference.draw import draw_detections
    from ..data.images import load_image
    from PIL import Image
    det = Detector.from_network(trainer.net, names=trainer.names, thresh=0.5)
    out_dir = root / "detections"
    out_dir.mkdir(exist_ok=True)
    val_records = trainer.val_set.records[:detect_images]
    for record in val_records:
        dets = det(record.path)
        image = Image.fromarray(load_image(record.path).rgb)
        draw_detections(image, dets, trainer.names).save(out_dir / (Path(record.path).stem + ".png"))
    click.echo(f"[5/5] detections drawn on {len(val_records)} validation images: {out_dir}")
    click.echo(f"done in {time.perf_counter() - t_start:.0f} s. Model: {model_path} "
               f"(use it with: yolo9000 detect IMAGES --weights {model_path})")


def _stride_of_shapes_model(size):
    from ..model.network import Network
    net = Network.from_cfg("yolov2-shapes", width=size, height=size)
    return size // net.output_shape[1]
