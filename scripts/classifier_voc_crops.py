"""Darknet-19's recipe in miniature on real data: train the bundled `darknet-mini` classifier on
the VOC 2007 crops, fine-tune it at a higher resolution, and start a detector from it.

    python scripts/classifier_voc_crops.py [--crops ../shared/voc2007-crops]
        [--voc ../shared/voc2007-sample] [--work runs/voc_crops] [--phases all]
        [--no-torch] [--epochs 12] [--finetune-epochs 3] [--detector-iterations 300]

Phases (each prints its figures; later ones reuse earlier results in --work):
  classify   64 px, 12 epochs, batch 64, SGD lr 0.1 poly power 4, momentum 0.9, decay 0.0005,
             random crops + flips (the cfg's [net]); top-1/top-5 on held-out crops (held out by
             photo: crops of one VOC image stay on one side). Wall time against PyTorch running
             the same network, recipe and batches (our loader feeds both).
  hires      that model evaluated at 128 px, then 3 epochs of fine-tune at 128 px (lr 0.01):
             the "high resolution classifier" of the YOLOv2 paper.
  backbone   yolov2-mini on the VOC sample (200 images train, 50 val): from the darknet-mini
             backbone (`--weights classifier.h5 --cutoff 11`) and from scratch, the same
             iterations; mAP@0.5 of both.

Every training and evaluation runs through the installed `yolo9000` command, as a user runs it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YOLO9000 = str(Path(sys.executable).with_name("yolo9000"))
VAL_FRACTION = 0.2


def run(args, log=None):
    """Run the installed command; return (seconds, stdout). Its output is echoed live."""
    print("$ yolo9000 " + " ".join(str(a) for a in args), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([YOLO9000, *map(str, args)], stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if log is not None:
        Path(log).write_text(proc.stdout)
    tail = proc.stdout.strip().splitlines()[-6:]
    print("\n".join("  " + line for line in tail), flush=True)
    if proc.returncode:
        sys.exit(f"yolo9000 exited with {proc.returncode}")
    return seconds, proc.stdout


def evaluate(weights, data, size, out):
    metrics = out / f"metrics_{size}.json"
    run(["evaluate", "--weights", weights, "--data", data, "--size", size, "--project", out,
         "--name", f"eval_{size}", "--exist-ok", "--metrics-json", metrics])
    return json.loads(metrics.read_text())


# -- data -----------------------------------------------------------------------------------
def link_tree(dataset, records, folder):
    """A class-folder tree of symbolic links to the records' images."""
    if folder.exists():
        shutil.rmtree(folder)
    for r in records:
        target = folder / dataset.names[r.label] / Path(r.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.abspath(r.path), target)


def split_crops(crops, work, seed=0):
    from yolo9000.data.formats import load_classification_dataset
    full = load_classification_dataset(crops)
    train, val = full.split(VAL_FRACTION, seed=seed)
    link_tree(full, train.records, work / "crops_train")
    link_tree(full, val.records, work / "crops_val")
    print(f"crops: {len(full)} images, {len(full.names)} classes -> {len(train)} train, "
          f"{len(val)} held out (by photo, seed {seed}); majority class share of the held-out "
          f"set {val.class_counts().max() / len(val):.3f}")
    return work / "crops_train", work / "crops_val"


def split_voc(voc, work, n_val=50):
    """Two VOC-layout folders (links) of the sample: all but the last n_val ids, and those."""
    ids = sorted(p.stem for p in (Path(voc) / "Annotations").glob("*.xml"))
    parts = {"voc_train": ids[:-n_val], "voc_val": ids[-n_val:]}
    for name, chosen in parts.items():
        root = work / name
        if root.exists():
            shutil.rmtree(root)
        for sub, suffix in (("Annotations", ".xml"), ("JPEGImages", ".jpg")):
            (root / sub).mkdir(parents=True)
            for i in chosen:
                os.symlink(os.path.abspath(Path(voc) / sub / f"{i}{suffix}"), root / sub / f"{i}{suffix}")
        (root / "ImageSets" / "Main").mkdir(parents=True)
        (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(chosen) + "\n")
    print(f"VOC sample: {len(parts['voc_train'])} train, {len(parts['voc_val'])} val images")
    return work / "voc_train", work / "voc_val"


# -- PyTorch, the same network and recipe ------------------------------------------------------
def torch_classifier(classes):
    import torch.nn as nn
    layers, channels = [], 3
    for k, filters in enumerate([16, 32, 64, 128, 256, 512]):
        layers += [nn.Conv2d(channels, filters, 3, padding=1, bias=False),
                   nn.BatchNorm2d(filters, momentum=0.01), nn.LeakyReLU(0.1)]
        if k < 5:
            layers.append(nn.MaxPool2d(2, 2))
        channels = filters
    layers += [nn.Conv2d(channels, classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def torch_run(train_dir, val_dir, epochs, size, lr, batch, model=None, seed=0, threads=2):
    """Train (and time) the PyTorch twin on batches from our own loader: both sides see the
    same images with the same augmentation, so the wall times compare the training steps."""
    import numpy as np
    import torch
    from yolo9000.data.formats import load_classification_dataset
    from yolo9000.data.loader import BatchLoader
    from yolo9000.model.cfg import load_cfg
    from yolo9000.model.network import NetOptions
    from yolo9000.training.tasks import ClassificationTask
    from types import SimpleNamespace

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train = load_classification_dataset(train_dir)
    val = load_classification_dataset(val_dir, names=train.names)
    options = NetOptions.from_section(load_cfg("darknet-mini").net)
    scale = size / options.width
    options.width = options.height = size
    options.min_crop, options.max_crop = round(options.min_crop * scale), round(options.max_crop * scale)
    net_like = SimpleNamespace(options=options)
    task = ClassificationTask()
    augment = task.augment(net_like, True)
    model = model or torch_classifier(len(train.names))
    decayed = [p for n, p in model.named_parameters() if p.ndim == 4]
    others = [p for n, p in model.named_parameters() if p.ndim != 4]
    optimiser = torch.optim.SGD([{"params": decayed, "weight_decay": 0.0005},
                                 {"params": others, "weight_decay": 0.0}], lr=lr, momentum=0.9)
    iterations = int(np.ceil(epochs * len(train) / batch))
    loader = BatchLoader(train, batch, augment, seed=seed, workers=2)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    t0 = time.perf_counter()
    for it, b in loader.iterate(0, iterations, lambda i: (size, size)):
        for group in optimiser.param_groups:
            group["lr"] = lr * (1 - it / iterations) ** 4
        optimiser.zero_grad()
        loss = loss_fn(model(torch.from_numpy(b.images)), torch.from_numpy(b.labels))
        loss.backward()
        optimiser.step()
    seconds = time.perf_counter() - t0
    loader.close()
    return model, seconds, torch_accuracy(model, val, size), train.names


def torch_accuracy(model, val, size):
    import numpy as np
    import torch
    from yolo9000.data.classification_augment import center_crop
    from yolo9000.data.images import load_image
    model.eval()
    correct1 = correct5 = 0
    with torch.no_grad():
        for start in range(0, len(val), 128):
            records = val.records[start:start + 128]
            x = np.stack([center_crop(load_image(r.path).rgb, size, size) for r in records])
            logits = model(torch.from_numpy(x)).numpy()
            labels = np.array([r.label for r in records])
            own = logits[np.arange(len(records)), labels][:, None]
            ranks = (logits >= own).sum(axis=1) - 1
            correct1 += int((ranks < 1).sum())
            correct5 += int((ranks < 5).sum())
    return correct1 / len(val), correct5 / len(val)


# -- the phases ---------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", default=str(SHARED / "voc2007-crops"))
    ap.add_argument("--voc", default=str(SHARED / "voc2007-sample"))
    ap.add_argument("--work", default="runs/voc_crops")
    ap.add_argument("--phases", default="classify,hires,backbone")
    ap.add_argument("--no-torch", action="store_true", help="Skip the PyTorch comparison.")
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--finetune-epochs", type=float, default=3)
    ap.add_argument("--detector-iterations", type=int, default=300)
    ap.add_argument("--detector-size", type=int, default=256)
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train_dir, val_dir = split_crops(args.crops, work)
    low = work / "classify_64" / "weights" / "last.h5"
    figures = {}

    if "classify" in phases:
        seconds, _ = run(["train", "--cfg", "darknet-mini", "--data", train_dir, "--val", val_dir,
                          "--epochs", args.epochs, "--batch", 64, "--size", 64,
                          "--project", work, "--name", "classify_64", "--exist-ok"],
                         log=work / "classify_64.log")
        m = evaluate(low, val_dir, 64, work / "classify_64")
        figures.update(ours_64_top1=m["top1"], ours_64_top5=m["top5"], ours_64_seconds=seconds)
        if not args.no_torch:
            model, tseconds, (t1, t5), _ = torch_run(train_dir, val_dir, args.epochs, 64, 0.1, 64)
            figures.update(torch_64_top1=t1, torch_64_top5=t5, torch_64_seconds=tseconds)
            import torch
            torch.save(model.state_dict(), work / "torch_64.pt")
        print_figures(figures)

    if "hires" in phases:
        m = evaluate(low, val_dir, 128, work / "classify_64")
        figures.update(ours_64_at_128_top1=m["top1"])
        seconds, _ = run(["train", "--weights", low, "--size", 128, "--data", train_dir,
                          "--val", val_dir, "--epochs", args.finetune_epochs, "--lr", 0.01,
                          "--project", work, "--name", "finetune_128", "--exist-ok"],
                         log=work / "finetune_128.log")
        m = evaluate(work / "finetune_128" / "weights" / "last.h5", val_dir, 128,
                     work / "finetune_128")
        figures.update(ours_finetuned_128_top1=m["top1"], ours_finetuned_128_top5=m["top5"],
                       ours_finetune_seconds=seconds)
        if not args.no_torch and (work / "torch_64.pt").exists():
            import torch
            from yolo9000.data.formats import load_classification_dataset
            model = torch_classifier(20)
            model.load_state_dict(torch.load(work / "torch_64.pt"))
            val = load_classification_dataset(val_dir, names=load_classification_dataset(train_dir).names)
            figures["torch_64_at_128_top1"] = torch_accuracy(model, val, 128)[0]
            model, tseconds, (t1, t5), _ = torch_run(train_dir, val_dir, args.finetune_epochs, 128,
                                                     0.01, 64, model=model)
            figures.update(torch_finetuned_128_top1=t1, torch_finetune_seconds=tseconds)
        print_figures(figures)

    if "backbone" in phases:
        voc_train, voc_val = split_voc(args.voc, work)
        common = ["--cfg", "yolov2-mini", "--data", voc_train, "--val", voc_val,
                  "--size", args.detector_size, "--max-batches", args.detector_iterations,
                  "--batch", 16, "--subdivisions", 1, "--optimizer", "adam", "--lr", 0.001,
                  "--burn-in", 50, "--steps", f"{int(args.detector_iterations * 0.8)}",
                  "--scales", ".1", "--seed", 0, "--project", work, "--exist-ok"]
        for label, extra in (("from_backbone", ["--weights", low, "--cutoff", 11]),
                             ("from_scratch", [])):
            seconds, out = run(["train", *common, "--name", f"detector_{label}", *extra],
                               log=work / f"detector_{label}.log")
            results = (work / f"detector_{label}" / "results.csv").read_text().splitlines()
            last = dict(zip(results[0].split(","), results[-1].split(",")))
            figures[f"detector_{label}_mAP50"] = float(last["mAP50"])
            figures[f"detector_{label}_seconds"] = seconds
        print_figures(figures)
    (work / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    return 0


def print_figures(figures):
    print("\n" + "\n".join(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}"
                           for k, v in figures.items()) + "\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
