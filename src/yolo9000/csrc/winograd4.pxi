# Winograd F(4x4, 3x3): the transforms of filters, input tiles, output tiles and their
# gradients, around the 36 products (kernels/winograd.py, its F4 transform).
# (a section of the compiled core: ../_kernels.pyx includes it)
#
# The same scheme as winograd.pxi's F(2x2, 3x3) on 4x4 output tiles: 6x6 input tiles
# (stride 4) read rows 4i-1 .. 4i+4 and columns 4j-1 .. 4j+4, and the 36 products give 16
# outputs (2.25 multiplications an output instead of 4). The matrices Bᵀ (6x6), G (6x3) and
# Aᵀ (4x6) are arguments, not constants written into the loops: kernels/winograd.py holds
# the one copy of their coefficients (the interpolation points chosen for precision), and a
# test can break one of them. Zero coefficients are skipped before each row loop, so the
# sparse matrices cost what their non-zeros do. Given no Bᵀ (Aᵀ), the input (output)
# transform runs the same matrix written into code instead (csrc/winograd4_transforms.h): the
# fast path the layers take; these loops are its reference.

cdef enum:
    W4_ALPHA = 6         # input tile side
    W4_OUT = 4           # output tile side
    W4_TILES = 36        # transformed values per tile
    W4_BLOCK = 64        # tiles per block of the output and filter-gradient loops


cdef int _check_matrix(const float[:, ::1] m, int rows, int cols, str what) except -1:
    if m.shape[0] != rows or m.shape[1] != cols:
        raise ValueError(f"{what}: the matrix must be {rows}x{cols}")
    return 0


cdef Py_ssize_t _tile4_stack_plane(Py_ssize_t* image_shape, Py_ssize_t* shape,
                                   Py_ssize_t* strides, int n0, int n1, int r0, int r1,
                                   str what) except -1:
    """The plane stride of a stack (36, channels, cols) of the 4x4-output tiles of tile rows
    r0..r1 of images n0..n1 of an (N, channels, H, W) array, after checking the two match."""
    cdef Py_ssize_t tw = (image_shape[3] + 3) // 4, th = (image_shape[2] + 3) // 4
    if (shape[0] != W4_TILES or shape[1] != image_shape[1]
            or shape[2] < (n1 - n0) * (r1 - r0) * tw or n0 < 0 or n1 > image_shape[0]
            or r0 < 0 or r1 > th or r1 <= r0 or n1 <= n0):
        raise ValueError(f"{what}: shapes do not match")
    return _plane_stride(shape, strides, f"{what}: the stack's planes")


def winograd4_filter(const float[:, :, :, ::1] w, const float[:, ::1] G, float[:, :, :] U):
    """U[k, f, c] = (G w[f, c] Gᵀ)[k // 6, k % 6] for 3x3 filters w (F, C, 3, 3), G (6, 3)."""
    cdef int F = w.shape[0], C = w.shape[1]
    cdef int f
    _check_matrix(G, W4_ALPHA, 3, "winograd4_filter: G")
    if (w.shape[2] != 3 or w.shape[3] != 3 or U.shape[0] != W4_TILES or U.shape[1] != F
            or U.shape[2] != C):
        raise ValueError("winograd4_filter: shapes do not match")
    cdef Py_ssize_t plane = _plane_stride(U.shape, U.strides, "winograd4_filter: U[k]")
    with nogil:
        for f in prange(F, schedule="static"):
            _filter4_row(&w[f, 0, 0, 0], &G[0, 0], &U[0, f, 0], C, plane)


cdef void _filter4_row(const float* w, const float* G, float* u, int C,
                       Py_ssize_t plane) noexcept nogil:
    cdef float t[W4_ALPHA][3]
    cdef const float* g
    cdef int c, i, j, k
    for c in range(C):
        g = w + 9 * c
        # t = G g (6x3), then U = t Gᵀ (6x6)
        for i in range(W4_ALPHA):
            for j in range(3):
                t[i][j] = G[3 * i] * g[j] + G[3 * i + 1] * g[3 + j] + G[3 * i + 2] * g[6 + j]
        for i in range(W4_ALPHA):
            for k in range(W4_ALPHA):
                u[(W4_ALPHA * i + k) * plane + c] = (t[i][0] * G[3 * k] + t[i][1] * G[3 * k + 1]
                                                     + t[i][2] * G[3 * k + 2])


cdef void _combine_rows(const float* m, int mstride, int i, const float* const* rows, int nrows,
                        float* out, int n) noexcept nogil:
    """out[p] = Σ_r m[r·mstride + i] · rows[r][p] over p < n: row i of the transposed matrix
    (column i of m) applied to the rows, zero coefficients skipped."""
    cdef int r, p
    cdef float coef
    for p in range(n):
        out[p] = 0
    for r in range(nrows):
        coef = m[r * mstride + i]
        if coef != 0:
            for p in range(n):
                out[p] += coef * rows[r][p]


cdef void _combine_columns(const float* m, int mstride, int i, const float* q, int ncols,
                           float* out, int tw) noexcept nogil:
    """out[tj] = Σ_s m[s·mstride + i] · q[4·tj + s] over the tw tiles of a row (4 apart)."""
    cdef int s, tj
    cdef float coef
    for tj in range(tw):
        out[tj] = 0
    for s in range(ncols):
        coef = m[s * mstride + i]
        if coef != 0:
            for tj in range(tw):
                out[tj] += coef * q[W4_OUT * tj + s]


ctypedef void (*tile4_row_transform)(const float* image, int H, int W, int ti, const float* mat,
                                     float* buf, float* out, int tw,
                                     Py_ssize_t plane) noexcept nogil


cdef struct _Tile4RowsJob:
    const float* a
    const float* mat
    float* stack
    float* buf
    Py_ssize_t stack_channel, buf_floats, plane, a_image, a_channel
    long jobs
    int C, H, W, n0, r0, r1, tw
    tile4_row_transform transform


cdef void _tile4_rows_member(void* p, int member, int members) noexcept nogil:
    # its share of the (image, channel) jobs, each all its tile rows, with its own scratch
    cdef _Tile4RowsJob* j = <_Tile4RowsJob*> p
    cdef long first, end, job
    cdef int img, c, ti
    cdef Py_ssize_t rows = j.r1 - j.r0
    cdef float* buf = j.buf + member * j.buf_floats
    y9k_team_share(j.jobs, member, members, &first, &end)
    for job in range(first, end):
        img = j.n0 + <int> (job // j.C)
        c = <int> (job % j.C)
        for ti in range(j.r0, j.r1):
            j.transform(j.a + img * j.a_image + c * j.a_channel, j.H, j.W, ti, j.mat,
                        buf, j.stack + c * j.stack_channel
                        + ((img - j.n0) * rows + (ti - j.r0)) * j.tw, j.tw, j.plane)


cdef int _transform_tile4_rows(const float[:, :, :, ::1] a, int n0, int n1, int r0, int r1,
                               const float[:, ::1] mat, float[:, :, :] stack,
                               tile4_row_transform transform, int buf_floats,
                               str what) except -1:
    """stack[:, c, cols] = the transformed tiles of tile rows r0..r1 of images n0..n1 of a
    (N, C, H, W), one (image, channel) per parallel job, each tile row through `transform`
    with the matrix and a per-thread scratch of buf_floats."""
    cdef Py_ssize_t plane = _tile4_stack_plane(a.shape, stack.shape, stack.strides, n0, n1,
                                               r0, r1, what)
    cdef int C = a.shape[1], H = a.shape[2], W = a.shape[3]
    cdef int tw = (W + 3) // 4, rows = r1 - r0, m = n1 - n0
    buf = np.zeros((y9k_team_members(), buf_floats), np.float32)
    cdef float[:, ::1] rowbuf = buf
    if m * C == 0 or rows <= 0:
        return 0
    cdef _Tile4RowsJob job
    job.a, job.stack, job.buf = &a[0, 0, 0, 0], &stack[0, 0, 0], &rowbuf[0, 0]
    job.a_image, job.a_channel = a.strides[0] // sizeof(float), a.strides[1] // sizeof(float)
    # (no matrix: a transform with its coefficients in code)
    job.mat = NULL if mat is None else &mat[0, 0]
    job.stack_channel, job.buf_floats = stack.strides[1] // sizeof(float), buf_floats
    job.jobs, job.C, job.H, job.W, job.n0, job.r0, job.r1 = m * C, C, H, W, n0, r0, r1
    job.tw, job.plane, job.transform = tw, plane, transform
    with nogil:
        y9k_team(_tile4_rows_member, &job)
    return 0


def winograd4_input(const float[:, :, :, ::1] x, int n0, int n1, int r0, int r1,
                    const float[:, ::1] BT, float[:, :, :] V):
    """V[k, c, col] = (Bᵀ d B)[k // 6, k % 6] for the 6x6 tiles d of tile rows r0..r1 of
    images n0..n1 of x (N, C, H, W), Bᵀ (6, 6), or None for the Bᵀ written into
    csrc/winograd4_transforms.h (kernels/winograd.py's F4_BT); columns run over (image, tile
    row, column)."""
    if BT is not None:
        _check_matrix(BT, W4_ALPHA, W4_ALPHA, "winograd4_input: Bᵀ")
    # scratch: the tile row's 6 input rows (one zero column left, 1-4 right) and Bᵀ d
    _transform_tile4_rows(x, n0, n1, r0, r1, BT, V,
                          _input4_tile_row if BT is not None else _input4_tile_row_fixed,
                          2 * W4_ALPHA * (4 * ((x.shape[3] + 3) // 4) + 2), "winograd4_input")


cdef void _input4_tile_row_fixed(const float* x, int H, int W, int ti, const float* BT,
                                 float* buf, float* out, int tw,
                                 Py_ssize_t plane) noexcept nogil:
    if W <= 15 and _avx512:
        y9k_input4_tile_row16(x, H, W, ti, out, plane)
    elif _avx512:
        y9k_input4_tile_row_avx512(x, H, W, ti, buf, out, tw, plane)
    else:
        y9k_input4_tile_row(x, H, W, ti, buf, out, tw, plane)


cdef void _input4_tile_row(const float* x, int H, int W, int ti, const float* BT, float* buf,
                           float* out, int tw, Py_ssize_t plane) noexcept nogil:
    cdef int padded = W4_OUT * tw + 2
    cdef const float* row[W4_ALPHA]
    cdef float* r_
    cdef float* a
    cdef const float* src
    cdef int r, y, p, i, k
    for r in range(W4_ALPHA):
        r_ = buf + r * padded
        row[r] = r_
        y = W4_OUT * ti - 1 + r
        if y < 0 or y >= H:
            for p in range(padded):
                r_[p] = 0
        else:
            src = x + <Py_ssize_t> y * W
            r_[0] = 0
            for p in range(W):
                r_[p + 1] = src[p]
            for p in range(W + 1, padded):
                r_[p] = 0
    a = buf + W4_ALPHA * padded
    for i in range(W4_ALPHA):
        # (Bᵀ d) at every column: Bᵀ's row i is column i of B
        _combine_rows(BT + W4_ALPHA * i, 1, 0, row, W4_ALPHA, a, padded)
        # (Bᵀ d) B: tile tj uses columns 4tj .. 4tj+5
        for k in range(W4_ALPHA):
            _combine_columns(BT + W4_ALPHA * k, 1, 0, a, W4_ALPHA,
                             out + (W4_ALPHA * i + k) * plane, tw)


cdef struct _Output4Job:
    const float* M
    const float* AT
    float* z
    const float* scale
    const float* bias
    Py_ssize_t M_filter, plane, z_image, z_filter
    long jobs
    int F, H, W, n0, r0, rows, tw, act, pool


cdef void _output4_member(void* p, int member, int members) noexcept nogil:
    # its share of the (image, filter) jobs; a job's tiles (all its tile rows) are contiguous
    # in M
    cdef _Output4Job* j = <_Output4Job*> p
    cdef long first, end, job
    cdef int img, f
    y9k_team_share(j.jobs, member, members, &first, &end)
    for job in range(first, end):
        img = j.n0 + <int> (job // j.F)
        f = <int> (job % j.F)
        _output4_tiles(j.M + f * j.M_filter + <Py_ssize_t> (img - j.n0) * j.rows * j.tw,
                       j.plane, j.AT, j.z + img * j.z_image + f * j.z_filter, j.H, j.W,
                       j.r0, j.rows * j.tw, j.tw, j.scale[f], j.bias[f], j.act, j.pool)


def winograd4_output(const float[:, :, :] M, float[:, :, :, ::1] z, int n0, int n1, int r0,
                     int r1, const float[:, ::1] AT, const float[::1] scale,
                     const float[::1] bias, int act, bint pool=False):
    """z[n, f, 4i:4i+4, 4j:4j+4] = act(scale[f] · (Aᵀ m A) + bias[f]) for the tiles of tile
    rows r0..r1 of images n0..n1 (laid out in M (36, F, cols) as winograd4_input lays out V),
    Aᵀ (4, 6), or None for the Aᵀ written into csrc/winograd4_transforms.h; edge tiles write
    only their inside part. With `pool`, z (half the even output size) gets the 2x2/2 maxpool
    of that instead (four windows a tile)."""
    if AT is not None:
        _check_matrix(AT, W4_OUT, W4_ALPHA, "winograd4_output: Aᵀ")
    cdef const float* coefficients = NULL if AT is None else &AT[0, 0]
    cdef Py_ssize_t image[4]
    image[0] = z.shape[0]
    image[1] = z.shape[1]
    image[2] = z.shape[2] * (2 if pool else 1)
    image[3] = z.shape[3] * (2 if pool else 1)
    cdef Py_ssize_t plane = _tile4_stack_plane(image, M.shape, M.strides, n0, n1, r0, r1,
                                               "winograd4_output")
    cdef int F = z.shape[1], H = image[2], W = image[3]
    cdef int tw = (W + 3) // 4, rows = r1 - r0, m = n1 - n0
    if scale.shape[0] != F or bias.shape[0] != F:
        raise ValueError("winograd4_output: shapes do not match")
    if m * F == 0 or rows <= 0:
        return
    cdef _Output4Job job
    job.M, job.z, job.AT, job.scale, job.bias = (&M[0, 0, 0], &z[0, 0, 0, 0], coefficients,
                                                  &scale[0], &bias[0])
    job.M_filter, job.plane = M.strides[1] // sizeof(float), plane
    job.z_image, job.z_filter = z.strides[0] // sizeof(float), z.strides[1] // sizeof(float)
    job.jobs, job.F, job.H, job.W, job.n0, job.r0, job.rows, job.tw = (m * F, F, H, W, n0, r0,
                                                                       rows, tw)
    job.act, job.pool = act, pool
    with nogil:
        y9k_team(_output4_member, &job)


cdef void _output4_tiles(const float* src, Py_ssize_t plane, const float* AT, float* z,
                         int H, int W, int r0, int count, int tw, float a, float b, int act,
                         bint pool) noexcept nogil:
    # count tiles from tile row r0 on, in blocks of W4_BLOCK across tile rows (narrow maps
    # have few tiles a row, and each step of a block has its fixed cost), each step a loop
    # over the block that the compiler vectorises: s = Aᵀ m (4x6 per tile), y = s A (4x4 per
    # tile) (by the Aᵀ in code when AT is NULL), the epilogue, then the values scattered into
    # the output rows
    cdef float s[W4_OUT * W4_ALPHA][W4_BLOCK]
    cdef float yv[W4_OUT * W4_OUT][W4_BLOCK]
    cdef const float* planes[W4_ALPHA]
    cdef const float* srow[W4_ALPHA]
    cdef float* q
    cdef int k0, nb, t, i, j, k, l, ti, tj, yrow, xcol, pw
    k0 = 0
    while k0 < count:
        nb = count - k0 if count - k0 < W4_BLOCK else W4_BLOCK
        if AT == NULL:
            if _avx512:
                y9k_output4_block_avx512(src + k0, plane, nb, &yv[0][0])
            else:
                y9k_output4_block(src + k0, plane, nb, &yv[0][0])
        else:
            for j in range(W4_ALPHA):
                for k in range(W4_ALPHA):
                    planes[k] = src + (W4_ALPHA * k + j) * plane + k0
                for i in range(W4_OUT):
                    # s[i][j] = Σ_k Aᵀ[i][k] m[k][j]
                    _combine_rows(AT + W4_ALPHA * i, 1, 0, planes, W4_ALPHA,
                                  &s[W4_ALPHA * i + j][0], nb)
            for i in range(W4_OUT):
                for j in range(W4_ALPHA):
                    srow[j] = &s[W4_ALPHA * i + j][0]
                for l in range(W4_OUT):
                    # y[i][l] = Σ_j s[i][j] Aᵀ[l][j]
                    _combine_rows(AT + W4_ALPHA * l, 1, 0, srow, W4_ALPHA,
                                  &yv[W4_OUT * i + l][0], nb)
        for k in range(W4_OUT * W4_OUT):
            _affine_activate(&yv[k][0], nb, a, b, act)
        pw = W // 2
        for t in range(nb):
            ti = r0 + (k0 + t) // tw
            tj = (k0 + t) % tw
            if pool:
                # even H and W: z is the pooled plane, each tile two rows of two windows,
                # read row by row as the maxpool kernel does; the last tile row or column
                # holds only one on sizes 2 mod 4
                for i in range(2):
                    yrow = 2 * ti + i
                    if 2 * yrow >= H:
                        break
                    q = z + <Py_ssize_t> yrow * pw
                    for l in range(2):
                        xcol = 2 * tj + l
                        if 2 * xcol < W:
                            q[xcol] = _max4(yv[8 * i + 2 * l][t], yv[8 * i + 2 * l + 1][t],
                                            yv[8 * i + 4 + 2 * l][t],
                                            yv[8 * i + 4 + 2 * l + 1][t])
            else:
                for i in range(W4_OUT):
                    yrow = W4_OUT * ti + i
                    if yrow >= H:
                        break
                    q = z + <Py_ssize_t> yrow * W + W4_OUT * tj
                    if W4_OUT * tj + W4_OUT <= W:
                        q[0] = yv[W4_OUT * i][t]
                        q[1] = yv[W4_OUT * i + 1][t]
                        q[2] = yv[W4_OUT * i + 2][t]
                        q[3] = yv[W4_OUT * i + 3][t]
                    else:
                        for l in range(W - W4_OUT * tj):
                            q[l] = yv[W4_OUT * i + l][t]
        k0 += W4_BLOCK


# -- backward ------------------------------------------------------------------------------------
# As winograd.pxi's: dM = A dY Aᵀ (6x6 per output-gradient tile, zero outside the map),
# dU[k] = dM[k] @ V[k]ᵀ (BLAS), dg = Gᵀ dU G (3x3 per filter and channel).

def winograd4_output_grad(const float[:, :, :, ::1] dz, int n0, int n1, int r0, int r1,
                          const float[:, ::1] AT, float[:, :, :] dM):
    """dM[k, f, col] = (A dY Aᵀ)[k // 6, k % 6] for the 4x4 tiles dY of dz (N, F, H, W) of
    tile rows r0..r1 of images n0..n1, in winograd4_input's column order; Aᵀ (4, 6), or None
    for the Aᵀ written into csrc/winograd4_transforms.h."""
    if AT is not None:
        _check_matrix(AT, W4_OUT, W4_ALPHA, "winograd4_output_grad: Aᵀ")
    # scratch: the tile row's four gradient rows zero-extended to whole tiles, and A dY
    _transform_tile4_rows(dz, n0, n1, r0, r1, AT, dM,
                          _output_grad4_tile_row if AT is not None
                          else _output_grad4_tile_row_fixed,
                          (W4_OUT + W4_ALPHA) * 4 * ((dz.shape[3] + 3) // 4),
                          "winograd4_output_grad")


cdef void _output_grad4_tile_row_fixed(const float* dz, int H, int W, int ti, const float* AT,
                                       float* buf, float* out, int tw,
                                       Py_ssize_t plane) noexcept nogil:
    if _avx512:
        y9k_output_grad4_tile_row_avx512(dz, H, W, ti, buf, out, tw, plane)
    else:
        y9k_output_grad4_tile_row(dz, H, W, ti, buf, out, tw, plane)


cdef void _output_grad4_tile_row(const float* dz, int H, int W, int ti, const float* AT,
                                 float* buf, float* out, int tw, Py_ssize_t plane) noexcept nogil:
    cdef int width = W4_OUT * tw
    cdef const float* row[W4_OUT]
    cdef float* r_
    cdef float* t
    cdef const float* src
    cdef int r, y, p, k, l
    for r in range(W4_OUT):
        r_ = buf + r * width
        row[r] = r_
        y = W4_OUT * ti + r
        if y >= H:
            for p in range(width):
                r_[p] = 0
        else:
            src = dz + <Py_ssize_t> y * W
            for p in range(W):
                r_[p] = src[p]
            for p in range(W, width):
                r_[p] = 0
    t = buf + W4_OUT * width
    for k in range(W4_ALPHA):
        # (A dY)[k] at every column: A's row k is column k of Aᵀ
        _combine_rows(AT, W4_ALPHA, k, row, W4_OUT, t, width)
        # (A dY) Aᵀ: column l of the tile is Σ_j (A dY)[k][j] Aᵀ[j][l]
        for l in range(W4_ALPHA):
            _combine_columns(AT, W4_ALPHA, l, t, W4_OUT, out + (W4_ALPHA * k + l) * plane, tw)


def winograd4_filter_grad(const float[:, :, :] dU, const float[:, ::1] G,
                          float[:, :, :, ::1] dw, bint accumulate=True):
    """dw[f, c] += Gᵀ dU[:, f, c] G (dU (36, F, C) as 6x6 per filter and channel, G (6, 3));
    without accumulate dw[f, c] = that."""
    cdef int F = dw.shape[0], C = dw.shape[1]
    cdef int f
    _check_matrix(G, W4_ALPHA, 3, "winograd4_filter_grad: G")
    if (dw.shape[2] != 3 or dw.shape[3] != 3 or dU.shape[0] != W4_TILES or dU.shape[1] != F
            or dU.shape[2] != C):
        raise ValueError("winograd4_filter_grad: shapes do not match")
    cdef Py_ssize_t plane = _plane_stride(dU.shape, dU.strides, "winograd4_filter_grad: dU[k]")
    with nogil:
        for f in prange(F, schedule="static"):
            _filter_grad4_row(&dU[0, f, 0], plane, &G[0, 0], &dw[f, 0, 0, 0], C,
                              accumulate)


cdef void _filter_grad4_row(const float* du, Py_ssize_t plane, const float* G, float* dw,
                            int C, bint accumulate) noexcept nogil:
    # blocks of W4_BLOCK channels (as _output4_tile_row): s = Gᵀ dU (3x6), dg = s G (3x3),
    # then the 9 values per channel added into dw's interleaved layout
    cdef float s[3 * W4_ALPHA][W4_BLOCK]
    cdef float dg[9][W4_BLOCK]
    cdef const float* planes[W4_ALPHA]
    cdef const float* srow[W4_ALPHA]
    cdef float* o
    cdef int c0, nb, t, i, j, k
    c0 = 0
    while c0 < C:
        nb = C - c0 if C - c0 < W4_BLOCK else W4_BLOCK
        for j in range(W4_ALPHA):
            for k in range(W4_ALPHA):
                planes[k] = du + (W4_ALPHA * k + j) * plane + c0
            for i in range(3):
                # s[i][j] = Σ_k G[k][i] dU[k][j]
                _combine_rows(G, 3, i, planes, W4_ALPHA, &s[W4_ALPHA * i + j][0], nb)
        for i in range(3):
            for j in range(W4_ALPHA):
                srow[j] = &s[W4_ALPHA * i + j][0]
            for k in range(3):
                # dg[i][k] = Σ_j s[i][j] G[j][k]
                _combine_rows(G, 3, k, srow, W4_ALPHA, &dg[3 * i + k][0], nb)
        o = dw + 9 * c0
        if accumulate:
            for t in range(nb):
                for k in range(9):
                    o[9 * t + k] += dg[k][t]
        else:
            for t in range(nb):
                for k in range(9):
                    o[9 * t + k] = dg[k][t]
        c0 += W4_BLOCK
