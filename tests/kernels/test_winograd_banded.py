"""Winograd for few channels by bands of tile rows (winograd_banded.pxi): the literal sums,
and the same bits whatever the threads."""
import numpy as np
import pytest

from convolution_reference import close, direct_conv, direct_input_grad, direct_weight_grad
from yolo9000.kernels import threads, winograd


@pytest.mark.skipif(not threads.sgemm_address(), reason="needs OpenBLAS's ILP64 cblas_sgemm")
@pytest.mark.parametrize("n,c,f,h,w", [(2, 5, 7, 33, 17), (3, 3, 9, 13, 40), (2, 8, 4, 12, 5)])
def test_banded_winograd_equals_the_direct_sum(monkeypatch, n, c, f, h, w):
    """The few-channel kernels (bands of tile rows, sgemm called directly): forward, input and
    weight gradient against the float64 direct sums, the forward and input gradient against
    the chunked products too (BLAS may round a product of other width differently, so not to
    the bit)."""
    monkeypatch.setattr(winograd, "BAND_FLOATS", 1)      # bands of one tile row
    rng = np.random.default_rng(19)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
    dz = rng.standard_normal((n, f, h, w)).astype(np.float32)
    u = winograd.filters(wt)
    ones, zeros = np.ones(f, np.float32), np.zeros(f, np.float32)
    z = np.full((n, f, h, w), np.nan, np.float32)
    assert winograd.banded(x, u, z, ones, zeros, 0)
    assert close(z, direct_conv(x, wt))
    dx = np.full(x.shape, np.nan, np.float32)
    winograd.input_gradient(dz, u, dx)
    assert close(dx, direct_input_grad(dz, wt))
    # the weight gradient: against the literal sum, added to a non-zero gradient as its own
    # sum (bit for bit), and the same bits on one thread as on two
    from yolo9000.kernels import core
    start = rng.standard_normal(wt.shape).astype(np.float32)
    alone = np.zeros(wt.shape, np.float32)
    assert winograd.banded_weight_gradient(x, dz, alone)
    assert close(alone, direct_weight_grad(x, dz), scale=np.abs(dz).max() * 30)
    added = winograd.weight_gradient(x, dz, start.copy())
    assert np.array_equal(added, start + alone)
    saved = core.get_max_threads()
    try:
        core.set_num_threads(1)
        one_thread = winograd.weight_gradient(x, dz, np.zeros(wt.shape, np.float32))
    finally:
        core.set_num_threads(saved)
    assert np.array_equal(one_thread, alone)
    monkeypatch.setattr(winograd, "BANDED_MAX_CHANNELS", 0)     # the chunked path
    assert not winograd.banded(x, u, z, ones, zeros, 0)
    assert not winograd.banded_weight_gradient(x, dz, np.zeros(wt.shape, np.float32))
    z2 = winograd.convolve(x, u, np.empty_like(z), ones, zeros, 0)
    dx2 = winograd.input_gradient(dz, u, np.empty_like(dx))
    assert close(z, z2.astype(np.float64)) and close(dx, dx2.astype(np.float64))
