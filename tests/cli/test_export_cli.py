"""`yolo9000 export` through the installed console script: the exported shapes model run by
ONNX Runtime finds what `yolo9000 detect` finds, its options and errors, and the one line it
prints when the onnx package is missing."""
import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_folder_args, run_installed
from onnx_runtime import (assert_same_detections, detections_in_image, metadata,
                          onnxruntime_session)

INSTALL_LINE = 'error: exporting to ONNX needs the onnx package: pip install "yolo9000[onnx]"'


def needs_onnxruntime():
    pytest.importorskip("onnx", reason='onnx is not installed (pip install "yolo9000[onnx]")')
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the [test] extra "
                                              "has it)")


def shapes_images(folder):
    """A few synthetic shapes photos, cut to landscape, portrait and square: letterboxes with
    padding on either side, and none."""
    proc = run_installed("make-shapes", folder / "shapes", "--train-images", "0", "--val-images",
                         "3", "--image-size", "200", "--image-format", "png", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    sources = sorted((folder / "shapes" / "images" / "val").glob("*.png"))
    out = folder / "photos"
    out.mkdir()
    for source, window in zip(sources, [(0, 30, 200, 160), (40, 0, 157, 200), (0, 0, 200, 200)]):
        Image.open(source).crop(window).save(out / source.name)
    return out


def test_decoded_shapes_model_finds_what_detect_finds(tmp_path):
    needs_onnxruntime()
    from yolo9000.data.images import letterbox, load_image
    photos = shapes_images(tmp_path)
    detect = run_installed("detect", photos, "--save-json", tmp_path / "dets.json",
                           *run_folder_args(tmp_path / "detect"), cwd=tmp_path)
    assert detect.returncode == 0, detect.stderr
    export = run_installed("export", "--decode", "--output", "shapes.onnx", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    assert "wrote shapes.onnx" in export.stdout
    assert "bundled shapes demo model" in export.stderr

    session = onnxruntime_session(tmp_path / "shapes.onnx")
    meta = metadata(session)
    net_w, net_h = meta["input"]["width"], meta["input"]["height"]
    records = json.loads((tmp_path / "dets.json").read_text())
    assert len(records) == 3 and sum(len(r["detections"]) for r in records) >= 3
    for record in records:
        image = load_image(record["path"], net_size=(net_w, net_h))
        assert (image.width, image.height) == (record["width"], record["height"])
        x, _ = letterbox(image.rgb, net_w, net_h)
        boxes, scores, classes, batch_index = session.run(None, {"images": x[None]})
        assert set(batch_index.tolist()) <= {0}
        theirs = detections_in_image(boxes, scores, classes, image.width, image.height, net_w,
                                     net_h)
        ours = [(d["class"], d["score"], tuple(d["box"])) for d in record["detections"]]
        assert_same_detections(ours, theirs)
        assert all(meta["names"][d["class"]] == d["name"] for d in record["detections"])


def test_without_onnx_one_line_says_what_to_install(tmp_path):
    fake = tmp_path / "no-onnx"
    fake.mkdir()
    (fake / "onnx.py").write_text('raise ImportError("No module named \'onnx\' (simulated)")\n')
    proc = run_installed("export", "--output", "shapes.onnx", cwd=tmp_path,
                         env={"PYTHONPATH": str(fake)})
    assert proc.returncode == 1
    assert proc.stderr.strip() == INSTALL_LINE
    assert proc.stdout == "" and not (tmp_path / "shapes.onnx").exists()


@pytest.mark.parametrize("args,message", [
    (["--batch", "2", "--dynamic-batch"], "give --batch N or --dynamic-batch, not both"),
    (["--thresh", "0.3", "--nms", "0.5"], "--thresh, --nms only apply with --decode"),
    (["--tree-walk", "darknet"], "--tree-walk only applies with --decode"),
    (["--model", "yolov2-voc", "--cfg", "x.cfg"], "give --model or --cfg, not both"),
    (["--format", "tflite"], "Invalid value for '--format'"),
])
def test_usage_errors(tmp_path, args, message):
    proc = run_installed("export", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert not list(tmp_path.glob("*.onnx"))


def test_a_classifier_exports_beside_its_weights_but_decodes_nothing(tmp_path):
    needs_onnxruntime()
    from yolo9000 import Network
    Network.from_cfg("darknet-mini").save(tmp_path / "mini.h5", names=[f"c{k}" for k in range(20)])
    proc = run_installed("export", "mini.h5", "--decode", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: mini.h5 (stored cfg): decoding boxes needs a detector (a network ending in "
        "[region]): export this one without decode"]
    proc = run_installed("export", "mini.h5", "--size", "96", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    meta = metadata(onnxruntime_session(tmp_path / "mini.onnx"))
    assert meta["task"] == "classify" and meta["names"] == [f"c{k}" for k in range(20)]
    assert meta["input"]["width"] == 96 and "center_crop" in meta["input"]["preprocessing"]


def test_default_output_names():
    from yolo9000.commands.export import default_output
    assert str(default_output("runs/exp/weights/best.h5", "onnx")) == "runs/exp/weights/best.onnx"
    assert str(default_output("yolov2-voc.weights", "onnx")) == "yolov2-voc.onnx"
    assert str(default_output("darknet19_448.conv.23", "onnx")) == "darknet19_448.conv.23.onnx"
    assert str(default_output(None, "onnx")) == "shapes.onnx"


def test_darknet_weights_export_with_their_cfg_and_names(tmp_path):
    needs_onnxruntime()
    from yolo9000.model.zoo import DEFAULT_CHECKPOINT
    proc = run_installed("convert", DEFAULT_CHECKPOINT, "--output", "shapes.weights",
                         cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_installed("export", "shapes.weights", "--output", "shapes.weights",
                         "--cfg", "shapes.cfg", cwd=tmp_path)
    assert proc.returncode == 1 and "would overwrite the weights" in proc.stderr
    proc = run_installed("export", "shapes.weights", "--cfg", "shapes.cfg", "--names",
                         "shapes.names", "--size", "96", "--dynamic-batch", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("wrote shapes.onnx: input images Nx3x96x96 (RGB in [0, 1]); "
                                   "output Nx50x6x6")
    session = onnxruntime_session(tmp_path / "shapes.onnx")
    meta = metadata(session)
    assert meta["names"] == (tmp_path / "shapes.names").read_text().split()
    assert session.get_inputs()[0].shape == ["batch", 3, 96, 96]
    (out,) = session.run(None, {"images": np.full((2, 3, 96, 96), 0.5, np.float32)})
    assert out.shape == (2, 50, 6, 6)


def test_the_readme_export_example_runs_as_written(tmp_path):
    needs_onnxruntime()
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Export to ONNX"):]
    section = section[:section.index("\n## ")]
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    ran = 0
    for line in commands.splitlines():
        words = shlex.split(line.split("#")[0])
        if words[:1] == ["yolo9000"]:
            proc = run_installed(*words[1:], cwd=tmp_path)
            assert proc.returncode == 0, (line, proc.stderr)
            ran += 1
    assert ran == 2 and (tmp_path / "shapes.onnx").is_file()
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = metadata(onnxruntime_session(tmp_path / "shapes.onnx"))["names"]
    lines = proc.stdout.splitlines()
    assert lines and all(line.split()[0] in names for line in lines)
