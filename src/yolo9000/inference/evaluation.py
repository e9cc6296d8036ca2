"""Score a detector on a dataset: the piece `train --val` and `evaluate` share; and the whole of
`yolo9000 evaluate` for a detector or a classifier (the command parses its options and calls
`evaluate_detector_dataset` or `evaluate_classifier_dataset`).

The detections come from `Detector.stream` (the same pipeline `detect` runs); build the
detector with ``evaluation=True`` so that a word-tree model is scored class by class. Under
MPI (parallel.py) each rank predicts its share of the images and every rank gets
all the detections, so the scores are one process's.

`evaluate` prints through `say` (stdout, or stderr when a JSON output goes to stdout) and
`warn` (stderr); the layouts of what it writes are metrics/report.py's (metrics.json) and
inference/export.py's (--save-json).
"""
import json
import sys
import time
from pathlib import Path

from ..errors import Interrupted, UserError, shown_path, stop_requests
from ..kernels.precisions import FP32
from ..metrics.detection import Detections, evaluate_coco, evaluate_voc, ground_truth_from_record


def predict_records(detector, records, batch=8, progress=None, stop_signals=()):
    """Detections (original pixels) for every record, keyed by record index; only for those
    done before a signal arrived in `stop_signals` (errors.stop_requests)."""
    from ..parallel import world
    ranks = world()

    def predict(mine):
        results = {}
        stream = detector.stream((r.path for r in mine), batch_size=batch)
        for k, result in enumerate(stream):
            if stop_signals:
                break
            results[k] = Detections(result.boxes, result.scores, result.classes)
            if progress is not None:
                progress.update(ranks.size)     # rank 0's bar stands for all ranks
        return results
    return ranks.map_sharded(records, predict)


def evaluate_records(detector, records, batch=8, progress=None, use_07_metric=False):
    """(VOC result, COCO result, detections) of `detector` on `records`, whose class ids must
    be the detector's."""
    dets = predict_records(detector, records, batch=batch, progress=progress)
    return (*score_records(records, dets, detector.num_classes, use_07_metric), dets)


def score_records(records, dets, num_classes, use_07_metric=False):
    """(VOC result, COCO result) of the detections `dets` of every record."""
    gts = {k: ground_truth_from_record(r) for k, r in enumerate(records)}
    voc = evaluate_voc(gts, dets, num_classes, use_07_metric=use_07_metric)
    coco = evaluate_coco(gts, dets, num_classes)
    return voc, coco


# -- `yolo9000 evaluate`: a model on a dataset, reported and written to a run folder -----------
def evaluated_split(data, split, warn):
    """The list of a .data file to evaluate (the given split, else darknet's valid=), said
    through warn: evaluating the training list by accident looks like a great model."""
    if Path(data).suffix.lower() != ".data" or not Path(data).is_file():
        return split
    from ..data.formats import evaluation_list_key
    chosen = split or evaluation_list_key(data)
    warn(f"note: evaluating the {chosen!r} list of {data}"
         + (" (it has no 'valid =' entry)" if split is None and chosen == "train" else ""))
    return chosen


def write_run_results(run_dir, metrics, plot_name, plot, say, warn):
    """metrics.json and the plot (plot(path) -> False without matplotlib) in the run folder;
    returns the metrics' JSON text."""
    from ..fileio import write_output
    metrics_text = json.dumps(metrics, indent=1) + "\n"
    write_output(run_dir / "metrics.json", metrics_text, "metrics")
    written = ["metrics.json"]
    if plot(run_dir / plot_name):
        written.append(plot_name)
    else:
        warn(f"note: matplotlib is not installed: {plot_name} skipped "
             "(pip install 'yolo9000[plot]')")
    say(f"results: {run_dir} ({', '.join(written)})")
    return metrics_text


def evaluate_detector_dataset(data, *, weights, cfg, model, names, size, split, data_format,
                              voc07, thresh, hier_thresh, tree_walk, nms_thresh, batch,
                              no_difficult, project, name, exist_ok, json_path, dets_path,
                              json_format, say, warn, precision=FP32):
    """`evaluate` of a detector: VOC and COCO mAP with a per-class table, metrics.json and
    pr_curve.png in a run folder, the detections (--save-json) and metrics (--metrics-json)
    as JSON. Under MPI each rank runs its share of the images; rank 0 reports and writes."""
    from ..data.classes import reconcile_classes
    from ..data.formats import load_dataset
    from ..data.report import dataset_report
    from ..fileio import write_output
    from ..metrics.detection import format_table, plot_pr_curves
    from ..metrics.report import detection_metrics_dict, detection_summary_lines
    from ..parallel import world
    from ..progress import Progress, images_rate_line
    from ..runs import new_run_dir
    from .detector import Detector
    from .export import detections_json, mark_incomplete

    detector = Detector(model=model, cfg=cfg, weights=weights, names=names, size=size,
                        thresh=thresh, nms=nms_thresh, evaluation=True, hier_thresh=hier_thresh,
                        tree_walk=tree_walk, precision=precision)
    if detector.notice:
        warn(f"note: {detector.notice}")
    net = detector.net
    num_classes = detector.num_classes
    model_names = detector.names if detector.names_source else None

    split = evaluated_split(data, split, warn)
    dataset = load_dataset(data, format=data_format, names=names, split=split,
                           use_difficult=not no_difficult)
    for line in dataset_report(dataset):
        warn(line)
    if detector.tree is not None:
        # a word-tree model scores each dataset class as its tree node (by name or WordNet
        # id; through the cfg's map= for a dataset of the map's size, e.g. COCO)
        from ..data.classes import tree_nodes
        class_map = net.region.class_map
        if class_map is not None and len(dataset.names) != len(class_map):
            class_map = None
        detector.score_classes(tree_nodes(dataset.names, detector.tree, class_map, path=data),
                               dataset.names)
        class_names, num_classes = list(dataset.names), len(dataset.names)
    else:
        dataset, class_names, notes = reconcile_classes(dataset, num_classes, model_names,
                                                        detector.names_source, data_path=data)
        for n in notes:
            warn(f"note: {n}")

    records = dataset.records
    n_difficult = sum(int(r.difficult.sum()) for r in records)
    weights_used = weights if weights is not None else "bundled default"
    say(f"data: {data} ({dataset.format}, {len(records)} images, {dataset.num_boxes} boxes"
        + (f", {n_difficult} difficult" if n_difficult else "") + f", {num_classes} classes)")
    say(f"model: {cfg or model or 'stored cfg'} + {weights_used} "
        f"({net.width}x{net.height}), thresh {thresh:g}, nms {nms_thresh:g}")

    ranks = world()
    run_dir = ranks.from_main(lambda: new_run_dir(project, name, exist_ok))
    progress = Progress(len(records), desc="evaluating", unit="img", stream=sys.stderr)
    start = time.perf_counter()
    with stop_requests() as stop_signals:
        dets = predict_records(detector, records, batch=batch, progress=progress,
                               stop_signals=stop_signals)
    seconds = time.perf_counter() - start
    progress.close()
    if not ranks.is_main:       # the images were shared out; rank 0 reports and writes
        return 0
    if stop_signals:
        # scores of a part of the set would pass for the model's: only the detections stay
        done = f"interrupted after {len(dets)} of {len(records)} images, no metrics"
        if dets_path is not None:
            text, _ = detections_json(records, dets, class_names, json_format,
                                      dataset.category_ids)
            write_output(dets_path, mark_incomplete(text, len(dets), len(records)),
                         "detections")
            if dets_path != "-":
                done += f"; {shown_path(dets_path)} holds the detections of those images, marked incomplete"
        raise Interrupted(done, stop_signals[0])
    voc, coco = score_records(records, dets, detector.num_classes, voc07)

    say(format_table(voc, class_names))
    say()
    for line in detection_summary_lines(voc, coco):
        say(line)
    say(images_rate_line(len(records), seconds))

    result = detection_metrics_dict(voc, coco, class_names, len(records), seconds,
                                    data=str(data), format=dataset.format, split=split,
                                    weights=str(weights_used), cfg=cfg, model=model,
                                    size=[int(net.width), int(net.height)], thresh=thresh,
                                    nms=nms_thresh,
                                    difficult="dropped" if no_difficult else "ignored",
                                    precision=net.precision_note)
    metrics_text = write_run_results(run_dir, result, "pr_curve.png",
                                     lambda path: plot_pr_curves(voc, class_names, path), say,
                                     warn)

    if dets_path is not None:
        text, left_out = detections_json(records, dets, class_names, json_format,
                                         dataset.category_ids)
        if left_out:
            warn(f"note: {left_out} detections of classes with no category in {data} "
                 f"left out of {dets_path}")
        write_output(dets_path, text, "detections")
        if dets_path != "-":
            say(f"detections: {dets_path}")
    if json_path is not None:
        write_output(json_path, metrics_text, "metrics")
        if json_path != "-":
            say(f"json: {json_path}")
    return 0


def evaluate_classifier_dataset(data, *, weights, cfg, model, names, size, batch, split,
                                project, name, exist_ok, json_path, dets_path, say, warn,
                                precision=FP32):
    """`evaluate` of a classifier: top-1 / top-5 with a per-class table, metrics.json and
    confusion_matrix.png in a run folder, each image's top-5 classes (--save-json) and the
    metrics (--metrics-json) as JSON."""
    from ..data.formats import classification_report, load_classification_dataset
    from ..fileio import write_output
    from ..metrics.classification import format_table, plot_confusion
    from ..metrics.report import classification_metrics_dict, classification_summary_line
    from ..progress import Progress, images_rate_line
    from ..runs import new_run_dir
    from .classifier import Classifier, evaluate_classifier
    from .export import classification_entry, json_list_text

    classifier = Classifier(model=model, cfg=cfg, weights=weights, names=names, size=size,
                            precision=precision)
    if classifier.notice:
        warn(f"note: {classifier.notice}")
    if classifier.names_source is None:
        raise UserError("the classifier's classes have no names (give --names) so its outputs "
                        "cannot be matched to the dataset's class folders", path=weights)
    split = evaluated_split(data, split, warn)
    dataset = load_classification_dataset(data, names=classifier.names, split=split)
    for line in classification_report(dataset, "evaluation"):
        warn(line)
    records = dataset.records
    say(f"data: {data} ({len(records)} images, {len(dataset.names)} classes)")
    say(f"model: {cfg or model or 'stored cfg'} + {weights} ({classifier.net.width}x"
        f"{classifier.net.height}, classifier)")
    run_dir = new_run_dir(project, name, exist_ok)
    progress = Progress(len(records), desc="evaluating", unit="img", stream=sys.stderr)
    start = time.perf_counter()
    result = evaluate_classifier(classifier, records, batch=max(batch, 32), progress=progress)
    seconds = time.perf_counter() - start
    progress.close()
    say(format_table(result, classifier.names))
    say()
    say(classification_summary_line(result))
    say(images_rate_line(len(records), seconds))
    metrics = classification_metrics_dict(result, classifier.names, seconds, data=str(data),
                                          weights=str(weights), cfg=cfg, model=model,
                                          size=[int(classifier.net.width),
                                                int(classifier.net.height)],
                                          precision=classifier.net.precision_note)
    metrics_text = write_run_results(run_dir, metrics, "confusion_matrix.png",
                                     lambda path: plot_confusion(result, classifier.names, path),
                                     say, warn)
    if dets_path is not None:
        entries = []
        for record, p, (width, height) in zip(records, result.probabilities, result.sizes):
            order = [int(i) for i in (-p).argsort(kind="stable")[:5]]
            entries.append(classification_entry(record.path, width, height, [
                (i, classifier.names[i], p[i]) for i in order]))
        write_output(dets_path, json_list_text(entries), "classifications")
    if json_path is not None:
        write_output(json_path, metrics_text, "metrics")
        if json_path != "-":
            say(f"json: {json_path}")
    return 0
