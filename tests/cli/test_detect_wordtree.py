"""detect with a word-tree model: --tree-walk and --hier-thresh name different nodes on a
hand-made tree, and the JSON gives each detection's path with its probabilities."""
import json

import numpy as np
import pytest

from conftest import IMAGES, run_folder_args, run_installed
from yolo9000.model.network import Network

# A -> {C -> {E, F}, D}, B; the single prediction has P(A)=.9, P(C|A)=.8, P(E|C)=.9
TREE = "A -1\nB -1\nC 0\nD 0\nE 2\nF 2\n"
CONDITIONAL = [0.9, 0.1, 0.8, 0.2, 0.9, 0.1]
CFG = """[net]
width=32
height=32
channels=3
[convolutional]
filters=11
size=1
stride=1
pad=1
activation=linear
[maxpool]
size=32
stride=32
[region]
anchors=1,1
num=1
classes=6
coords=4
softmax=1
tree=walk.tree
"""


@pytest.fixture(scope="module")
def tree_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("walk")
    (root / "walk.tree").write_text(TREE)
    (root / "walk.cfg").write_text(CFG)
    net = Network.from_cfg(str(root / "walk.cfg"))
    conv = net.layers[0]
    conv.weights[...] = 0      # every output is its bias: one box over the whole image
    conv.biases[...] = np.concatenate([[0, 0, 0, 0, 5.0], np.log(CONDITIONAL)])
    net.weights_changed()
    net.save(root / "walk.h5")
    return root / "walk.h5"


@pytest.mark.parametrize("walk,hier_thresh,expected", [
    ("paper", 0.5, "E"),        # .9 -> .72 -> .648: all above .5
    ("darknet", 0.5, "C"),      # compounds absolute probabilities: .9*.72*.648 = .42 stops at C
    ("darknet", 0.4, "E"),
    ("paper", 0.95, "A"),       # not even the root group's best reaches .95: its best, A
])
def test_tree_walk_and_hier_thresh_choose_the_node(tree_model, tmp_path, walk, hier_thresh, expected):
    out = tmp_path / "d.json"
    r = run_installed("detect", IMAGES / "dog.jpg", "--weights", tree_model, "--tree-walk", walk,
                      "--hier-thresh", hier_thresh, "--save-json", out,
                      *run_folder_args(tmp_path / "run"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    detections = json.loads(out.read_text())[0]["detections"]
    assert [d["name"] for d in detections] == [expected]
    path = detections[0]["path"]
    names = {"A": ["A"], "C": ["A", "C"], "E": ["A", "C", "E"]}[expected]
    assert [p["name"] for p in path] == names and detections[0]["wnid"] == expected
    expected_conditional = {"A": 0.9, "C": 0.8, "E": 0.9}
    absolute = 1.0
    for p in path:
        absolute *= expected_conditional[p["name"]]
        assert p["probability"] == pytest.approx(expected_conditional[p["name"]], abs=1e-5)
        assert p["absolute"] == pytest.approx(absolute, abs=1e-5)


def test_an_unknown_walk_is_a_usage_error(tree_model, tmp_path):
    r = run_installed("detect", IMAGES / "dog.jpg", "--weights", tree_model, "--tree-walk", "greedy",
                      cwd=tmp_path)
    assert r.returncode == 2 and "greedy" in r.stderr
