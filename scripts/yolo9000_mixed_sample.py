"""The full-size YOLO9000 (`yolo9000.cfg`, the 9418-node WordTree) trains on a mixed sample and
resumes: COCO-format detection data read through the cfg's `map=` (coco9k.map) and class folders
named by WordNet ids, as YOLO9000 mixed COCO and ImageNet.

    python scripts/yolo9000_mixed_sample.py [--voc ../shared/voc2007-sample]
        [--crops ../shared/voc2007-crops] [--work runs/yolo9000_sample] [--size 288]

The COCO sample is the VOC 2007 sample written as a COCO instances file with COCO's 80
categories (the VOC classes are among them); the classification sample is the VOC crops of a
few classes, each folder renamed to its class's WordNet id in the tree. It trains 3 iterations,
resumes for 2 more, checks that the resumed run's log continues the first, then writes the
weights as a darknet .weights file and runs `detect --model yolo9000` on it with both tree walks
(what a holder of darknet's published yolo9000.weights runs).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YOLO9000 = str(Path(sys.executable).with_name("yolo9000"))
# VOC classes whose crops become the classification sample, by a name that is one tree node
CLASSIFICATION_CLASSES = ("dog", "cat", "bird", "bicycle")


def coco_sample(voc, out):
    """The VOC sample as a COCO instances file over COCO's 80 categories (ids 1..80 in the
    order of coco.names, which is the order coco9k.map maps)."""
    from yolo9000.model.zoo import bundled_file
    names = bundled_file("coco.names").read_text().split("\n")
    names = [n for n in names if n]
    category = {n: k + 1 for k, n in enumerate(names)}
    images, annotations = [], []
    for k, xml in enumerate(sorted((Path(voc) / "Annotations").glob("*.xml"))):
        root = ET.parse(xml).getroot()
        size = root.find("size")
        images.append({"id": k, "file_name": f"{xml.stem}.jpg",
                       "width": int(size.find("width").text), "height": int(size.find("height").text)})
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            x1, y1, x2, y2 = (float(b.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
            annotations.append({"id": len(annotations), "image_id": k,
                                "category_id": category[obj.find("name").text],
                                "bbox": [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1],
                                "area": (x2 - x1 + 1) * (y2 - y1 + 1), "iscrowd": 0})
    out.mkdir(parents=True, exist_ok=True)
    images_dir = out / "images"
    if not images_dir.exists():
        os.symlink(os.path.abspath(Path(voc) / "JPEGImages"), images_dir)
    path = out / "instances_sample.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": i, "name": n} for n, i in category.items()]}))
    print(f"COCO sample: {len(images)} images, {len(annotations)} boxes, 80 categories: {path}")
    return path


def wordnet_folders(crops, out, per_class=40):
    """Class folders of VOC crops renamed to the WordNet id of their class's tree node."""
    from yolo9000.data.classes import tree_nodes
    from yolo9000.model.wordtree import WordTree
    tree = WordTree.bundled("9k")
    nodes = tree_nodes(CLASSIFICATION_CLASSES, tree)
    if out.exists():
        shutil.rmtree(out)
    for name, node in zip(CLASSIFICATION_CLASSES, nodes):
        folder = out / tree.wnids[node]
        folder.mkdir(parents=True)
        for image in sorted((Path(crops) / name).glob("*.jpg"))[:per_class]:
            os.symlink(os.path.abspath(image), folder / image.name)
        print(f"classification: {name} -> {tree.wnids[node]} ({tree.names[node]}), "
              f"{per_class} crops")
    return out


def run(*args):
    print("$ yolo9000 " + " ".join(map(str, args)), flush=True)
    proc = subprocess.run([YOLO9000, *map(str, args)], stdout=subprocess.PIPE, text=True)
    print("\n".join("  " + line for line in proc.stdout.strip().splitlines()[-8:]), flush=True)
    if proc.returncode:
        sys.exit(f"yolo9000 exited with {proc.returncode}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voc", default=str(SHARED / "voc2007-sample"))
    ap.add_argument("--crops", default=str(SHARED / "voc2007-crops"))
    ap.add_argument("--work", default="runs/yolo9000_sample")
    ap.add_argument("--size", type=int, default=288)
    args = ap.parse_args()
    work = Path(args.work).resolve()
    coco = coco_sample(args.voc, work / "coco")
    folders = wordnet_folders(args.crops, work / "wnid_crops")
    run_dir = work / "train"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run("train", "--cfg", "yolo9000", "--data", coco, "--classification-data", folders,
        "--classification-ratio", 0.5, "--size", args.size, "--batch", 4, "--subdivisions", 2,
        "--max-batches", 5, "--iterations", 3, "--no-multiscale", "--workers", 0,
        "--project", work, "--name", "train")
    run("train", "--resume", run_dir)
    log = (run_dir / "train_log.csv").read_text().splitlines()
    print(f"train_log.csv: {len(log) - 1} iterations (3 before the resume, 2 after)")
    print("\n".join(log))
    # what a holder of darknet's yolo9000.weights runs: the trained weights as a darknet file
    weights = work / "yolo9000-sample.weights"
    run("convert", run_dir / "weights" / "last.h5", "--output", weights)
    photo = ROOT / "tests" / "fixtures" / "images" / "dog.jpg"
    for walk in ("paper", "darknet"):
        run("detect", photo, "--model", "yolo9000", "--weights", weights, "--size", args.size,
            "--thresh", 0.05, "--tree-walk", walk, "--save-json", work / f"dets_{walk}.json",
            "--project", work, "--name", f"detect_{walk}", "--exist-ok")
    return 0 if len(log) == 6 else 1


if __name__ == "__main__":
    sys.exit(main())
