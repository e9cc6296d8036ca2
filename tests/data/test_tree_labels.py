"""YOLO9000's data: dataset classes as word-tree nodes, and batches mixing detection images with
classification images."""
import numpy as np
import pytest

from yolo9000.data.augment import AugmentConfig
from yolo9000.data.classes import tree_nodes
from yolo9000.data.formats import ClassificationRecord, ImageRecord
from yolo9000.data.joint import JointAugment, MixedBatchLoader, classification_count
from yolo9000.errors import UserError
from yolo9000.model.wordtree import WordTree
from yolo9000.truths import CLASSIFICATION_ONLY


def small_tree():
    # animal -> {dog, cat}, plant -> {tree}; "crane" twice (a bird and a machine)
    parent = [-1, -1, 0, 0, 1, 0, -1]
    wnids = ["n001", "n002", "n010", "n011", "n020", "n012", "n030"]
    names = ["animal", "plant", "dog", "Cat", "tree", "crane", "crane"]
    return WordTree(parent, wnids, names, source="small")


def test_names_and_wordnet_ids_find_their_nodes():
    tree = small_tree()
    np.testing.assert_array_equal(tree_nodes(["dog", "n020", "cat", "animal"], tree), [2, 4, 3, 0])


def test_unknown_and_ambiguous_names_are_errors_that_name_them():
    tree = small_tree()
    with pytest.raises(UserError, match="'horse' is not a node"):
        tree_nodes(["dog", "horse"], tree, path="data/")
    with pytest.raises(UserError, match=r"'crane' names 2 nodes of the word tree \(n012, n030\)"):
        tree_nodes(["crane"], tree)
    assert tree_nodes(["n030"], tree).tolist() == [6]     # the WordNet id says which crane


def test_a_class_map_takes_classes_by_position_and_must_fit():
    tree = small_tree()
    np.testing.assert_array_equal(tree_nodes(["a", "b"], tree, class_map=[4, 2]), [4, 2])
    with pytest.raises(UserError, match="map= takes a dataset of 3 classes"):
        tree_nodes(["a", "b"], tree, class_map=[4, 2, 1])


def test_classification_count_keeps_both_kinds():
    assert classification_count(8, 0.25) == 2
    assert classification_count(2, 0.1) == 1      # at least one of each when the share asks
    assert classification_count(2, 0.9) == 1
    assert classification_count(8, 0.0) == 0


@pytest.fixture
def mixed_records(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    det, cls = [], []
    for k in range(5):
        path = tmp_path / f"d{k}.png"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
        det.append(ImageRecord(path=str(path), width=50, height=40,
                               boxes=np.array([[0.5, 0.5, 0.4, 0.3]], np.float32),
                               classes=np.array([k % 3], np.int64),
                               difficult=np.zeros(1, bool)))
    for k in range(7):
        path = tmp_path / f"c{k}.png"
        Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(path)
        cls.append(ClassificationRecord(path=str(path), label=10 + k))
    return det, cls


def test_mixed_batches_hold_a_fixed_share_and_mark_classification_images(mixed_records):
    det, cls = mixed_records
    augment = JointAugment(AugmentConfig(jitter=0.1))
    with MixedBatchLoader(det, cls, 0.25, 8, augment, seed=3, workers=0) as loader:
        seen_det, seen_cls = [], []
        for index in range(5):
            batch = loader.get(index, 32, 32)
            assert batch.images.shape == (8, 3, 32, 32)
            kinds = ["c" if "/c" in p else "d" for p in batch.paths]
            assert kinds == ["d"] * 6 + ["c"] * 2
            for path, truth in zip(batch.paths, batch.truths):
                if "/c" in path:
                    # one class-only row: darknet's marker and the image's node
                    assert truth.shape == (1, 5) and truth[0, 0] > 100000 and truth[0, 1] > 100000
                    assert truth[0, 0] == CLASSIFICATION_ONLY
                    assert truth[0, 4] == 10 + int(path.rsplit("/c", 1)[1][:-4])
                    seen_cls.append(path)
                else:
                    assert truth.shape[1] == 5 and truth[0, 0] < 1.5
                    seen_det.append(path)
        # every image of each kind comes round once per epoch of its own
        assert set(seen_det[:5]) == {r.path for r in det}
        assert set(seen_cls[:7]) == {r.path for r in cls}


def test_mixed_batches_are_the_same_with_worker_processes(mixed_records):
    det, cls = mixed_records
    augment = JointAugment(AugmentConfig(jitter=0.1))
    with MixedBatchLoader(det, cls, 0.5, 4, augment, seed=1, workers=0) as inline:
        expected = [inline.get(i, 32, 32) for i in range(4)]
    with MixedBatchLoader(det, cls, 0.5, 4, augment, seed=1, workers=2) as workers:
        got = [b for _, b in workers.iterate(0, 4, lambda i: (32, 32))]
    for a, b in zip(expected, got):
        assert a.paths == b.paths
        np.testing.assert_array_equal(a.images, b.images)
        for ta, tb in zip(a.truths, b.truths):
            np.testing.assert_array_equal(ta, tb)
