# im2col and col2im: the convolutions that go through BLAS.
# (a section of the compiled core: ../_kernels.pyx includes it)

def im2col(const float[:, :, ::1] x, int ksize, int stride, int pad, float[:, ::1] col,
           int offset=0):
    """Unfold one image (C, H, W) into columns offset..offset+out_h*out_w of col (C*k*k, M);
    taps outside the image are 0. Several images can so share one column matrix."""
    cdef int C = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef int out_h = (H + 2 * pad - ksize) // stride + 1
    cdef int out_w = (W + 2 * pad - ksize) // stride + 1
    cdef int rows = C * ksize * ksize
    cdef int r
    if col.shape[0] != rows or offset < 0 or col.shape[1] < offset + out_h * out_w:
        raise ValueError("im2col: col has the wrong shape")
    with nogil:
        for r in prange(rows, schedule="static"):
            _im2col_row(&x[0, 0, 0], H, W, ksize, stride, pad, r, out_h, out_w, &col[r, offset])


def im2col_images(const float[:, :, :, ::1] x, int n0, int n1, int ksize, int stride, int pad,
                  float[:, ::1] col):
    """im2col() of images n0..n1 of x (N, C, H, W) side by side in col (C*k*k, (n1-n0)*out_h*
    out_w), in one parallel loop: small maps would pay a loop's start per image (64 images of
    2x2: 2 ms against 0.3)."""
    cdef int C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int out_h = (H + 2 * pad - ksize) // stride + 1
    cdef int out_w = (W + 2 * pad - ksize) // stride + 1
    cdef int rows = C * ksize * ksize, s = out_h * out_w
    cdef int r, j
    if (n0 < 0 or n1 > x.shape[0] or n1 <= n0 or col.shape[0] != rows
            or col.shape[1] < (n1 - n0) * s):
        raise ValueError("im2col_images: col or the images do not match")
    with nogil:
        for r in prange(rows, schedule="static"):
            for j in range(n1 - n0):
                _im2col_row(&x[n0 + j, 0, 0, 0], H, W, ksize, stride, pad, r, out_h, out_w,
                            &col[r, j * s])


cdef void _im2col_row(const float* x, int H, int W, int ksize, int stride, int pad, int r,
                      int out_h, int out_w, float* out) noexcept nogil:
    """Row r of one image's im2col matrix: x the image (C, H, W), out its out_h*out_w values."""
    cdef int c = r // (ksize * ksize)
    cdef int kh = (r // ksize) % ksize
    cdef int kw = r % ksize
    cdef int lo = _first_inside(kw, pad, stride)
    cdef int hi = _end_inside(kw, pad, stride, W, out_w)
    cdef int oh, ow, ih
    cdef const float* row
    cdef float* o
    for oh in range(out_h):
        ih = oh * stride + kh - pad
        o = out + oh * out_w
        if ih < 0 or ih >= H:
            for ow in range(out_w):
                o[ow] = 0
            continue
        row = x + (<Py_ssize_t> c * H + ih) * W
        for ow in range(lo):
            o[ow] = 0
        if stride == 1:
            for ow in range(lo, hi):
                o[ow] = row[ow + kw - pad]
        else:
            for ow in range(lo, hi):
                o[ow] = row[ow * stride + kw - pad]
        for ow in range(hi, out_w):
            o[ow] = 0


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
    cdef int c
    cdef Py_ssize_t stride_col = col.strides[0] // sizeof(float)
    if col.shape[0] != C * ksize * ksize or offset < 0 or col.shape[1] < offset + out_h * out_w:
        raise ValueError("col2im: col has the wrong shape")
    with nogil:
        # one channel per thread: the taps of different channels never write the same pixel
        for c in prange(C, schedule="static"):
            _col2im_channel(&col[0, offset], stride_col, c, H, W, ksize, stride, pad, out_h,
                            out_w, &dx[0, 0, 0])


def col2im_images(const float[:, ::1] col, int ksize, int stride, int pad,
                  float[:, :, :, ::1] dx, int n0, int n1):
    """col2im() of images n0..n1 of dx (N, C, H, W), side by side in col as im2col_images
    wrote them, in one parallel loop (the same sums, in the same order, as image by image)."""
    cdef int C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef int out_h = (H + 2 * pad - ksize) // stride + 1
    cdef int out_w = (W + 2 * pad - ksize) // stride + 1
    cdef int s = out_h * out_w
    cdef int c, j
    cdef Py_ssize_t stride_col = col.strides[0] // sizeof(float)
    if (n0 < 0 or n1 > dx.shape[0] or n1 <= n0 or col.shape[0] != C * ksize * ksize
            or col.shape[1] < (n1 - n0) * s):
        raise ValueError("col2im_images: col or the images do not match")
    with nogil:
        for c in prange(C, schedule="static"):
            for j in range(n1 - n0):
                _col2im_channel(&col[0, j * s], stride_col, c, H, W, ksize, stride, pad,
                                out_h, out_w, &dx[n0 + j, 0, 0, 0])


cdef void _col2im_channel(const float* col, Py_ssize_t stride_col, int c, int H, int W,
                          int ksize, int stride, int pad, int out_h, int out_w,
                          float* dx) noexcept nogil:
    """Adds channel c's taps of one image's columns (col: its first column, rows stride_col
    apart) into dx (C, H, W)."""
    cdef int kh, kw, r, oh, ow, ih, lo, hi
    cdef const float* src
    cdef float* row
    for kh in range(ksize):
        for kw in range(ksize):
            r = (c * ksize + kh) * ksize + kw
            lo = _first_inside(kw, pad, stride)
            hi = _end_inside(kw, pad, stride, W, out_w)
            for oh in range(out_h):
                ih = oh * stride + kh - pad
                if ih < 0 or ih >= H:
                    continue
                src = col + r * stride_col + oh * out_w
                row = dx + (<Py_ssize_t> c * H + ih) * W
                if stride == 1:
                    for ow in range(lo, hi):
                        row[ow + kw - pad] += src[ow]
                else:
                    for ow in range(lo, hi):
                        row[ow * stride + kw - pad] += src[ow]


# Convolutions on maps so small that every output position sees every input position through
# some tap (3x3 "same" on 2x2 or smaller: darknet-mini's last layers): one dense matrix of
# (filter, output position) x (channel, input position) instead of im2col's columns, whose
# taps on the zero padding the product would multiply too (20 of 36 on a 2x2 map).

cdef enum:
    Y9K_SMALL_MAP_POSITIONS = 16

# the most positions (H·W) of a small map, for the layers
SMALL_MAP_MAX_POSITIONS = Y9K_SMALL_MAP_POSITIONS


cdef int _small_map_taps(int K, int pad, int H, int W, int* taps, str what) except -1:
    """taps[p·P + q] = the tap (ky·K + kx) from input position q to output position p of an
    H x W map, P = H·W; refused when a pair has none (the map too large for the kernel)."""
    cdef int P = H * W, p, q
    if (H <= 0 or W <= 0 or max(H, W) - 1 > min(pad, K - 1 - pad)
            or P > Y9K_SMALL_MAP_POSITIONS):
        raise ValueError(f"{what}: a {H}x{W} map has positions no tap connects")
    for p in range(P):
        for q in range(P):
            taps[p * P + q] = (pad + q // W - p // W) * K + pad + q % W - p % W
    return 0


def small_map_weights(const float[:, :, :, ::1] w, int pad, int H, int W, float[:, ::1] out):
    """out[f·P + p, c·P + q] = w[f, c, pad + qy − py, pad + qx − px] for the P = H·W positions
    p = py·W + px and q of the map (every pair within the kernel), w (F, C, K, K)."""
    cdef int F = w.shape[0], C = w.shape[1], K = w.shape[2], P = H * W
    cdef int f, p, c, q
    cdef int taps[Y9K_SMALL_MAP_POSITIONS * Y9K_SMALL_MAP_POSITIONS]
    cdef float* row
    cdef const float* src
    _small_map_taps(K, pad, H, W, taps, "small_map_weights")
    if w.shape[3] != K or out.shape[0] != F * P or out.shape[1] != C * P:
        raise ValueError("small_map_weights: shapes do not match")
    with nogil:
        for f in prange(F, schedule="static"):
            for p in range(P):
                row = &out[f * P + p, 0]
                for c in range(C):
                    src = &w[f, c, 0, 0]
                    for q in range(P):
                        row[c * P + q] = src[taps[p * P + q]]


def small_map_weight_grad(const float[:, ::1] d, int pad, int H, int W,
                          float[:, :, :, ::1] dw):
    """dw[f, c, ky, kx] = the sum of d[f·P + p, c·P + q] over the pairs (p, q) whose tap is
    (ky, kx), p-major then q (taps no pair reaches get 0): the weights' gradient from that of
    small_map_weights' matrix. dw (F, C, K, K) is written over."""
    cdef int F = dw.shape[0], C = dw.shape[1], K = dw.shape[2], P = H * W
    cdef int f, p, c, q, t
    cdef int taps[Y9K_SMALL_MAP_POSITIONS * Y9K_SMALL_MAP_POSITIONS]
    cdef float* dst
    cdef const float* src
    _small_map_taps(K, pad, H, W, taps, "small_map_weight_grad")
    if dw.shape[3] != K or d.shape[0] != F * P or d.shape[1] != C * P:
        raise ValueError("small_map_weight_grad: shapes do not match")
    with nogil:
        for f in prange(F, schedule="static"):
            for c in range(C):
                dst = &dw[f, c, 0, 0]
                for t in range(K * K):
                    dst[t] = 0
                for p in range(P):
                    src = &d[f * P + p, c * P]
                    for q in range(P):
                        dst[taps[p * P + q]] += src[q]
