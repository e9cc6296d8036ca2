"""Small datasets written into tmp_path for the reader tests: images, VOC XML, COCO JSON and
YOLO label files."""
import json

from PIL import Image


def make_image(path, width, height):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path)
    return path


def voc_xml(filename, width, height, objects):
    objs = "".join(
        f"<object><name>{name}</name><difficult>{int(diff)}</difficult><bndbox>"
        f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, (x1, y1, x2, y2), diff in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{objs}</annotation>")


def make_voc(root, entries, split=None):
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem, (w, h, objects) in entries.items():
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", w, h, objects))
        if w > 0 and h > 0:
            make_image(root / "JPEGImages" / f"{stem}.jpg", w, h)   # readers check it exists
    if split:
        (root / "ImageSets" / "Main").mkdir(parents=True)
        for name, ids in split.items():
            (root / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return root


def one_labelled_image(root, label_text):
    """root/images/a.jpg (10x10) with root/labels/a.txt holding label_text; -> the label path."""
    make_image(root / "images" / "a.jpg", 10, 10)
    (root / "labels").mkdir()
    label = root / "labels" / "a.txt"
    label.write_text(label_text)
    return label


def coco_json(path, annotations, images=None, categories=None):
    data = {
        "images": images or [{"id": 7, "file_name": "a.jpg", "width": 200, "height": 100},
                             {"id": 9, "file_name": "b.jpg", "width": 50, "height": 50}],
        "annotations": annotations,
        "categories": categories or [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
                                     {"id": 18, "name": "dog"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
