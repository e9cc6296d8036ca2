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
