"""What differs between training a detector and training a classifier, behind one interface.

The trainer (trainer.py) owns the loop, the schedule, checkpoints, resume and the run folder;
a task owns the data, the loss and the evaluation:

    task = task_for(config)                    # from the cfg: [region] or a final [softmax]
    train_set, val_set = task.load_data(settings, warn)
    task.augment(net, settings)                # the training augmentation of the cfg's [net]
    stats = task.train_minibatch(net, batch)   # forward, loss, backward; the loss parts
    row, message, score = task.evaluate(trainer)   # on val_set; score picks best.h5
"""
import math

import numpy as np

from ..errors import UserError
from ..model.cfg import network_kind


DEFAULT_CLASSIFICATION_SHARE = 0.25     # of each mini-batch, in joint (YOLO9000) training
DEFAULT_VAL_FRACTION = 0.1              # a classifier without --val: share of --data held out


def task_for(config, source=None):
    kind = network_kind(config)
    if kind == "detection":
        return DetectionTask()
    if kind == "classification":
        return ClassificationTask()
    raise UserError("the cfg is neither a detector (a [region] layer) nor a classifier "
                    "(ending in [softmax]); nothing to train", path=source or config.source)


class DetectionTask:
    kind = "detection"
    log_fields = ["loss", "coord", "obj", "noobj", "class", "avg_iou", "recall50"]
    result_fields = ["mAP50", "mAP50_95"]
    score_name = "mAP@0.5"

    def load_data(self, s, warn):
        from ..data.formats import load_dataset
        from ..data.report import dataset_report
        if s.val_fraction is not None:
            raise UserError("--val-fraction holds out part of a classification set; give a "
                            "detector its validation set with --val")
        train_set = load_dataset(s.data, names=s.names)
        val_set = load_dataset(s.val, names=s.names) if s.val else None
        for label, dataset in (("train", train_set), ("val", val_set)):
            for line in dataset_report(dataset, label) if dataset is not None else []:
                warn(line)
        self.classification_set = None
        if s.classification_data:
            from ..data.formats import classification_report, load_classification_dataset
            self.classification_set = load_classification_dataset(s.classification_data)
            for line in classification_report(self.classification_set, "classification"):
                warn(line)
        self.share = s.classification_ratio if s.classification_ratio is not None else \
            DEFAULT_CLASSIFICATION_SHARE
        return train_set, val_set

    def check(self, net, source):
        if net.region is None:
            raise UserError("the cfg has no [region] layer", path=source)
        self.region_index = len(net.layers) - 1
        self.val_nodes = None
        self.truths_are_nodes = False

    def bind(self, trainer):
        """A word-tree (YOLO9000) region: the datasets' classes become tree nodes (the
        training truths carry nodes; the validation keeps its classes, each scored as its
        node) and the run's class names are the tree's."""
        region = trainer.net.region
        settings = trainer.settings
        if region.tree is None:
            if self.classification_set is not None:
                raise UserError("joint training with --classification-data needs a word-tree "
                                "region (a [region] with tree=, e.g. --cfg yolo9000)",
                                path=settings.cfg)
            return
        from dataclasses import replace

        from ..data.classes import tree_nodes
        tree = region.tree
        self.truths_are_nodes = True    # the region must not apply map= to them again
        train = trainer.train_set
        nodes = tree_nodes(train.names, tree, self._class_map(region, train), path=settings.data)
        trainer.train_set = replace(train, records=[replace(r, classes=nodes[r.classes])
                                                    for r in train.records])
        if trainer.val_set is not None:
            self.val_nodes = tree_nodes(trainer.val_set.names, tree,
                                        self._class_map(region, trainer.val_set), path=settings.val)
        if self.classification_set is not None:
            cls = self.classification_set
            cls_nodes = tree_nodes(cls.names, tree, path=settings.classification_data)
            self.classification_set = replace(cls, records=[
                replace(r, label=int(cls_nodes[r.label])) for r in cls.records])
        trainer.names = list(tree.names)

    @staticmethod
    def _class_map(region, dataset):
        """A cfg's map= (COCO class index -> node) applies to a dataset of that many classes;
        other datasets' classes are found in the tree by name or WordNet id."""
        class_map = region.class_map
        return class_map if class_map is not None and len(dataset.names) == len(class_map) \
            else None

    def loader(self, trainer, augment, seed, workers, joint=True):
        """The training batches: detection images, and (joint training) classification ones."""
        from ..data.loader import BatchLoader
        if joint and self.classification_set is not None:
            from ..data.joint import JointAugment, MixedBatchLoader
            return MixedBatchLoader(trainer.train_set, self.classification_set, self.share,
                                    trainer.mini_batch, JointAugment(augment), seed=seed,
                                    workers=workers, max_boxes=trainer.settings.max_boxes,
                                    warn=trainer.warn)
        return BatchLoader(trainer.train_set, trainer.mini_batch, augment, seed=seed,
                           workers=workers, max_boxes=trainer.settings.max_boxes, warn=trainer.warn)

    def multiscale(self, net):
        return net.region.random

    def augment(self, net, enabled):
        from ..data.augment import AugmentConfig
        o = net.options
        return AugmentConfig(jitter=net.region.jitter, hue=o.hue, saturation=o.saturation,
                             exposure=o.exposure, flip=True, enabled=enabled)

    def plain_augment(self, net):
        from ..data.augment import AugmentConfig
        return AugmentConfig(jitter=0.0, hue=0.0, saturation=1.0, exposure=1.0, flip=False,
                             enabled=False)

    def make_validator(self, trainer):
        from ..inference.detector import Detector
        names = trainer.val_set.names if self.val_nodes is not None else None
        settings = trainer.settings
        return Detector.from_network(trainer.net, names=names, thresh=settings.eval_thresh,
                                     nms=settings.nms, evaluation=True,
                                     class_nodes=self.val_nodes)

    def train_minibatch(self, net, batch):
        net.forward(batch.images, train=True)
        region = net.layers[self.region_index]
        region.map_truths = not self.truths_are_nodes     # (replicas' regions too)
        loss, grad_raw, stats = region.loss(batch.truths, net.seen)
        net.backward(grad_raw, start=self.region_index - 1, input_grad=False)
        return {"loss": loss, **{k: stats.get(k, 0.0) for k in self.log_fields[1:]}}

    def postfix(self, parts):
        return (f"loss {parts['loss']:.3f} (xy/wh {parts.get('coord', 0):.2f} "
                f"obj {parts.get('obj', 0):.2f} noobj {parts.get('noobj', 0):.2f} "
                f"cls {parts.get('class', 0):.2f}) iou {parts.get('avg_iou', 0):.2f} "
                f"R {parts.get('recall50', 0):.2f}")

    def evaluate(self, trainer):
        """(results.csv row, message, score for best.h5)."""
        from ..inference.evaluation import evaluate_records
        voc, coco, _ = evaluate_records(trainer.validator, trainer.val_set.records,
                                        batch=trainer.settings.eval_batch)
        trainer.last_voc, trainer.last_coco = voc, coco
        row = {"mAP50": f"{voc.map:.4f}", "mAP50_95": f"{coco.map:.4f}"}
        return row, f"mAP@0.5 {voc.map:.4f}  mAP@[.5:.95] {coco.map:.4f}", float(voc.map)

    def plot_panels(self):
        return (["loss", "coord", "obj", "noobj", "class"], True,
                [("mAP50", "o-", "mAP@0.5"), ("mAP50_95", "s-", "mAP@[.5:.95]")])


class ClassificationTask:
    kind = "classification"
    log_fields = ["loss", "top1", "top5"]
    result_fields = ["loss", "top1", "top5"]
    score_name = "top-1"

    def bind(self, trainer):
        """A word-tree classifier ([softmax] tree=): the labels become tree nodes (class
        folders named by node names or WordNet ids) and the run's class names the tree's."""
        if self.tree is None:
            return
        from dataclasses import replace

        from ..data.classes import tree_nodes
        settings = trainer.settings
        for attr, source in (("train_set", settings.data), ("val_set", settings.val)):
            dataset = getattr(trainer, attr)
            if dataset is not None:
                nodes = tree_nodes(dataset.names, self.tree, path=source)
                setattr(trainer, attr, replace(dataset, records=[
                    replace(r, label=int(nodes[r.label])) for r in dataset.records]))
        trainer.names = list(self.tree.names)

    def loader(self, trainer, augment, seed, workers, joint=True):
        from ..data.loader import BatchLoader
        return BatchLoader(trainer.train_set, trainer.mini_batch, augment, seed=seed,
                           workers=workers, warn=trainer.warn)

    def load_data(self, s, warn):
        from ..data.formats import classification_report, load_classification_dataset
        train_set = load_classification_dataset(s.data, names=s.names)
        val_set = None
        fraction = DEFAULT_VAL_FRACTION if s.val_fraction is None else s.val_fraction
        if s.val:
            val_set = load_classification_dataset(s.val, names=train_set.names)
        elif fraction:
            if not 0 < fraction < 1:
                raise UserError(f"--val-fraction must be between 0 and 1, got {fraction}")
            train_set, val_set = train_set.split(fraction, seed=s.seed)
            warn(f"validation: {len(val_set)} images held out of {s.data} "
                 f"(--val-fraction {fraction:g}, seed {s.seed}; crops of one photo "
                 f"stay on one side)")
        for label, dataset in (("train", train_set), ("val", val_set)):
            for line in classification_report(dataset, label) if dataset is not None else []:
                warn(line)
        return train_set, val_set

    def check(self, net, source):
        index = net.classifier
        if index is None:
            raise UserError("the cfg does not end in [softmax]", path=source)
        if net.layers[index].groups != 1:
            raise UserError("a classifier's [softmax] must have groups=1", path=source)
        self.softmax_index = index
        self.tree = net.layers[index].tree          # a WordTree classifier, or None
        costs = [layer for layer in net.layers[index + 1:] if layer.kind == "cost"]
        self.scale = float(np.prod([c.scale for c in costs])) if costs else 1.0

    def multiscale(self, net):
        return False       # darknet trains classifiers at one size, with random crops

    def crops(self, net):
        """(min_crop, max_crop) short sides: the cfg's, else darknet's width and 2·width."""
        o = net.options
        low = o.min_crop or o.width
        high = o.max_crop or 2 * o.width
        return low, max(low, high)

    def augment(self, net, enabled):
        from ..data.classification_augment import CropAugmentConfig
        o = net.options
        low, high = self.crops(net)
        if o.center:
            enabled = False
        return CropAugmentConfig(min_crop=low, max_crop=high, aspect=o.aspect, angle=o.angle,
                                 hue=o.hue, saturation=o.saturation, exposure=o.exposure,
                                 flip=True, enabled=enabled)

    def plain_augment(self, net):
        from ..data.classification_augment import CropAugmentConfig
        low, high = self.crops(net)
        return CropAugmentConfig(min_crop=low, max_crop=high, enabled=False)

    def make_validator(self, trainer):
        from ..inference.classifier import Classifier
        return Classifier.from_network(trainer.net, names=trainer.names)

    def train_minibatch(self, net, batch):
        from ..layers.cost import softmax_cross_entropy, tree_cross_entropy
        probabilities = net.forward(batch.images, train=True)
        if self.tree is not None:       # the labels are tree nodes (bind)
            loss, grad, stats = tree_cross_entropy(probabilities, batch.labels, self.tree)
        else:
            loss, grad, stats = softmax_cross_entropy(probabilities, batch.labels)
        if self.scale != 1.0:
            grad *= np.float32(self.scale)
        # darknet's [softmax] passes the cost's delta through: it is the gradient at the
        # softmax's input (layers/cost.py)
        net.backward(grad, start=self.softmax_index - 1, input_grad=False)
        return stats

    def postfix(self, parts):
        return (f"loss {parts['loss']:.3f} top-1 {100 * parts.get('top1', 0):.1f}% "
                f"top-5 {100 * parts.get('top5', 0):.1f}%")

    def evaluate(self, trainer):
        from ..inference.classifier import evaluate_classifier
        result = evaluate_classifier(trainer.validator, trainer.val_set.records,
                                     batch=max(trainer.settings.eval_batch, 32))
        loss = result.loss if math.isfinite(result.loss) else float("nan")
        row = {"loss": f"{loss:.4f}", "top1": f"{result.top1:.4f}", "top5": f"{result.top5:.4f}"}
        message = (f"top-1 {100 * result.top1:.1f}%  top-5 {100 * result.top5:.1f}%  "
                   f"loss {loss:.3f} ({result.images} images)")
        trainer.last_classification = result
        return row, message, float(result.top1)

    def plot_panels(self):
        return (["loss"], True, [("top1", "o-", "top-1"), ("top5", "s-", "top-5")])
