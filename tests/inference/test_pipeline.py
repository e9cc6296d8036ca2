"""One inference pipeline: a word-tree (YOLO9000) model is scored through its tree wherever it is
evaluated (`predict_records`, `train --val`, `yolo9000 evaluate`), and the background image
loading keeps order and reports bad inputs in place.

The expected detections are computed without the package's decoding: the region input comes
from the network's convolution, then the tree's grouped softmax, the products up the tree and
the loop-based decode + NMS of test_detector.py are written out by hand.
"""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import GOLDEN
from detection_reference import independent_letterbox, assert_same_detections, reference_detections
from yolo9000.errors import UserError
from yolo9000.inference.detector import Detector
from yolo9000.inference.prefetch import prefetch
from yolo9000.inference.evaluation import predict_records
from yolo9000.metrics.detection import evaluate_voc, ground_truth_from_record
from yolo9000.model.network import Network

NET_SIZE = 32
NUM_ANCHORS = 3
ANCHORS = [[1.0, 1.5], [2.5, 2.0], [4.0, 5.0]]
TREE_FILE = GOLDEN / "small.tree"
# small.tree: polygon, round (roots); triangle square pentagon < polygon; circle ellipse ring <
# round; equilateral isosceles < triangle
PARENTS = [-1, -1, 0, 0, 0, 1, 1, 1, 2, 2]
NODE_NAMES = ["polygon", "round", "triangle", "square", "pentagon", "circle", "ellipse", "ring",
              "equilateral", "isosceles"]


def tree_cfg(folder, class_map=None):
    """A toy YOLO9000: 32x32 input, 4x4 grid, 3 anchors, region over small.tree. The tree and
    map paths are absolute: the trainer parses its copy of the cfg in the run folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(TREE_FILE, folder / "small.tree")
    map_line = ""
    if class_map is not None:
        (folder / "toy.map").write_text("".join(f"{n}\n" for n in class_map))
        map_line = f"map={folder / 'toy.map'}\n"
    anchors = ", ".join(f"{w},{h}" for w, h in ANCHORS)
    text = (f"[net]\nbatch=2\nsubdivisions=1\nwidth={NET_SIZE}\nheight={NET_SIZE}\nchannels=3\n"
            "learning_rate=0.001\nmax_batches=2\n\n"
            "[maxpool]\nsize=8\nstride=8\n\n"
            f"[convolutional]\nfilters={NUM_ANCHORS * (5 + len(PARENTS))}\nsize=1\nstride=1\n"
            "pad=0\nactivation=linear\n\n"
            f"[region]\nanchors = {anchors}\nclasses={len(PARENTS)}\ncoords=4\n"
            f"num={NUM_ANCHORS}\nsoftmax=1\njitter=0\nrandom=0\nthresh=.6\n"
            f"tree={folder / 'small.tree'}\n{map_line}")
    path = folder / "toy9k.cfg"
    path.write_text(text)
    return path


def random_net(cfg, seed=0):
    """Weights that spread the objectness and the class probabilities widely."""
    net = Network.from_cfg(str(cfg))
    rng = np.random.default_rng(seed)
    for _, _, p, _ in net.parameters():
        p[...] = rng.normal(0.0, 1.5, p.shape)
    net.weights_changed()
    return net


def write_images(folder, sizes, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


# -- the hierarchical softmax, by hand ------------------------------------------------------------
def absolute_probabilities(logits):
    """(nodes,) class logits of one prediction -> every node's absolute probability: a softmax
    over each run of siblings (darknet's groups), then products up the parents."""
    conditional = np.empty(len(PARENTS))
    start = 0
    while start < len(PARENTS):
        end = start
        while end < len(PARENTS) and PARENTS[end] == PARENTS[start]:
            end += 1
        e = np.exp(logits[start:end] - logits[start:end].max())
        conditional[start:end] = e / e.sum()
        start = end
    absolute = np.empty(len(PARENTS))
    for node in range(len(PARENTS)):
        p, k = 1.0, node
        while k >= 0:
            p *= conditional[k]
            k = PARENTS[k]
        absolute[node] = p
    return absolute, conditional


def expected_detections(net, path, class_nodes, thresh, nms, conditional=False):
    """Detections scored objectness x absolute probability of each class node (or, with
    conditional=True, the flat reading: objectness x P(node | parent))."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    h, w = rgb.shape[:2]
    x = independent_letterbox(rgb, NET_SIZE, NET_SIZE)
    raw = net.forward_all(x)[-2][0].astype(np.float64)      # the region's input
    entries = 5 + len(PARENTS)
    raw = raw.reshape(NUM_ANCHORS, entries, *raw.shape[1:])
    flat = np.empty((NUM_ANCHORS, 5 + len(class_nodes), *raw.shape[2:]))
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))                       # noqa: E731
    flat[:, 0:2] = sigmoid(raw[:, 0:2])
    flat[:, 2:4] = raw[:, 2:4]
    flat[:, 4] = sigmoid(raw[:, 4])
    for a in range(NUM_ANCHORS):
        for r in range(raw.shape[2]):
            for c in range(raw.shape[3]):
                absolute, cond = absolute_probabilities(raw[a, 5:, r, c])
                flat[a, 5:, r, c] = (cond if conditional else absolute)[list(class_nodes)]
    return reference_detections(flat.reshape(-1, *raw.shape[2:]), ANCHORS, len(class_nodes),
                                w, h, NET_SIZE, NET_SIZE, thresh, nms), (w, h)


def expected_voc(net, records, thresh, conditional=False):
    """VOC result of the hand-computed detections (scored by metrics/detection.py)."""
    nodes = range(len(PARENTS))
    dets = {}
    for k, r in enumerate(records):
        found, _ = expected_detections(net, r.path, nodes, thresh, 0.45, conditional)
        dets[k] = {"boxes": np.array([b for _, _, b in found], np.float32).reshape(-1, 4),
                   "scores": np.array([s for _, s, _ in found], np.float32),
                   "classes": np.array([c for c, _, _ in found], np.int64)}
    gts = {k: ground_truth_from_record(r) for k, r in enumerate(records)}
    return evaluate_voc(gts, dets, len(PARENTS))


def records_for(paths):
    from yolo9000.data.formats import ImageRecord
    records = []
    for p in paths:
        w, h = Image.open(p).size
        records.append(ImageRecord(str(p), w, h, np.zeros((0, 4), np.float32),
                                   np.zeros(0, np.int64), np.zeros(0, bool)))
    return records


# -- evaluation scores a word-tree model through the tree -----------------------------------------
@pytest.mark.parametrize("class_map", [None, [8, 3, 5, 0]])
def test_evaluation_scores_each_class_with_its_absolute_tree_probability(tmp_path, class_map):
    """Without map= every node is a class; with map= the listed nodes are, in that order."""
    net = random_net(tree_cfg(tmp_path / "cfg", class_map), seed=1)
    paths = write_images(tmp_path / "images", [(32, 32), (48, 40), (30, 50)])
    detector = Detector.from_network(net, thresh=0.05, nms=0.45, evaluation=True)
    nodes = list(range(len(PARENTS))) if class_map is None else class_map
    assert detector.num_classes == len(nodes)
    assert detector.names == [NODE_NAMES[n] for n in nodes]       # the tree names its classes
    results = list(detector.stream(paths, batch_size=2))
    assert [r.source for r in results] == paths
    flat_differs = False
    for path, result in zip(paths, results):
        want, (w, h) = expected_detections(net, path, nodes, 0.05, 0.45)
        assert_same_detections(result.detections, want, w, h)
        flat, _ = expected_detections(net, path, nodes, 0.05, 0.45, conditional=True)
        flat_differs |= sorted(s for _, s, _ in flat) != sorted(s for _, s, _ in want)
    assert flat_differs        # the flat softmax reading would have given other scores
    dets = predict_records(detector, records_for(paths), batch=3)
    for k, result in enumerate(results):
        np.testing.assert_array_equal(dets[k].scores, result.scores)


def test_detection_still_reports_the_deepest_confident_node(tmp_path):
    """Outside evaluation a word-tree model keeps darknet's `detector test` reading: one class
    per box, the tree node reached, scored with the objectness."""
    net = random_net(tree_cfg(tmp_path / "cfg"), seed=1)
    path = write_images(tmp_path / "images", [(32, 32)])[0]
    detector = Detector.from_network(net, thresh=0.3, nms=0.45)
    assert detector.num_classes == len(PARENTS)
    dets = detector(path)
    assert dets
    boxes = [d.box for d in dets]
    # several classes of one box would come from a per-class (evaluation) scoring
    assert len(set(boxes)) == len(boxes)


# -- train --val ----------------------------------------------------------------------------------
def _labelled_folder(root, sizes, seed):
    """A YOLO folder whose class names are the tree's nodes; boxes of random classes."""
    paths = write_images(root / "images", sizes, seed)
    (root / "labels").mkdir()
    rng = np.random.default_rng(seed)
    for p in paths:
        lines = []
        for _ in range(2):
            cls = int(rng.integers(0, len(PARENTS)))
            cx, cy = rng.uniform(0.3, 0.7, 2)
            bw, bh = rng.uniform(0.2, 0.5, 2)
            lines.append(f"{cls} {cx:.4f} {cy:.4f} {bw:.4f} {bh:.4f}")
        (root / "labels" / f"{p.stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("\n".join(NODE_NAMES) + "\n")
    return root


@pytest.fixture(scope="module")
def tree_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree_data")
    train = _labelled_folder(root / "train", [(32, 32)] * 4, seed=2)
    val = _labelled_folder(root / "val", [(32, 32), (40, 32), (32, 48)], seed=3)
    return tree_cfg(root / "cfg"), train, val


def test_training_validation_goes_through_the_tree(tree_data, tmp_path):
    from yolo9000.data.formats import load_dataset
    from yolo9000.training.settings import TrainSettings
    from yolo9000.training.trainer import Trainer

    cfg, train, val = tree_data
    settings = TrainSettings(cfg=str(cfg), data=str(train), val=str(val), out=str(tmp_path / "run"),
                             max_batches=2, batch=2, subdivisions=1, learning_rate=0.001,
                             workers=0, seed=4, save_every=0, log=False, augment=False,
                             eval_thresh=0.001, nms=0.45)
    trainer = Trainer(settings, echo=lambda *_: None).setup()
    trainer.train()
    records = load_dataset(str(val)).records
    want = expected_voc(trainer.net, records, 0.001)
    flat = expected_voc(trainer.net, records, 0.001, conditional=True)
    got = trainer.last_voc
    np.testing.assert_array_equal(got.num_det, want.num_det)
    np.testing.assert_allclose(got.ap, want.ap, atol=1e-6)
    assert not np.array_equal(got.num_det, flat.num_det)     # the flat reading is not used
    results = (tmp_path / "run" / "results.csv").read_text().splitlines()
    assert results[0] == "iteration,seen,mAP50,mAP50_95,eval_seconds"
    assert results[1].split(",")[:3] == ["2", "4", f"{want.map:.4f}"] and len(results) == 2


# -- yolo9000 evaluate ----------------------------------------------------------------------------
def test_evaluate_command_scores_a_word_tree_model(tree_data, tmp_path, capsys):
    from yolo9000.cli import main
    from yolo9000.data.formats import load_dataset

    cfg, _, val = tree_data
    net = random_net(cfg, seed=5)
    weights = tmp_path / "toy9k.weights"
    net.save_weights(str(weights))
    out = tmp_path / "metrics.json"
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--data", str(val), "--cfg", str(cfg), "--weights", str(weights),
              "--thresh", "0.01", "--metrics-json", str(out)])
    assert e.value.code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert [c["name"] for c in result["classes"]] == NODE_NAMES
    want = expected_voc(net, load_dataset(str(val)).records, 0.01)
    assert [c["num_det"] for c in result["classes"]] == [int(n) for n in want.num_det]
    assert result["mAP50"] == pytest.approx(float(want.map), abs=1e-6)


# -- background loading ---------------------------------------------------------------------------
def test_prefetch_keeps_order_and_reports_failures_in_place():
    def work(item):
        if item % 3 == 0:
            raise UserError(f"bad {item}")
        return item * 10

    got = list(prefetch(work, range(1, 11), depth=4))
    assert [item for item, _, _ in got] == list(range(1, 11))
    for item, value, exc in got:
        if item % 3 == 0:
            assert value is None and str(exc) == f"bad {item}"
        else:
            assert value == item * 10 and exc is None


def test_prefetch_stops_working_when_the_consumer_stops():
    started = []

    def work(item):
        started.append(item)
        return item

    stream = prefetch(work, range(1000), depth=3, workers=1)
    assert next(stream)[1] == 0
    stream.close()
    assert len(started) <= 5      # the items in flight, not the whole input


def test_stream_skips_or_raises_unreadable_images(tmp_path):
    net = random_net(tree_cfg(tmp_path / "cfg"), seed=1)
    good = write_images(tmp_path / "images", [(32, 32), (32, 32)])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    detector = Detector.from_network(net, thresh=0.3)
    results = list(detector.stream([good[0], bad, good[1]], batch_size=2, skip_errors=True))
    assert [r.source for r in results] == [bad, good[0], good[1]]   # the error comes at once
    assert [r.index for r in results] == [1, 0, 2]                  # positions in the input
    assert str(bad) in results[0].error and results[0].boxes is None
    assert all(r.error is None and r.image is not None for r in results[1:])
    with pytest.raises(UserError, match="broken.png"):
        list(detector.stream([good[0], bad], batch_size=1))
