"""YOLO9000's joint training data: detection images and classification images in one batch.

darknet trained YOLO9000 on COCO detection and ImageNet classification together (its combine9k
data): a classification image has no box, only a class, and the region loss treats it by its
own rule (layers/region.py: the prediction most sure of the class learns the class, no box).
Here every mini-batch holds a fixed share of classification images:

    loader = MixedBatchLoader(detection_records, classification_records, share=0.25,
                              batch_size=16, augment=JointAugment(AugmentConfig(...)), seed=0)

Both kinds go through the detector's augmentation (jitter, flip, colour) as whole images; a
classification image's truth is the single class-only row of `classification_truth(node)`.
Detection records' classes and classification records' labels must already be tree nodes
(data/classes.tree_nodes). Which images fill batch i, and how they are augmented, depend only
on (seed, i), as with BatchLoader: the two kinds run through their own epoch permutations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..truths import classification_truth
from .augment import AugmentConfig, make_training_sample
from .loader import BatchLoader

NO_BOXES = np.zeros((0, 4), np.float32)


@dataclass
class JointAugment:
    """The detection augmentation, for both kinds of record."""
    detection: AugmentConfig

    @property
    def enabled(self):
        return self.detection.enabled

    def make_sample(self, image, record, width, height, rng, max_boxes=None):
        if not hasattr(record, "label"):
            return self.detection.make_sample(image, record, width, height, rng, max_boxes)
        chw, _ = make_training_sample(image, NO_BOXES, np.zeros(0, np.int64), width, height,
                                      self.detection, rng)
        return chw, classification_truth(int(record.label))


def classification_count(batch_size, share):
    """How many of a mini-batch's images are classification images (at least one each way
    when the share and the batch allow it)."""
    count = int(round(batch_size * float(share)))
    if 0 < share < 1 and batch_size >= 2:
        count = min(max(count, 1), batch_size - 1)
    return count


class MixedBatchLoader(BatchLoader):
    """BatchLoader over detection and classification records, `share` of each batch the latter."""

    def __init__(self, detection_records, classification_records, share, batch_size,
                 augment: JointAugment, seed=0, **options):
        detection_records = list(getattr(detection_records, "records", detection_records))
        classification_records = list(getattr(classification_records, "records",
                                              classification_records))
        super().__init__(detection_records + classification_records, batch_size, augment,
                         seed=seed, **options)
        self.n_detection = len(detection_records)
        self.n_classification = len(classification_records)
        self.per_batch = classification_count(self.batch_size, share)
        if self.per_batch and not self.n_classification:
            raise ValueError("a classification share without classification images")
        self._kind_orders = {}

    def _kind_order(self, kind, epoch):
        key = (kind, epoch)
        order = self._kind_orders.get(key)
        if order is None:
            n = self.n_detection if kind == 0 else self.n_classification
            order = np.random.default_rng([self.seed, 7 + kind, epoch]).permutation(n) \
                if self.shuffle else np.arange(n)
            if len(self._kind_orders) > 8:
                self._kind_orders.pop(next(iter(self._kind_orders)))
            self._kind_orders[key] = order
        return order

    def members(self, index):
        if index < 0:
            raise ValueError(f"batch index must be >= 0, got {index}")
        out = []
        for kind, count, n, offset in ((0, self.batch_size - self.per_batch, self.n_detection, 0),
                                       (1, self.per_batch, self.n_classification, self.n_detection)):
            first = index * count
            out += [offset + int(self._kind_order(kind, p // n)[p % n])
                    for p in range(first, first + count)]
        return out
