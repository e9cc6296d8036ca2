# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython core: the loops NumPy cannot express without extra passes or temporaries.

Every kernel works on float32 C-contiguous arrays supplied by the caller (so buffers can be
reused between calls) and releases the GIL; the outer loop runs in parallel with OpenMP when
the package was built with it. Matrix products stay in NumPy (BLAS).
"""
import numpy as np
cimport cython
from cython.parallel cimport prange
from libc.math cimport expf, fmaxf, sqrtf
from libc.float cimport FLT_MAX

# the instruction-set paths the kernels take, read once at import (csrc/y9k.h): the CPU's,
# or none (the portable twins) when YOLO9000_PORTABLE_KERNELS is set
cdef bint _portable = y9k_portable_requested()
cdef int _paths = 0 if _portable else y9k_cpu_features()
# the AVX-512 kernels' switch (the 4-filter direct kernel, the 13x13 input transform, the
# products from weight blocks) and the AVX2+FMA one (the direct kernel)
cdef bint _avx512 = (_paths & Y9K_AVX512F) != 0
cdef bint _avx2_fma = (_paths & Y9K_AVX2_FMA) != 0

# activation codes shared with layers/activations.py
DEF ACT_LINEAR = 0
DEF ACT_LEAKY = 1
DEF ACT_RELU = 2
DEF ACT_LOGISTIC = 3


cdef inline float _activate(float v, int act) noexcept nogil:
    # max (v > w ? v : w) rather than a test of the sign: the signs of activations are close
    # to random, mispredicted branches cost more than the arithmetic, and the select
    # vectorises; max(v, 0.1v) is leaky for either sign (0.1·v in double, as darknet's .1*x)
    cdef float w
    if act == ACT_LEAKY:
        w = <float> (0.1 * v)
        return v if v > w else w
    if act == ACT_RELU:
        return v if v > 0 else 0
    if act == ACT_LOGISTIC:
        return 1.0 / (1.0 + expf(-v))
    return v


cdef void _affine_activate(float* y, Py_ssize_t n, float a, float b, int act) noexcept nogil:
    """y = act(a·y + b) on n contiguous floats; one loop per activation so each vectorises."""
    cdef Py_ssize_t i
    cdef float v, w
    if act == ACT_LEAKY:
        for i in range(n):
            v = a * y[i] + b
            w = <float> (0.1 * v)
            y[i] = v if v > w else w
    elif act == ACT_RELU:
        for i in range(n):
            v = a * y[i] + b
            y[i] = v if v > 0 else 0
    elif act == ACT_LOGISTIC:
        for i in range(n):
            y[i] = 1.0 / (1.0 + expf(-(a * y[i] + b)))
    else:
        for i in range(n):
            y[i] = a * y[i] + b


def openmp_enabled():
    return bool(y9k_have_openmp())


def set_num_threads(int n):
    y9k_set_num_threads(n)


def get_max_threads():
    return y9k_max_threads()


def cpu_features():
    """Which instruction-set paths the kernels take here: sse2, avx2_fma and avx512f each True
    when the CPU (and the build) has it and YOLO9000_PORTABLE_KERNELS did not turn it off;
    portable_kernels: whether that switch was set when the module was imported."""
    return {"sse2": bool(_paths & Y9K_SSE2), "avx2_fma": _avx2_fma, "avx512f": _avx512,
            "portable_kernels": _portable}


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
    cdef int nc
    if scale.shape[0] < C or bias.shape[0] < C:
        raise ValueError("scale_bias_activate: scale and bias need one value per channel")
    with nogil:
        for nc in prange(N * C, schedule="static"):
            _affine_activate(&y[nc // C, nc % C, 0], S, scale[nc % C], bias[nc % C], act)


def maxpool_forward(const float[:, :, :, ::1] x, int size, int stride, int padding,
                    float[:, :, :, ::1] y, int[:, :, :, ::1] argmax=None):
    """darknet's maxpool: window offset -padding/2, out-of-image taps ignored; argmax is the
    flat index (h*W + w) of the winner inside its channel, for backward (None at inference:
    then only the maxima are computed)."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = y.shape[2], out_w = y.shape[3]
    cdef int offset = -(padding // 2)
    cdef int nc, n, c, i, j, m, k, ih, iw, best_index
    cdef float best, v
    cdef bint keep = argmax is not None
    if keep and (argmax.shape[0] != N or argmax.shape[1] != C or argmax.shape[2] != out_h
                 or argmax.shape[3] != out_w):
        raise ValueError("maxpool_forward: argmax has the wrong shape")
    if not keep and _tiles(size, stride, padding, H, W, out_h, out_w):
        # the common case (every window inside the image): no bounds tests, 4 taps unrolled
        _maxpool_2x2_values(x, y)
        return
    if not keep and _same_2x2(size, stride, padding, H, W, out_h, out_w):
        # darknet's "same" 2x2 maxpool (the 13x13 one of tiny YOLOv2)
        with nogil:
            for nc in prange(N * C, schedule="static"):
                _maxpool_2x2_s1_plane(&x[nc // C, nc % C, 0, 0], &y[nc // C, nc % C, 0, 0], H, W)
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
                    if keep:
                        argmax[n, c, i, j] = best_index


cdef void _maxpool_2x2_values(const float[:, :, :, ::1] x, float[:, :, :, ::1] y) noexcept nogil:
    # inference: the same comparisons as _maxpool_2x2 (the later tap wins only if greater),
    # written as selects that vectorise instead of branches that mispredict
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = y.shape[2], out_w = y.shape[3]
    cdef int nc, i, j
    cdef float best, v
    cdef const float* top
    cdef const float* bottom
    cdef float* out
    for nc in prange(N * C, schedule="static"):
        for i in range(out_h):
            top = &x[nc // C, nc % C, 2 * i, 0]
            bottom = top + W
            out = &y[nc // C, nc % C, i, 0]
            for j in range(out_w):
                best = top[2 * j]
                v = top[2 * j + 1]
                best = v if v > best else best
                v = bottom[2 * j]
                best = v if v > best else best
                v = bottom[2 * j + 1]
                out[j] = v if v > best else best


cdef void _maxpool_2x2_s1_plane(const float* x, float* y, int H, int W) noexcept nogil:
    """y[i, j] = max of x[i..i+1, j..j+1] inside the plane, taps in darknet's order (a later
    tap wins only if greater): the last row and column have only the taps inside."""
    cdef int i, j
    cdef const float* top
    cdef const float* bottom
    cdef float* out
    cdef float best, v
    for i in range(H):
        top = x + i * W
        bottom = top + W if i + 1 < H else top
        out = y + i * W
        for j in range(W - 1):
            best = top[j]
            v = top[j + 1]
            best = v if v > best else best
            v = bottom[j]
            best = v if v > best else best
            v = bottom[j + 1]
            out[j] = v if v > best else best
        best = top[W - 1]
        v = bottom[W - 1]
        out[W - 1] = v if v > best else best


def maxpool_same_2x2(int size, int stride, int padding, int H, int W, int out_h, int out_w):
    """Whether the windows are darknet's 2x2/1 ones that keep the size: then
    maxpool_2x2_s1_backward applies, without argmax."""
    return _same_2x2(size, stride, padding, H, W, out_h, out_w)


cdef inline bint _same_2x2(int size, int stride, int padding, int H, int W, int out_h,
                           int out_w) noexcept nogil:
    return size == 2 and stride == 1 and padding == 1 and out_h == H and out_w == W


def maxpool_2x2_s1_backward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] y,
                            const float[:, :, :, ::1] dy, float[:, :, :, ::1] dx):
    """dx for 2x2/1 windows that keep the size (maxpool_same_2x2): each window's gradient is
    added to the first of its taps inside the plane (row by row) equal to the window's
    maximum y, the winner of the forward's strict comparisons. dx is written whole."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int nc
    if (y.shape[0] != N or y.shape[1] != C or y.shape[2] != H or y.shape[3] != W
            or dy.shape[0] != N or dy.shape[1] != C or dy.shape[2] != H or dy.shape[3] != W
            or dx.shape[0] != N or dx.shape[1] != C or dx.shape[2] != H or dx.shape[3] != W):
        raise ValueError("maxpool_2x2_s1_backward: shapes do not match")
    with nogil:
        for nc in prange(N * C, schedule="static"):
            _maxpool_2x2_s1_backward_plane(&x[nc // C, nc % C, 0, 0], &y[nc // C, nc % C, 0, 0],
                                           &dy[nc // C, nc % C, 0, 0],
                                           &dx[nc // C, nc % C, 0, 0], H, W)


cdef void _maxpool_2x2_s1_backward_plane(const float* x, const float* y, const float* dy,
                                         float* dx, int H, int W) noexcept nogil:
    cdef int i, j, k
    cdef float best
    for k in range(H * W):
        dx[k] = 0
    for i in range(H):
        for j in range(W):
            best = y[i * W + j]
            k = i * W + j
            if x[k] == best:
                pass
            elif j + 1 < W and x[k + 1] == best:
                k = k + 1
            elif i + 1 < H and x[k + W] == best:
                k = k + W
            elif i + 1 < H and j + 1 < W and x[k + W + 1] == best:
                k = k + W + 1
            else:
                continue        # no tap equals the maximum (NaN): no gradient, as argmax -1
            dx[k] += dy[i * W + j]


def maxpool_backward(const float[:, :, :, ::1] dy, const int[:, :, :, ::1] argmax,
                     float[:, :, :, ::1] dx):
    """Route each output gradient to its argmax; dx (N, C, H, W) is zeroed first."""
    cdef int N = dy.shape[0], C = dy.shape[1], out_h = dy.shape[2], out_w = dy.shape[3]
    cdef int H = dx.shape[2], W = dx.shape[3]
    cdef int nc, n, c, i, j, idx
    with nogil:
        for nc in prange(N * C, schedule="static"):
            for i in range(H):
                for j in range(W):
                    dx[nc // C, nc % C, i, j] = 0
        for nc in prange(N * C, schedule="static"):
            n = nc // C
            c = nc % C
            for i in range(out_h):
                for j in range(out_w):
                    idx = argmax[n, c, i, j]
                    if idx >= 0:
                        dx[n, c, idx // W, idx % W] += dy[n, c, i, j]


def maxpool_tiles(int size, int stride, int padding, int H, int W, int out_h, int out_w):
    """Whether the windows are darknet's 2x2/2 ones that tile the input exactly (each input
    value in one window): then maxpool_2x2_backward applies, without argmax."""
    return _tiles(size, stride, padding, H, W, out_h, out_w)


cdef inline bint _tiles(int size, int stride, int padding, int H, int W, int out_h,
                        int out_w) noexcept nogil:
    return size == 2 and stride == 2 and padding == 1 and 2 * out_h == H and 2 * out_w == W


def maxpool_2x2_backward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] y,
                         const float[:, :, :, ::1] dy, float[:, :, :, ::1] dx):
    """dx for 2x2/2 windows that tile x (maxpool_tiles), written whole: each window's
    gradient goes to the first of its four inputs (row by row) equal to the window's maximum
    y, the winner the forward's strict comparisons pick; the others get 0. Recomputing the
    winner costs one read of x and saves the forward its argmax array and branches."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = y.shape[2], out_w = y.shape[3]
    cdef int nc, i
    cdef int sse2 = (_paths & Y9K_SSE2) != 0
    if (2 * out_h != H or 2 * out_w != W or y.shape[0] != N or y.shape[1] != C
            or dy.shape[0] != N or dy.shape[1] != C or dy.shape[2] != out_h
            or dy.shape[3] != out_w or dx.shape[0] != N or dx.shape[1] != C
            or dx.shape[2] != H or dx.shape[3] != W):
        raise ValueError("maxpool_2x2_backward: shapes do not match")
    with nogil:
        for nc in prange(N * C * out_h, schedule="static"):
            i = nc % out_h
            y9k_maxpool2_backward_row(&x[nc // out_h // C, (nc // out_h) % C, 2 * i, 0],
                                      &y[nc // out_h // C, (nc // out_h) % C, i, 0],
                                      &dy[nc // out_h // C, (nc // out_h) % C, i, 0],
                                      &dx[nc // out_h // C, (nc // out_h) % C, 2 * i, 0],
                                      W, out_w, sse2)


def batchnorm_statistics(const float[:, :, ::1] x, double[::1] mean, double[::1] var):
    """Per-channel mean and unbiased variance of x (N, C, S) over N and S in one pass: sums of
    x − x₀ and (x − x₀)² in double, shifted by the channel's first value x₀ so that a mean
    far from zero does not cancel the variance away; parallel over channels."""
    cdef int N = x.shape[0], C = x.shape[1], S = x.shape[2]
    cdef int c
    if <long> N * S == 0:
        raise ValueError("batchnorm_statistics: no values")
    with nogil:
        for c in prange(C, schedule="static"):
            _channel_statistics(&x[0, c, 0], N, <Py_ssize_t> C * S, S, &mean[c], &var[c])


cdef void _channel_statistics(const float* x, int N, Py_ssize_t image_stride, Py_ssize_t S,
                              double* mean, double* var) noexcept nogil:
    # a function per channel: its local array is private to the OpenMP thread (in the prange
    # body it would be shared)
    cdef double sums[2]
    cdef double m
    cdef long M = <long> N * S
    cdef float shift = x[0]
    cdef int n
    sums[0] = 0
    sums[1] = 0
    for n in range(N):
        _shifted_sums(x + n * image_stride, S, shift, sums)
    m = sums[0] / M
    mean[0] = shift + m
    var[0] = (sums[1] - sums[0] * m) / (M - 1) if M > 1 else 0.0


# values per block summed in float (vectorised) before the block's sum goes into a double
DEF SUM_BLOCK = 256


cdef void _shifted_sums(const float* x, Py_ssize_t n, float shift, double* sums) noexcept nogil:
    """sums[0] += Σ (x − shift), sums[1] += Σ (x − shift)²."""
    cdef Py_ssize_t i, j, end
    cdef float bs, bq, d
    for j in range(0, n, SUM_BLOCK):
        end = j + SUM_BLOCK if j + SUM_BLOCK < n else n
        bs = 0
        bq = 0
        for i in range(j, end):
            d = x[i] - shift
            bs = bs + d
            bq = bq + d * d
        sums[0] += bs
        sums[1] += bq


cdef inline float _act_grad(float d, float y, int act) noexcept nogil:
    """d·act'(z) from the activation's output y (darknet's gradients: leaky 0.1 where y <= 0)."""
    if act == ACT_LEAKY:
        return d if y > 0 else <float> (0.1 * d)
    if act == ACT_RELU:
        return d if y > 0 else 0
    if act == ACT_LOGISTIC:
        return d * y * (1 - y)
    return d


def batchnorm_activate(const float[:, :, ::1] z, const float[::1] mean, const float[::1] inv,
                       const float[::1] scale, const float[::1] bias, int act,
                       float[:, :, ::1] y):
    """y = act(scale·x̂ + bias) with x̂ = (z − mean)·inv, per channel: the training forward's
    normalise, scale, bias and activation in one pass. z (N, C, S) stays as it is: backward
    recomputes x̂ from it (see conv_output_backward), so no third array is kept."""
    cdef int N = z.shape[0], C = z.shape[1], S = z.shape[2]
    cdef int nc, i, c
    cdef const float* src
    cdef float* dst
    cdef float m, k, a, b, v, w
    if (y.shape[0] != N or y.shape[1] != C or y.shape[2] != S or mean.shape[0] != C
            or inv.shape[0] != C or scale.shape[0] != C or bias.shape[0] != C):
        raise ValueError("batchnorm_activate: shapes do not match")
    with nogil:
        for nc in prange(N * C, schedule="static"):
            c = nc % C
            src = &z[nc // C, c, 0]
            dst = &y[nc // C, c, 0]
            m = mean[c]
            k = inv[c]
            a = scale[c]
            b = bias[c]
            if act == ACT_LEAKY:
                for i in range(S):
                    v = a * ((src[i] - m) * k) + b
                    w = <float> (0.1 * v)
                    dst[i] = v if v > w else w
            else:
                for i in range(S):
                    dst[i] = _activate(a * ((src[i] - m) * k) + b, act)


def conv_output_backward(const float[:, :, ::1] dy, const float[:, :, ::1] y, int act,
                         float[:, :, ::1] g, float[::1] bias_grad,
                         const float[:, :, ::1] z=None, const float[::1] mean=None,
                         const float[::1] inv=None, const double[::1] std=None,
                         const float[::1] scales=None, const float[::1] bias=None,
                         float[::1] scale_grad=None):
    """g = dL/d(conv output) from dy = dL/dy for y = act(scale·x̂ + bias) (batch norm given by
    z, mean, inv, std, scales and bias; without them y = act(z + bias)); adds Σ dL/d(pre-
    activation) to bias_grad and, with batch norm, Σ dL/d(x̂·scale)·x̂ to scale_grad. Two
    passes per channel, parallel over channels; g may be dy itself. With t = dy·act',
    x̂ = (z − μ)·inv (as in batchnorm_activate), σ² the unbiased batch variance, M = N·S:
        g_i = (s·t_i − mean(s·t))·inv − x̂_i · Σ_j(s·t_j x̂_j) / (σ·(M−1))
    Under batch norm act' comes from the pre-activation s·x̂ + bias, recomputed from z, for
    every activation but logistic (which reads y): one array less to stream through."""
    cdef int N = dy.shape[0], C = dy.shape[1], S = dy.shape[2]
    cdef long M = <long> N * S
    cdef bint bn = z is not None
    cdef bint from_y = (not bn) or act == ACT_LOGISTIC
    cdef int c, n, i
    cdef double st, stx
    cdef float t, m, k, a, b, mean_term, cx
    cdef const float* d
    cdef const float* yy
    cdef const float* zz
    cdef float* out
    if (g.shape[0] != N or g.shape[1] != C or g.shape[2] != S or bias_grad.shape[0] != C):
        raise ValueError("conv_output_backward: shapes do not match")
    if from_y and (y is None or y.shape[0] != N or y.shape[1] != C or y.shape[2] != S):
        raise ValueError("conv_output_backward: y is needed and must match dy")
    if bn and (mean is None or inv is None or std is None or scales is None or bias is None
               or scale_grad is None or z.shape[0] != N or z.shape[1] != C or z.shape[2] != S):
        raise ValueError("conv_output_backward: batch norm needs z, mean, inv, std, scales, "
                         "bias and scale_grad of matching shapes")
    with nogil:
        for c in prange(C, schedule="static"):
            st = 0
            stx = 0
            m = mean[c] if bn else 0
            k = inv[c] if bn else 1
            a = scales[c] if bn else 1
            b = bias[c] if bn else 0
            for n in range(N):
                d = &dy[n, c, 0]
                if not bn:
                    yy = &y[n, c, 0]
                    out = &g[n, c, 0]
                    for i in range(S):
                        t = _act_grad(d[i], yy[i], act)
                        st = st + t
                        out[i] = t
                    continue
                zz = &z[n, c, 0]
                if from_y:
                    yy = &y[n, c, 0]
                    for i in range(S):
                        t = _act_grad(d[i], yy[i], act)
                        st = st + t
                        stx = stx + t * ((zz[i] - m) * k)
                else:
                    st = st + _bn_grad_sums(d, zz, S, m, k, a, b, _negative_slope(act), &stx)
            bias_grad[c] += <float> st
            if not bn:
                continue
            scale_grad[c] += <float> stx
            mean_term = <float> (a * st / M)
            cx = <float> (a * stx / (std[c] * (M - 1))) if M > 1 and std[c] > 0 else 0
            for n in range(N):
                d = &dy[n, c, 0]
                zz = &z[n, c, 0]
                out = &g[n, c, 0]
                if from_y:
                    yy = &y[n, c, 0]
                    for i in range(S):
                        t = _act_grad(d[i], yy[i], act)
                        out[i] = (a * t - mean_term) * k - cx * ((zz[i] - m) * k)
                else:
                    _bn_grad_write(d, zz, out, S, m, k, a, b, _negative_slope(act), mean_term, cx)


cdef inline float _negative_slope(int act) noexcept nogil:
    """act'(v) for v <= 0 of the piecewise-linear activations (1 elsewhere)."""
    if act == ACT_LEAKY:
        return 0.1
    if act == ACT_RELU:
        return 0
    return 1


cdef double _bn_grad_sums(const float* d, const float* z, Py_ssize_t n, float m, float k, float a,
                          float b, float slope, double* sum_tx) noexcept nogil:
    """Σ t, and *sum_tx += Σ t·x̂, with x̂ = (z − m)·k, t = d·act'(a·x̂ + b) (act' = 1 for
    positive arguments, else slope); float block sums, as _shifted_sums."""
    cdef Py_ssize_t i, j, end
    cdef float bs, bx, xh, t
    cdef double total = 0
    for j in range(0, n, SUM_BLOCK):
        end = j + SUM_BLOCK if j + SUM_BLOCK < n else n
        bs = 0
        bx = 0
        for i in range(j, end):
            xh = (z[i] - m) * k
            t = d[i] if a * xh + b > 0 else slope * d[i]
            bs = bs + t
            bx = bx + t * xh
        total += bs
        sum_tx[0] += bx
    return total


cdef void _bn_grad_write(const float* d, const float* z, float* out, Py_ssize_t n, float m,
                         float k, float a, float b, float slope, float mean_term,
                         float cx) noexcept nogil:
    """out = (a·t − mean_term)·k − cx·x̂, t and x̂ as in _bn_grad_sums (out may be d)."""
    cdef Py_ssize_t i
    cdef float xh, t
    for i in range(n):
        xh = (z[i] - m) * k
        t = d[i] if a * xh + b > 0 else slope * d[i]
        out[i] = (a * t - mean_term) * k - cx * xh


# -- Winograd F(2x2, 3x3) ----------------------------------------------------------------------
# A 3x3 stride-1 "same" convolution computed on 2x2 output tiles (Lavin & Gray, 2015): with
#     U = G g Gᵀ (4x4, per filter and channel),  V = Bᵀ d B (4x4, per channel and input tile),
#     Y = Aᵀ [Σ_c U ⊙ V] A (2x2),
# the sum over channels is 16 independent matrix products M[k] = U[k] @ V[k] (done by BLAS),
# 16 multiplications per 4 outputs instead of 36. The transforms only use ±1 and ½, so the
# result differs from the direct sum by a few float32 roundings. Tile (i, j) reads input rows
# 2i-1 .. 2i+2 and columns 2j-1 .. 2j+2 (padding 1, zeros outside the image) and writes output
# rows 2i, 2i+1 and columns 2j, 2j+1; on odd sizes the last tile's second row/column falls
# outside the output and is simply not written.
#
#     Bᵀ = [1  0 -1  0]     G = [ 1    0    0 ]     Aᵀ = [1  1  1  0]
#          [0  1  1  0]         [ ½    ½    ½ ]          [0  1 -1 -1]
#          [0 -1  1  0]         [ ½   -½    ½ ]
#          [0  1  0 -1]         [ 0    0    1 ]

def winograd_filter(const float[:, :, :, ::1] w, float[:, :, :] U):
    """U[k, f, c] = (G w[f, c] Gᵀ)[k // 4, k % 4] for 3x3 filters w (F, C, 3, 3)."""
    cdef int F = w.shape[0], C = w.shape[1]
    cdef int f
    if w.shape[2] != 3 or w.shape[3] != 3 or U.shape[0] != 16 or U.shape[1] != F or U.shape[2] != C:
        raise ValueError("winograd_filter: shapes do not match")
    cdef Py_ssize_t plane = U.strides[0] // sizeof(float)
    if (U.strides[2] != sizeof(float) or U.strides[1] != <Py_ssize_t> (C * sizeof(float))
            or U.strides[0] % sizeof(float) or U.strides[0] <= 0):
        raise ValueError("winograd_filter: U[k] must be C-contiguous")
    with nogil:
        for f in prange(F, schedule="static"):
            _filter_row(&w[f, 0, 0, 0], &U[0, f, 0], C, plane)


# (the per-job work of each prange is a function: its local arrays are then private per thread)
cdef void _filter_row(const float* w, float* u, int C, Py_ssize_t plane) noexcept nogil:
    cdef float t[4][3]
    cdef const float* g
    cdef int c, i
    for c in range(C):
        g = w + 9 * c
        # t = G g (4x3), then U = t Gᵀ (4x4)
        for i in range(3):
            t[0][i] = g[i]
            t[1][i] = 0.5 * (g[i] + g[3 + i] + g[6 + i])
            t[2][i] = 0.5 * (g[i] - g[3 + i] + g[6 + i])
            t[3][i] = g[6 + i]
        for i in range(4):
            u[(4 * i + 0) * plane + c] = t[i][0]
            u[(4 * i + 1) * plane + c] = 0.5 * (t[i][0] + t[i][1] + t[i][2])
            u[(4 * i + 2) * plane + c] = 0.5 * (t[i][0] - t[i][1] + t[i][2])
            u[(4 * i + 3) * plane + c] = t[i][2]


cdef Py_ssize_t _plane_stride(Py_ssize_t* shape, Py_ssize_t* strides, str what) except -1:
    """Floats between the 16 planes of a (16, rows, cols) stack whose planes are C-contiguous
    (the planes themselves may be spaced apart, e.g. views of a larger workspace)."""
    if (strides[2] != sizeof(float) or strides[1] != <Py_ssize_t> (shape[2] * sizeof(float))
            or strides[0] % sizeof(float) or strides[0] <= 0):
        raise ValueError(f"{what} must be C-contiguous")
    return strides[0] // sizeof(float)


cdef Py_ssize_t _tile_stack_plane(Py_ssize_t* image_shape, Py_ssize_t* shape, Py_ssize_t* strides,
                                  int n0, int n1, int r0, int r1, str what) except -1:
    """The plane stride of a stack (16, channels, cols) of the tiles of tile rows r0..r1 of
    images n0..n1 of an (N, channels, H, W) array (columns over image, tile row, tile column),
    after checking that the two match."""
    cdef Py_ssize_t tw = (image_shape[3] + 1) // 2, th = (image_shape[2] + 1) // 2
    if (shape[0] != 16 or shape[1] != image_shape[1] or shape[2] < (n1 - n0) * (r1 - r0) * tw
            or n0 < 0 or n1 > image_shape[0] or r0 < 0 or r1 > th or r1 <= r0 or n1 <= n0):
        raise ValueError(f"{what}: shapes do not match")
    return _plane_stride(shape, strides, f"{what}: the stack's planes")


ctypedef void (*tile_row_transform)(const float* image, int H, int W, int ti, float* buf,
                                    float* out, int tw, Py_ssize_t plane) noexcept nogil


cdef int _transform_tile_rows(const float[:, :, :, ::1] a, int n0, int n1, int r0, int r1,
                              float[:, :, :] stack, tile_row_transform transform, int buf_rows,
                              int buf_width, str what) except -1:
    """stack[:, c, cols] = the transformed tiles of tile rows r0..r1 of images n0..n1 of a
    (N, C, H, W), one (image, channel) per parallel job, each tile row through `transform`
    with a per-thread scratch of buf_rows x buf_width floats."""
    cdef Py_ssize_t plane = _tile_stack_plane(a.shape, stack.shape, stack.strides, n0, n1, r0,
                                              r1, what)
    cdef int C = a.shape[1], H = a.shape[2], W = a.shape[3]
    cdef int tw = (W + 1) // 2, rows = r1 - r0, m = n1 - n0
    buf = np.zeros((y9k_max_threads(), buf_rows, buf_width), np.float32)
    cdef float[:, :, ::1] rowbuf = buf
    cdef int job, img, c, ti
    with nogil:
        for job in prange(m * C, schedule="static"):
            img = n0 + job // C
            c = job % C
            for ti in range(r0, r1):
                transform(&a[img, c, 0, 0], H, W, ti, &rowbuf[cython.parallel.threadid(), 0, 0],
                          &stack[0, c, 0] + (<Py_ssize_t> (img - n0) * rows + (ti - r0)) * tw,
                          tw, plane)
    return 0


def winograd_input(const float[:, :, :, ::1] x, int n0, int n1, int r0, int r1,
                   float[:, :, :] V):
    """V[k, c, col] = (Bᵀ d B)[k // 4, k % 4] for the tiles of tile rows r0..r1 of images
    n0..n1 of x (N, C, H, W); columns run over (image, tile row, tile column)."""
    # scratch: the tile row's 4 input rows with one zero column left and 1-2 right, and their
    # 4 combinations Bᵀ d
    _transform_tile_rows(x, n0, n1, r0, r1, V, _input_tile_row, 8, 2 * ((x.shape[3] + 1) // 2) + 2,
                         "winograd_input")


# Narrow maps (13x13: 7 tiles a row) spend the input transform's time in loop overheads (16
# loops of 7 per tile row): for widths up to 14 one tile row is a few AVX-512 permutes of
# 16-lane rows instead (1024 channels at 13x13: 0.79 -> 0.17 ms). Only additions, so the
# same bits as the loops.
cdef void _input_tile_row(const float* x, int H, int W, int ti, float* buf, float* out, int tw,
                          Py_ssize_t plane) noexcept nogil:
    if W <= 14 and _avx512:
        y9k_input_tile_row16(x, H, W, ti, out, plane)
        return
    # loops over whole rows (not tile by tile) so that the compiler vectorises them
    cdef int padded = 2 * tw + 2
    cdef float* row[4]
    cdef float* a[4]
    cdef const float* src
    cdef float* o
    cdef float* q
    cdef int r, y, p, tj
    for r in range(4):
        row[r] = buf + r * padded
        a[r] = buf + (4 + r) * padded
        y = 2 * ti - 1 + r
        if y < 0 or y >= H:
            for p in range(padded):
                row[r][p] = 0
        else:
            src = x + <Py_ssize_t> y * W
            row[r][0] = 0
            for p in range(W):
                row[r][p + 1] = src[p]
            for p in range(W + 1, padded):
                row[r][p] = 0
    # Bᵀ d at every column: a[i][p] = (Bᵀ · rows)[i][p]
    for p in range(padded):
        a[0][p] = row[0][p] - row[2][p]
        a[1][p] = row[1][p] + row[2][p]
        a[2][p] = row[2][p] - row[1][p]
        a[3][p] = row[1][p] - row[3][p]
    # (Bᵀ d) B: tile tj uses columns 2tj .. 2tj+3
    for r in range(4):
        q = a[r]
        o = out + 4 * r * plane
        for tj in range(tw):
            o[tj] = q[2 * tj] - q[2 * tj + 2]
        o = o + plane
        for tj in range(tw):
            o[tj] = q[2 * tj + 1] + q[2 * tj + 2]
        o = o + plane
        for tj in range(tw):
            o[tj] = q[2 * tj + 2] - q[2 * tj + 1]
        o = o + plane
        for tj in range(tw):
            o[tj] = q[2 * tj + 1] - q[2 * tj + 3]


def winograd_output(const float[:, :, :] M, float[:, :, :, ::1] z, int n0, int n1, int r0,
                    int r1, const float[::1] scale, const float[::1] bias, int act,
                    bint pool=False):
    """z[n, f, 2i:2i+2, 2j:2j+2] = act(scale[f] · (Aᵀ m A) + bias[f]) for the tiles of tile
    rows r0..r1 of images n0..n1 (laid out in M (16, F, cols) as winograd_input lays out V);
    edge tiles of odd sizes write only their inside part. With `pool`, z[n, f, i, j] = the
    maximum of those four instead (a 2x2/2 maxpool fused; z is half the even output size)."""
    cdef Py_ssize_t image[4]
    image[0] = z.shape[0]
    image[1] = z.shape[1]
    image[2] = z.shape[2] * (2 if pool else 1)
    image[3] = z.shape[3] * (2 if pool else 1)
    cdef Py_ssize_t plane = _tile_stack_plane(image, M.shape, M.strides, n0, n1, r0, r1,
                                              "winograd_output")
    cdef int F = z.shape[1], H = image[2], W = image[3]
    cdef int tw = (W + 1) // 2, rows = r1 - r0, m = n1 - n0
    if scale.shape[0] != F or bias.shape[0] != F:
        raise ValueError("winograd_output: shapes do not match")
    cdef int job, img, f, ti
    with nogil:
        for job in prange(m * F, schedule="static"):
            img = n0 + job // F
            f = job % F
            for ti in range(r0, r1):
                _output_tile_row(&M[0, f, 0] + (<Py_ssize_t> (img - n0) * rows + (ti - r0)) * tw,
                                 plane, &z[img, f, 0, 0], H, W, ti, tw, scale[f], bias[f], act,
                                 pool)


DEF OUT_BLOCK = 64


cdef inline float _max4(float a, float b, float c, float d) noexcept nogil:
    """max of a 2x2 window in darknet's order (a later value replaces only a larger one)."""
    cdef float m = a
    if b > m:
        m = b
    if c > m:
        m = c
    if d > m:
        m = d
    return m


cdef void _output_tile_row(const float* src, Py_ssize_t plane, float* z, int H, int W, int ti,
                           int tw, float a, float b, int act, bint pool) noexcept nogil:
    # blocks of OUT_BLOCK tiles, each step a plain loop over the block so that the compiler
    # vectorises it: s = Aᵀ m (2x4 per tile), y = s A (2x2 per tile), the epilogue, then the
    # 2x2 values interleaved into the two output rows
    cdef float s[8][OUT_BLOCK]
    cdef float yv[4][OUT_BLOCK]
    cdef const float* p0
    cdef const float* p1
    cdef const float* p2
    cdef const float* p3
    cdef float* sa
    cdef float* sb
    cdef float* q
    cdef int j0, nb, t, j, full
    cdef int y = 2 * ti
    cdef bint second_row = y + 1 < H
    cdef float* dst0 = z + <Py_ssize_t> y * W
    cdef float* dst1 = dst0 + W
    for j0 in range(0, tw, OUT_BLOCK):
        nb = tw - j0 if tw - j0 < OUT_BLOCK else OUT_BLOCK
        for j in range(4):
            p0 = src + j * plane + j0
            p1 = p0 + 4 * plane
            p2 = p1 + 4 * plane
            p3 = p2 + 4 * plane
            sa = &s[j][0]
            sb = &s[4 + j][0]
            for t in range(nb):
                sa[t] = p0[t] + p1[t] + p2[t]
                sb[t] = p1[t] - p2[t] - p3[t]
        for t in range(nb):
            yv[0][t] = s[0][t] + s[1][t] + s[2][t]
            yv[1][t] = s[1][t] - s[2][t] - s[3][t]
            yv[2][t] = s[4][t] + s[5][t] + s[6][t]
            yv[3][t] = s[5][t] - s[6][t] - s[7][t]
        for j in range(4):
            _affine_activate(&yv[j][0], nb, a, b, act)
        if pool:
            # a 2x2/2 maxpool fused (even H and W: z is the pooled plane, one value a tile),
            # the window read row by row as the maxpool kernel does
            q = z + <Py_ssize_t> ti * tw + j0
            for t in range(nb):
                q[t] = _max4(yv[0][t], yv[1][t], yv[2][t], yv[3][t])
            continue
        # tiles whose both columns are inside, then (odd W) the last one's left column
        full = nb - 1 if 2 * (j0 + nb) > W else nb
        q = dst0 + 2 * j0
        for t in range(full):
            q[2 * t] = yv[0][t]
            q[2 * t + 1] = yv[1][t]
        if full < nb:
            q[2 * full] = yv[0][full]
        if second_row:
            q = dst1 + 2 * j0
            for t in range(full):
                q[2 * t] = yv[2][t]
                q[2 * t + 1] = yv[3][t]
            if full < nb:
                q[2 * full] = yv[2][full]


# -- Winograd backward ---------------------------------------------------------------------------
# With Y = Aᵀ M A per tile and M[k] = Σ_c U[k] V[k], the weight gradient goes back the same way:
#     dM = A dY Aᵀ (4x4 per output-gradient tile),  dU[k] = dM[k] @ V[k]ᵀ (BLAS),
#     dg = Gᵀ dU G (3x3 per filter and channel).
# Output positions outside the map (the last tile's second row/column on odd sizes) do not
# exist: their dY is zero.
#
#     A = [1  0]
#         [1  1]
#         [1 -1]
#         [0 -1]

def winograd_output_grad(const float[:, :, :, ::1] dz, int n0, int n1, int r0, int r1,
                         float[:, :, :] dM):
    """dM[k, f, col] = (A dY Aᵀ)[k // 4, k % 4] for the 2x2 tiles dY of dz (N, F, H, W) of
    tile rows r0..r1 of images n0..n1, in winograd_input's column order."""
    # scratch: the tile row's two gradient rows, zero-extended to whole tiles
    _transform_tile_rows(dz, n0, n1, r0, r1, dM, _output_grad_tile_row, 2,
                         2 * ((dz.shape[3] + 1) // 2), "winograd_output_grad")


cdef void _output_grad_tile_row(const float* dz, int H, int W, int ti, float* buf, float* out,
                                int tw, Py_ssize_t plane) noexcept nogil:
    cdef float* row0 = buf
    cdef float* row1 = buf + 2 * tw
    cdef const float* src
    cdef float a, b, c, d
    cdef float t[4][2]
    cdef float* o
    cdef int r, p, tj, i
    for r in range(2):
        o = row0 if r == 0 else row1
        if 2 * ti + r >= H:
            for p in range(2 * tw):
                o[p] = 0
        else:
            src = dz + <Py_ssize_t> (2 * ti + r) * W
            for p in range(W):
                o[p] = src[p]
            for p in range(W, 2 * tw):
                o[p] = 0
    for tj in range(tw):
        a = row0[2 * tj]
        b = row0[2 * tj + 1]
        c = row1[2 * tj]
        d = row1[2 * tj + 1]
        # t = A dY (4x2), then each row of t times Aᵀ
        t[0][0] = a
        t[0][1] = b
        t[1][0] = a + c
        t[1][1] = b + d
        t[2][0] = a - c
        t[2][1] = b - d
        t[3][0] = -c
        t[3][1] = -d
        for i in range(4):
            o = out + 4 * i * plane + tj
            o[0] = t[i][0]
            o[plane] = t[i][0] + t[i][1]
            o[2 * plane] = t[i][0] - t[i][1]
            o[3 * plane] = -t[i][1]


def winograd_filter_grad(const float[:, :, :] dU, float[:, :, :, ::1] dw):
    """dw[f, c] += Gᵀ dU[:, f, c] G (dU (16, F, C) as 4x4 per filter and channel)."""
    cdef int F = dw.shape[0], C = dw.shape[1]
    cdef int f
    if (dw.shape[2] != 3 or dw.shape[3] != 3 or dU.shape[0] != 16 or dU.shape[1] != F
            or dU.shape[2] != C):
        raise ValueError("winograd_filter_grad: shapes do not match")
    cdef Py_ssize_t plane = _plane_stride(dU.shape, dU.strides, "winograd_filter_grad: dU[k]")
    with nogil:
        for f in prange(F, schedule="static"):
            _filter_grad_row(&dU[0, f, 0], plane, &dw[f, 0, 0, 0], C)


DEF FILTER_BLOCK = 64


cdef void _filter_grad_row(const float* du, Py_ssize_t plane, float* dw, int C) noexcept nogil:
    # blocks of FILTER_BLOCK channels, each step a plain loop over the block so that the
    # compiler vectorises it (as in _output_tile_row): s = Gᵀ dU (3x4), dg = s G (3x3), then
    # the 9 values per channel added into dw's interleaved layout
    cdef float s[12][FILTER_BLOCK]
    cdef float dg[9][FILTER_BLOCK]
    cdef float half = 0.5
    cdef const float* p0
    cdef const float* p1
    cdef const float* p2
    cdef const float* p3
    cdef float* o
    cdef int c0, nb, t, i, j, k
    for c0 in range(0, C, FILTER_BLOCK):
        nb = C - c0 if C - c0 < FILTER_BLOCK else FILTER_BLOCK
        for j in range(4):
            p0 = du + j * plane + c0
            p1 = p0 + 4 * plane
            p2 = p1 + 4 * plane
            p3 = p2 + 4 * plane
            for t in range(nb):
                s[j][t] = p0[t] + half * (p1[t] + p2[t])
                s[4 + j][t] = half * (p1[t] - p2[t])
                s[8 + j][t] = half * (p1[t] + p2[t]) + p3[t]
        for i in range(3):
            for t in range(nb):
                dg[3 * i][t] = s[4 * i][t] + half * (s[4 * i + 1][t] + s[4 * i + 2][t])
                dg[3 * i + 1][t] = half * (s[4 * i + 1][t] - s[4 * i + 2][t])
                dg[3 * i + 2][t] = half * (s[4 * i + 1][t] + s[4 * i + 2][t]) + s[4 * i + 3][t]
        o = dw + 9 * c0
        for t in range(nb):
            for k in range(9):
                o[9 * t + k] += dg[k][t]


# -- direct 3x3 convolution for few input channels (the RGB input layer) -----------------------
# im2col + GEMM has a reduction of only C·9 = 27 there, which BLAS runs at a fraction of its
# speed. A direct kernel keeps 64 sums of one output row in registers over all 27 taps and
# applies the epilogue before storing them; it beats im2col only with 8-wide FMA, so it exists
# where the CPU has AVX2 and FMA (chosen at run time: the portable build assumes SSE2), and
# layers use im2col elsewhere.
DEF DIRECT_BLOCK = 64      # outputs of one row per step (y9k_direct_block64)
# four filters at a time where the CPU has AVX-512 (RGB input layer at 416 px, 32 filters,
# batch 1: 2.9 -> 1.9 ms; 16 filters, batch 8: 20.1 -> 15.5)
DEF DIRECT_MAX_TAPS = 72   # C·9 for the channel counts this kernel is for (C < 8)


def direct_conv_available():
    """Whether conv3x3_direct can run here (x86-64 with AVX2 and FMA)."""
    return _avx2_fma


def conv3x3_direct_pooled(const float[:, :, :, ::1] xp, const float[:, ::1] w,
                          float[:, :, :, ::1] z, const float[::1] scale, const float[::1] bias,
                          int act, float[:, ::1] scratch):
    """conv3x3_direct followed by a 2x2/2 maxpool (even output size; z (N, F, H/2, W/2)):
    each job makes two output rows of every filter in its thread's scratch row (at least
    2·F·W floats) and keeps their windows' maxima."""
    cdef int N = z.shape[0], F = z.shape[1], H = 2 * z.shape[2], W = 2 * z.shape[3]
    cdef int C = xp.shape[1], Wp = xp.shape[3]
    if not _avx2_fma:
        raise RuntimeError("conv3x3_direct needs AVX2 and FMA")
    if (xp.shape[0] != N or xp.shape[2] != H + 2 or Wp < W + 2 + DIRECT_BLOCK
            or w.shape[0] != F or w.shape[1] != 9 * C or 9 * C > DIRECT_MAX_TAPS
            or scale.shape[0] != F or bias.shape[0] != F
            or scratch.shape[1] < 2 * F * W or scratch.shape[0] < y9k_max_threads()):
        raise ValueError("conv3x3_direct_pooled: shapes do not match")
    cdef int job, n, y, f, j
    cdef float* rows
    cdef float* out
    cdef float* r0
    with nogil:
        for job in prange(N * (H // 2), schedule="static"):
            n = job // (H // 2)
            y = job % (H // 2)
            rows = &scratch[cython.parallel.threadid(), 0]
            # rows 2y and 2y+1 of filter f at rows + (2f)·W and rows + (2f + 1)·W
            _direct_row(&xp[n, 0, 2 * y, 0], <Py_ssize_t> (H + 2) * Wp, Wp, C, &w[0, 0], F,
                        rows, 2 * W, W, &scale[0], &bias[0], act)
            _direct_row(&xp[n, 0, 2 * y + 1, 0], <Py_ssize_t> (H + 2) * Wp, Wp, C, &w[0, 0],
                        F, rows + W, 2 * W, W, &scale[0], &bias[0], act)
            for f in range(F):
                out = &z[n, f, y, 0]
                r0 = rows + <Py_ssize_t> 2 * f * W
                for j in range(W // 2):
                    out[j] = _max4(r0[2 * j], r0[2 * j + 1], r0[W + 2 * j], r0[W + 2 * j + 1])


def conv3x3_direct(const float[:, :, :, ::1] xp, const float[:, ::1] w, float[:, :, :, ::1] z,
                   const float[::1] scale, const float[::1] bias, int act):
    """z[n, f] = act(scale[f] · (3x3 stride-1 convolution) + bias[f]) for few channels.

    xp (N, C, H + 2, Wp) is the input zero-padded by 1 on each side, with Wp >= W + 2 +
    DIRECT_BLOCK (a last, partial block of outputs reads past the row); w (F, C·9). Leaky
    multiplies by 0.1 in float here (elsewhere in double, as darknet): at most 1 ulp apart."""
    cdef int N = z.shape[0], F = z.shape[1], H = z.shape[2], W = z.shape[3]
    cdef int C = xp.shape[1], Wp = xp.shape[3]
    if not _avx2_fma:
        raise RuntimeError("conv3x3_direct needs AVX2 and FMA")
    if (xp.shape[0] != N or xp.shape[2] != H + 2 or Wp < W + 2 + DIRECT_BLOCK
            or w.shape[0] != F or w.shape[1] != 9 * C or 9 * C > DIRECT_MAX_TAPS
            or scale.shape[0] != F or bias.shape[0] != F):
        raise ValueError("conv3x3_direct: shapes do not match")
    cdef int job, n, y
    with nogil:
        for job in prange(N * H, schedule="static"):
            n = job // H
            y = job % H
            _direct_row(&xp[n, 0, y, 0], <Py_ssize_t> (H + 2) * Wp, Wp, C, &w[0, 0], F,
                        &z[n, 0, y, 0], <Py_ssize_t> H * W, W, &scale[0], &bias[0], act)


cdef void _direct_row(const float* x, Py_ssize_t cstride, int Wp, int C, const float* w, int F,
                      float* z, Py_ssize_t fstride, int W, const float* scale, const float* bias,
                      int act) noexcept nogil:
    """Output row y of every filter; x points at padded row y (input row y - 1)."""
    cdef const float* tap[DIRECT_MAX_TAPS]
    cdef int taps = 9 * C
    cdef int c, kh, kw, f, x0, n_out
    for c in range(C):
        for kh in range(3):
            for kw in range(3):
                tap[(c * 3 + kh) * 3 + kw] = x + c * cstride + kh * Wp + kw
    cdef int four = (F // 4) * 4 if _avx512 else 0
    for f in range(0, four, 4):
        for x0 in range(0, W, DIRECT_BLOCK):
            n_out = W - x0 if W - x0 < DIRECT_BLOCK else DIRECT_BLOCK
            y9k_direct4_block64(tap, taps, w + f * taps, x0, scale + f, bias + f, act,
                                z + f * fstride + x0, fstride, n_out)
    for f in range(four, F):
        for x0 in range(0, W, DIRECT_BLOCK):
            n_out = W - x0 if W - x0 < DIRECT_BLOCK else DIRECT_BLOCK
            y9k_direct_block64(tap, taps, w + f * taps, x0, scale[f], bias[f], act,
                               z + f * fstride + x0, n_out)
    if act == ACT_LOGISTIC:
        for f in range(F):
            _affine_activate(z + f * fstride, W, 1, 0, ACT_LOGISTIC)


def conv3x3_direct_weight_grad(const float[:, :, :, ::1] xp, const float[:, :, ::1] g,
                               double[:, ::1] partial):
    """The weight gradient of conv3x3_direct: partial[t, f·C·9 + k] += Σ g[n, f, y·W + x] ·
    xp[n, c, y + kh, x + kw] (k = (c·3 + kh)·3 + kw) over the rows thread t took; the caller
    sums partial over its first axis (one row per OpenMP thread, so no two threads add to
    the same sums). xp as for conv3x3_direct, g (N, F, H·W)."""
    cdef int N = g.shape[0], F = g.shape[1]
    cdef int C = xp.shape[1], H = xp.shape[2] - 2, Wp = xp.shape[3]
    cdef int W = g.shape[2] // H if H > 0 else 0
    if not _avx2_fma:
        raise RuntimeError("conv3x3_direct_weight_grad needs AVX2 and FMA")
    if (xp.shape[0] != N or H <= 0 or g.shape[2] != H * W or Wp < W + 2 or 9 * C > DIRECT_MAX_TAPS
            or partial.shape[0] < y9k_max_threads() or partial.shape[1] != F * C * 9):
        raise ValueError("conv3x3_direct_weight_grad: shapes do not match")
    cdef int job, n, y
    with nogil:
        for job in prange(N * H, schedule="static"):
            n = job // H
            y = job % H
            _direct_wgrad_row(&xp[n, 0, y, 0], <Py_ssize_t> (H + 2) * Wp, Wp, C,
                              &g[n, 0, y * W], <Py_ssize_t> H * W, W, F,
                              &partial[y9k_thread_num(), 0])


cdef void _direct_wgrad_row(const float* x, Py_ssize_t cstride, int Wp, int C, const float* g,
                            Py_ssize_t fstride, int W, int F, double* acc) noexcept nogil:
    cdef const float* tap[DIRECT_MAX_TAPS]
    cdef int taps = 9 * C
    cdef int c, kh, kw, f
    for c in range(C):
        for kh in range(3):
            for kw in range(3):
                tap[(c * 3 + kh) * 3 + kw] = x + c * cstride + kh * Wp + kw
    for f in range(F):
        y9k_direct_wgrad_row(tap, taps, g + f * fstride, W, acc + f * taps)


# -- optimiser updates: one pass over each parameter array --------------------------------------
def sgd_update(float[::1] w, const float[::1] grad, float[::1] velocity, float step,
               float decay, float momentum):
    """darknet's SGD update, fused: v −= grad + decay·w; w += step·v; v *= momentum."""
    cdef Py_ssize_t n = w.shape[0], i
    cdef float v
    if grad.shape[0] != n or velocity.shape[0] != n:
        raise ValueError("sgd_update: arrays differ in size")
    with nogil:
        for i in prange(n, schedule="static"):
            v = velocity[i] - grad[i]
            v = v - decay * w[i]
            w[i] = w[i] + step * v
            velocity[i] = momentum * v


def adam_update(float[::1] w, const float[::1] grad, float[::1] first, float[::1] second,
                float inv_batch, float beta1, float beta2, float step, float eps,
                float decay_step):
    """Adam with decoupled weight decay, fused: with g = grad·inv_batch,
    m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², w −= decay_step·w, w −= step·m/(√v + eps)."""
    cdef Py_ssize_t n = w.shape[0], i
    cdef float g, m, v, p
    cdef float c1 = 1 - beta1, c2 = 1 - beta2
    if grad.shape[0] != n or first.shape[0] != n or second.shape[0] != n:
        raise ValueError("adam_update: arrays differ in size")
    with nogil:
        for i in prange(n, schedule="static"):
            g = grad[i] * inv_batch
            m = beta1 * first[i] + c1 * g
            v = beta2 * second[i] + c2 * (g * g)
            first[i] = m
            second[i] = v
            p = w[i] - decay_step * w[i]
            w[i] = p - step * m / (sqrtf(v) + eps)


# -- a pool of large blocks for NumPy's arrays (csrc/block_pool.c) -----------------------------
def use_block_pool(size_t limit):
    """Make NumPy allocate through the block pool, keeping up to `limit` bytes of freed blocks
    of 1 MB and more for reuse (0: keep none). Process-wide, for arrays made from now on."""
    y9k_use_block_pool(limit)


def block_pool_bytes():
    """Bytes of freed blocks the pool holds now."""
    return y9k_pool_held()


# -- Winograd in blocks that stay in cache (few channels) --------------------------------------
# On few channels (16..64) at 100-400 px the transforms move far more data than the products
# do work: V and M of a chunk (16 planes each) went out to memory and back. Here each job is a
# band of tile rows of one image, small enough for its V and M to stay in the thread's L2:
# input transform, 16 products through BLAS's sgemm (called directly, single-threaded per
# job), output transform with the epilogue, all in one thread.
ctypedef void (*sgemm_ilp64)(int order, int trans_a, int trans_b, long long m, long long n,
                             long long k, float alpha, const float* a, long long lda,
                             const float* b, long long ldb, float beta, float* c,
                             long long ldc) noexcept nogil

DEF CBLAS_ROW_MAJOR = 101
DEF CBLAS_NO_TRANS = 111
DEF CBLAS_TRANS = 112


cdef bint _band_scratch_fits(int C, int F, int tw, int band_rows, Py_ssize_t v_plane,
                             Py_ssize_t m_plane, float[:, ::1] scratch):
    """Whether the planes hold a band's V and M and scratch a row of both per thread."""
    return (band_rows > 0 and v_plane >= <Py_ssize_t> C * band_rows * tw
            and m_plane >= <Py_ssize_t> F * band_rows * tw
            and scratch.shape[0] >= y9k_max_threads()
            and scratch.shape[1] >= 16 * (v_plane + m_plane) + 8 * (2 * tw + 2))


cdef struct BandJob:
    int n, r0, r1, cols          # image, its tile rows r0..r1, their tiles
    float* v                     # the job's scratch: V (16 planes), M or dM, a tile row's
    float* m
    float* rowbuf


cdef inline BandJob _band_job(int job, int bands, int band_rows, int th, int tw, float* scratch,
                              Py_ssize_t v_plane, Py_ssize_t m_plane) noexcept nogil:
    """Job `job` of the banded kernels (image · bands + band) and its scratch, carved from the
    running thread's scratch row."""
    cdef BandJob b
    b.n = job // bands
    b.r0 = (job % bands) * band_rows
    b.r1 = b.r0 + band_rows if b.r0 + band_rows < th else th
    b.cols = (b.r1 - b.r0) * tw
    b.v = scratch
    b.m = scratch + 16 * v_plane
    b.rowbuf = b.m + 16 * m_plane
    return b


cdef void _band_tiles(const float* image, int channels, int H, int W, int r0, int r1,
                      float* rowbuf, float* stack, Py_ssize_t plane,
                      tile_row_transform transform) noexcept nogil:
    """The transformed tiles of tile rows r0..r1 of every channel of one image into a band's
    stack (16 planes of channels x (r1 - r0)·tw columns)."""
    cdef int tw = (W + 1) // 2, c, ti
    cdef Py_ssize_t cols = <Py_ssize_t> (r1 - r0) * tw
    for c in range(channels):
        for ti in range(r0, r1):
            transform(image + <Py_ssize_t> c * H * W, H, W, ti, rowbuf,
                      stack + c * cols + (ti - r0) * tw, tw, plane)


def winograd_convolve_banded(const float[:, :, :, ::1] x, size_t u_address, Py_ssize_t u_plane,
                             const int[::1] u_order, bint u_transposed, int F,
                             float[:, :, :, ::1] z, const float[::1] scale,
                             const float[::1] bias, int act, size_t sgemm_address,
                             int band_rows, Py_ssize_t v_plane, Py_ssize_t m_plane,
                             float[:, ::1] scratch, bint pool=False):
    """z = act(scale·conv(x) + bias) as winograd.convolve, by bands of band_rows tile rows.
    The filters' plane k is at u_address + u_order[k]·u_plane floats, (F, C) row-major or,
    with u_transposed, (C, F) read transposed. scratch: one row per OpenMP thread of at least
    16 stacks' worth (v_plane·16 + m_plane·16 + the tile row scratch) floats. pool: a 2x2/2
    maxpool fused (as winograd_output)."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int tw = (W + 1) // 2, th = (H + 1) // 2
    cdef int bands = (th + band_rows - 1) // band_rows
    cdef sgemm_ilp64 sgemm = <sgemm_ilp64> sgemm_address
    cdef const float* u = <const float*> u_address
    cdef int job, f, k, ti
    cdef BandJob b
    cdef int zoom = 2 if pool else 1
    if (z.shape[0] != N or z.shape[1] != F or zoom * z.shape[2] != H
            or zoom * z.shape[3] != W or scale.shape[0] != F or bias.shape[0] != F
            or u_order.shape[0] != 16
            or not _band_scratch_fits(C, F, tw, band_rows, v_plane, m_plane, scratch)):
        raise ValueError("winograd_convolve_banded: shapes do not match")
    with nogil:
        for job in prange(N * bands, schedule="dynamic"):
            b = _band_job(job, bands, band_rows, th, tw, &scratch[cython.parallel.threadid(), 0],
                          v_plane, m_plane)
            _band_tiles(&x[b.n, 0, 0, 0], C, H, W, b.r0, b.r1, b.rowbuf, b.v, v_plane,
                        _input_tile_row)
            for k in range(16):
                if u_transposed:
                    sgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS, CBLAS_NO_TRANS, F, b.cols, C, 1.0,
                          u + u_order[k] * u_plane, F, b.v + k * v_plane, b.cols, 0.0,
                          b.m + k * m_plane, b.cols)
                else:
                    sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, F, b.cols, C, 1.0,
                          u + u_order[k] * u_plane, C, b.v + k * v_plane, b.cols, 0.0,
                          b.m + k * m_plane, b.cols)
            for f in range(F):
                for ti in range(b.r0, b.r1):
                    _output_tile_row(b.m + <Py_ssize_t> f * b.cols + (ti - b.r0) * tw, m_plane,
                                     &z[b.n, f, 0, 0], H, W, ti, tw, scale[f], bias[f], act,
                                     pool)


def winograd_weight_grad_banded(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dz,
                                size_t sgemm_address, int band_rows, Py_ssize_t v_plane,
                                Py_ssize_t m_plane, float[:, ::1] scratch,
                                float[:, :, :, ::1] du_parts):
    """dU of each band of band_rows tile rows of each image (job = image·bands + band):
    du_parts[job, k] = dM[k] @ V[k]ᵀ over the band's tiles, V from x (N, C, H, W) as
    winograd_input, dM from dz (N, F, H, W) as winograd_output_grad. Every band writes its own
    part, so the caller's sum over them does not depend on the threads."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = dz.shape[1]
    cdef int tw = (W + 1) // 2, th = (H + 1) // 2
    cdef int bands = (th + band_rows - 1) // band_rows
    cdef sgemm_ilp64 sgemm = <sgemm_ilp64> sgemm_address
    cdef int job, k
    cdef BandJob b
    if (dz.shape[0] != N or dz.shape[2] != H or dz.shape[3] != W
            or not _band_scratch_fits(C, F, tw, band_rows, v_plane, m_plane, scratch)
            or du_parts.shape[0] != N * bands or du_parts.shape[1] != 16
            or du_parts.shape[2] != F or du_parts.shape[3] != C):
        raise ValueError("winograd_weight_grad_banded: shapes do not match")
    with nogil:
        for job in prange(N * bands, schedule="dynamic"):
            b = _band_job(job, bands, band_rows, th, tw, &scratch[cython.parallel.threadid(), 0],
                          v_plane, m_plane)
            _band_tiles(&x[b.n, 0, 0, 0], C, H, W, b.r0, b.r1, b.rowbuf, b.v, v_plane,
                        _input_tile_row)
            _band_tiles(&dz[b.n, 0, 0, 0], F, H, W, b.r0, b.r1, b.rowbuf, b.m, m_plane,
                        _output_grad_tile_row)
            for k in range(16):
                sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, F, C, b.cols, 1.0,
                      b.m + k * m_plane, b.cols, b.v + k * v_plane, b.cols, 0.0,
                      &du_parts[job, k, 0, 0], C)


# -- Winograd for few tiles: the filters transformed inside the products, with AVX-512 -----------
# At 13x13 and batch 1 each of the 16 products is (1024 x 1024) @ (1024 x 49): BLAS packs the
# 4 MB filter plane for every call (~175 GFLOP/s on two threads), and the transformed filters
# U are 16/9 of the weights (64 MB to read at 1024x1024, or to cache). Here each job is two
# blocks of 32 output rows (filters for the forward, channels for the input gradient; one for
# an odd last block): it reads the blocks' 3x3 weights (regrouped once so that the 32 rows'
# values of one tap are contiguous: winograd_weight_blocks), transforms a chunk of 64
# reduction indices into all 16 planes in the thread's cache, and multiplies each plane by V,
# 64 rows (four 16-float vectors) against up to 6 tile columns (24 sums), or 32 rows against
# up to 14; chunks add up in order, so the result does not depend on the threads.
def winograd_products_available():
    """Whether winograd_products_from_weights can run here (x86-64 with AVX-512)."""
    return bool(_avx512)


def winograd_weight_blocks(const float[:, :, :, ::1] w, bint transposed,
                           float[:, :, :, ::1] blocks):
    """blocks[b, r, t, o] = the weight of output row 32b + o and reduction index r at tap t
    (zero past the last row): rows are the filters f and r the channels c of w (F, C, 3, 3),
    or with `transposed` (the input gradient's) rows the channels and r the filters."""
    cdef int F = w.shape[0], C = w.shape[1]
    cdef int rows = C if transposed else F, R = F if transposed else C
    cdef Py_ssize_t row_step = 9 if transposed else <Py_ssize_t> C * 9
    cdef Py_ssize_t r_step = <Py_ssize_t> C * 9 if transposed else 9
    cdef int nb = (rows + Y9K_ROWS - 1) // Y9K_ROWS
    cdef int job, b, r, t, o
    cdef const float* src
    if (w.shape[2] != 3 or w.shape[3] != 3 or blocks.shape[0] != nb or blocks.shape[1] != R
            or blocks.shape[2] != 9 or blocks.shape[3] != Y9K_ROWS):
        raise ValueError("winograd_weight_blocks: shapes do not match")
    with nogil:
        for job in prange(nb * R, schedule="static"):
            b = job // R
            r = job % R
            src = &w[0, 0, 0, 0] + r * r_step
            for o in range(Y9K_ROWS):
                if b * Y9K_ROWS + o < rows:
                    for t in range(9):
                        blocks[b, r, t, o] = src[(b * Y9K_ROWS + o) * row_step + t]
                else:
                    for t in range(9):
                        blocks[b, r, t, o] = 0


def winograd_products_from_weights(const float[:, :, :, ::1] blocks, int rows,
                                   const int[::1] dest, const float[:, :, :] v,
                                   float[:, :, :] m, float[:, ::1] scratch):
    """m[k] = U_k @ v[k] for the 16 planes, U_k the transformed filters of the weight blocks
    (winograd_weight_blocks: (⌈rows/32⌉, R, 9, 32)), plane k of the transform stored as
    plane dest[k] (the input gradient's flip); v (16, R, N), m (16, rows, N) with contiguous
    rows. scratch: a 64-byte aligned row of winograd_scratch_floats(N) per OpenMP thread."""
    cdef int R = blocks.shape[1], N = v.shape[2], nb = blocks.shape[0]
    cdef Py_ssize_t v_plane = v.strides[0] // 4, v_ld = v.strides[1] // 4
    cdef Py_ssize_t m_plane = m.strides[0] // 4, m_ld = m.strides[1] // 4
    cdef int b
    if (v.shape[0] != 16 or m.shape[0] != 16 or v.shape[1] != R or m.shape[1] != rows
            or m.shape[2] != N or nb * Y9K_ROWS < rows or blocks.shape[2] != 9
            or blocks.shape[3] != Y9K_ROWS or dest.shape[0] != 16
            or v.strides[2] != 4 or m.strides[2] != 4
            or scratch.shape[1] < winograd_scratch_floats(N) or scratch.strides[0] % 64
            or (<size_t> &scratch[0, 0]) % 64
            or scratch.shape[0] < y9k_max_threads()
            or not _avx512):
        raise ValueError("winograd_products_from_weights: shapes do not match")
    for b in range(16):
        if not 0 <= dest[b] < 16:
            raise ValueError("winograd_products_from_weights: planes out of range")
    with nogil:
        # jobs of two blocks (64 rows: V read half as often, 4 loads per 28 sums instead of 2
        # per 14 x 2), the last one single when the count is odd
        for b in prange(nb, schedule="dynamic"):
            y9k_winograd_rows(&blocks[b, 0, 0, 0], 1,
                              min(Y9K_ROWS, rows - b * Y9K_ROWS), R,
                              &dest[0], &v[0, 0, 0], v_plane, v_ld, N,
                              &m[0, b * Y9K_ROWS, 0], m_plane, m_ld,
                              &scratch[cython.parallel.threadid(), 0])


def winograd_scratch_floats(int columns):
    """Floats of scratch per thread for winograd_products_from_weights of that many columns
    (a multiple of 16: the rows must stay 64-byte aligned)."""
    return 16 * ((Y9K_CHUNK + columns) * 2 * Y9K_ROWS + 16)


# -- one matrix product in pieces, each with single-threaded BLAS, on the OpenMP threads --------
cdef inline int _blas_layout(Py_ssize_t* shape, Py_ssize_t* strides, Py_ssize_t* ld) noexcept nogil:
    """CBLAS_NO_TRANS with ld the row stride for a row-major 2-D view, CBLAS_TRANS with ld
    the column stride for a transposed one (floats); 0 for any other strides."""
    if (strides[1] == sizeof(float) and strides[0] % sizeof(float) == 0
            and strides[0] // sizeof(float) >= shape[1]):
        ld[0] = strides[0] // sizeof(float)
        return CBLAS_NO_TRANS
    if (strides[0] == sizeof(float) and strides[1] % sizeof(float) == 0
            and strides[1] // sizeof(float) >= shape[0]):
        ld[0] = strides[1] // sizeof(float)
        return CBLAS_TRANS
    return 0


def sgemm_pieces(size_t sgemm_address, const float[:, :] a, const float[:, :] b, float[:, :] c,
                 int pieces, bint by_rows):
    """c = a @ b through the ILP64 cblas_sgemm at sgemm_address, in `pieces` bands of rows
    (by_rows) or columns of c shared out between the OpenMP threads (BLAS must be at one
    thread). a and b row-major or transposed views, c row-major. False, writing nothing, for
    other strides or an empty product."""
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    cdef Py_ssize_t lda = 0, ldb = 0, ldc = 0
    cdef int ta, tb
    cdef int piece, lo, hi, span = m if by_rows else n
    cdef sgemm_ilp64 sgemm = <sgemm_ilp64> sgemm_address
    if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError("sgemm_pieces: shapes do not match")
    if m == 0 or n == 0 or k == 0:
        return False
    ta = _blas_layout(a.shape, a.strides, &lda)
    tb = _blas_layout(b.shape, b.strides, &ldb)
    if (not ta or not tb or c.strides[1] != sizeof(float) or c.strides[0] % sizeof(float)
            or c.strides[0] // sizeof(float) < n):
        return False
    ldc = c.strides[0] // sizeof(float)
    pieces = max(1, min(pieces, span))
    with nogil:
        for piece in prange(pieces, schedule="dynamic"):
            lo = <int> (<long long> span * piece // pieces)
            hi = <int> (<long long> span * (piece + 1) // pieces)
            if by_rows:
                sgemm(CBLAS_ROW_MAJOR, ta, tb, hi - lo, n, k, 1.0, &a[lo, 0], lda, &b[0, 0], ldb,
                      0.0, &c[lo, 0], ldc)
            else:
                sgemm(CBLAS_ROW_MAJOR, ta, tb, m, hi - lo, k, 1.0, &a[0, 0], lda, &b[0, lo], ldb,
                      0.0, &c[0, lo], ldc)
    return True
