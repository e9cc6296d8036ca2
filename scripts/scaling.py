"""How far `mpiexec -n N yolo9000 train` scales: measured here for N = 1, 2, modelled beyond.

    python scripts/scaling.py [--images 4] [--repeats 3] [--min-efficiency 0.5]
                              [--json FILE] [--markdown]

Measured (this machine, one thread per rank, ranks started with the `mpiexec` next to this
Python, i.e. the [mpi] extra's MPICH):
  compute    forward + region loss + backward of yolov2-tiny-voc at 416x416 on a mini-batch of
             --images random images with random boxes (scripts/bench.py's training step without
             the update), per image, the slowest rank's median; with N = 2 both ranks compute
             at once, sharing the machine's memory bandwidth.
  allreduce  the one in-place MPI Allreduce of a training step (parallel.py) over a
             float32 buffer of each model's size (every parameter, batch-norm statistics
             included), the median over --repeats; shared memory between the two ranks here.

Modelled (ranks on separate hosts, a ring allreduce over the network):
  t_iteration(N) = 64/N · t_image + 2(N−1)/N · bytes / bandwidth + 2(N−1) · latency
with 64 images per iteration (the VOC cfgs' batch), t_image the measured one-rank compute per
image (yolov2-voc's: yolov2-tiny-voc's scaled by the training FLOPs), LATENCY per ring step.
Efficiency = t_iteration(1) / (N · t_iteration(N)); the largest N worth using is the largest
N ≤ 64 (each rank at least one image) whose efficiency is at least --min-efficiency.
A rank measured here is one core. A cluster's rank is a whole host: --rank-cores k models
ranks that compute k times faster (the one-core time divided by k, as if the work split
perfectly over the host's cores), which leaves the allreduce k times heavier in comparison.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

MEASURED_MODEL = "yolov2-tiny-voc"
MODELS = ("yolov2-voc", "yolov2-tiny-voc")
SIZE = 416
BATCH = 64                          # images per iteration (darknet's VOC cfgs)
BANDWIDTHS = (10, 25, 100)          # Gbit/s
TABLE_RANKS = (2, 4, 8, 16, 32, 64)
LATENCY = 20e-6                     # s per ring step: TCP on a data-centre network
RANK_CORES = (1, 16)                # one core (as measured), a 16-core host


def model_facts():
    """{model: (buffer bytes, training FLOPs per image)}: the Allreduce buffer (4 bytes x
    every parameter) and forward + backward FLOPs, as scripts/bench.py counts them."""
    from bench import build_ours, train_flops, weights_bytes
    facts = {}
    for model in MODELS:
        net = build_ours(model, (SIZE, SIZE), None)
        facts[model] = (weights_bytes(net), train_flops(net))
    return facts


def measure(images, repeats, buffer_sizes):
    """On every rank under mpiexec: rank 0 prints the JSON of this world's figures."""
    import numpy as np
    from mpi4py import MPI
    from bench import OursTrainer, build_ours, random_input, random_truths
    comm = MPI.COMM_WORLD
    net = build_ours(MEASURED_MODEL, (SIZE, SIZE), None)
    step = OursTrainer(net, random_input(net, images, seed=comm.rank),
                       random_truths(net.layers[-1], images, seed=comm.rank), update=False)
    step.step()                       # warm-up: workspaces, caches
    seconds = []
    for _ in range(repeats):
        comm.Barrier()
        t = time.perf_counter()
        step.step()
        seconds.append(time.perf_counter() - t)
    per_image = max(comm.allgather(statistics.median(seconds))) / images
    allreduce = {}
    for model, nbytes in buffer_sizes.items():
        buffer = np.ones(nbytes // 4, np.float32)
        times = []
        for _ in range(repeats):
            comm.Barrier()
            t = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            times.append(time.perf_counter() - t)
        allreduce[model] = max(comm.allgather(statistics.median(times)))
    if comm.rank == 0:
        print(json.dumps({"ranks": comm.size, "compute_per_image": per_image,
                          "allreduce": allreduce}))


def run_measurement(ranks, images, repeats, buffer_sizes):
    mpiexec = Path(sys.executable).with_name("mpiexec")
    if not mpiexec.exists():
        raise SystemExit(f"no mpiexec next to {sys.executable}: pip install 'yolo9000[mpi]'")
    env = dict(os.environ, YOLO9000_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([str(mpiexec), "-n", str(ranks), sys.executable, __file__, "--measure",
                           "--images", str(images), "--repeats", str(repeats),
                           "--buffers", json.dumps(buffer_sizes)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"measurement with {ranks} ranks failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ring_allreduce_seconds(ranks, nbytes, gbits):
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes * 8 / (gbits * 1e9) + 2 * (ranks - 1) * LATENCY


def iteration_seconds(ranks, per_image, nbytes, gbits):
    return BATCH / ranks * per_image + ring_allreduce_seconds(ranks, nbytes, gbits)


def efficiency(ranks, per_image, nbytes, gbits):
    return iteration_seconds(1, per_image, nbytes, gbits) / (
        ranks * iteration_seconds(ranks, per_image, nbytes, gbits))


def model_rows(per_image, facts, min_efficiency, rank_cores=RANK_CORES):
    """One row per (rank cores, model, bandwidth): efficiency at TABLE_RANKS and the largest N
    worth using."""
    tiny_flops = facts[MEASURED_MODEL][1]
    rows = []
    for cores, model, gbits in ((c, m, g) for c in rank_cores for m in MODELS for g in BANDWIDTHS):
        nbytes, flops = facts[model]
        image = per_image * flops / tiny_flops / cores
        worth = [n for n in range(2, BATCH + 1)
                 if efficiency(n, image, nbytes, gbits) >= min_efficiency]
        rows.append({"rank_cores": cores, "model": model, "gbits": gbits, "bytes": nbytes,
                     "seconds_per_image": image,
                     "efficiency": {n: efficiency(n, image, nbytes, gbits)
                                    for n in TABLE_RANKS},
                     "iteration_seconds": {n: iteration_seconds(n, image, nbytes, gbits)
                                           for n in (1, *TABLE_RANKS)},
                     "largest_worth": max(worth) if worth else 1})
    return rows


def measured_lines(one, two, facts):
    lines = []
    for result in (one, two):
        n = result["ranks"]
        lines.append(f"N={n}: {MEASURED_MODEL} compute {result['compute_per_image'] * 1000:.0f} "
                     f"ms/image per rank; allreduce " + ", ".join(
                         f"{m} ({facts[m][0] / 2**20:.0f} MB) {t * 1000:.1f} ms"
                         for m, t in result["allreduce"].items()))
    one_iteration = BATCH * one["compute_per_image"]
    two_iteration = BATCH / 2 * two["compute_per_image"] + two["allreduce"][MEASURED_MODEL]
    lines.append(f"{MEASURED_MODEL}, {BATCH} images per iteration at {SIZE}: N=1 "
                 f"{one_iteration:.1f} s, N=2 {two_iteration:.1f} s per iteration "
                 f"(speed-up {one_iteration / two_iteration:.2f}, efficiency "
                 f"{one_iteration / (2 * two_iteration):.0%})")
    return lines


def markdown(rows, min_efficiency):
    head = ("| cores per rank | model | Gbit/s | " + " | ".join(f"N={n}" for n in TABLE_RANKS)
            + f" | largest N with efficiency ≥ {min_efficiency:.0%} |")
    out = [head, "|" + "---|" * (4 + len(TABLE_RANKS))]
    for r in rows:
        out.append(f"| {r['rank_cores']} | {r['model']} | {r['gbits']} | "
                   + " | ".join(f"{r['efficiency'][n]:.0%}" for n in TABLE_RANKS)
                   + f" | {r['largest_worth']} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="images per timed mini-batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-efficiency", type=float, default=0.5)
    parser.add_argument("--rank-cores", default=",".join(map(str, RANK_CORES)),
                        help="cores per modelled rank, comma-separated")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--buffers", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.measure:
        measure(opts.images, opts.repeats, json.loads(opts.buffers))
        return
    facts = model_facts()
    buffer_sizes = {m: facts[m][0] for m in MODELS}
    one = run_measurement(1, opts.images, opts.repeats, buffer_sizes)
    two = run_measurement(2, opts.images, opts.repeats, buffer_sizes)
    for line in measured_lines(one, two, facts):
        print(line)
    # the model's ranks compute alone on their host, as the one-rank measurement did
    rows = model_rows(one["compute_per_image"], facts, opts.min_efficiency,
                      [int(c) for c in opts.rank_cores.split(",")])
    print()
    if opts.markdown:
        print(markdown(rows, opts.min_efficiency))
    else:
        print(f"{'cores':>5} {'model':16} {'Gbit/s':>6} "
              + " ".join(f"{'N=' + str(n):>6}" for n in TABLE_RANKS)
              + f"  largest N (efficiency >= {opts.min_efficiency:.0%})")
        for r in rows:
            print(f"{r['rank_cores']:>5} {r['model']:16} {r['gbits']:>6} "
                  + " ".join(f"{r['efficiency'][n]:>6.0%}" for n in TABLE_RANKS)
                  + f"  {r['largest_worth']}")
    if opts.json:
        Path(opts.json).write_text(json.dumps({"measured": [one, two], "model": rows,
                                               "latency": LATENCY, "batch": BATCH},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
