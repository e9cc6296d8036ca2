# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython core: the loops NumPy cannot express without extra passes or temporaries.

Every kernel works on float32 C-contiguous arrays supplied by the caller (so buffers can be
reused between calls) and releases the GIL; the outer loop runs in parallel with OpenMP when
the package was built with it. Matrix products stay in NumPy (BLAS).
"""
import numpy as np
cimport cython
from cython.parallel cimport prange
from libc.math cimport expf, sqrtf
from libc.float cimport FLT_MAX

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int y9k_have_openmp(void) { return 1; }
    static void y9k_set_num_threads(int n) { omp_set_num_threads(n); }
    static int y9k_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int y9k_have_openmp(void) { return 0; }
    static void y9k_set_num_threads(int n) { (void)n; }
    static int y9k_max_threads(void) { return 1; }
    #endif
    """
    int y9k_have_openmp()
    void y9k_set_num_threads(int n)
    int y9k_max_threads()

# activation codes shared with layers/activations.py
DEF ACT_LINEAR = 0
DEF ACT_LEAKY = 1
DEF ACT_RELU = 2
DEF ACT_LOGISTIC = 3


def openmp_enabled():
    return bool(y9k_have_openmp())


def set_num_threads(int n):
    y9k_set_num_threads(n)


def get_max_threads():
    return y9k_max_threads()


def im2col(const float[:, :, ::1] x, int ksize, int stride, int pad, float[:, ::1] col,
           int offset=0):
    """Unfold one image (C, H, W) into columns offset..offset+out_h*out_w of col (C*k*k, M);
    taps outside the image are 0. Several images can so share one column matrix."""
    cdef int C = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef int out_h = (H + 2 * pad - ksize) // stride + 1
    cdef int out_w = (W + 2 * pad - ksize) // stride + 1
    cdef int rows = C * ksize * ksize
    cdef int r, c, kh, kw, oh, ow, ih, iw, base
    if col.shape[0] != rows or offset < 0 or col.shape[1] < offset + out_h * out_w:
        raise ValueError("im2col: col has the wrong shape")
    cdef int lo, hi
    with nogil:
        for r in prange(rows, schedule="static"):
            c = r // (ksize * ksize)
            kh = (r // ksize) % ksize
            kw = r % ksize
            lo = _first_inside(kw, pad, stride)
            hi = _end_inside(kw, pad, stride, W, out_w)
            for oh in range(out_h):
                ih = oh * stride + kh - pad
                base = offset + oh * out_w
                if ih < 0 or ih >= H:
                    for ow in range(out_w):
                        col[r, base + ow] = 0
                    continue
                for ow in range(lo):
                    col[r, base + ow] = 0
                if stride == 1:
                    for ow in range(lo, hi):
                        col[r, base + ow] = x[c, ih, ow + kw - pad]
                else:
                    for ow in range(lo, hi):
                        col[r, base + ow] = x[c, ih, ow * stride + kw - pad]
                for ow in range(hi, out_w):
                    col[r, base + ow] = 0


cdef inline int _ceil_div(int a, int b) noexcept nogil:
    """ceil(a / b) for b > 0 and any sign of a."""
    if a >= 0:
        return (a + b - 1) // b
    return -((-a) // b)


# The output columns ow whose tap of kernel column kw lands inside the image, i.e.
# iw = ow*stride + kw - pad in [0, W), are first_inside <= ow < end_inside (maybe none).
cdef inline int _first_inside(int kw, int pad, int stride) noexcept nogil:
    cdef int lo = _ceil_div(pad - kw, stride)
    return lo if lo > 0 else 0


cdef inline int _end_inside(int kw, int pad, int stride, int W, int out_w) noexcept nogil:
    cdef int hi = _ceil_div(W + pad - kw, stride)
    cdef int lo = _first_inside(kw, pad, stride)
    if hi > out_w:
        hi = out_w
    return hi if hi > lo else lo


def col2im(const float[:, ::1] col, int ksize, int stride, int pad, float[:, :, ::1] dx,
           int offset=0):
    """Adjoint of im2col: add columns offset..offset+out_h*out_w of col back into dx (C, H, W),
    which must start zeroed."""
    cdef int C = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    cdef int out_h = (H + 2 * pad - ksize) // stride + 1
    cdef int out_w = (W + 2 * pad - ksize) // stride + 1
    cdef int c, kh, kw, r, oh, ow, ih, iw, base, lo, hi
    if col.shape[0] != C * ksize * ksize or offset < 0 or col.shape[1] < offset + out_h * out_w:
        raise ValueError("col2im: col has the wrong shape")
    with nogil:
        # one channel per thread: the taps of different channels never write the same pixel
        for c in prange(C, schedule="static"):
            for kh in range(ksize):
                for kw in range(ksize):
                    r = (c * ksize + kh) * ksize + kw
                    lo = _first_inside(kw, pad, stride)
                    hi = _end_inside(kw, pad, stride, W, out_w)
                    for oh in range(out_h):
                        ih = oh * stride + kh - pad
                        if ih < 0 or ih >= H:
                            continue
                        base = offset + oh * out_w
                        if stride == 1:
                            for ow in range(lo, hi):
                                dx[c, ih, ow + kw - pad] += col[r, base + ow]
                        else:
                            for ow in range(lo, hi):
                                dx[c, ih, ow * stride + kw - pad] += col[r, base + ow]


def scale_bias_activate(float[:, :, ::1] y, const float[::1] scale, const float[::1] bias, int act):
    """In place: y[n, c, :] = act(scale[c] * y[n, c, :] + bias[c]) — one pass over memory."""
    cdef int N = y.shape[0], C = y.shape[1], S = y.shape[2]
    cdef int nc, n, c, i
    cdef float a, b, v
    with nogil:
        for nc in prange(N * C, schedule="static"):
            n = nc // C
            c = nc % C
            a = scale[c]
            b = bias[c]
            for i in range(S):
                v = a * y[n, c, i] + b
                if act == ACT_LEAKY:
                    if v < 0:
                        v = 0.1 * v
                elif act == ACT_RELU:
                    if v < 0:
                        v = 0
                elif act == ACT_LOGISTIC:
                    v = 1.0 / (1.0 + expf(-v))
                y[n, c, i] = v


def activation_backward(const float[::1] y, float[::1] dy, int act):
    """In place: dy *= act'(z), written with the activation's output y (z itself is not kept)."""
    cdef Py_ssize_t n = y.shape[0], i
    with nogil:
        if act == ACT_LEAKY:
            for i in prange(n, schedule="static"):
                if y[i] <= 0:
                    dy[i] = 0.1 * dy[i]
        elif act == ACT_RELU:
            for i in prange(n, schedule="static"):
                if y[i] <= 0:
                    dy[i] = 0
        elif act == ACT_LOGISTIC:
            for i in prange(n, schedule="static"):
                dy[i] = dy[i] * y[i] * (1 - y[i])


def maxpool_forward(const float[:, :, :, ::1] x, int size, int stride, int padding,
                    float[:, :, :, ::1] y, int[:, :, :, ::1] argmax):
    """darknet's maxpool: window offset -padding/2, out-of-image taps ignored; argmax is the
    flat index (h*W + w) of the winner inside its channel, for backward."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = y.shape[2], out_w = y.shape[3]
    cdef int offset = -(padding // 2)
    cdef int nc, n, c, i, j, m, k, ih, iw, best_index
    cdef float best, v
    if size == 2 and stride == 2 and padding == 1 and 2 * out_h <= H and 2 * out_w <= W:
        # the common case (every window inside the image): no bounds tests, 4 taps unrolled
        _maxpool_2x2(x, y, argmax)
        return
    with nogil:
        for nc in prange(N * C, schedule="static"):
            n = nc // C
            c = nc % C
            for i in range(out_h):
                for j in range(out_w):
                    best = -FLT_MAX
                    best_index = -1
                    for m in range(size):
                        ih = offset + i * stride + m
                        if ih < 0 or ih >= H:
                            continue
                        for k in range(size):
                            iw = offset + j * stride + k
                            if iw < 0 or iw >= W:
                                continue
                            v = x[n, c, ih, iw]
                            if v > best:
                                best = v
                                best_index = ih * W + iw
                    y[n, c, i, j] = best
                    argmax[n, c, i, j] = best_index


cdef void _maxpool_2x2(const float[:, :, :, ::1] x, float[:, :, :, ::1] y,
                       int[:, :, :, ::1] argmax) noexcept nogil:
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = y.shape[2], out_w = y.shape[3]
    cdef int nc, i, j, best_index
    cdef float best, v
    cdef const float* plane
    cdef const float* top
    cdef const float* bottom
    cdef float* out
    cdef int* arg
    for nc in prange(N * C, schedule="static"):
        # raw pointers: the memoryview index arithmetic per tap cost more than the comparisons
        plane = &x[nc // C, nc % C, 0, 0]
        for i in range(out_h):
            top = plane + 2 * i * W
            bottom = top + W
            out = &y[nc // C, nc % C, i, 0]
            arg = &argmax[nc // C, nc % C, i, 0]
            for j in range(out_w):
                best = top[2 * j]
                best_index = 2 * i * W + 2 * j
                v = top[2 * j + 1]
                if v > best:
                    best = v
                    best_index = 2 * i * W + 2 * j + 1
                v = bottom[2 * j]
                if v > best:
                    best = v
                    best_index = (2 * i + 1) * W + 2 * j
                v = bottom[2 * j + 1]
                if v > best:
                    best = v
                    best_index = (2 * i + 1) * W + 2 * j + 1
                out[j] = best
                arg[j] = best_index


def maxpool_backward(const float[:, :, :, ::1] dy, const int[:, :, :, ::1] argmax,
                     float[:, :, :, ::1] dx):
    """Route each output gradient to its argmax; dx (N, C, H, W) must start zeroed."""
    cdef int N = dy.shape[0], C = dy.shape[1], out_h = dy.shape[2], out_w = dy.shape[3]
    cdef int W = dx.shape[3]
    cdef int nc, n, c, i, j, idx
    with nogil:
        for nc in prange(N * C, schedule="static"):
            n = nc // C
            c = nc % C
            for i in range(out_h):
                for j in range(out_w):
                    idx = argmax[n, c, i, j]
                    if idx >= 0:
                        dx[n, c, idx // W, idx % W] += dy[n, c, i, j]


def batchnorm_statistics(const float[:, :, ::1] x, double[::1] mean, double[::1] var):
    """Per-channel mean and unbiased variance of x (N, C, S) over N and S, accumulated in double
    so large batches do not lose precision; two passes, parallel over channels."""
    cdef int N = x.shape[0], C = x.shape[1], S = x.shape[2]
    cdef int c, n, i
    cdef double s, d, m
    cdef long M = <long> N * S
    with nogil:
        for c in prange(C, schedule="static"):
            s = 0
            for n in range(N):
                for i in range(S):
                    s = s + x[n, c, i]
            m = s / M
            s = 0
            for n in range(N):
                for i in range(S):
                    d = x[n, c, i] - m
                    s = s + d * d
            mean[c] = m
            var[c] = s / (M - 1) if M > 1 else 0.0


def batchnorm_backward(const float[:, :, ::1] xhat, float[:, :, ::1] g, const float[::1] scales,
                       const float[::1] inv_std, const double[::1] std, float[::1] scale_grad):
    """In place: g = dL/d(x̂·scale) -> dL/dz for x̂ = (z − μ)/(σ + eps), σ² the unbiased batch
    variance; adds Σ g·x̂ to scale_grad. Two passes per channel, parallel over channels:
        dL/dz_i = (s·g_i − mean(s·g))/(σ+eps) − x̂_i · Σ_j(s·g_j x̂_j) / (σ·(M−1))"""
    cdef int N = g.shape[0], C = g.shape[1], S = g.shape[2]
    cdef long M = <long> N * S
    cdef int c, n, i
    cdef double sg, sgx, v, coef_x
    cdef float a, mean_term, cx, inv
    with nogil:
        for c in prange(C, schedule="static"):
            sg = 0
            sgx = 0
            for n in range(N):
                for i in range(S):
                    v = g[n, c, i]
                    sg = sg + v
                    sgx = sgx + v * xhat[n, c, i]
            scale_grad[c] += <float> sgx
            a = scales[c]
            inv = inv_std[c]
            # with dL/dx̂ = a·g: Σ dL/dx̂ = a·sg, Σ dL/dx̂·x̂ = a·sgx
            mean_term = <float> (a * sg / M)
            if M > 1 and std[c] > 0:
                coef_x = a * sgx / (std[c] * (M - 1))
            else:
                coef_x = 0
            cx = <float> coef_x
            for n in range(N):
                for i in range(S):
                    g[n, c, i] = (a * g[n, c, i] - mean_term) * inv - cx * xhat[n, c, i]
