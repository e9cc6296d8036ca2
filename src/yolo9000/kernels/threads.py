"""How many threads BLAS and the OpenMP kernels use.

Two thread pools (OpenBLAS's and OpenMP's) on a small machine, plus data-loading processes,
easily oversubscribe the cores, and spinning threads then cost more than they give. One knob
sets both: `yolo9000 --threads N ...`, the YOLO9000_THREADS environment variable, or
`set_threads(N)` from Python.
"""
import ctypes
import os
import threading

_current = None        # the count last set by set_threads (None: never set)

# name prefixes and suffixes of OpenBLAS's thread functions in the builds NumPy ships with
_OPENBLAS_NAMES = (("scipy_openblas", "64_"), ("scipy_openblas", "_64_"), ("scipy_openblas", ""),
                   ("openblas", "64_"), ("openblas", ""))
_blas_functions = None     # cached blas_thread_functions()
# The look-ups below are made once, on first use, and that first use is often in two replica
# threads at once (parallel subdivisions' first step). Without the lock the second caller saw
# the first one's look-up in progress as "no BLAS", found no sgemm and took another kernel:
# other roundings, and the demo's runs parted from their first step.
_lookup_lock = threading.Lock()


# what MPI launchers (MPICH/hydra, Open MPI, MVAPICH) tell each rank: ranks on this host
LOCAL_RANKS_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE",
                         "MV2_COMM_WORLD_LOCAL_SIZE")


def default_threads():
    value = os.environ.get("YOLO9000_THREADS")
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # ranks that `mpiexec` started on one host share its cores rather than each taking them all
    local_ranks = next((int(os.environ[v]) for v in LOCAL_RANKS_VARIABLES
                        if os.environ.get(v, "").strip().isdigit()), 1)
    return max(1, cores // max(1, local_ranks))


def _blas_libraries():
    """Paths of the BLAS libraries loaded in this process (Linux: from /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(paths)


def set_threads(n=None):
    """Set the BLAS and OpenMP thread counts to n (default: YOLO9000_THREADS or all cores)."""
    import numpy  # noqa: F401  (loads BLAS so that it can be found)
    from . import core
    global _current
    n = default_threads() if n is None else max(1, int(n))
    _current = n
    core.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n, user_api="blas")
        return n
    except ImportError:
        pass
    functions = blas_thread_functions()
    if functions:
        functions[0](n)
    return n


def _blas_functions_named(*names):
    """The functions of these names from the first BLAS library in this process that has them
    all (ctypes), or None."""
    import numpy  # noqa: F401  (loads BLAS: a look-up before that would find none, for good)
    for path in _blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        found = [getattr(lib, name, None) for name in names]
        if all(f is not None for f in found):
            return found
    return None


def blas_thread_functions():
    """(set_num_threads, get_num_threads) of the OpenBLAS loaded in this process, as ctypes
    functions, or None when there is none to be found."""
    global _blas_functions
    if _blas_functions is None:
        with _lookup_lock:
            if _blas_functions is None:
                _blas_functions = _find_blas_thread_functions()
    return _blas_functions or None


def _find_blas_thread_functions():
    for prefix, suffix in _OPENBLAS_NAMES:
        found = _blas_functions_named(f"{prefix}_set_num_threads{suffix}",
                                      f"{prefix}_get_num_threads{suffix}")
        if found:
            setter, getter = found
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return False


_sgemm = None


def sgemm_address():
    """The address of the loaded OpenBLAS's cblas_sgemm with 64-bit integers (NumPy's
    ILP64 build), or 0 when there is none (callers then use np.matmul)."""
    global _sgemm
    if _sgemm is None:
        with _lookup_lock:
            if _sgemm is None:
                _sgemm = _find_sgemm()
    return _sgemm


def _find_sgemm():
    for name in ("scipy_cblas_sgemm64_", "cblas_sgemm64_"):
        found = _blas_functions_named(name)
        if found:
            return ctypes.cast(found[0], ctypes.c_void_p).value or 0
    return 0


def current_threads():
    """The thread count last set by set_threads (else the default)."""
    return _current if _current is not None else default_threads()


# freed memory kept for reuse: glibc's heap below its mmap threshold, our block pool above
KEEP_FREED_BYTES = 2**30


def keep_freed_memory(block_pool=False):
    """Keep freed memory for reuse instead of returning it to the system.

    Every forward and backward pass allocates the same large arrays again; by default each one
    gets fresh pages from the kernel, and the page faults cost ~20% of a training step. glibc
    keeps up to 1 GB of freed heap (and mmaps only blocks over 32 MB, the most it allows).
    With block_pool (training: a 416 px batch's activations are larger) NumPy's arrays of
    1 MB and more go through the block pool of kernels/core (use_block_pool), which keeps up to
    1 GB of them; not for inference, where the pool would only add the blocks it holds to the
    peak. Process-wide, so it is called by the command line and the trainer, not on import."""
    if block_pool:
        from . import core
        core.use_block_pool(KEEP_FREED_BYTES)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
    ok &= libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
    return bool(ok)
