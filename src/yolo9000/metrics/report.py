"""Evaluation figures as `evaluate` reports them: the metrics.json layouts of a detector and of
a classifier (RUN/metrics.json and --metrics-json), and the summary lines it prints.

Fractions in JSON are rounded to 6 decimals, with null for nan (a class without ground truth);
printed figures are percentages with one decimal, "-" for nan.
"""
import math


def json_number(value, digits=6):
    """A float for JSON: rounded, and null instead of nan (a class with no ground truth)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def percent(value):
    value = float(value)
    return f"{100 * value:.1f}" if math.isfinite(value) else "-"


def detection_metrics_dict(voc, coco, names, images, seconds, **info):
    """A detector's metrics.json: `info` (the run's settings) first, then the VOC and COCO
    figures and one entry per class."""
    classes = [{"id": c, "name": names[c], "num_gt": int(voc.num_gt[c]),
                "num_det": int(voc.num_det[c]), "AP": json_number(voc.ap[c]),
                "recall": json_number(voc.recall[c]) if voc.num_gt[c] else None,
                "AP50_95": json_number(coco.ap[c]), "AP75": json_number(coco.ap75[c])}
               for c in range(len(voc.ap))]
    return {**info,
            "metric": "voc07 11-point" if voc.use_07_metric else "voc all-point",
            "mAP50": json_number(voc.map), "mAP50_95": json_number(coco.map),
            "AP50": json_number(coco.map50), "AP75": json_number(coco.map75),
            **{k: json_number(v) for k, v in coco.stats().items()
               if k not in ("AP", "AP50", "AP75")},
            "images": int(images), "seconds": round(float(seconds), 3),
            "images_per_second": round(images / seconds, 3) if seconds > 0 else None,
            "classes": classes}


def detection_summary_lines(voc, coco):
    """The lines under the per-class table: VOC mAP, then COCO's AP and AR figures."""
    metric = "VOC2007 11-point" if voc.use_07_metric else "VOC all-point"
    return [f"mAP@0.5 ({metric}): {percent(voc.map)}",
            f"COCO mAP@[.5:.95]: {percent(coco.map)}   AP50: {percent(coco.map50)}   "
            f"AP75: {percent(coco.map75)}",
            f"COCO AP small/medium/large: {percent(coco.map_small)} / "
            f"{percent(coco.map_medium)} / {percent(coco.map_large)}   AR@1/10/100: "
            f"{percent(coco.ar1)} / {percent(coco.ar10)} / {percent(coco.ar100)}"]


def classification_metrics_dict(result, names, seconds, **info):
    """A classifier's metrics.json: top-1 and top-5 as fractions, per-class accuracy and the
    confusion matrix (rows: true class, columns: top-1 prediction)."""
    accuracy = result.class_accuracy
    return {**info, "task": "classification",
            "top1": json_number(result.top1), "top5": json_number(result.top5),
            "loss": json_number(result.loss),
            "mean_class_accuracy": json_number(result.mean_class_accuracy),
            "images": result.images, "seconds": round(float(seconds), 3),
            "classes": [{"id": c, "name": names[c], "images": int(result.class_totals[c]),
                         "top1": json_number(accuracy[c])} for c in range(len(names))],
            "confusion": result.confusion.tolist()}


def classification_summary_line(result):
    return (f"top-1: {percent(result.top1)}   top-5: {percent(result.top5)}   mean per-class "
            f"top-1: {percent(result.mean_class_accuracy)}   loss: {result.loss:.4f}")
