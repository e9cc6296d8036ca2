"""The ONNX export (model/onnx_export.py and the layers' to_onnx) against our own forward.

Every bundled cfg with random weights runs in ONNX Runtime as Network.forward does, to 1e-4
in max|d|/(1+|y|), at two input sizes and at batch 2 with a dynamic batch, and OpenVINO reads
and runs the same file; hand-made cfgs cover the layer options the bundled ones do not use;
the decode (+ NMS) gives the detector's boxes, and on a small hand-made word tree its nodes.
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason='onnx is not installed (pip install "yolo9000[onnx]")')
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the [test] extra has it)")

from yolo9000 import Network, UserError  # noqa: E402
from yolo9000.boxes import letterbox_info  # noqa: E402
from yolo9000.inference.detector import Detector  # noqa: E402
from yolo9000.model.onnx_export import DecodeSettings, export_onnx, onnx_model  # noqa: E402
from onnx_runtime import (assert_same_detections, detections_in_image, metadata,  # noqa: E402
                          onnxruntime_session)

TOLERANCE = 1e-4
# cfg -> the two input sizes it runs at: the large networks small (their forward and ONNX
# Runtime's stay fast), the tiny ones also at 416 (13x13: the 2x2/1 maxpool on an odd side)
BUNDLED = {"yolov2-voc": (64, 96), "yolov2": (96, 64), "yolov2-tiny-voc": (96, 416),
           "yolov2-tiny": (64, 96), "yolov2-shapes": (160, 96), "yolov2-shapes-tree": (96, 160),
           "yolov2-mini": (128, 64), "darknet19": (64, 96), "darknet19_448": (96, 64),
           "darknet-mini": (64, 128), "yolo9000": (64, 96)}


def randomise(net, seed=0, last_gain=3.0):
    """Random weights that keep the activations of a deep network near 1 (He-like, as
    scripts/bench.py draws them), batch-norm statistics far from the identity, and the last
    linear convolution `last_gain` times wider: softmaxes then are far from uniform, which
    would agree with anything.

    Every batch norm's first channel is a dead one, as trained darknet weights have: variance
    1e-8, where darknet's eps (added to the standard deviation, not the variance) sets the
    scale, and a scale of 1e-4 that keeps its output near 1."""
    rng = np.random.default_rng(seed)
    convs = [layer for layer in net.layers if layer.kind == "conv"]
    for layer in convs:
        fan_in = layer.weights[0].size
        gain = 1.0 if layer.activation == "linear" else 2.0
        std = (0.85 if layer.batch_normalize else 1.0) * np.sqrt(gain / fan_in)
        if layer is convs[-1] and layer.activation == "linear":
            std *= last_gain
        layer.weights[...] = rng.standard_normal(layer.weights.shape) * std
        layer.biases[...] = rng.standard_normal(layer.biases.shape) * 0.1
    for layer in net.layers:
        if "rolling_variance" not in layer.params:
            continue
        p = layer.params
        c = p["scales"].size
        p["scales"][...] = rng.uniform(0.5, 1.5, c)
        p["rolling_mean"][...] = rng.standard_normal(c) * 0.1
        p["rolling_variance"][...] = rng.uniform(0.5, 1.5, c)
        p["rolling_variance"][0], p["scales"][0] = 1e-8, 1e-4
        p["biases"][...] = rng.standard_normal(c) * 0.1
    net.weights_changed()
    return net


def relative_error(got, expected):
    return float(np.max(np.abs(got - expected) / (1 + np.abs(expected))))


def images(net, batch, seed=1):
    return np.random.default_rng(seed).random((batch,) + net.input_shape, dtype=np.float32)


def run(model, x):
    return onnxruntime_session(model).run(None, {"images": x})


def input_dims(model):
    return [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


# -- every bundled cfg -------------------------------------------------------------------------
@pytest.fixture(scope="module", params=list(BUNDLED))
def bundled(request):
    """(cfg, network with random weights at its first size, its export with a dynamic batch)."""
    cfg = request.param
    size = BUNDLED[cfg][0]
    net = randomise(Network.from_cfg(cfg, width=size, height=size))
    return cfg, net, onnx_model(net, dynamic_batch=True)


def test_bundled_cfg_passes_the_checker(bundled):
    cfg, net, model = bundled
    onnx.checker.check_model(model)
    assert input_dims(model) == ["batch", 3, net.height, net.width]
    assert [o.name for o in model.graph.output] == ["output"]


def test_bundled_cfg_runs_as_our_forward_at_batch_1_and_2(bundled):
    cfg, net, model = bundled
    session = onnxruntime_session(model)
    x = images(net, 2)
    for batch in (1, 2):
        expected = net.forward(x[:batch])
        (got,) = session.run(None, {"images": x[:batch]})
        assert got.shape == expected.shape
        assert relative_error(got, expected) <= TOLERANCE, (cfg, batch)


def test_bundled_cfg_runs_as_our_forward_at_a_second_size(bundled):
    cfg, net, _ = bundled
    first, second = BUNDLED[cfg]
    net.resize(second, second)
    try:
        model = onnx_model(net)
        assert input_dims(model) == [1, 3, second, second]
        x = images(net, 1, seed=2)
        (got,) = run(model, x)
        assert relative_error(got, net.forward(x)) <= TOLERANCE, cfg
    finally:
        net.resize(first, first)


def test_bundled_cfg_runs_in_openvino(bundled, tmp_path):
    ov = pytest.importorskip("openvino", reason="openvino is not installed (the [test] extra "
                                                "has it)")
    cfg, net, model = bundled
    path = tmp_path / f"{cfg}.onnx"
    path.write_bytes(model.SerializeToString())
    core = ov.Core()
    # f32: a CPU with bf16 units would otherwise run in bf16 by default
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    x = images(net, 2)
    got = compiled([x])[compiled.outputs[0]]
    assert relative_error(got, net.forward(x)) <= TOLERANCE, cfg


# -- layer options the bundled cfgs do not use -------------------------------------------------
CLASSIFIER_CFG = """
[net]
width=38
height=30
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
batch_normalize=1
activation=relu

# 30x38 -> 15x19: odd sides for the next one
[maxpool]
size=2
stride=2

# 15x19 -> 8x10: the last window of each odd side sticks out (darknet pads after only)
[maxpool]
size=2
stride=2

[convolutional]
filters=6
size=3
stride=2
pad=1
activation=logistic

[batchnorm]

# padding 2: one before, one after
[maxpool]
size=3
stride=1

[route]
layers=-1

[convolutional]
filters=12
size=1
stride=1
activation=linear

[avgpool]

[softmax]
groups=3
temperature=2

[cost]
"""

DETECTOR_CFG = """
[net]
width=64
height=64

[convolutional]
filters=8
size=3
pad=1
batch_normalize=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=16
size=3
pad=1
batch_normalize=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=16
size=3
pad=1
batch_normalize=1
activation=leaky

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=1

[route]
layers=-3

[reorg]
stride=2

[route]
layers=-1,-3

[convolutional]
filters=27
size=1
activation=linear

[region]
anchors=1,1.5, 2,2, 3.5,3
classes=4
num=3
softmax=0
"""


@pytest.mark.parametrize("text", [CLASSIFIER_CFG, DETECTOR_CFG], ids=["classifier", "detector"])
def test_layer_options_run_as_our_forward(text):
    net = randomise(Network.from_cfg(text), seed=5)
    model = onnx_model(net, dynamic_batch=True)
    x = images(net, 2)
    (got,) = run(model, x)
    assert relative_error(got, net.forward(x)) <= TOLERANCE


def test_the_classifier_cfg_exercises_what_it_says():
    net = Network.from_cfg(CLASSIFIER_CFG)
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["conv", "max", "max", "conv", "batchnorm", "max", "route", "conv", "avg",
                     "softmax", "cost"]
    assert net.layers[1].out_shape[1:] == (15, 19) and net.layers[2].out_shape[1:] == (8, 10)
    assert net.layers[5].padding == 2


# a hand-made word tree three levels deep, with single-child groups (node: parent)
DEEP_TREE = [("animal", -1), ("plant", -1), ("bird", 0), ("fish", 0), ("tree", 1),
             ("eagle", 2), ("sparrow", 2), ("trout", 3), ("oak", 4), ("pine", 4),
             ("bald eagle", 5), ("golden eagle", 5)]


def tree_detector_cfg(tree_path, classifier=False):
    n = len(DEEP_TREE)
    head = (f"[convolutional]\nfilters={n}\nsize=1\nactivation=linear\n\n[avgpool]\n\n"
            f"[softmax]\ntree={tree_path}\n" if classifier else
            f"[convolutional]\nfilters={3 * (5 + n)}\nsize=1\nactivation=linear\n\n"
            f"[region]\nanchors=1,1, 2,1.5, 3,3\nclasses={n}\nnum=3\nsoftmax=1\n"
            f"tree={tree_path}\n")
    return ("[net]\nwidth=64\nheight=64\n\n"
            "[convolutional]\nfilters=16\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n\n"
            "[maxpool]\nsize=2\nstride=2\n\n"
            "[convolutional]\nfilters=16\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n\n"
            "[maxpool]\nsize=4\nstride=4\n\n" + head)


@pytest.fixture
def deep_tree(tmp_path):
    path = tmp_path / "deep.tree"
    path.write_text("".join(f"n{k:02d} {parent}\n" for k, (_, parent) in enumerate(DEEP_TREE)))
    return path


def test_tree_classifier_runs_as_our_forward(deep_tree):
    net = randomise(Network.from_cfg(tree_detector_cfg(deep_tree, classifier=True)))
    x = images(net, 2)
    (got,) = run(onnx_model(net, dynamic_batch=True), x)
    assert relative_error(got, net.forward(x)) <= TOLERANCE


# -- decode and NMS ------------------------------------------------------------------------------
def decoded_detections(outputs, image, width, height):
    boxes, scores, classes, batch_index = outputs
    mine = batch_index == image
    return detections_in_image(boxes[mine], scores[mine], classes[mine], width, height, width,
                               height)


def our_detections(net, y, image, **detector_options):
    """Detector's detections of one network output, the image being the whole input."""
    detector = Detector.from_network(net, **detector_options)
    info = letterbox_info(net.width, net.height, net.width, net.height)
    return [(d.cls, d.score, d.box) for d in detector.detections_from_output(y[image], info)]


@pytest.mark.parametrize("walk", ["paper", "darknet"])
def test_tree_decode_names_the_nodes_our_decoder_names(deep_tree, walk):
    net = randomise(Network.from_cfg(tree_detector_cfg(deep_tree)), seed=1)
    x = images(net, 3)
    y = net.forward(x)
    depths = set()
    for hier_thresh in (0.05, 0.3, 0.6, 0.9):
        settings = DecodeSettings(thresh=0.2, nms=0.45, hier_thresh=hier_thresh, tree_walk=walk)
        outputs = run(onnx_model(net, dynamic_batch=True, decode=settings), x)
        for image in range(3):
            ours = our_detections(net, y, image, thresh=0.2, nms=0.45, hier_thresh=hier_thresh,
                                  tree_walk=walk)
            assert_same_detections(ours, decoded_detections(outputs, image, net.width,
                                                            net.height))
            depths.update(int(net.region.tree.depth[c]) for c, _, _ in ours)
    # the walks stopped at every level of the tree somewhere: the comparison saw them all
    assert depths == {0, 1, 2, 3}


def test_decode_and_nms_give_our_boxes(tmp_path):
    net = randomise(Network.from_cfg("yolov2-shapes", width=96, height=96), seed=3)
    x = images(net, 2)
    y = net.forward(x)
    counts = {}
    for nms in (0.3, 1.0):
        path = export_onnx(net, tmp_path / "decoded.onnx", dynamic_batch=True, decode=True,
                           thresh=0.1, nms=nms)
        outputs = onnxruntime_session(path).run(None, {"images": x})
        for image in range(2):
            ours = our_detections(net, y, image, thresh=0.1, nms=nms)
            assert_same_detections(ours, decoded_detections(outputs, image, 96, 96))
            counts[nms] = counts.get(nms, 0) + len(ours)
    # NMS had boxes to suppress, and both images had detections
    assert counts[0.3] < counts[1.0] and counts[0.3] > 10


def test_a_score_equal_to_thresh_is_kept_as_detect_keeps_it():
    """Objectness and class probability saturated to exactly 1 everywhere: score 1.0 at
    thresh 1.0 passes detect's >= (ONNX NonMaxSuppression's own test is >). No suppression
    (nms 1): among equal scores the order NMS visits boxes in is the runtime's."""
    net = randomise(Network.from_cfg("yolov2-shapes", width=96, height=96))
    last, region = net.layers[-2], net.region
    last.weights[...] = 0
    per_anchor = last.biases.reshape(region.num, region.entries)
    per_anchor[...] = 0
    per_anchor[:, 4] = per_anchor[:, 5] = 50.0      # sigmoid and softmax round to 1.0
    net.weights_changed()
    x = images(net, 1)
    ours = our_detections(net, net.forward(x), 0, thresh=1.0, nms=1.0)
    outputs = run(onnx_model(net, decode=DecodeSettings(thresh=1.0, nms=1.0)), x)
    assert len(ours) > 0 and {score for _, score, _ in ours} == {1.0}
    assert_same_detections(ours, decoded_detections(outputs, 0, 96, 96))


def test_decoded_file_describes_itself(tmp_path):
    net = Network.from_cfg("yolov2-shapes")
    names = ["circle", "square", "triangle", "star", "cross"]
    path = export_onnx(net, tmp_path / "shapes.onnx", names=names, decode=True, thresh=0.3,
                       nms=0.4)
    session = onnxruntime_session(path)
    meta = metadata(session)
    assert meta["names"] == names and meta["task"] == "detect"
    assert meta["input"]["width"] == 160 and meta["input"]["batch"] == 1
    assert meta["letterbox"]["pad_value"] == 0.5
    assert np.allclose(meta["region"]["anchors"], net.region.anchors, atol=1e-6)
    assert meta["decode"] == {"thresh": 0.3, "nms": 0.4}
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "classes",
                                                        "batch_index"]
    assert not list(tmp_path.glob(".*.tmp"))          # written atomically, nothing left over


def test_tree_file_carries_the_tree(deep_tree, tmp_path):
    net = Network.from_cfg(tree_detector_cfg(deep_tree))
    meta = metadata(onnxruntime_session(onnx_model(net)))
    assert meta["tree"]["parent"] == [parent for _, parent in DEEP_TREE]
    assert meta["names"] == meta["tree"]["wnids"] == [f"n{k:02d}" for k in range(len(DEEP_TREE))]


def test_decode_needs_a_detector():
    net = Network.from_cfg("darknet-mini")
    with pytest.raises(UserError, match="decoding boxes needs a detector"):
        onnx_model(net, decode=DecodeSettings())


def test_a_layer_that_cannot_be_exported_names_its_cfg_line(tmp_path):
    cfg = tmp_path / "wide.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\n\n[convolutional]\nfilters=4\nsize=3\npad=1\n"
                   "activation=leaky\n\n[maxpool]\nsize=2\nstride=1\npadding=4\n")
    net = Network.from_cfg(cfg)
    with pytest.raises(UserError, match=rf"^{cfg}:11: \[maxpool\] layer 1 cannot be exported to "
                                        "ONNX: padding=4"):
        onnx_model(net)


def test_the_package_root_exports_it():
    import yolo9000
    assert yolo9000.export_onnx is export_onnx and "export_onnx" in yolo9000.__all__
