# Winograd in blocks that stay in cache (few channels): bands of tile rows whose
# transforms and products stay in the thread's cache, one job per band.
# (a section of the compiled core: ../_kernels.pyx includes it)

# On few channels (16..64) at 100-400 px the transforms move far more data than the products
# do work: V and M of a chunk (16 planes each) went out to memory and back. Here each job is a
# band of tile rows of one image, small enough for its V and M to stay in the thread's L2:
# input transform, 16 products through BLAS's sgemm (called directly, single-threaded per
# job), output transform with the epilogue, all in one thread.


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
    cdef y9k_sgemm_ilp64 sgemm = <y9k_sgemm_ilp64> sgemm_address
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
                    sgemm(Y9K_CBLAS_ROW_MAJOR, Y9K_CBLAS_TRANS, Y9K_CBLAS_NO_TRANS, F, b.cols,
                          C, 1.0, u + u_order[k] * u_plane, F, b.v + k * v_plane, b.cols, 0.0,
                          b.m + k * m_plane, b.cols)
                else:
                    sgemm(Y9K_CBLAS_ROW_MAJOR, Y9K_CBLAS_NO_TRANS, Y9K_CBLAS_NO_TRANS, F,
                          b.cols, C, 1.0, u + u_order[k] * u_plane, C, b.v + k * v_plane,
                          b.cols, 0.0, b.m + k * m_plane, b.cols)
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
    cdef y9k_sgemm_ilp64 sgemm = <y9k_sgemm_ilp64> sgemm_address
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
                sgemm(Y9K_CBLAS_ROW_MAJOR, Y9K_CBLAS_NO_TRANS, Y9K_CBLAS_TRANS, F, C, b.cols, 1.0,
                      b.m + k * m_plane, b.cols, b.v + k * v_plane, b.cols, 0.0,
                      &du_parts[job, k, 0, 0], C)


# F(4x4, 3x3) the same way: the same few-channel layers at 100-400 px, whose 36-plane V and M
# (2.25x F(2x2, 3x3)'s per output) went out to memory and back in the chunked path.

def winograd4_convolve_banded(const float[:, :, :, ::1] x, const float[:, :, :] u,
                              float[:, :, :, ::1] z, const float[::1] scale,
                              const float[::1] bias, int act, const float[:, ::1] BT,
                              const float[:, ::1] AT, size_t sgemm_address, int band_rows,
                              Py_ssize_t v_plane, Py_ssize_t m_plane, float[:, ::1] scratch,
                              bint pool=False):
    """z = act(scale·conv(x) + bias) as winograd4_input, 36 products with u (36, F, C, rows
    contiguous) and winograd4_output (Bᵀ, Aᵀ as theirs: None for the ones in code), by bands
    of band_rows tile rows (4 output rows each), one job per band of an image. scratch: one
    row per OpenMP thread of at least 36 (v_plane + m_plane) + the tile row scratch floats."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], F = u.shape[1]
    cdef int tw = (W + 3) // 4, th = (H + 3) // 4
    cdef int bands = (th + band_rows - 1) // band_rows
    cdef y9k_sgemm_ilp64 sgemm = <y9k_sgemm_ilp64> sgemm_address
    cdef Py_ssize_t row_floats = 2 * W4_ALPHA * (4 * tw + 2)
    cdef int zoom = 2 if pool else 1
    cdef int job, img, r0, r1, cols, c, f, k, ti
    cdef float* v
    cdef float* m
    cdef float* rowbuf
    if BT is not None:
        _check_matrix(BT, W4_ALPHA, W4_ALPHA, "winograd4_convolve_banded: Bᵀ")
    if AT is not None:
        _check_matrix(AT, W4_OUT, W4_ALPHA, "winograd4_convolve_banded: Aᵀ")
    cdef const float* bt = NULL if BT is None else &BT[0, 0]
    cdef const float* at = NULL if AT is None else &AT[0, 0]
    cdef tile4_row_transform transform = _input4_tile_row if BT is not None else _input4_tile_row_fixed
    if (u.shape[0] != W4_TILES or u.shape[2] != C or u.strides[2] != sizeof(float)
            or u.strides[1] != C * sizeof(float) or z.shape[0] != N or z.shape[1] != F
            or zoom * z.shape[2] != H or zoom * z.shape[3] != W or scale.shape[0] != F
            or bias.shape[0] != F or band_rows <= 0
            or v_plane < <Py_ssize_t> C * band_rows * tw
            or m_plane < <Py_ssize_t> F * band_rows * tw
            or scratch.shape[0] < y9k_max_threads()
            or scratch.shape[1] < W4_TILES * (v_plane + m_plane) + row_floats):
        raise ValueError("winograd4_convolve_banded: shapes do not match")
    with nogil:
        for job in prange(N * bands, schedule="dynamic"):
            img = job // bands
            r0 = (job % bands) * band_rows
            r1 = r0 + band_rows if r0 + band_rows < th else th
            cols = (r1 - r0) * tw
            v = &scratch[cython.parallel.threadid(), 0]
            m = v + W4_TILES * v_plane
            rowbuf = m + W4_TILES * m_plane
            for c in range(C):
                for ti in range(r0, r1):
                    transform(&x[img, c, 0, 0], H, W, ti, bt, rowbuf,
                              v + <Py_ssize_t> c * cols + (ti - r0) * tw, tw, v_plane)
            for k in range(W4_TILES):
                sgemm(Y9K_CBLAS_ROW_MAJOR, Y9K_CBLAS_NO_TRANS, Y9K_CBLAS_NO_TRANS, F, cols, C,
                      1.0, &u[k, 0, 0], C, v + k * v_plane, cols, 0.0, m + k * m_plane, cols)
            for f in range(F):
                _output4_tiles(m + <Py_ssize_t> f * cols, m_plane, at, &z[img, f, 0, 0], H, W,
                               r0, cols, tw, scale[f], bias[f], act, pool)


def winograd4_weight_grad_banded(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dz,
                                 const float[:, ::1] BT, const float[:, ::1] AT,
                                 size_t sgemm_address, int band_rows, Py_ssize_t v_plane,
                                 Py_ssize_t m_plane, float[:, ::1] scratch,
                                 float[:, :, :, ::1] du_parts):
    """dU of each band of band_rows tile rows of each image (job = image·bands + band), as
    winograd_weight_grad_banded's through F(4x4, 3x3): du_parts[job, k] = dM[k] @ V[k]ᵀ over
    the band's tiles, V from x (N, C, H, W) as winograd4_input, dM from dz (N, F, H, W) as
    winograd4_output_grad (Bᵀ, Aᵀ as theirs: None for the ones in code). scratch: one row
    per OpenMP thread of at least 36 (v_plane + m_plane) + the tile row scratch floats."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = dz.shape[1]
    cdef int tw = (W + 3) // 4, th = (H + 3) // 4
    cdef int bands = (th + band_rows - 1) // band_rows
    cdef y9k_sgemm_ilp64 sgemm = <y9k_sgemm_ilp64> sgemm_address
    # the input transform's 12 rows of 4·tw + 2 floats, the output gradient's 10 of 4·tw
    cdef Py_ssize_t row_floats = 2 * W4_ALPHA * (4 * tw + 2)
    cdef int job, img, r0, r1, cols, c, f, k, ti
    cdef float* v
    cdef float* m
    cdef float* rowbuf
    if BT is not None:
        _check_matrix(BT, W4_ALPHA, W4_ALPHA, "winograd4_weight_grad_banded: Bᵀ")
    if AT is not None:
        _check_matrix(AT, W4_OUT, W4_ALPHA, "winograd4_weight_grad_banded: Aᵀ")
    cdef const float* bt = NULL if BT is None else &BT[0, 0]
    cdef const float* at = NULL if AT is None else &AT[0, 0]
    cdef tile4_row_transform inputs = _input4_tile_row if BT is not None else _input4_tile_row_fixed
    cdef tile4_row_transform grads = (_output_grad4_tile_row if AT is not None
                                      else _output_grad4_tile_row_fixed)
    if (dz.shape[0] != N or dz.shape[2] != H or dz.shape[3] != W or band_rows <= 0
            or v_plane < <Py_ssize_t> C * band_rows * tw
            or m_plane < <Py_ssize_t> F * band_rows * tw
            or scratch.shape[0] < y9k_max_threads()
            or scratch.shape[1] < W4_TILES * (v_plane + m_plane) + row_floats
            or du_parts.shape[0] != N * bands or du_parts.shape[1] != W4_TILES
            or du_parts.shape[2] != F or du_parts.shape[3] != C):
        raise ValueError("winograd4_weight_grad_banded: shapes do not match")
    with nogil:
        for job in prange(N * bands, schedule="dynamic"):
            img = job // bands
            r0 = (job % bands) * band_rows
            r1 = r0 + band_rows if r0 + band_rows < th else th
            cols = (r1 - r0) * tw
            v = &scratch[cython.parallel.threadid(), 0]
            m = v + W4_TILES * v_plane
            rowbuf = m + W4_TILES * m_plane
            for c in range(C):
                for ti in range(r0, r1):
                    inputs(&x[img, c, 0, 0], H, W, ti, bt, rowbuf,
                           v + <Py_ssize_t> c * cols + (ti - r0) * tw, tw, v_plane)
            for f in range(F):
                for ti in range(r0, r1):
                    grads(&dz[img, f, 0, 0], H, W, ti, at, rowbuf,
                          m + <Py_ssize_t> f * cols + (ti - r0) * tw, tw, m_plane)
            for k in range(W4_TILES):
                sgemm(Y9K_CBLAS_ROW_MAJOR, Y9K_CBLAS_NO_TRANS, Y9K_CBLAS_TRANS, F, C, cols, 1.0,
                      m + k * m_plane, cols, v + k * v_plane, cols, 0.0, &du_parts[job, k, 0, 0],
                      C)
