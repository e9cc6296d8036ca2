"""Deterministic, prefetching batch loader for detection and classification training.

Which images form batch ``i`` and how each is augmented depend only on (seed, i): image slot
p = i*batch_size + j belongs to epoch p // N (N images), whose order is a permutation drawn
from ``np.random.default_rng([seed, epoch])``; image j of batch i is augmented with
``np.random.default_rng([seed, i, j])``. So batch i is the same whatever the number of worker
processes, whether it was prefetched or not, and after a resume (``iterate(k, ...)``).

    with BatchLoader(dataset, batch_size=16, augment=AugmentConfig(), seed=1) as loader:
        for index, batch in loader.iterate(start, stop, lambda i: (416, 416)):
            batch.images, batch.truths   # (B, 3, H, W) float32, B x (n_i, 5) float32

Classification: records with a ``.label`` (``data/formats/classification.py``) and a
``CropAugmentConfig``; then ``batch.labels`` is the (B,) int64 class ids and ``batch.truths``
is empty. The augment config makes each sample (its ``make_sample``), so the loader itself
knows nothing of either task.

Worker processes build whole batches ahead of the consumer (a bounded number in flight);
``workers=0`` builds them in the calling process. Decoded images are cached (uint8) per
process, up to ``cache_bytes``. Large images are decoded reduced, and an image whose decode
would take more than ``images.worker_pixel_limit`` pixels is skipped: the next image of its
kind takes its place in the batch, and ``warn`` tells of it once.
"""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import queue
import signal
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field

import numpy as np

from .augment import AugmentConfig
from .classification_augment import CropAugmentConfig
from .images import ANY_NET_SIZE, ImageTooLarge, load_image, worker_pixel_limit
from ..errors import UserError

_POLL_SECONDS = 0.2            # how often a waiting consumer checks that workers are alive
_SHUTDOWN_SECONDS = 5.0        # grace period for workers to exit before they are terminated


@dataclass
class Batch:
    index: int
    images: np.ndarray            # (B, 3, H, W) float32
    truths: list[np.ndarray]      # B arrays (n_i, 5) float32: [cx, cy, w, h, class]; [] when
    paths: list[str]              # classifying
    record_indices: list[int]     # positions of the images in the dataset
    labels: np.ndarray | None = None   # (B,) int64 class ids when classifying, else None
    skipped: list[str] = field(default_factory=list)   # why images were replaced (too large)

    @property
    def width(self) -> int:
        return int(self.images.shape[3])

    @property
    def height(self) -> int:
        return int(self.images.shape[2])


class _SampleMaker:
    """Builds batches from record indices; one lives in every process (with its own cache)."""

    def __init__(self, records, augment, seed, max_boxes, cache_images, cache_bytes,
                 max_pixels=None):
        self.records = records
        self.augment = augment
        self.seed = seed
        self.max_boxes = max_boxes
        self.cache_images = cache_images
        self.cache_bytes = cache_bytes
        self.max_pixels = max_pixels      # the most pixels one image's decode may take
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0
        self._too_large: dict[int, str] = {}    # record -> why it is not decoded

    def __getstate__(self):
        # a spawned worker starts with an empty cache rather than a pickled copy
        state = dict(self.__dict__)
        state["_cache"], state["_cached_bytes"] = {}, 0
        return state

    def image(self, k: int) -> np.ndarray:
        img = self._cache.get(k)
        if img is None:
            img = load_image(self.records[k].path, net_size=ANY_NET_SIZE,
                             max_pixels=self.max_pixels).rgb
            if self.cache_images and self._cached_bytes + img.nbytes <= self.cache_bytes:
                self._cache[k] = img
                self._cached_bytes += img.nbytes
        return img

    def decodable(self, k: int, skipped: list) -> tuple[int, np.ndarray]:
        """(k, image k); when image k is too large to decode here, the first record after it
        of the same kind (detection or classification) that is not, so that a batch keeps its
        size and its mix. Why each image was passed over is appended to `skipped`."""
        n = len(self.records)
        kind = hasattr(self.records[k], "label")
        for step in range(n):
            j = (k + step) % n
            if hasattr(self.records[j], "label") != kind:
                continue
            if j not in self._too_large:
                try:
                    return j, self.image(j)
                except ImageTooLarge as e:
                    self._too_large[j] = str(e)
            skipped.append(self._too_large[j])
        raise UserError(f"no training image can be decoded within {self.max_pixels:,} pixels "
                        "(every one is too large for a data worker)")

    def build(self, index: int, members: list[int], width: int, height: int) -> Batch:
        images = np.empty((len(members), 3, height, width), dtype=np.float32)
        targets, used, skipped = [], [], []
        for j, k in enumerate(members):
            k, image = self.decodable(k, skipped)
            rng = np.random.default_rng([self.seed, index, j])
            images[j], target = self.augment.make_sample(
                image, self.records[k], width, height, rng, max_boxes=self.max_boxes)
            targets.append(target)
            used.append(k)
        paths = [self.records[k].path for k in used]
        if isinstance(self.augment, CropAugmentConfig):
            return Batch(index, images, [], paths, used,
                         labels=np.array(targets, dtype=np.int64), skipped=skipped)
        return Batch(index, images, targets, paths, used, skipped=skipped)


def _worker_loop(maker: _SampleMaker, tasks, results, generation, parent_pid: int,
                 backlog: int):
    """Worker process: build the batches asked for on `tasks`, send them on `results`.

    Exits on a None task or when `tasks` is closed (the parent closed it or died). A sender
    thread ships finished batches so the next batch is built while the previous one is
    still being read, at most `backlog` finished batches waiting.
    """
    # Ctrl-C goes to the whole process group: only the parent reacts, then shuts us down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outbox: queue.Queue = queue.Queue(maxsize=max(1, backlog))

    def send_results():
        while True:
            message = outbox.get()
            if message is None:
                return
            try:
                results.send(message)
            except (OSError, ValueError):  # the parent is gone or closed the pipe
                return

    sender = threading.Thread(target=send_results, daemon=True)
    sender.start()
    while True:
        try:
            if not tasks.poll(1.0):
                if os.getppid() != parent_pid:  # orphaned: the parent was killed hard
                    break
                continue
            task = tasks.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        gen, index, members, width, height = task
        if gen != generation.value:  # the iterator that asked for it is gone
            continue
        try:
            message = (gen, index, "ok", maker.build(index, members, width, height))
        except UserError as exc:
            message = (gen, index, "user", (exc.detail, exc.path, exc.line))
        except Exception:
            message = (gen, index, "crash", traceback.format_exc())
        outbox.put(message)
    outbox.put(None)
    sender.join(timeout=1.0)


@dataclass
class _Worker:
    process: object
    tasks: object      # parent's sending end
    results: object    # parent's receiving end


def _shutdown(workers: list):
    """Stop worker processes: close their task pipes (they exit at EOF), drain what they are
    still sending, then terminate/kill any that does not exit in time."""
    for w in workers:
        try:
            w.tasks.send(None)
        except (OSError, ValueError):
            pass
        w.tasks.close()
    deadline = time.monotonic() + _SHUTDOWN_SECONDS
    while any(w.process.is_alive() for w in workers) and time.monotonic() < deadline:
        for w in workers:
            try:
                while not w.results.closed and w.results.poll():
                    w.results.recv()   # unblock a sender stuck on a full pipe
            except (EOFError, OSError):
                w.results.close()
            w.process.join(timeout=0.05)
    for w in workers:
        if w.process.is_alive():
            w.process.terminate()
            w.process.join(timeout=1.0)
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        if not w.results.closed:
            w.results.close()


def _context():
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


class BatchLoader:
    """Batches of augmented training images, reproducible from (seed, batch index)."""

    def __init__(self, dataset, batch_size,
                 augment: AugmentConfig | CropAugmentConfig | None = None, seed=0, workers=2,
                 max_boxes=30, shuffle=True, cache_images=True, prefetch=None,
                 cache_bytes=512 * 2**20, warn=None):
        """dataset: a Dataset (its .records) or a sequence of records with .path, .boxes and
        .classes; or, with a CropAugmentConfig, a ClassificationDataset or records with .path
        and .label. prefetch: batches requested ahead of the consumer (default 2 per worker).
        warn(line): told once of each image skipped as too large to decode."""
        records = list(getattr(dataset, "records", dataset))
        if not records:
            raise UserError("the training set has no images")
        classifying = hasattr(records[0], "label")
        if classifying != isinstance(augment, CropAugmentConfig):
            raise TypeError("classification records (with .label) need a CropAugmentConfig, "
                            "detection records an AugmentConfig")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.records = records
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.workers = int(workers)
        self.shuffle = bool(shuffle)
        self.prefetch = max(1, int(prefetch) if prefetch is not None else 2 * max(workers, 1))
        augment = augment if augment is not None else AugmentConfig()
        self._maker = _SampleMaker(records, augment, self.seed, max_boxes, cache_images,
                                   cache_bytes, max_pixels=worker_pixel_limit(self.workers))
        self.warn = warn
        self._warned = set()
        self._permutations: dict[int, np.ndarray] = {}
        self._workers: list[_Worker] = []
        self._generation = None
        self._finalizer = None
        self._closed = False

    # -- which images ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def epoch_of(self, index: int) -> int:
        return index * self.batch_size // len(self.records)

    def _order(self, epoch: int) -> np.ndarray:
        order = self._permutations.get(epoch)
        if order is None:
            n = len(self.records)
            order = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle
                     else np.arange(n))
            if len(self._permutations) > 4:
                self._permutations.pop(min(self._permutations))
            self._permutations[epoch] = order
        return order

    def members(self, index: int) -> list[int]:
        """Dataset positions of the images of batch ``index`` (it may straddle two epochs)."""
        if index < 0:
            raise ValueError(f"batch index must be >= 0, got {index}")
        n = len(self.records)
        first = index * self.batch_size
        return [int(self._order(p // n)[p % n]) for p in range(first, first + self.batch_size)]

    # -- building ----------------------------------------------------------------------------
    def get(self, index: int, width: int, height: int) -> Batch:
        """Build batch ``index`` at (width, height) in this process."""
        self._check_open()
        return self._told(self._maker.build(index, self.members(index), int(width), int(height)))

    def _told(self, batch: Batch) -> Batch:
        """The batch, once `warn` has heard of each image it skipped (once per image)."""
        for reason in batch.skipped:
            if reason not in self._warned:
                self._warned.add(reason)
                if self.warn is not None:
                    self.warn(f"warning: {reason}; skipped")
        return batch

    def iterate(self, start: int, stop: int | None, size_fn, index_of=None):
        """Yield (index, Batch) for index in [start, stop) (stop None: without end).

        size_fn(index) -> (width, height) is called up to ``prefetch`` batches before the
        batch is consumed, so it must depend on the index only (as darknet's multi-scale
        schedule does when drawn from a seeded generator per index). Starting a new
        iterate() abandons the previous iterator. With ``index_of``, [start, stop) are
        positions and batch index_of(position) is built at each (an MPI rank's share of the
        batches, parallel.py).
        """
        self._check_open()
        index_of = index_of or (lambda position: position)
        if self.workers == 0:
            return self._iterate_inline(start, stop, size_fn, index_of)
        return self._iterate_workers(start, stop, size_fn, index_of)

    def _iterate_inline(self, start, stop, size_fn, index_of):
        position = start
        while stop is None or position < stop:
            index = index_of(position)
            yield index, self.get(index, *size_fn(index))
            position += 1

    def _iterate_workers(self, start, stop, size_fn, index_of):
        self._start_workers()
        with self._generation.get_lock():
            self._generation.value += 1
            gen = self._generation.value
        submitted = position = start
        while stop is None or position < stop:
            limit = position + self.prefetch if stop is None else min(stop, position + self.prefetch)
            while submitted < limit:
                index = index_of(submitted)
                width, height = size_fn(index)
                # position p always goes to worker p mod W: results come back in order per pipe
                worker = self._workers[submitted % len(self._workers)]
                try:
                    worker.tasks.send((gen, index, self.members(index), int(width),
                                       int(height)))
                except OSError:   # broken pipe: the worker is gone
                    self._worker_died(worker)
                submitted += 1
            yield index_of(position), self._receive(gen, index_of(position), position)
            position += 1

    def _receive(self, gen: int, index: int, position: int) -> Batch:
        worker = self._workers[position % len(self._workers)]
        while True:
            if self._generation.value != gen:
                raise RuntimeError("this BatchLoader iterator was replaced by a newer iterate()")
            ready = mp_connection.wait([worker.results, worker.process.sentinel], _POLL_SECONDS)
            if worker.results in ready:
                try:
                    got_gen, got_index, kind, payload = worker.results.recv()
                except (EOFError, OSError):
                    self._worker_died(worker)
                if got_gen == gen and got_index == index:
                    break
                if got_gen == gen:
                    raise RuntimeError(f"loader protocol error: got batch {got_index} "
                                       f"while waiting for {index}")
            elif ready:   # only the sentinel: the worker exited without sending
                self._worker_died(worker)
        if kind == "ok":
            return self._told(payload)
        if kind == "user":
            detail, path, line = payload
            raise UserError(detail, path=path, line=line)
        raise RuntimeError(f"batch loader worker failed on batch {index}:\n{payload}")

    # -- worker processes --------------------------------------------------------------------
    def _start_workers(self):
        if self._workers:
            return
        ctx = _context()
        self._generation = ctx.Value("q", 0)
        backlog = -(-self.prefetch // self.workers)
        for k in range(self.workers):
            task_recv, task_send = ctx.Pipe(duplex=False)
            result_recv, result_send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker_loop, name=f"yolo9000-loader-{k}", daemon=True,
                            args=(self._maker, task_recv, result_send, self._generation,
                                  os.getpid(), backlog))
            p.start()
            # Drop our copies of the child's ends before the next fork: then the child is
            # the only writer of its result pipe (a death reads as EOF, never a hang) and
            # sees EOF on its task pipe once we close our end.
            task_recv.close()
            result_send.close()
            self._workers.append(_Worker(p, task_send, result_recv))
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)

    def _worker_died(self, worker: _Worker):
        worker.process.join(timeout=1.0)
        code = worker.process.exitcode
        self.close()
        raise RuntimeError(f"batch loader worker {worker.process.name} died (exit code {code}; "
                           "killed, or out of memory?)")

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def _check_open(self):
        if self._closed:
            raise RuntimeError("BatchLoader is closed")

    def close(self):
        """Stop the worker processes (idempotent). The loader cannot be used afterwards."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()   # runs _shutdown once
            self._finalizer = None
        self._workers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
