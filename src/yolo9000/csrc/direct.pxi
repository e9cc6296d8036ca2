# The direct 3x3 convolution for few input channels, the RGB input layer (its C:
# direct_conv_x86.h).
# (a section of the compiled core: ../_kernels.pyx includes it)

# im2col + GEMM has a reduction of only C·9 = 27 there, which BLAS runs at a fraction of its
# speed. A direct kernel keeps 64 sums of one output row in registers over all 27 taps and
# applies the epilogue before storing them; it beats im2col only with 8-wide FMA, so it exists
# where the CPU has AVX2 and FMA (chosen at run time: the portable build assumes SSE2), and
# layers use im2col elsewhere. Where the CPU has AVX-512 it takes six or four filters at a time:
# the one-filter kernel is bound by its loads (see BENCHMARKS.md#direct-convolution).

# the kernel's limits (direct_conv_x86.h), for the layers: outputs of one row per step (the
# padding a row needs past its end) and taps C·9
DIRECT_BLOCK = Y9K_DIRECT_BLOCK
DIRECT_MAX_TAPS = Y9K_DIRECT_MAX_TAPS


def direct_conv_available():
    """Whether conv3x3_direct can run here (x86-64 with AVX2 and FMA, the portable kernels not
    asked for)."""
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
    if (xp.shape[0] != N or xp.shape[2] != H + 2 or Wp < W + 2 + Y9K_DIRECT_BLOCK
            or w.shape[0] != F or w.shape[1] != 9 * C or 9 * C > Y9K_DIRECT_MAX_TAPS
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
    if (xp.shape[0] != N or xp.shape[2] != H + 2 or Wp < W + 2 + Y9K_DIRECT_BLOCK
            or w.shape[0] != F or w.shape[1] != 9 * C or 9 * C > Y9K_DIRECT_MAX_TAPS
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
    cdef const float* tap[Y9K_DIRECT_MAX_TAPS]
    cdef int taps = 9 * C
    cdef int c, kh, kw, f, x0, n_out
    for c in range(C):
        for kh in range(3):
            for kw in range(3):
                tap[(c * 3 + kh) * 3 + kw] = x + c * cstride + kh * Wp + kw
    # six filters a block where the rest still goes four by four (32 = 4 x 6 + 2 x 4)
    cdef int sixes = F // 6 if _avx512 else 0
    while sixes > 0 and (F - 6 * sixes) % 4:
        sixes -= 1
    cdef int six = 6 * sixes
    cdef int four = six + ((F - six) // 4) * 4 if _avx512 else 0
    for f in range(0, six, 6):
        x0 = 0
        while x0 < W:
            n_out = W - x0 if W - x0 < Y9K_DIRECT_BLOCK else Y9K_DIRECT_BLOCK
            y9k_direct6_block64(tap, taps, w + f * taps, x0, scale + f, bias + f, act,
                                z + f * fstride + x0, fstride, n_out)
            x0 += Y9K_DIRECT_BLOCK
    for f in range(six, four, 4):
        # (while, not range(0, n, BLOCK): Cython makes a C loop of range only with a literal step)
        x0 = 0
        while x0 < W:
            n_out = W - x0 if W - x0 < Y9K_DIRECT_BLOCK else Y9K_DIRECT_BLOCK
            y9k_direct4_block64(tap, taps, w + f * taps, x0, scale + f, bias + f, act,
                                z + f * fstride + x0, fstride, n_out)
            x0 += Y9K_DIRECT_BLOCK
    for f in range(four, F):
        x0 = 0
        while x0 < W:
            n_out = W - x0 if W - x0 < Y9K_DIRECT_BLOCK else Y9K_DIRECT_BLOCK
            y9k_direct_block64(tap, taps, w + f * taps, x0, scale[f], bias[f], act,
                               z + f * fstride + x0, n_out)
            x0 += Y9K_DIRECT_BLOCK
    if act == Y9K_ACT_LOGISTIC:
        for f in range(F):
            _affine_activate(z + f * fstride, W, 1, 0, Y9K_ACT_LOGISTIC)


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
    if (xp.shape[0] != N or H <= 0 or g.shape[2] != H * W or Wp < W + 2
            or 9 * C > Y9K_DIRECT_MAX_TAPS or partial.shape[0] < y9k_max_threads()
            or partial.shape[1] != F * C * 9):
        raise ValueError("conv3x3_direct_weight_grad: shapes do not match")
    cdef int job, n, y
    # with AVX-512: jobs of bands of rows (Y9K_WGRAD_BAND_VALUES values a filter), every
    # filter's and tap's sum in registers over the band; else row by row
    cdef int rows = max(1, min(H, Y9K_WGRAD_BAND_VALUES // W)) if _avx512 else 1
    cdef int bands = (H + rows - 1) // rows
    with nogil:
        for job in prange(N * bands, schedule="static"):
            n = job // bands
            y = (job % bands) * rows
            if _avx512:
                _direct_wgrad_band(&xp[n, 0, y, 0], <Py_ssize_t> (H + 2) * Wp, Wp, C,
                                   &g[n, 0, y * W], <Py_ssize_t> H * W, W, F,
                                   min(rows, H - y), &partial[y9k_thread_num(), 0])
            else:
                _direct_wgrad_row(&xp[n, 0, y, 0], <Py_ssize_t> (H + 2) * Wp, Wp, C,
                                  &g[n, 0, y * W], <Py_ssize_t> H * W, W, F,
                                  &partial[y9k_thread_num(), 0])


cdef void _direct_wgrad_band(const float* x, Py_ssize_t cstride, int Wp, int C, const float* g,
                             Py_ssize_t fstride, int W, int F, int rows,
                             double* acc) noexcept nogil:
    cdef const float* tap[Y9K_DIRECT_MAX_TAPS]
    cdef int c, kh, kw
    for c in range(C):
        for kh in range(3):
            for kw in range(3):
                tap[(c * 3 + kh) * 3 + kw] = x + c * cstride + kh * Wp + kw
    y9k_direct_wgrad_band(tap, 9 * C, Wp, g, fstride, F, W, rows, acc)


cdef void _direct_wgrad_row(const float* x, Py_ssize_t cstride, int Wp, int C, const float* g,
                            Py_ssize_t fstride, int W, int F, double* acc) noexcept nogil:
    cdef const float* tap[Y9K_DIRECT_MAX_TAPS]
    cdef int taps = 9 * C
    cdef int c, kh, kw, f
    for c in range(C):
        for kh in range(3):
            for kw in range(3):
                tap[(c * 3 + kh) * 3 + kw] = x + c * cstride + kh * Wp + kw
    for f in range(F):
        y9k_direct_wgrad_row(tap, taps, g + f * fstride, W, acc + f * taps)
