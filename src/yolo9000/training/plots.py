"""results.png of a training run: the loss parts per iteration (train_log.csv) beside the
validation figures of each evaluation (mAP for a detector, top-1/top-5 for a classifier)."""
import csv
from pathlib import Path

import numpy as np

from ..fileio import atomic_path


def plot_results(run_dir, history, loss_keys, log_scale, result_lines, echo=print):
    """Write run_dir/results.png and return its path; None without matplotlib or log rows.

    history: results.csv's rows; loss_keys, log_scale, result_lines: the task's plot_panels()
    (the log columns to draw, whether on a log scale, and (column, style, label) per line of
    the validation panel)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        echo("matplotlib is not installed: results.png skipped (pip install 'yolo9000[plot]')")
        return None
    log_path = Path(run_dir) / "train_log.csv"
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    it = np.array([int(r["iteration"]) for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for key in loss_keys:
        v = np.array([float(r[key]) for r in rows])
        x = it
        if len(v) > 20:    # a trailing running mean makes the trend readable, no edge dips
            k = max(1, len(v) // 50)
            v = np.convolve(v, np.ones(k) / k, mode="valid")
            x = it[k - 1:]
        ax.plot(x, v, label=key, lw=1.2 if key == "loss" else 0.9)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_title("training loss (per batch, smoothed)")
    ax.legend()
    ax = axes[1]
    if history:
        hi = [int(r["iteration"]) for r in history]
        for key, style, label in result_lines:
            ax.plot(hi, [float(r[key]) for r in history], style, label=label)
        ax.set_ylim(0, 1)
        ax.legend()
    ax.set_xlabel("iteration")
    ax.set_title("validation")
    fig.tight_layout()
    out = Path(run_dir) / "results.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
