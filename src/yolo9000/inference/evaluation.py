"""Score a detector on a dataset: the piece `train --val` and `evaluate` share.

The detections come from `Detector.stream` (the same pipeline `detect` runs); build the
detector with ``evaluation=True`` so that a word-tree model is scored class by class. Under
MPI (parallel.py) each rank predicts its share of the images and every rank gets
all the detections, so the scores are one process's.
"""
from ..metrics.detection import Detections, evaluate_coco, evaluate_voc, ground_truth_from_record


def predict_records(detector, records, batch=8, progress=None):
    """Detections (original pixels) for every record, keyed by record index."""
    from ..parallel import world
    ranks = world()

    def predict(mine):
        results = {}
        stream = detector.stream((r.path for r in mine), batch_size=batch)
        for k, result in enumerate(stream):
            results[k] = Detections(result.boxes, result.scores, result.classes)
            if progress is not None:
                progress.update(ranks.size)     # rank 0's bar stands for all ranks
        return results
    return ranks.map_sharded(records, predict)


def evaluate_records(detector, records, batch=8, progress=None, use_07_metric=False):
    """(VOC result, COCO result, detections) of `detector` on `records`, whose class ids must
    be the detector's."""
    dets = predict_records(detector, records, batch=batch, progress=progress)
    gts = {k: ground_truth_from_record(r) for k, r in enumerate(records)}
    voc = evaluate_voc(gts, dets, detector.num_classes, use_07_metric=use_07_metric)
    coco = evaluate_coco(gts, dets, detector.num_classes)
    return voc, coco, dets
