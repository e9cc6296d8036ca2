"""Training a YOLOv2 detector or a Darknet-19-style classifier: darknet's train_detector and
train_classifier loop, with checkpoints that resume exactly. What differs between the two
(data, augmentation, loss, evaluation) is the task's (tasks.py); the cfg says which it is.

One iteration = one weight update = `batch` images, processed as `subdivisions` mini-batches
whose gradients accumulate. Everything random is a pure function of (seed, index): which images
form mini-batch i and how they are augmented (loader.py), and the multi-scale input size of
iteration i. So a run resumed from a checkpoint (weights, BN statistics, momentum buffers,
iteration, seen) continues with exactly the numbers the uninterrupted run would have used.

Run folder (runs/train/NAME):
    model.cfg, classes.names, anchors.txt, args.json
    weights/last.h5, weights/best.h5          (atomic writes)
    train_log.csv (one row per iteration), results.csv (one row per evaluation), results.png
    (a classifier's run has no anchors.txt; its results are loss, top-1 and top-5)
"""
import contextlib
import csv
import io
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..model.cfg import adapt_cfg, anchors_line, check_input_size, parse_cfg_text, resolve_cfg
from .tasks import task_for
from ..errors import Interrupted, UserError, shown_path, stop_requests
from ..layers.batchnorm import MOMENTUM as BN_MOMENTUM
from ..fileio import atomic_write_text, errno_text, remove_stale_temps, require_free_space
from ..memory import check_memory
from ..model.network import Network
from ..parallel import world
from .optim import learning_rate, make_optimizer, optimizer_class
from .guard import StepGuard
from .plots import plot_results
from .settings import TrainSettings
from ..progress import Progress

PRECISE_BN_BATCHES = 10                   # mini-batches averaged for evaluation statistics
MULTISCALE_EVERY = 10                     # darknet: a new input size every 10 batches
MULTISCALE_RANGE = (320 / 416, 608 / 416)  # {320, ..., 608} for a 416 network, scaled for others


def log_fields(task):
    """train_log.csv's columns: one row per iteration."""
    return ["iteration", "seen", "size", "lr", *task.log_fields, "images_per_s"]


def result_fields(task):
    """results.csv's columns: one row per evaluation."""
    return ["iteration", "seen", *task.result_fields, "eval_seconds"]


def multiscale_sizes(base):
    lo = max(1, math.ceil(base * MULTISCALE_RANGE[0] / 32 - 1e-9))
    hi = max(lo, math.floor(base * MULTISCALE_RANGE[1] / 32 + 1e-9))
    return [k * 32 for k in range(lo, hi + 1)]


def check_training_memory(net, settings, mini_batch, multiscale):
    """Refuse a run whose training cannot fit in memory (Network.memory_needed at the largest
    multi-scale size, --parallel mini-batches at once) before the optimiser, the data workers
    and the first batch allocate anything: one line instead of a MemoryError traceback."""
    o = net.options
    largest = [max(multiscale_sizes(v)) if multiscale else v for v in (o.width, o.height)]
    at_once = mini_batch * max(1, min(int(settings.parallel or 1), o.subdivisions))
    buffers = optimizer_class(settings.optimizer).state_buffers
    check_memory(net.memory_needed(at_once, train=True, optimizer_buffers=buffers, size=largest),
                 f"training {at_once} images at a time at up to {largest[0]}x{largest[1]}",
                 path=settings.cfg)


def csv_lines(fields, rows, header=True):
    """Rows (dicts) as CSV text: the one format of train_log.csv and results.csv."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, restval="", extrasaction="ignore",
                            lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def training_cfg(cfg):
    """(cfg text, source) of --cfg: a cfg file, a bundled model name, or an .h5 checkpoint
    whose stored cfg it is (a classifier continued at a new size needs nothing else)."""
    from ..model.checkpoint import is_hdf5, read_checkpoint_cfg
    if cfg is not None and Path(str(cfg)).is_file() and is_hdf5(cfg):
        return read_checkpoint_cfg(cfg)[0], f"{cfg} (stored cfg)"
    return resolve_cfg(cfg)


def size_for_iteration(iteration, base, seed, multiscale):
    """The square input size used at `iteration` (a function of the index only)."""
    if not multiscale:
        return base
    sizes = multiscale_sizes(base)
    rng = np.random.default_rng([seed, 7919, iteration // MULTISCALE_EVERY])
    return int(sizes[rng.integers(len(sizes))])


class Trainer:
    def __init__(self, settings: TrainSettings, echo=print, warn=None):
        self.settings = settings
        self.echo = echo
        self.warn = warn or echo      # dataset problems; the CLI sends them to stderr
        self.run_dir = Path(settings.out)
        self.weights_dir = self.run_dir / "weights"
        self.best_score = -1.0   # the best validation score so far: mAP, or a classifier's top-1
        self.iteration = 0
        self.bad_steps = 0       # batches skipped for a non-finite loss or gradient
        self.history = []        # evaluation rows
        self.saved_iteration = None  # the iteration weights/last.h5 holds, once written
        self.world = world()     # the MPI ranks of the run; rank 0 alone writes files

    # -- set-up ----------------------------------------------------------------------------
    def setup(self, resume=False):
        settings = self.settings
        if settings.size is not None:
            check_input_size(settings.size, "input size")
        if resume:
            text, source = (self.run_dir / "model.cfg").read_text(), str(self.run_dir / "model.cfg")
        else:
            text, source = training_cfg(settings.cfg)
        self.task = task_for(parse_cfg_text(text, source))
        self.train_set, self.val_set = self.task.load_data(settings, self.warn)
        self.names = list(self.train_set.names)
        if resume:
            cfg_text, changes = text, []
        else:
            cfg_text, changes = adapt_cfg(text, classes=len(self.names), anchors=settings.anchors,
                                          width=settings.size, height=settings.size, source=source)
        self.net = Network(parse_cfg_text(cfg_text, str(self.run_dir / "model.cfg")),
                           seed=settings.seed)
        self.task.check(self.net, settings.cfg)
        self.task.bind(self)
        self.net.names = self.names
        o = self.net.options
        for key in ("max_batches", "batch", "subdivisions", "learning_rate", "momentum", "decay",
                    "burn_in", "policy", "steps", "scales"):
            value = getattr(settings, key)
            if value is not None:
                setattr(o, key, value)
        if o.batch % o.subdivisions:
            raise UserError(f"batch {o.batch} is not divisible by subdivisions {o.subdivisions}")
        if settings.epochs is not None and settings.max_batches is None:
            if settings.epochs <= 0:
                raise UserError(f"--epochs must be positive, got {settings.epochs:g}")
            o.max_batches = max(1, math.ceil(settings.epochs * len(self.train_set.records)
                                             / o.batch))
        if o.max_batches <= 0:
            raise UserError("max_batches must be positive (set it in the cfg, with --max-batches "
                            "or with --epochs)")
        self.mini_batch = o.batch // o.subdivisions
        self.steps = self.world.step_sync(self.net, o.subdivisions, self.mini_batch)
        self.base_size = o.width
        check_input_size(o.width, "input width", path=settings.cfg)
        check_input_size(o.height, "input height", path=settings.cfg)
        self.multiscale = settings.multiscale and self.task.multiscale(self.net)
        check_training_memory(self.net, settings, self.mini_batch, self.multiscale)
        self.optimizer = make_optimizer(settings.optimizer, self.net, o)
        self.guard = StepGuard(self.net, self.optimizer)
        if self.world.is_main:
            # a disk too full for one checkpoint would fail at the first save, after the work
            try:
                require_free_space(self.weights_dir / "last.h5", self.checkpoint_size(),
                                   "a checkpoint")
            except OSError as e:
                raise UserError(f"cannot train here: {errno_text(e)}", path=self.run_dir) from None
            if not resume:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.run_dir / "model.cfg", cfg_text)
                atomic_write_text(self.run_dir / "classes.names", "\n".join(self.names) + "\n")
                if self.net.region is not None:
                    atomic_write_text(self.run_dir / "anchors.txt",
                                      anchors_line(self.net.region.anchors) + "\n")
            # on resume too: a run resumed with a lower --lr keeps it when resumed again
            atomic_write_text(self.run_dir / "args.json",
                              json.dumps(asdict(settings), indent=2) + "\n")
            self._remove_stale_checkpoint_temps()
        if not resume:
            if settings.weights:
                self.net.load_weights(settings.weights, cutoff=settings.cutoff)
                if self.net.quantization is not None:
                    raise UserError("an int8 checkpoint does not train (training is fp32 and "
                                    "its fp32 weights are gone): start from the fp32 weights "
                                    "it was quantized from", path=settings.weights)
                self.net.seen = 0
                cut = f" (first {settings.cutoff} layers)" if settings.cutoff else ""
                self.echo(f"initial weights: {settings.weights}{cut}")
            for line in changes:
                self.echo(f"cfg adapted to the dataset: {line}")
        self.augment = self.task.augment(self.net, settings.augment)
        self.validator = None
        if self.val_set is not None:
            # Built now, so a class list the evaluation cannot use stops the run before training.
            self.validator = self.task.make_validator(self)
        return self

    def resume(self):
        """Restore weights, optimiser state, iteration and seen from run_dir/weights/last.h5."""
        from ..model.checkpoint import read_optimizer_state
        last = self.weights_dir / "last.h5"
        if not last.exists():
            raise UserError("nothing to resume: no weights/last.h5", path=self.run_dir)
        self.net.load_weights(last)
        state = read_optimizer_state(last, expected=self.optimizer.state())
        if state is None:
            raise UserError("checkpoint has no optimiser state", path=last)
        try:
            self.optimizer.load_state(state)
            self.iteration = int(state["iteration"])
            # checkpoints of yolo9000 0.1.0 store it as best_map
            self.best_score = float(state.get("best_score", state.get("best_map", -1.0)))
            self.bad_steps = int(state.get("bad_steps", 0))
            self.saved_iteration = self.iteration
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"damaged checkpoint: its optimiser state does not fit this run "
                            f"({e})", path=last) from None
        results = self.run_dir / "results.csv"
        if results.exists():
            with open(results, newline="") as f:
                self.history = [row for row in csv.DictReader(f)
                                if int(row["iteration"]) <= self.iteration]
        self.echo(f"resuming {self.run_dir} at iteration {self.iteration}, {self.net.seen} images seen")

    # -- checkpoints -----------------------------------------------------------------------
    def _remove_stale_checkpoint_temps(self):
        """A run killed while writing a checkpoint (kill -9, power loss) leaves a hidden partial
        temp file, as large as a checkpoint, that nothing else would ever remove."""
        for name in ("last.h5", "best.h5"):
            for stale in remove_stale_temps(self.weights_dir / name):
                self.echo(f"removed an unfinished checkpoint: {stale}")

    def _checkpoint_state(self):
        state = self.optimizer.state()
        state["iteration"] = np.int64(self.iteration)
        state["best_score"] = np.float64(self.best_score)
        state["seed"] = np.int64(self.settings.seed)
        state["bad_steps"] = np.int64(self.bad_steps)
        return state

    def checkpoint_size(self, state=None):
        """Bytes a checkpoint of the run takes (with `state`, the optimiser's of the moment)."""
        from ..model.checkpoint import estimated_size
        return estimated_size(self.net, state if state is not None else self._checkpoint_state())

    def save(self, path):
        """Write a checkpoint atomically; a write that fails (full disk, read-only folder)
        leaves the previous one whole and stops the run with write_failed's one line."""
        if not self.world.is_main:
            return
        state = self._checkpoint_state()
        try:
            # HDF5 meeting a full disk halfway floods stderr and can crash: refuse before
            require_free_space(path, self.checkpoint_size(state), "a checkpoint")
            # the base size, not the multi-scale size of the moment: detect and evaluate run
            # the checkpoint at the size it was validated at
            self.net.save(path, names=self.names, optimizer=state,
                          input_size=(self.base_size, self.base_size),
                          description="trained with yolo9000 train", iteration=self.iteration)
        except OSError as e:
            raise self.write_failed(path, e) from None
        if Path(path).name == "last.h5":
            self.saved_iteration = self.iteration

    def write_failed(self, path, error):
        """The one-line UserError for a run stopped by a file it could not write: the path,
        the system's reason, the iteration reached and what last.h5 still holds."""
        if self.saved_iteration is not None:
            kept = (f"weights/last.h5 keeps iteration {self.saved_iteration}; make room, then "
                    f"resume with --resume {shown_path(self.run_dir)}")
        else:
            kept = "no checkpoint was written yet"
        return UserError(f"cannot write: {errno_text(error)}; stopped at iteration "
                         f"{self.iteration}, {kept}", path=path)

    # -- the loop --------------------------------------------------------------------------
    def size_of_minibatch(self, index):
        it = index // self.net.options.subdivisions
        size = size_for_iteration(it, self.base_size, self.settings.seed, self.multiscale)
        return size, size

    def train(self, iterations=None):
        """Train until max_batches (or for `iterations` more). Returns the final summary dict.
        SIGINT/SIGTERM end the step at hand, write last.h5 and raise Interrupted."""
        from ..kernels.threads import keep_freed_memory
        keep_freed_memory(block_pool=True)
        o = self.net.options
        stop = o.max_batches if iterations is None else min(o.max_batches, self.iteration + iterations)
        if self.iteration >= stop:
            self.echo(f"already at iteration {self.iteration} of {o.max_batches}: nothing to do")
            return self.summary()
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        with stop_requests() as stop_signals:
            diverged = self._train_until(stop, stop_signals)
            self.save(self.weights_dir / "last.h5")
        if diverged:
            raise UserError(diverged)
        if stop_signals:
            raise Interrupted(f"interrupted at iteration {self.iteration}; "
                              f"resume with --resume {shown_path(self.run_dir)}")
        if self.bad_steps:
            self.echo(f"{self.bad_steps} batch(es) skipped for a non-finite loss or gradient "
                      f"(--max-bad-steps {self.settings.max_bad_steps})")
        if self.val_set is not None and (not self.history or
                                         int(self.history[-1]["iteration"]) != self.iteration):
            self.evaluate_and_record(None, keep_statistics=True)
        self.plot()
        return self.summary()

    def _train_until(self, stop, stop_signals):
        """The loop: up to iteration `stop`, or until a signal arrives or training diverges
        (returns the one-line reason then)."""
        o = self.net.options
        log_path = self.run_dir / "train_log.csv"
        self._truncate_log(log_path)
        log = open(log_path, "a", newline="") if self.settings.log and self.world.is_main else None
        loader = self.task.loader(self, self.augment, seed=self.settings.seed,
                                  workers=self.settings.workers)
        bar = Progress(stop, desc="train", unit="it", start=self.iteration)
        subdivisions = o.subdivisions
        steps = self.steps
        local = steps.local_subdivisions       # this rank's mini-batches of an iteration
        batches = loader.iterate(self.iteration * local, stop * local, self.size_of_minibatch,
                                 index_of=steps.minibatch_index)
        pool = self._replica_pool()
        diverged = None
        try:
            while self.iteration < stop and not steps.stopping(stop_signals):
                t0 = time.perf_counter()
                lr = learning_rate(o, self.iteration)
                before = self.guard.snapshot()
                steps.begin(self.net)
                # after those two read the parameters: the convolutions zero their weight
                # gradients lazily, and a read of the parameters settles them
                self.net.zero_grads()
                parts = {}
                done = 0
                while done < local:
                    group = [next(batches)[1] for _ in range(min(pool.count, local - done))]
                    done += len(group)
                    for stats in pool.run(group, lambda net, b: self.train_minibatch(b, net)):
                        for k, v in stats.items():
                            parts[k] = parts.get(k, 0.0) + float(v) / subdivisions
                # the other ranks' sums: every rank then takes the same decisions below
                steps.finish(self.net, parts, stop_signals)
                problem = self.guard.non_finite_step(parts)
                if problem is None:
                    with np.errstate(all="ignore"):     # overflow is checked right after
                        self.optimizer.step(lr, o.batch)
                    problem = self.guard.unusable_update(before)
                if problem:
                    diverged = self._reject_step(problem, before, bar)
                    if diverged:
                        break
                    continue
                self.iteration += 1
                dt = time.perf_counter() - t0
                row = {"iteration": self.iteration, "seen": self.net.seen, "size": self.net.width,
                       "lr": f"{lr:.6g}", "images_per_s": f"{o.batch / dt:.2f}"}
                for k in self.task.log_fields:
                    row[k] = f"{parts.get(k, 0.0):.5g}"
                if log:
                    try:
                        log.write(csv_lines(log_fields(self.task), [row], header=False))
                        log.flush()
                    except OSError as e:
                        raise self.write_failed(log_path, e) from None
                bar.update(1, postfix=(f"{self.task.postfix(parts)} {self.net.width}px "
                                       f"{o.batch / dt:.1f} img/s"))
                if self.settings.save_every and self.iteration % self.settings.save_every == 0:
                    self.save(self.weights_dir / "last.h5")
                eval_every = self.settings.eval_every
                if (self.val_set is not None and eval_every
                        and self.iteration % eval_every == 0 and self.iteration < stop):
                    training_threads = self._set_threads(self._threads)
                    self.evaluate_and_record(bar)
                    self._set_threads(training_threads)
            steps.settle(stop_signals)
        finally:
            pool.close()
            self._restore_threads()
            loader.close()
            if log:
                # its buffer cannot reach a full disk either: write_failed has said so
                with contextlib.suppress(OSError):
                    log.close()
            bar.close()
        return diverged

    def _reject_step(self, problem, before, bar):
        """Undo the batch's effects; skip it (within --max-bad-steps) or return the one-line
        reason to stop with."""
        self.guard.restore(before)
        seen = self.net.seen
        failed = self.iteration + 1
        if self.bad_steps >= self.settings.max_bad_steps:
            return (f"training diverged at iteration {failed} ({problem}); the step was not "
                    f"applied and weights/last.h5 holds iteration {self.iteration}; try a lower "
                    f"--lr (--resume {self.run_dir} --lr ...)")
        self.bad_steps += 1
        # the batch is skipped, not retried: the data of every later iteration stays the same
        self.iteration = failed
        self.net.seen = seen + self.net.options.batch
        bar.update(1)
        bar.write(f"iteration {failed}: {problem}; batch skipped ({self.bad_steps} of at most "
                  f"{self.settings.max_bad_steps})")
        return None

    def _replica_pool(self):
        """Parallel subdivisions (replicas.py): each mini-batch then runs single-threaded."""
        from .replicas import ReplicaPool
        from ..kernels.threads import current_threads, set_threads
        count = max(1, min(int(self.settings.parallel or 1), self.net.options.subdivisions))
        self._threads = current_threads()
        pool = ReplicaPool(self.net, count)
        if count > 1:
            set_threads(1)
            # the passes over every parameter between the mini-batches still take them all
            pool.threads = self.optimizer.threads = self.guard.threads = self._threads
        return pool

    def _restore_threads(self):
        self._set_threads(self._threads)

    @staticmethod
    def _set_threads(n):
        """Set the thread count to n if it differs; returns the previous count."""
        from ..kernels.threads import current_threads, set_threads
        previous = current_threads()
        if previous != n:
            set_threads(n)
        return previous

    def train_minibatch(self, batch, net=None):
        # a diverging batch is reported once by the guard in train(), not by NumPy warnings;
        # here, not around the caller: replicas run this in their own threads
        with np.errstate(all="ignore"):
            return self._train_minibatch(batch, self.net if net is None else net)

    def _train_minibatch(self, batch, net):
        images = batch.images
        if net.width != images.shape[3] or net.height != images.shape[2]:
            net.resize(images.shape[3], images.shape[2])
        stats = self.task.train_minibatch(net, batch)
        net.seen += images.shape[0]
        return stats

    def _truncate_log(self, path):
        """On resume, drop log rows past the checkpoint so the log reads as one clean run."""
        if not self.world.is_main:
            return
        rows = []
        if path.exists() and self.iteration > 0:
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= self.iteration]
        atomic_write_text(path, csv_lines(log_fields(self.task), rows))

    # -- evaluation ------------------------------------------------------------------------
    def batchnorm_layers(self):
        return [layer.bn for layer in self.net.layers if getattr(layer, "bn", None) is not None]

    def precise_batchnorm(self, batches=PRECISE_BN_BATCHES):
        """Set every BN layer's rolling statistics to the exact average over `batches`
        un-augmented training mini-batches at the base size ("precise BN").

        darknet's rolling average (.99·old + .01·batch) lags ~100 iterations behind the weights,
        which ruins evaluations early in a short run; the average is exact for the weights at
        hand. Returns the previous statistics so that the caller can restore them."""
        bns = self.batchnorm_layers()
        previous = [(bn.rolling_mean.copy(), bn.rolling_variance.copy()) for bn in bns]
        net = self.net
        size = (net.width, net.height)
        net.resize(self.base_size, self.base_size)
        plain = self.task.plain_augment(net)
        loader = self.task.loader(self, plain, seed=self.settings.seed + 1, workers=0, joint=False)
        try:
            n = min(batches, max(1, len(self.train_set.records) // self.mini_batch))
            for k in range(n):
                for bn in bns:
                    bn.momentum = 1.0 / (k + 1)      # cumulative mean of the batch statistics
                net.forward(loader.get(k, self.base_size, self.base_size).images, train=True)
        finally:
            for bn in bns:
                bn.momentum = BN_MOMENTUM
            loader.close()
            net.resize(*size)
        return previous

    def restore_batchnorm(self, previous):
        for bn, (mean, var) in zip(self.batchnorm_layers(), previous):
            bn.rolling_mean[...] = mean
            bn.rolling_variance[...] = var

    def evaluate_and_record(self, bar, keep_statistics=False):
        """Evaluate on the validation set with precise BN statistics. The training run's own
        rolling statistics are restored afterwards (so resuming stays exact) unless
        keep_statistics (the final evaluation: the model then carries the evaluated stats)."""
        net = self.net
        previous = self.precise_batchnorm()
        train_size = (net.width, net.height)
        net.resize(self.base_size, self.base_size)
        t0 = time.perf_counter()
        values, message, score = self.task.evaluate(self)
        net.resize(*train_size)
        row = {"iteration": self.iteration, "seen": net.seen, **values,
               "eval_seconds": f"{time.perf_counter() - t0:.1f}"}
        self.history.append(row)
        if self.world.is_main:
            atomic_write_text(self.run_dir / "results.csv",
                              csv_lines(result_fields(self.task), self.history))
        message = f"iteration {self.iteration}: {message}"
        if score > self.best_score:
            self.best_score = float(score)
            self.save(self.weights_dir / "best.h5")
            message += "  (best so far: weights/best.h5)"
        if not keep_statistics:
            self.restore_batchnorm(previous)
        (bar.write if bar else self.echo)(message)
        return row

    def plot(self):
        """results.png (plots.py); rank 0 alone writes it."""
        if not self.world.is_main:
            return None
        return plot_results(self.run_dir, self.history, *self.task.plot_panels(), echo=self.echo)

    def summary(self):
        out = {"run_dir": str(self.run_dir), "iteration": self.iteration, "seen": self.net.seen,
               "last": str(self.weights_dir / "last.h5")}
        if self.history:
            for key in self.task.result_fields:
                out[key] = float(self.history[-1][key])
            out["best_score"] = self.best_score
            out["best"] = str(self.weights_dir / "best.h5")
        return out
