"""Run a network over a dataset and score it: the piece `train --val` and `evaluate` share."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..metrics.detection import Detections, evaluate_coco, evaluate_voc, ground_truth_from_record
from ..data.images import letterbox, load_image
from .postprocess import postprocess


def _prepare(record, width, height):
    image = load_image(record.path, net_size=(width, height))
    x, info = letterbox(image.rgb, width, height, orig_size=(image.width, image.height))
    return x, info


def predict_records(net, records, thresh=0.005, nms=0.45, batch=8, progress=None):
    """Detections (original pixels) for every record, keyed by record index."""
    region = net.region
    width, height = net.width, net.height
    results = {}
    chunks = [list(range(i, min(i + batch, len(records)))) for i in range(0, len(records), batch)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        # images of the next chunk are decoded while the network runs on this one
        pending = [pool.submit(lambda c=c: [_prepare(records[k], width, height) for k in c])
                   for c in chunks[:2]]
        for n, chunk in enumerate(chunks):
            prepared = pending[n].result()
            if n + 2 < len(chunks):
                nxt = chunks[n + 2]
                pending.append(pool.submit(lambda c=nxt: [_prepare(records[k], width, height) for k in c]))
            x = np.stack([p[0] for p in prepared])
            y = net.forward(x)
            for k, out, (_, info) in zip(chunk, y, prepared):
                boxes, scores, classes = postprocess(out, region.anchors, region.classes, info,
                                                     thresh=thresh, nms_thresh=nms,
                                                     coords=int(region.coords))
                results[k] = Detections(boxes, scores, classes)
            if progress is not None:
                progress.update(len(chunk))
    return results


def evaluate_records(net, records, num_classes, thresh=0.005, nms=0.45, batch=8, progress=None,
                     use_07_metric=False):
    """(VOC result, COCO result, detections) of `net` on `records`."""
    dets = predict_records(net, records, thresh=thresh, nms=nms, batch=batch, progress=progress)
    gts = {k: ground_truth_from_record(r) for k, r in enumerate(records)}
    voc = evaluate_voc(gts, dets, num_classes, use_07_metric=use_07_metric)
    coco = evaluate_coco(gts, dets, num_classes)
    return voc, coco, dets
