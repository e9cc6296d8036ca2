# Batch norm in training: the batch statistics, the normalise + scale + bias + activation
# pass and its backward; their passes over each run of values are C (batchnorm_passes.h),
# AVX-512 where the CPU has it.
# (a section of the compiled core: ../_kernels.pyx includes it)

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
        y9k_shifted_sums(x + n * image_stride, S, shift, sums, _avx512)
    m = sums[0] / M
    mean[0] = shift + m
    var[0] = (sums[1] - sums[0] * m) / (M - 1) if M > 1 else 0.0


def batchnorm_activate(const float[:, :, ::1] z, const float[::1] mean, const float[::1] inv,
                       const float[::1] scale, const float[::1] bias, int act,
                       float[:, :, ::1] y):
    """y = act(scale·x̂ + bias) with x̂ = (z − mean)·inv, per channel: the training forward's
    normalise, scale, bias and activation in one pass. z (N, C, S) stays as it is: backward
    recomputes x̂ from it (see batchnorm_activate_backward), so no third array is kept."""
    cdef int N = z.shape[0], C = z.shape[1], S = z.shape[2]
    cdef int nc, i, c
    cdef const float* src
    cdef float* dst
    cdef float m, k, a, b
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
            if act == Y9K_ACT_LOGISTIC:
                for i in range(S):
                    dst[i] = _activate(a * ((src[i] - m) * k) + b, act)
            else:
                y9k_normalize_activate(src, dst, S, m, k, a, b, act, _avx512)


def batchnorm_activate_backward(const float[:, :, ::1] dy, const float[:, :, ::1] y, int act,
                                float[:, :, ::1] g, float[::1] bias_grad,
                                const float[:, :, ::1] z=None, const float[::1] mean=None,
                                const float[::1] inv=None, const double[::1] std=None,
                                const float[::1] scales=None, const float[::1] bias=None,
                                float[::1] scale_grad=None):
    """The backward of batchnorm_activate (and of a convolution's bias + activation without
    batch norm): g = dL/d(conv output) from dy = dL/dy for y = act(scale·x̂ + bias) (batch norm given by
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
    cdef bint from_y = (not bn) or act == Y9K_ACT_LOGISTIC
    cdef int c, n, i
    cdef double st, stx
    cdef float t, m, k, a, b, mean_term, cx
    cdef const float* d
    cdef const float* yy
    cdef const float* zz
    cdef float* out
    if (g.shape[0] != N or g.shape[1] != C or g.shape[2] != S or bias_grad.shape[0] != C):
        raise ValueError("batchnorm_activate_backward: shapes do not match")
    if from_y and (y is None or y.shape[0] != N or y.shape[1] != C or y.shape[2] != S):
        raise ValueError("batchnorm_activate_backward: y is needed and must match dy")
    if bn and (mean is None or inv is None or std is None or scales is None or bias is None
               or scale_grad is None or z.shape[0] != N or z.shape[1] != C or z.shape[2] != S):
        raise ValueError("batchnorm_activate_backward: batch norm needs z, mean, inv, std, "
                         "scales, bias and scale_grad of matching shapes")
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
                    st = st + y9k_bn_grad_sums(d, zz, S, m, k, a, b, _negative_slope(act), &stx,
                                               _avx512)
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
                    y9k_bn_grad_write(d, zz, out, S, m, k, a, b, _negative_slope(act),
                                      mean_term, cx, _avx512)


# A batch-normalised convolution and the 2x2/2 maxpool after it, in training: the forward
# writes only the pooled output, and the backward finds each window's winner again from z
# (its activated values recomputed by the same compiled pass and compared with the pooled
# maxima, as maxpool_2x2_s2_backward compares the kept output). The full activated output
# is never kept: on yolov2-tiny-voc at 416, batch 8, the first layer's is 89 MB, which the
# unfused pair wrote and read back to pool every step.
cdef enum:
    # values a pooled pass activates per call: several row pairs of small maps (darknet-mini's
    # 8x8 at batch 64: a call per row pair cost more than the unfused pair's passes)
    POOLED_BLOCK_FLOATS = 4096


def batchnorm_pooled_scratch_floats(int W):
    """Floats per thread the pooled passes need for maps W wide."""
    return max(2 * W, POOLED_BLOCK_FLOATS)


cdef void _pooled_plane(const float* z, int W, int out_h, float m, float k, float a, float b,
                        int act, float* values, float* pooled, const float* dpooled,
                        float* dy, int sse2) noexcept nogil:
    # one plane's rows activated a block of row pairs at a time into `values`, then each
    # pair pooled into `pooled` (the forward), or with dy each window's gradient from dpooled
    # put on its winner, pooled being the forward's maxima (the backward)
    cdef int block = max(1, min(POOLED_BLOCK_FLOATS // (2 * W), out_h))
    cdef int out_w = W // 2
    cdef int i0 = 0, r, i
    while i0 < out_h:
        r = min(block, out_h - i0)
        y9k_normalize_activate(z + 2 * i0 * W, values, 2 * W * r, m, k, a, b, act, _avx512)
        for i in range(r):
            if dy == NULL:
                y9k_maxpool_2x2_s2_row(values + 2 * i * W, pooled + (i0 + i) * out_w, W, out_w)
            else:
                y9k_maxpool_2x2_s2_backward_row(values + 2 * i * W, pooled + (i0 + i) * out_w,
                                                dpooled + (i0 + i) * out_w,
                                                dy + 2 * (i0 + i) * W, W, out_w, sse2)
        i0 = i0 + r


def batchnorm_activate_pooled(const float[:, :, ::1] z, int H, int W, const float[::1] mean,
                              const float[::1] inv, const float[::1] scale,
                              const float[::1] bias, int act, float[:, :, :, ::1] pooled,
                              float[:, ::1] scratch):
    """pooled = the 2x2/2 maxpool of act(scale·x̂ + bias), x̂ = (z − mean)·inv per channel,
    z (N, C, H·W) with H and W even, act piecewise linear (not logistic); scratch:
    batchnorm_pooled_scratch_floats(W) floats per thread."""
    cdef int N = z.shape[0], C = z.shape[1]
    cdef int out_h = H // 2
    cdef int nc, c, n
    _check_pooled("batchnorm_activate_pooled", N, C, H, W, z.shape[2], pooled, act, scratch,
                  batchnorm_pooled_scratch_floats(W))
    if mean.shape[0] != C or inv.shape[0] != C or scale.shape[0] != C or bias.shape[0] != C:
        raise ValueError("batchnorm_activate_pooled: shapes do not match")
    if N * C * out_h == 0:
        return
    with nogil:
        for nc in prange(N * C, schedule="static"):
            n = nc // C
            c = nc % C
            _pooled_plane(&z[n, c, 0], W, out_h, mean[c], inv[c], scale[c], bias[c], act,
                          &scratch[cython.parallel.threadid(), 0], &pooled[n, c, 0, 0],
                          NULL, NULL, 0)


def batchnorm_unpool(const float[:, :, :, ::1] dpooled, const float[:, :, :, ::1] pooled,
                     const float[:, :, ::1] z, const float[::1] mean, const float[::1] inv,
                     const float[::1] scale, const float[::1] bias, int act,
                     float[:, :, ::1] dy, float[:, ::1] scratch):
    """dy = dL/d(activated output) (N, C, H·W) of batchnorm_activate_pooled's pooled output
    given dpooled = dL/dpooled: each window's gradient on its winner (the first of its four
    activated values, row by row, equal to its maximum, recomputed from z), the others 0, as
    maxpool_2x2_s2_backward gives it from the kept output. scratch:
    batchnorm_pooled_scratch_floats(W) floats per thread.
    (Unpooling inside batch norm's two backward passes instead, recomputing the values in
    each, took 1.08x these two kernels' time on the 416 px layer and 1.45x on 104 px.)"""
    cdef int N = z.shape[0], C = z.shape[1]
    cdef int H = 2 * pooled.shape[2], W = 2 * pooled.shape[3]
    cdef int out_h = pooled.shape[2], out_w = pooled.shape[3]
    cdef int sse2 = (_paths & Y9K_SSE2) != 0
    cdef int nc, n, c
    _check_pooled("batchnorm_unpool", N, C, H, W, z.shape[2], pooled, act, scratch,
                  batchnorm_pooled_scratch_floats(W))
    if (dpooled.shape[0] != N or dpooled.shape[1] != C or dpooled.shape[2] != out_h
            or dpooled.shape[3] != out_w or dy.shape[0] != N or dy.shape[1] != C
            or dy.shape[2] != H * W or mean.shape[0] != C or inv.shape[0] != C
            or scale.shape[0] != C or bias.shape[0] != C):
        raise ValueError("batchnorm_unpool: shapes do not match")
    if N * C * out_h == 0:
        return
    with nogil:
        for nc in prange(N * C, schedule="static"):
            n = nc // C
            c = nc % C
            _pooled_plane(&z[n, c, 0], W, out_h, mean[c], inv[c], scale[c], bias[c], act,
                          &scratch[cython.parallel.threadid(), 0], <float*> &pooled[n, c, 0, 0],
                          &dpooled[n, c, 0, 0], &dy[n, c, 0], sse2)


cdef _check_pooled(str name, int N, int C, int H, int W, Py_ssize_t S,
                   const float[:, :, :, ::1] pooled, int act, float[:, ::1] scratch,
                   Py_ssize_t row):
    if H % 2 or W % 2 or <Py_ssize_t> H * W != S:
        raise ValueError(f"{name}: the map must be H x W, both even")
    if (pooled.shape[0] != N or pooled.shape[1] != C or pooled.shape[2] != H // 2
            or pooled.shape[3] != W // 2):
        raise ValueError(f"{name}: the pooled output's shape does not match")
    if act == Y9K_ACT_LOGISTIC:
        raise ValueError(f"{name}: the activation must be piecewise linear (not logistic)")
    if scratch.shape[0] < get_max_threads() or scratch.shape[1] < row:
        raise ValueError(f"{name}: scratch needs {row} floats for each of "
                         f"{get_max_threads()} threads")
