"""`yolo9000 demo --wordtree`: YOLO9000's joint training, in miniature, end to end.

The paper trained on COCO boxes and ImageNet labels together and then detected ImageNet classes
that never had a box (16.0 mAP on 156 of them). Here (data/synthetic_hierarchy.py): detection
images whose boxes mostly name only the coarse node (polygon / round / spiky), a few fine
shapes boxed too, and classification crops of all eight fine shapes. A word-tree YOLOv2
(`yolov2-shapes-tree`) first trains on the boxes alone (the baseline); then, as YOLO9000 began
from a trained model, it continues on boxes and crops together. Both are scored on validation
images labelled with fine classes: fine classes with boxes, fine classes that never had a box,
and the coarse nodes.

Why the joint stage starts from the baseline: by darknet's rule a classification image teaches
its class at the prediction most sure of it and pushes every other objectness down. From
scratch that prediction is a random one, and the push makes the detector blind (measured: coarse
mAP 0.72 against the baseline's 0.85 after 2000 iterations, most fine shapes near 0); from a
detector that finds shapes it is the shape's own prediction.
"""
import time
from pathlib import Path

import numpy as np

# the joint stage continues the boxes-only model for this share of the iterations
JOINT_SHARE = 2 / 3


def run(root, n_train, n_val, size, iterations, batch, lr, workers, seed, detect_images,
        crops_per_class, classification_ratio, echo, warn):
    """The experiment in the empty folder `root`; echo(line) prints its steps, warn(line) the
    training's warnings."""
    from ..data.anchors import box_wh, kmeans_anchors
    from ..data.formats import load_dataset
    from ..data.synthetic_hierarchy import (BOXED_FINE, COARSE, FINE, HIERARCHY, NEVER_BOXED,
                                            coarse_view, make_hierarchy_data)
    from ..fileio import atomic_write_text
    from ..model.cfg import anchors_line
    from ..progress import Progress
    t_start = time.perf_counter()
    echo(f"yolo9000 demo --wordtree: everything goes to {root}")
    echo("      the tree: " + "; ".join(f"{c} -> {', '.join(kids)}"
                                       for c, kids in HIERARCHY.items()))

    # 1. data ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    total = n_train + n_val + crops_per_class * len(FINE)
    echo(f"[1/5] rendering {n_train} detection images (boxes named {', '.join(COARSE)}, "
         f"and {', '.join(BOXED_FINE)}), {crops_per_class} classification crops of each "
         f"of the {len(FINE)} shapes, {n_val} validation images with fine labels ...")
    bar = Progress(total, desc="render", unit="img")
    paths = make_hierarchy_data(root / "data", n_train, n_val, crops_per_class, size, seed=seed,
                                progress=lambda done, _: bar.update(done - bar.n))
    bar.close()
    echo(f"      in {time.perf_counter() - t0:.1f} s: {root / 'data'}")

    # 2. anchors -----------------------------------------------------------------------------
    train_set = load_dataset(paths["detection"])
    grid = size // 16
    clusters = kmeans_anchors(box_wh(train_set), 5, restarts=10, seed=seed)
    anchors = [float(v) for v in (clusters.centroids * grid).reshape(-1)]
    atomic_write_text(root / "anchors.txt", anchors_line(anchors, decimals=2) + "\n")
    echo(f"[2/5] dimension clusters: {anchors_line(anchors, decimals=2)} "
         f"(avg IoU {100 * clusters.avg_iou:.1f}%)")

    # 3. the baseline, then joint training from it ---------------------------------------
    from ..model.network import Network
    from ..training.trainer import Trainer
    joint_iterations = max(1, round(iterations * JOINT_SHARE))
    stages = {
        "detection-only": _settings(root / "train_detection-only", paths, None, size,
                                    iterations, batch, lr, seed, anchors, None, workers),
        "joint": _settings(root / "train_joint", paths, root / "train_detection-only" /
                           "weights" / "best.h5", size, joint_iterations, batch, lr / 4, seed,
                           anchors, classification_ratio, workers)}
    steps = {"detection-only": f"[3/5] training yolov2-shapes-tree on the boxes alone (the "
                               f"baseline): {iterations} iterations of {batch} images with Adam ...",
             "joint": f"[4/5] joint training, from the baseline (as YOLO9000 started from a "
                      f"trained model): {joint_iterations} iterations of {batch} images, "
                      f"{classification_ratio:g} of each from the classification crops ..."}
    nets = {}
    for label, settings in stages.items():
        echo(steps[label])
        t0 = time.perf_counter()
        Trainer(settings, echo=echo, warn=warn).setup().train()
        echo(f"      trained in {time.perf_counter() - t0:.0f} s")
        # the final evaluation wrote best.h5 with batch-norm statistics exact for the final
        # weights, at the base size
        nets[label] = Network.load(Path(settings.out) / "weights" / "best.h5")

    # 4. the paper's experiment --------------------------------------------------------------
    val = load_dataset(paths["val"])
    rows = {}
    for label, net in nets.items():
        fine_ap = _class_aps(net, val)
        coarse_ap = _class_aps(net, coarse_view(val))
        rows[label] = (_mean([fine_ap[n] for n in BOXED_FINE]),
                       _mean([fine_ap[n] for n in NEVER_BOXED]),
                       _mean([coarse_ap[n] for n in COARSE]), fine_ap)
    echo(f"[5/5] validation on {n_val} images labelled with fine classes, mAP@0.5:")
    echo(f"      {'model':16s} {'fine, boxed':>12s} {'fine, never boxed':>18s} {'coarse nodes':>13s}")
    for label, (boxed, never, coarse, _) in rows.items():
        echo(f"      {label:16s} {boxed:12.3f} {never:18.3f} {coarse:13.3f}")
    echo("      per fine class (joint / detection-only): " + ", ".join(
        f"{n} {rows['joint'][3][n]:.2f}/{rows['detection-only'][3][n]:.2f}" for n in FINE))
    atomic_write_text(root / "results.txt", "".join(
        f"{label} fine_boxed {boxed:.4f} fine_never_boxed {never:.4f} coarse {coarse:.4f}\n"
        for label, (boxed, never, coarse, _) in rows.items()))

    # detections, named by their path in the tree ---------------------------------------------
    out_dir = _draw(nets["joint"], val, root / "detections", detect_images)
    model_path = root / "shapes-tree.h5"
    nets["joint"].save(model_path, description="yolo9000 demo --wordtree: joint training on shapes")
    echo(f"      detections of the jointly trained model, named by their tree path: {out_dir}")
    echo(f"done in {time.perf_counter() - t_start:.0f} s. Model: {model_path} "
         f"(yolo9000 detect IMAGES --weights {model_path})")


def _settings(out, paths, start, size, iterations, batch, lr, seed, anchors, ratio, workers):
    """A training run: from scratch on the boxes alone, or (start: the baseline's weights)
    jointly on boxes and classification crops."""
    from ..kernels.threads import current_threads
    from ..training.settings import TrainSettings
    return TrainSettings(
        cfg="yolov2-shapes-tree", data=str(paths["detection"]), val=str(paths["val"]),
        classification_data=str(paths["crops"]) if start else None,
        classification_ratio=ratio if start else None, weights=str(start) if start else None,
        out=str(out), max_batches=iterations, batch=batch, subdivisions=2, learning_rate=lr,
        burn_in=0 if start else min(50, iterations // 5), policy="steps",
        steps=[int(iterations * 0.8), int(iterations * 0.93)], scales=[0.1, 0.1], size=size,
        anchors=anchors, workers=workers, seed=seed, optimizer="adam",
        parallel=min(2, current_threads()), save_every=max(50, iterations // 4))


def _mean(aps):
    """The mean AP over the classes the validation images have (a class without any is nan)."""
    aps = [a for a in aps if np.isfinite(a)]
    return float(np.mean(aps)) if aps else float("nan")


def _class_aps(net, dataset):
    """{class name: VOC AP@0.5} of a word-tree network on a dataset, each class scored as its
    tree node."""
    from ..data.classes import tree_nodes
    from ..inference.detector import Detector
    from ..inference.evaluation import evaluate_records
    detector = Detector.from_network(net, names=dataset.names, thresh=0.005, evaluation=True,
                                     class_nodes=tree_nodes(dataset.names, net.region.tree))
    voc, _, _ = evaluate_records(detector, dataset.records, batch=16)
    return {name: float(voc.ap[k]) for k, name in enumerate(dataset.names)}


def _draw(net, val, out_dir, count):
    from PIL import Image

    from ..data.images import load_image
    from ..inference.detector import Detector
    from ..inference.draw import draw_detections
    out_dir.mkdir(exist_ok=True)
    tree = net.region.tree
    # each node labelled by its path from the root, e.g. "round > ellipse"
    labels = [" > ".join(tree.names[k] for k in reversed(tree.path(node)))
              for node in range(tree.n)]
    det = Detector.from_network(net, names=labels, thresh=0.4)
    for record in val.records[:count]:
        image = Image.fromarray(load_image(record.path).rgb)
        draw_detections(image, det(record.path)).save(out_dir / f"{record.path.rsplit('/', 1)[-1][:-4]}.png")
    return out_dir
