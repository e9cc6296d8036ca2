"""Forward matrix products shared out between threads by us, with single-threaded BLAS in each.

OpenBLAS's own threading synchronises its threads many times inside one product (per block of
the matrices). When another process keeps the cores busy, every one of those waits can last
until the scheduler gives the other thread its core back: skinny products (K of 32..128, as
in Winograd's 16 products or the 1x1 convolutions) were measured 10x *slower* on two threads
than on one. Here each thread takes whole pieces (one of the 16 Winograd planes, or a band of
columns) from a shared counter and multiplies them with single-threaded BLAS: one hand-over per
call, and a thread that is late simply leaves its pieces to the others.
"""
import contextlib
import contextvars
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import core
from .threads import blas_thread_functions, sgemm_address

_pool = None
_pool_size = 0
# the BLAS thread count is process-wide: one caller at a time may switch it
_busy = threading.Lock()


def _workers(n):
    """A pool of n helper threads (the caller is the n+1-th)."""
    global _pool, _pool_size
    if _pool is None or _pool_size != n:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="yolo9000-gemm")
        _pool_size = n
    return _pool


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS at one thread for the calls inside (our threads share out the work); yields
    False, changing nothing, when another thread is in here already (it has set BLAS to one
    thread and has the cores) or there is no OpenBLAS to set."""
    api = blas_thread_functions()
    if not api or not _busy.acquire(blocking=False):
        yield False
        return
    setter, getter = api
    saved = getter()
    setter(1)
    try:
        yield True
    finally:
        setter(saved)
        _busy.release()


def _run(tasks):
    """Call every task (a no-argument function) once, on all threads; False when this cannot
    be done with single-threaded BLAS (then the caller multiplies the ordinary way)."""
    threads = core.get_max_threads()
    if threads <= 1 or len(tasks) <= 1:
        return False
    with single_threaded_blas() as ours:
        return ours and _run_locked(tasks, threads)


def _run_locked(tasks, threads):
    helpers = min(threads, len(tasks)) - 1
    counter = itertools.count()     # next() on it is atomic under the GIL

    def drain():
        for i in iter(counter.__next__, None):
            if i >= len(tasks):
                return
            tasks[i]()

    # each helper runs in a copy of the caller's context, so NumPy's error state (an
    # np.errstate around the call) holds for its pieces too
    futures = [_workers(threads - 1).submit(contextvars.copy_context().run, drain)
               for _ in range(helpers)]
    drain()
    for f in futures:
        f.result()
    return True


def run_side_by_side(tasks):
    """Call every task once, the tasks shared out between the threads and each run with one
    thread inside (its products and its OpenMP kernels): no hand-overs within a task. False
    when there are not two threads to use; then the caller runs them itself."""
    threads = core.get_max_threads()

    def single(task):
        def run():
            core.set_num_threads(1)      # OpenMP's count is per calling thread
            task()
        return run
    try:
        return _run([single(t) for t in tasks])
    finally:
        core.set_num_threads(threads)    # the caller ran some of them too


def batched_matmul(a, b, out):
    """out[k] = a[k] @ b[k] for stacks of matrices (the planes may be strided); a and b may
    also be sequences of 2-D views (reordered or transposed planes, which no single strided
    array can describe)."""
    tasks = [lambda k=k: np.matmul(a[k], b[k], out=out[k]) for k in range(len(out))]
    if not _run(tasks):
        for task in tasks:
            task()
    return out


# rows or columns per piece: narrower bands would leave BLAS's kernels short of work
MIN_BAND = 64
# pieces per thread: each piece packs all of the operand it does not split, so one
PIECES_PER_THREAD = 1


def matmul(a, b, out):
    """out = a @ b (2-D, out C-contiguous), in bands over the threads: bands of rows of a
    when it has more rows than b has columns (13x13 maps: 169 columns, 1024 filters), else
    bands of columns. The bands run on the OpenMP threads, calling OpenBLAS's sgemm directly
    (no Python hand-overs, column bands without copies; see
    BENCHMARKS.md#matrix-products-in-bands)."""
    m, n = a.shape[0], b.shape[1]
    threads = core.get_max_threads()
    pieces = min(PIECES_PER_THREAD * threads, max(m, n) // MIN_BAND)
    if pieces > 1:
        address = sgemm_address()
        if address:
            with single_threaded_blas() as ours:
                if ours and core.sgemm_pieces(address, a, b, out, pieces, m > n):
                    return out
        bounds = np.linspace(0, max(m, n), pieces + 1).astype(int)
        if m > n:
            tasks = [lambda lo=lo, hi=hi: np.matmul(a[lo:hi], b, out=out[lo:hi])
                     for lo, hi in zip(bounds[:-1], bounds[1:])]
        else:
            tasks = [lambda lo=lo, hi=hi: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi])
                     for lo, hi in zip(bounds[:-1], bounds[1:])]
        if _run(tasks):
            return out
    np.matmul(a, b, out=out)
    return out
