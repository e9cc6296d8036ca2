"""Real-data sanity run: train a small YOLOv2 on the first 64 images of the VOC 2007 sample
(augmentation off) and evaluate it on the same 64 images.

Memorising 64 real images is easy for a correct detector and impossible for a subtly wrong
one: targets, region loss, decoding, NMS and the VOC evaluation must all agree on real boxes
for mAP@0.5 to climb past 0.8.

    python scripts/overfit_voc.py [--voc ../shared/voc2007-sample] [--size 224] [--iterations 500]
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voc", default=str(ROOT.parent / "shared" / "voc2007-sample"))
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--optimizer", default="adam", choices=["sgd", "adam"])
    ap.add_argument("--out", default="runs/overfit_voc")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from yolo9000.data.anchors import box_wh, kmeans_anchors
    from yolo9000.data.formats import load_dataset
    from yolo9000.metrics.detection import format_table
    from yolo9000.kernels.threads import set_threads
    from yolo9000.runs import new_run_dir
    from yolo9000.training.settings import TrainSettings
    from yolo9000.training.trainer import Trainer
    print(f"threads: {set_threads(args.threads)}")

    full = load_dataset(args.voc)
    order = sorted(range(len(full.records)), key=lambda i: Path(full.records[i].path).stem)
    subset = full.subset(order[:args.images])
    print(f"{len(subset.records)} images ({Path(subset.records[0].path).stem} .. "
          f"{Path(subset.records[-1].path).stem}), {sum(len(r.classes) for r in subset.records)} objects, "
          f"{len(full.names)} classes")
    grid = args.size // 16
    clusters = kmeans_anchors(box_wh(subset), 5, restarts=10, seed=0)
    anchors = (clusters.centroids * grid).reshape(-1).tolist()
    print(f"anchors ({grid}x{grid} grid): " + ", ".join(f"{v:.2f}" for v in anchors))

    out = new_run_dir(Path(args.out).parent, Path(args.out).name)
    s = TrainSettings(cfg="yolov2-shapes", data=args.voc, out=str(out), max_batches=args.iterations,
                      batch=args.batch, subdivisions=1, learning_rate=args.lr, burn_in=20,
                      policy="steps", steps=[int(args.iterations * .8), int(args.iterations * .93)],
                      scales=[.1, .1], size=args.size, multiscale=False, augment=False,
                      anchors=anchors, optimizer=args.optimizer, workers=0, seed=0,
                      save_every=100)
    trainer = Trainer(s).setup()
    trainer.train_set = subset
    trainer.val_set = subset
    t0 = time.perf_counter()
    result = trainer.train()
    minutes = (time.perf_counter() - t0) / 60
    print(format_table(trainer.last_voc, trainer.names))
    print(f"mAP@0.5 on the {len(subset.records)} training images: {result['mAP50']:.4f} "
          f"(mAP@[.5:.95] {result['mAP50_95']:.4f}) after {args.iterations} iterations, "
          f"{minutes:.1f} min; run folder {out}")
    return 0 if result["mAP50"] >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
