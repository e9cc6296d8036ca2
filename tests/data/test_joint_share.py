"""The classification images of a joint mini-batch: the share times the batch, rounded to the
nearest whole image (at least one of each kind when the share asks for both)."""
import numpy as np
import pytest
from PIL import Image

from yolo9000.data.augment import AugmentConfig
from yolo9000.data.formats import ClassificationRecord
from yolo9000.data.formats import ImageRecord
from yolo9000.data.joint import JointAugment, MixedBatchLoader, classification_count


@pytest.mark.parametrize("batch,share,count", [
    (10, 0.21, 2),      # 2.1
    (7, 0.3, 2),        # 2.1
    (9, 0.35, 3),       # 3.15
    (10, 0.27, 3),      # 2.7
    (16, 0.25, 4),      # exact
    (2, 0.1, 1),        # 0.2, but both kinds were asked for
    (4, 0.95, 3),       # 3.8, but both kinds were asked for
])
def test_classification_share_is_rounded_to_the_nearest_image(batch, share, count):
    assert classification_count(batch, share) == count


def test_mixed_batches_hold_the_rounded_share(tmp_path):
    det, cls = [], []
    for k in range(4):
        path = tmp_path / f"d{k}.png"
        Image.new("RGB", (40, 30), (50 * k, 0, 0)).save(path)
        det.append(ImageRecord(path=str(path), width=40, height=30,
                               boxes=np.array([[0.5, 0.5, 0.4, 0.3]], np.float32),
                               classes=np.array([0], np.int64), difficult=np.zeros(1, bool)))
        path = tmp_path / f"c{k}.png"
        Image.new("RGB", (30, 30), (0, 50 * k, 0)).save(path)
        cls.append(ClassificationRecord(path=str(path), label=1))
    augment = JointAugment(AugmentConfig(enabled=False))
    with MixedBatchLoader(det, cls, 0.21, 10, augment, seed=0, workers=0) as loader:
        batch = loader.get(0, 32, 32)
    kinds = ["c" if "/c" in p else "d" for p in batch.paths]
    assert kinds == ["d"] * 8 + ["c"] * 2
