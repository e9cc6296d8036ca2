# Winograd F(2x2, 3x3): the transforms of filters, input tiles, output tiles and their
# gradients, around the 16 products (kernels/winograd.py).
# (a section of the compiled core: ../_kernels.pyx includes it)

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


cdef struct _TileRowsJob:
    const float* a
    float* stack
    float* buf
    Py_ssize_t stack_channel, buf_floats, plane, a_image, a_channel
    long jobs
    int C, H, W, n0, r0, r1, tw
    tile_row_transform transform


cdef void _tile_rows_member(void* p, int member, int members) noexcept nogil:
    # its share of the (image, channel) jobs, each all its tile rows, with its own scratch
    cdef _TileRowsJob* j = <_TileRowsJob*> p
    cdef long first, end, job
    cdef int img, c, ti
    cdef Py_ssize_t rows = j.r1 - j.r0
    cdef float* buf = j.buf + member * j.buf_floats
    y9k_team_share(j.jobs, member, members, &first, &end)
    for job in range(first, end):
        img = j.n0 + <int> (job // j.C)
        c = <int> (job % j.C)
        for ti in range(j.r0, j.r1):
            j.transform(j.a + img * j.a_image + c * j.a_channel, j.H, j.W, ti, buf,
                        j.stack + c * j.stack_channel
                        + ((img - j.n0) * rows + (ti - j.r0)) * j.tw, j.tw, j.plane)


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
    buf = np.zeros((y9k_team_members(), buf_rows * buf_width), np.float32)
    cdef float[:, ::1] rowbuf = buf
    if m * C == 0 or rows <= 0:
        return 0
    cdef _TileRowsJob job
    job.a, job.stack, job.buf = &a[0, 0, 0, 0], &stack[0, 0, 0], &rowbuf[0, 0]
    job.a_image, job.a_channel = a.strides[0] // sizeof(float), a.strides[1] // sizeof(float)
    job.stack_channel = stack.strides[1] // sizeof(float)
    job.buf_floats, job.C, job.H, job.W = buf_rows * buf_width, C, H, W
    job.n0, job.r0, job.r1, job.tw, job.plane = n0, r0, r1, tw, plane
    job.transform, job.jobs = transform, m * C
    with nogil:
        y9k_team(_tile_rows_member, &job)
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
# 16-lane rows instead, about a fifth of the time (see BENCHMARKS.md#winograd-input-transform).
# Only additions, so the same bits as the loops.
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


cdef struct _OutputJob:
    const float* M
    float* z
    const float* scale
    const float* bias
    Py_ssize_t M_filter, plane, z_image, z_filter
    long jobs
    int F, H, W, n0, r0, r1, tw, act, pool


cdef void _output_member(void* p, int member, int members) noexcept nogil:
    # its share of the (image, filter) jobs, each all its tile rows
    cdef _OutputJob* j = <_OutputJob*> p
    cdef long first, end, job
    cdef int img, f, ti
    cdef Py_ssize_t rows = j.r1 - j.r0
    y9k_team_share(j.jobs, member, members, &first, &end)
    for job in range(first, end):
        img = j.n0 + <int> (job // j.F)
        f = <int> (job % j.F)
        for ti in range(j.r0, j.r1):
            _output_tile_row(j.M + f * j.M_filter + ((img - j.n0) * rows + (ti - j.r0)) * j.tw,
                             j.plane, j.z + img * j.z_image + f * j.z_filter, j.H, j.W,
                             ti, j.tw, j.scale[f], j.bias[f], j.act, j.pool)


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
    if m * F == 0 or rows <= 0:
        return
    cdef _OutputJob job
    job.M, job.z, job.scale, job.bias = &M[0, 0, 0], &z[0, 0, 0, 0], &scale[0], &bias[0]
    job.M_filter, job.plane = M.strides[1] // sizeof(float), plane
    job.z_image, job.z_filter = z.strides[0] // sizeof(float), z.strides[1] // sizeof(float)
    job.jobs, job.F, job.H, job.W, job.n0, job.r0, job.r1, job.tw = m * F, F, H, W, n0, r0, r1, tw
    job.act, job.pool = act, pool
    with nogil:
        y9k_team(_output_member, &job)


cdef enum:
    OUT_BLOCK = 64


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
    # (while, not range(0, n, BLOCK): Cython makes a C loop of range only with a literal step)
    j0 = 0
    while j0 < tw:
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
        else:
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
        j0 += OUT_BLOCK


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
    if W <= 14 and _avx512:
        # narrow maps as _input_tile_row's: 13x13's 7 tiles a row went through these loops at
        # 2.6x the input transform's time (1024 channels, batch 8: 4.5 ms against 1.7)
        y9k_output_grad_tile_row16(dz, H, W, ti, out, plane)
        return
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


def winograd_filter_grad(const float[:, :, :] dU, float[:, :, :, ::1] dw,
                         bint accumulate=True):
    """dw[f, c] += Gᵀ dU[:, f, c] G (dU (16, F, C) as 4x4 per filter and channel); without
    accumulate dw[f, c] = that (a gradient known to be zero is written, not read)."""
    cdef int F = dw.shape[0], C = dw.shape[1]
    cdef int f
    if (dw.shape[2] != 3 or dw.shape[3] != 3 or dU.shape[0] != 16 or dU.shape[1] != F
            or dU.shape[2] != C):
        raise ValueError("winograd_filter_grad: shapes do not match")
    cdef Py_ssize_t plane = _plane_stride(dU.shape, dU.strides, "winograd_filter_grad: dU[k]")
    with nogil:
        for f in prange(F, schedule="static"):
            _filter_grad_row(&dU[0, f, 0], plane, &dw[f, 0, 0, 0], C, accumulate)


cdef enum:
    FILTER_BLOCK = 64


cdef void _filter_grad_row(const float* du, Py_ssize_t plane, float* dw, int C,
                           bint accumulate) noexcept nogil:
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
    c0 = 0
    while c0 < C:
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
        if accumulate:
            for t in range(nb):
                for k in range(9):
                    o[9 * t + k] += dg[k][t]
        else:
            for t in range(nb):
                for k in range(9):
                    o[9 * t + k] = dg[k][t]
        c0 += FILTER_BLOCK
