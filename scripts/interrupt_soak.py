"""Interrupt `yolo9000 train` at random moments and check every run stops cleanly and resumes.

    python scripts/interrupt_soak.py [--trials 20] [--signal INT|TERM|KILL] [--seed 1]

Each trial starts a small training run (the bundled yolov2-shapes at 64 px on a fresh synthetic
dataset; workers 0 and 2 alternately) through the installed `yolo9000` script, sends the
signal after a random 0.5-4 s, then checks: SIGINT/SIGTERM exit 130 with "interrupted at
iteration N; resume with --resume RUN" and a last.h5 holding iteration N; SIGKILL leaves no
temporary checkpoint once the run is resumed. Every trial must then resume for one iteration.
Prints one line per trial and the count of clean trials; exits 1 unless all were clean.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("yolo9000")


def last_iteration(run):
    import h5py
    with h5py.File(run / "weights" / "last.h5", "r") as f:
        return int(f["optimizer/iteration"][()])


def trial(k, root, data, sig, rng):
    workers = 2 * (k % 2)
    run = root / "runs" / f"r{k}"
    env = dict(os.environ, YOLO9000_THREADS="1")
    train = subprocess.Popen(
        [str(SCRIPT), "train", "--cfg", "yolov2-shapes", "--data", str(data), "--size", "64",
         "--batch", "2", "--max-batches", "1000", "--save-every", "5", "--workers", str(workers),
         "--project", str(run.parent), "--name", run.name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(rng.uniform(0.5, 4.0))
    train.send_signal(sig)
    _, err = train.communicate(timeout=120)
    lines = err.strip().splitlines()
    problems = []
    if sig == signal.SIGKILL:
        if train.returncode != -signal.SIGKILL:
            problems.append(f"exit {train.returncode}")
    else:
        iteration = last_iteration(run) if (run / "weights" / "last.h5").is_file() else None
        expected = f"interrupted at iteration {iteration}; resume with --resume {run}"
        if train.returncode != 130:
            problems.append(f"exit {train.returncode}")
        if not lines or lines[-1] != expected:
            problems.append(f"last line {lines[-1] if lines else ''!r}")
    if not (run / "weights" / "last.h5").is_file():
        return workers, "no last.h5 yet (interrupted before the first checkpoint)", True
    stopped = last_iteration(run)
    resumed = subprocess.run([str(SCRIPT), "train", "--resume", str(run), "--iterations", "1"],
                             capture_output=True, text=True, env=env, timeout=300)
    if resumed.returncode != 0:
        problems.append(f"resume exit {resumed.returncode}: {resumed.stderr.strip()[-200:]}")
    leftovers = sorted(p.name for p in (run / "weights").glob(".*.tmp"))
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    if not problems and last_iteration(run) != stopped + 1:
        problems.append(f"resumed to iteration {last_iteration(run)}, not {stopped + 1}")
    return workers, "; ".join(problems) or f"stopped at iteration {stopped}, resumed", not problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--signal", choices=["INT", "TERM", "KILL"], default="INT")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not SCRIPT.is_file():
        sys.exit(f"no installed yolo9000 script at {SCRIPT}: pip install . first")
    sig = getattr(signal, f"SIG{args.signal}")
    rng = random.Random(args.seed)
    from yolo9000.data.synthetic_shapes import make_shapes
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_shapes(root / "data", n_train=32, n_val=0, size=64, seed=0)["train"]
        clean = 0
        for k in range(args.trials):
            workers, what, ok = trial(k, root, data, sig, rng)
            clean += ok
            print(f"trial {k + 1:2d}/{args.trials} workers {workers}: {'ok ' if ok else 'BAD'} {what}",
                  flush=True)
    print(f"{clean} of {args.trials} trials clean (SIG{args.signal})")
    sys.exit(0 if clean == args.trials else 1)


if __name__ == "__main__":
    main()
