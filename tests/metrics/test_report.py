"""metrics/report.py: the metrics.json layouts and printed figures of `evaluate`, by hand."""
import numpy as np

from yolo9000.metrics.classification import ClassificationResult
from yolo9000.metrics.report import (classification_metrics_dict, classification_summary_line,
                                     json_number, percent)


def test_numbers_are_rounded_and_nan_is_null_or_a_dash():
    assert json_number(0.12345678) == 0.123457
    assert json_number(np.float32(0.5)) == 0.5 and type(json_number(np.float32(0.5))) is float
    assert json_number(float("nan")) is None
    assert percent(0.12345) == "12.3" and percent(1.0) == "100.0"
    assert percent(float("nan")) == "-"


def test_a_classifiers_metrics_json_and_summary_line():
    # 3 images of "cat" (2 right), none of "dog", 1 of "owl" taken for a cat
    confusion = np.array([[2, 1, 0], [0, 0, 0], [1, 0, 0]], np.int64)
    result = ClassificationResult(top1=0.5, top5=1.0, loss=0.693147, images=4,
                                  confusion=confusion)
    metrics = classification_metrics_dict(result, ["cat", "dog", "owl"], 1.23456, data="d")
    assert list(metrics) == ["data", "task", "top1", "top5", "loss", "mean_class_accuracy",
                             "images", "seconds", "classes", "confusion"]
    assert metrics["task"] == "classification" and metrics["seconds"] == 1.235
    assert (metrics["top1"], metrics["top5"], metrics["loss"]) == (0.5, 1.0, 0.693147)
    assert metrics["mean_class_accuracy"] == 0.333333          # (2/3 + 0/1) / 2 classes seen
    assert metrics["classes"] == [{"id": 0, "name": "cat", "images": 3, "top1": 0.666667},
                                  {"id": 1, "name": "dog", "images": 0, "top1": None},
                                  {"id": 2, "name": "owl", "images": 1, "top1": 0.0}]
    assert metrics["confusion"] == [[2, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert classification_summary_line(result) == \
        "top-1: 50.0   top-5: 100.0   mean per-class top-1: 33.3   loss: 0.6931"
