"""Benchmark of anchor k-means: n boxes, k clusters, r restarts; prints the median time.

    python scripts/bench_anchors.py [n_boxes] [k] [restarts] [repeats]

The boxes are synthetic but shaped like detection data: log-normal sizes (median 0.3 of the
image) with a log-normal aspect ratio, clipped to [0.005, 1], drawn with a fixed seed.
"""
import statistics
import time

import numpy as np


def synthetic_boxes(n_boxes, seed=0):
    rng = np.random.default_rng(seed)
    log_size = rng.normal(np.log(0.3), 0.7, n_boxes)
    log_aspect = rng.normal(0.0, 0.5, n_boxes)
    w = np.clip(np.exp(log_size + log_aspect / 2), 0.005, 1.0)
    h = np.clip(np.exp(log_size - log_aspect / 2), 0.005, 1.0)
    return np.stack([w, h], axis=1).astype(np.float32)


def bench_anchors(n_boxes=1_000_000, k=9, restarts=10, repeats=5) -> dict:
    """Time ``kmeans_anchors`` (metric 1 - IoU) ``repeats`` times on the same boxes."""
    from yolo9000.data.anchors import kmeans_anchors

    wh = synthetic_boxes(n_boxes)
    times, result = [], None
    for i in range(repeats):
        start = time.perf_counter()
        result = kmeans_anchors(wh, k, restarts=restarts, seed=i)
        times.append(time.perf_counter() - start)
    return {
        "name": "anchors",
        "n_boxes": n_boxes, "k": k, "restarts": restarts, "repeats": repeats,
        "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
        "times_s": times, "avg_iou": result.avg_iou, "iterations": result.iterations,
    }


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("n_boxes", 1_000_000), ("k", 9), ("restarts", 10), ("repeats", 5)):
        parser.add_argument(name, type=int, nargs="?", default=default,
                            help=f"(default {default})")
    options = parser.parse_args()
    r = bench_anchors(options.n_boxes, options.k, options.restarts, options.repeats)
    print(f"anchors k-means: {r['n_boxes']} boxes, k = {r['k']}, {r['restarts']} restarts: "
          f"median {r['median_s']:.2f} s over {r['repeats']} runs "
          f"(min {r['min_s']:.2f} s, max {r['max_s']:.2f} s), avg IoU {r['avg_iou']:.4f}")
