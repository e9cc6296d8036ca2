"""Work ahead in background threads, results in order: images are decoded and letterboxed while
the network runs on the previous batch (Pillow and NumPy release the GIL, so they overlap)."""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

# Two decoders keep up with the network on the CPUs this package targets; more only compete
# with the network's own threads.
DECODE_THREADS = 2
_END = object()


def prefetch(func, items, depth, workers=DECODE_THREADS):
    """Yield (item, func(item), None) — or (item, None, exception) when func raised — for each
    item in order, with up to `depth` items computed ahead.

    One failing item does not stop the others (a folder of images with one odd file); the
    caller decides whether to raise the exception. Closing the generator early cancels the
    work not yet started.
    """
    items = iter(items)
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="yolo9000-decode")
    pending = deque()

    def submit_next():
        item = next(items, _END)
        if item is not _END:
            pending.append((item, pool.submit(func, item)))

    try:
        for _ in range(max(1, int(depth))):
            submit_next()
        while pending:
            item, future = pending.popleft()
            submit_next()
            try:
                value = future.result()
            except Exception as exc:   # reported to the caller with its item, in order
                yield item, None, exc
            else:
                yield item, value, None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_in_batches(prepare, sources, batch_size, run, failed, skip_errors=False):
    """The batched inference loop of the detector and the classifier: each source prepared
    ahead (prefetch), `run([(index, source, prepared), ...])` on every `batch_size` of them,
    yielding what it yields. A source that cannot be prepared raises its error, or with
    skip_errors comes out at once as `failed(source, index, exception)` (its batch is filled
    with the next sources)."""
    batch_size = max(1, int(batch_size))
    pending = []
    for index, (source, prepared, exc) in enumerate(prefetch(prepare, sources,
                                                             depth=2 * batch_size)):
        if exc is not None:
            if not skip_errors:
                raise exc
            yield failed(source, index, exc)
            continue
        pending.append((index, source, prepared))
        if len(pending) == batch_size:
            yield from run(pending)
            pending = []
    if pending:
        yield from run(pending)
