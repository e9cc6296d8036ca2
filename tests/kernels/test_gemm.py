"""Matrix products shared out between threads (kernels/gemm.py, gemm.pxi): numpy's results."""
import numpy as np

from yolo9000 import _kernels
from yolo9000.kernels import gemm, winograd


def test_threaded_products_equal_numpy():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((16, 7, 33)).astype(np.float32)
    b = rng.standard_normal((16, 33, 300)).astype(np.float32)
    out = winograd.stacked(7, 300)
    gemm.batched_matmul(a, b, out)
    assert np.allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    for rows, inner, cols in [(9, 40, 1000), (1000, 40, 9), (300, 20, 200)]:
        m = rng.standard_normal((rows, inner)).astype(np.float32)
        n = rng.standard_normal((inner, cols)).astype(np.float32)
        z = np.empty((rows, cols), np.float32)
        gemm.matmul(m, n, z)
        assert np.allclose(z, m @ n, rtol=1e-5, atol=1e-5)
    if _kernels.openmp_enabled():
        assert _kernels.get_max_threads() >= 1
