"""`yolo9000 demo`: the whole pipeline on synthetic shapes, end to end, in minutes on a CPU.

make-shapes -> cluster-anchors -> train (a small YOLOv2 with the passthrough layer) ->
evaluate -> detect, each step printing what it did and where its results went.
"""
import os
import time
from pathlib import Path

# Each batch is two mini-batches (darknet's subdivisions), computed side by side on two cores
# (training/replicas.py); the numbers are the same on one core, only slower.
SUBDIVISIONS = 2


def run(root, n_train, n_val, size, iterations, batch, lr, workers, seed, detect_images, echo,
        warn):
    """The demo in the empty folder `root`; echo(line) prints its steps, warn(line) the
    training's warnings."""
    t_start = time.perf_counter()
    echo(f"yolo9000 demo: everything goes to {root}")

    # 1. data ------------------------------------------------------------------------------
    from ..data.synthetic_shapes import CLASS_NAMES, DEMO, make_shapes
    t0 = time.perf_counter()
    echo(f"[1/5] rendering {n_train} + {n_val} synthetic shape images ({size}x{size}) ...")
    paths = make_shapes(root / "data", n_train=n_train, n_val=n_val, size=size, seed=seed,
                        difficulty=DEMO, workers=os.cpu_count() or 1)
    echo(f"      {paths['objects']} objects of {len(CLASS_NAMES)} classes ({', '.join(CLASS_NAMES)}) "
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
    echo(f"[2/5] dimension clusters (k-means, d = 1 - IoU, k=5) on {len(box_wh(train_set))} boxes "
         f"in {time.perf_counter() - t0:.1f} s: avg IoU {100 * result.avg_iou:.1f}%")
    echo(f"      {line}   ({grid}x{grid} grid) -> {root / 'anchors.txt'}")

    # 3. training ----------------------------------------------------------------------------
    from ..kernels.threads import current_threads
    from ..training.settings import TrainSettings
    from ..training.trainer import Trainer
    subdivisions = SUBDIVISIONS if batch % SUBDIVISIONS == 0 else 1
    # the rate divided by 10 at 70% and 90% of the run: at 80% and 93% the model was still
    # rising steeply at the end (mAP@0.5 0.83 at 75%, 0.9098 at 100%); with the longer tail
    # at the low rates 0.9148, the same seed and iterations (see BENCHMARKS.md#demo)
    steps = [int(iterations * 0.7), int(iterations * 0.9)]
    settings = TrainSettings(
        cfg="yolov2-shapes", data=str(paths["train"]), val=str(paths["val"]), out=str(root / "train"),
        max_batches=iterations, batch=batch, subdivisions=subdivisions, learning_rate=lr,
        burn_in=min(50, iterations // 5), policy="steps", steps=steps, scales=[0.1, 0.1], size=size,
        anchors=[float(v) for v in anchors.reshape(-1)], workers=workers, seed=seed,
        parallel=min(subdivisions, current_threads()), optimizer="adam",
        eval_every=max(1, iterations // 4), save_every=max(50, iterations // 4))
    echo(f"[3/5] training yolov2-shapes (passthrough, batch norm, anchors, multi-scale) for "
         f"{iterations} iterations of {batch} images with Adam ...")
    t0 = time.perf_counter()
    trainer = Trainer(settings, echo=echo, warn=warn).setup()
    trainer.train()
    curves = trainer.run_dir / "results.png"
    echo(f"      trained in {time.perf_counter() - t0:.0f} s: {trainer.weights_dir / 'last.h5'}"
         + (f"; loss curves {curves}" if curves.is_file() else ""))

    # 4. evaluation --------------------------------------------------------------------------
    from ..metrics.detection import format_table
    voc, coco = trainer.last_voc, trainer.last_coco
    echo(f"[4/5] validation on {n_val} images: mAP@0.5 {voc.map:.4f}, mAP@[.5:.95] {coco.map:.4f}")
    echo(format_table(voc, trainer.names))
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
    echo(f"[5/5] detections drawn on {len(val_records)} validation images: {out_dir}")
    echo(f"done in {time.perf_counter() - t_start:.0f} s. Model: {model_path} "
         f"(use it with: yolo9000 detect IMAGES --weights {model_path})")


def _stride_of_shapes_model(size):
    from ..model.network import Network
    net = Network.from_cfg("yolov2-shapes", width=size, height=size)
    return size // net.output_shape[1]
