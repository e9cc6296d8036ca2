# darknet's maxpool: the generic windows with argmax, and the 2x2 ones (stride 2 tiling
# the input, stride 1 keeping its size) that find their winners again in backward.
# (a section of the compiled core: ../_kernels.pyx includes it)

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
    # by rows (y9k_maxpool_2x2_s2_row)
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = y.shape[2], out_w = y.shape[3]
    cdef Py_ssize_t row
    if N * C * out_h == 0:
        return
    # rows by offset from the first (C-contiguous): no divisions per row, which on small
    # maps (4x4: 2 rows a plane) cost more than the row
    cdef const float* x0 = &x[0, 0, 0, 0]
    cdef float* y0 = &y[0, 0, 0, 0]
    for row in prange(<Py_ssize_t> N * C * out_h, schedule="static"):
        y9k_maxpool_2x2_s2_row(x0 + 2 * row * W, y0 + row * out_w, W, out_w)


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
            y9k_maxpool_2x2_s1_backward_plane(&x[nc // C, nc % C, 0, 0],
                                              &y[nc // C, nc % C, 0, 0],
                                              &dy[nc // C, nc % C, 0, 0],
                                              &dx[nc // C, nc % C, 0, 0], H, W)


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
    value in one window): then maxpool_2x2_s2_backward applies, without argmax."""
    return _tiles(size, stride, padding, H, W, out_h, out_w)


cdef inline bint _tiles(int size, int stride, int padding, int H, int W, int out_h,
                        int out_w) noexcept nogil:
    return size == 2 and stride == 2 and padding == 1 and 2 * out_h == H and 2 * out_w == W


def maxpool_2x2_s2_backward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] y,
                         const float[:, :, :, ::1] dy, float[:, :, :, ::1] dx):
    """dx for 2x2/2 windows that tile x (maxpool_tiles), written whole: each window's
    gradient goes to the first of its four inputs (row by row) equal to the window's maximum
    y, the winner the forward's strict comparisons pick; the others get 0. Recomputing the
    winner costs one read of x and saves the forward its argmax array and branches."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = y.shape[2], out_w = y.shape[3]
    cdef int sse2 = (_paths & Y9K_SSE2) != 0
    if (2 * out_h != H or 2 * out_w != W or y.shape[0] != N or y.shape[1] != C
            or dy.shape[0] != N or dy.shape[1] != C or dy.shape[2] != out_h
            or dy.shape[3] != out_w or dx.shape[0] != N or dx.shape[1] != C
            or dx.shape[2] != H or dx.shape[3] != W):
        raise ValueError("maxpool_2x2_s2_backward: shapes do not match")
    if N * C * out_h == 0:
        return
    # rows by offset from the first (all C-contiguous): no divisions per row, which on small
    # maps (4x4: 2 rows a plane) cost more than the row
    cdef const float* x0 = &x[0, 0, 0, 0]
    cdef const float* y0 = &y[0, 0, 0, 0]
    cdef const float* dy0 = &dy[0, 0, 0, 0]
    cdef float* dx0 = &dx[0, 0, 0, 0]
    cdef Py_ssize_t row
    with nogil:
        for row in prange(<Py_ssize_t> N * C * out_h, schedule="static"):
            y9k_maxpool_2x2_s2_backward_row(x0 + 2 * row * W, y0 + row * out_w,
                                            dy0 + row * out_w, dx0 + 2 * row * W, W, out_w,
                                            sse2)


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
