# Winograd for few tiles: the filters transformed inside the products, with AVX-512
# (its C: winograd_x86.h).
# (a section of the compiled core: ../_kernels.pyx includes it)

# At 13x13 and batch 1 each of the 16 products is (1024 x 1024) @ (1024 x 49): BLAS packs the
# 4 MB filter plane for every call (see BENCHMARKS.md#winograd-products-from-weight-blocks),
# and the transformed filters U are 16/9 of the weights (64 MB to read at 1024x1024, or to
# cache). Here each job is two blocks of 32 output rows (filters for the forward, channels for
# the input gradient; one for an odd last block): it reads the blocks' 3x3 weights (regrouped
# once so that the 32 rows' values of one tap are contiguous: winograd_weight_blocks; or, for
# the forward, regrouped chunk by chunk from the layer's own weights in the thread's cache:
# winograd_products_in_place, which layers take: nothing to make or keep),
# transforms a chunk of 64 reduction indices into all 16 planes in the thread's cache, and
# multiplies each plane by V, 64 rows (four 16-float vectors) against up to 6 tile columns (24
# sums), or 32 rows against up to 14; chunks add up in order, so the result does not depend on
# the threads. The forward on 11x11-20x20 maps runs F(4x4, 3x3) the same way: 36 planes, the
# filters transformed with G's integer part and each plane's sums scaled once (winograd_x86.h,
# kernels/winograd.py f4_from_weights_applies).

# rows per weight block (the products' output rows: filters, or channels for the input
# gradient), for kernels/winograd.py's WeightBlocks
WINOGRAD_BLOCK_ROWS = Y9K_BLOCK_ROWS

# blocks per job: two (64 rows, passes of up to 6 columns) read V half as often as one (32
# rows, passes of up to 14): 1024 -> 1024, one thread, CPU time, 0.96x at 49 columns and
# 0.92x at 98, in place and from blocks alike, the same bits (see
# BENCHMARKS.md#winograd-products-from-weight-blocks)
cdef enum:
    JOB_BLOCKS = 2


def winograd_products_available():
    """Whether winograd_products_from_weights can run here (x86-64 with AVX-512, the portable
    kernels not asked for)."""
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
    cdef int nb = (rows + Y9K_BLOCK_ROWS - 1) // Y9K_BLOCK_ROWS
    cdef int job, b, r, t, o
    cdef const float* src
    if (w.shape[2] != 3 or w.shape[3] != 3 or blocks.shape[0] != nb or blocks.shape[1] != R
            or blocks.shape[2] != 9 or blocks.shape[3] != Y9K_BLOCK_ROWS):
        raise ValueError("winograd_weight_blocks: shapes do not match")
    with nogil:
        for job in prange(nb * R, schedule="static"):
            b = job // R
            r = job % R
            src = &w[0, 0, 0, 0] + r * r_step
            for o in range(Y9K_BLOCK_ROWS):
                if b * Y9K_BLOCK_ROWS + o < rows:
                    for t in range(9):
                        blocks[b, r, t, o] = src[(b * Y9K_BLOCK_ROWS + o) * row_step + t]
                else:
                    for t in range(9):
                        blocks[b, r, t, o] = 0


cdef struct _BlocksJob:
    const float* w
    long ldw
    int nb, rows, R, N, planes
    const int* dest
    const float* v
    Py_ssize_t v_plane, v_ld, m_plane, m_ld, scratch_ld
    float* m
    float* scratch
    long next


cdef void _blocks_member(void* p, int member, int members) noexcept nogil:
    # dynamic, a job of JOB_BLOCKS blocks at a time (the last a single block when the count is
    # odd), with the member's own scratch row
    cdef _BlocksJob* j = <_BlocksJob*> p
    cdef long job, b
    cdef long jobs = (j.nb + JOB_BLOCKS - 1) // JOB_BLOCKS
    cdef const float* w0
    while True:
        job = y9k_team_take(&j.next, 1)
        if job >= jobs:
            return
        b = job * JOB_BLOCKS
        # weight blocks (ldw 0): one (R, 9, 32) block each; the weights (ldw): 32 filters each
        w0 = j.w + (b * Y9K_BLOCK_ROWS * j.ldw if j.ldw else b * j.R * 9 * Y9K_BLOCK_ROWS)
        y9k_winograd_rows(w0, j.ldw, <int> min(JOB_BLOCKS, j.nb - b),
                          <int> min(JOB_BLOCKS * Y9K_BLOCK_ROWS, j.rows - b * Y9K_BLOCK_ROWS),
                          j.R, j.planes, j.dest, j.v, j.v_plane, j.v_ld, j.N,
                          j.m + b * Y9K_BLOCK_ROWS * j.m_ld, j.m_plane, j.m_ld,
                          j.scratch + member * j.scratch_ld)


cdef void _products_by_blocks(const float* w, long ldw, int nb, int rows, int R,
                              int planes, const int* dest, const float* v, Py_ssize_t v_plane,
                              Py_ssize_t v_ld, int N, float* m, Py_ssize_t m_plane,
                              Py_ssize_t m_ld, float* scratch, Py_ssize_t scratch_ld):
    """y9k_winograd_rows over the blocks of 32 rows, on the team"""
    cdef _BlocksJob job
    job.w, job.ldw, job.nb, job.rows, job.R, job.N, job.planes = w, ldw, nb, rows, R, N, planes
    job.dest, job.v, job.v_plane, job.v_ld = dest, v, v_plane, v_ld
    job.m, job.m_plane, job.m_ld, job.scratch, job.scratch_ld = m, m_plane, m_ld, scratch, scratch_ld
    job.next = 0
    with nogil:
        y9k_team(_blocks_member, &job)


cdef int _checked_planes(const int[::1] dest, const float[:, :, :] v, const float[:, :, :] m,
                         const float[:, ::1] scratch, str name) except -1:
    """The plane count (16: F(2x2, 3x3), 36: F(4x4, 3x3)) of a products call, after the
    checks both functions share: V and M with contiguous rows, `dest` a permutation of the
    planes (the identity for 36: F(4x4, 3x3) runs forward only), the scratch rows."""
    cdef int planes = v.shape[0], k
    if ((planes != 16 and planes != 36) or m.shape[0] != planes or dest.shape[0] != planes
            or v.strides[2] != 4 or m.strides[2] != 4
            or scratch.shape[1] < winograd_scratch_floats(v.shape[2], planes)
            or scratch.strides[0] % 64 or (<size_t> &scratch[0, 0]) % 64
            or scratch.shape[0] < y9k_max_threads()
            or not _avx512):
        raise ValueError(f"{name}: shapes do not match")
    for k in range(planes):
        if not 0 <= dest[k] < planes or (planes == 36 and dest[k] != k):
            raise ValueError(f"{name}: planes out of range")
    return planes


def winograd_products_from_weights(const float[:, :, :, ::1] blocks, int rows,
                                   const int[::1] dest, const float[:, :, :] v,
                                   float[:, :, :] m, float[:, ::1] scratch):
    """m[k] = U_k @ v[k] for the 16 planes of F(2x2, 3x3) or the 36 of F(4x4, 3x3) (v's
    first axis), U_k the transformed filters of the weight blocks (winograd_weight_blocks:
    (⌈rows/32⌉, R, 9, 32)), plane k of the transform stored as plane dest[k] (the input
    gradient's flip; the identity for 36); v (planes, R, N), m (planes, rows, N) with
    contiguous rows. scratch: a 64-byte aligned row of winograd_scratch_floats(N, planes) per
    OpenMP thread."""
    cdef int R = blocks.shape[1], N = v.shape[2], nb = blocks.shape[0]
    cdef Py_ssize_t v_plane = v.strides[0] // 4, v_ld = v.strides[1] // 4
    cdef Py_ssize_t m_plane = m.strides[0] // 4, m_ld = m.strides[1] // 4
    cdef int planes = _checked_planes(dest, v, m, scratch, "winograd_products_from_weights")
    if (v.shape[1] != R or m.shape[1] != rows or m.shape[2] != N or nb * Y9K_BLOCK_ROWS < rows
            or blocks.shape[2] != 9 or blocks.shape[3] != Y9K_BLOCK_ROWS):
        raise ValueError("winograd_products_from_weights: shapes do not match")
    _products_by_blocks(&blocks[0, 0, 0, 0], 0, nb, rows, R, planes, &dest[0], &v[0, 0, 0],
                        v_plane, v_ld, N, &m[0, 0, 0], m_plane, m_ld, &scratch[0, 0],
                        scratch.strides[0] // 4)


def winograd_products_in_place(const float[:, :, :, ::1] w, const int[::1] dest,
                               const float[:, :, :] v, float[:, :, :] m,
                               float[:, ::1] scratch):
    """winograd_products_from_weights from the convolution's own weights w (F, C, 3, 3)
    instead of their blocks: each job regroups its 64 filters' taps chunk by chunk in the
    thread's cache (16 x 16 transposes), the rest as from blocks, bit for bit. Nothing to make
    or keep beside the weights."""
    cdef int F = w.shape[0], R = w.shape[1], N = v.shape[2]
    cdef int nb = (F + Y9K_BLOCK_ROWS - 1) // Y9K_BLOCK_ROWS
    cdef Py_ssize_t v_plane = v.strides[0] // 4, v_ld = v.strides[1] // 4
    cdef Py_ssize_t m_plane = m.strides[0] // 4, m_ld = m.strides[1] // 4
    cdef long ldw = <long> R * 9
    cdef int planes = _checked_planes(dest, v, m, scratch, "winograd_products_in_place")
    if (w.shape[2] != 3 or w.shape[3] != 3 or v.shape[1] != R or m.shape[1] != F
            or m.shape[2] != N):
        raise ValueError("winograd_products_in_place: shapes do not match")
    _products_by_blocks(&w[0, 0, 0, 0], ldw, nb, F, R, planes, &dest[0], &v[0, 0, 0], v_plane,
                        v_ld, N, &m[0, 0, 0], m_plane, m_ld, &scratch[0, 0],
                        scratch.strides[0] // 4)


def winograd_scratch_floats(int columns, int planes=16):
    """Floats of scratch per thread for winograd_products_from_weights and
    winograd_products_in_place of that many columns (a multiple of 16: the rows must stay
    64-byte aligned) and planes (16 or 36)."""
    return planes * ((Y9K_CHUNK + columns) * JOB_BLOCKS * Y9K_BLOCK_ROWS + 16) + Y9K_REGROUP_FLOATS


# The products of transformed filters U (planes of F x R) with V, for F(4x4, 3x3) on maps of
# few tiles (26x26: 49 columns an image), where BLAS packs each plane of U for every call
# and ran (512 x 256) @ (256 x 49) at about 61% of the FMA peak (see
# BENCHMARKS.md#winograd-planes-kernel). Jobs are (plane, 64 rows): y9k_plane_rows.
cdef enum:
    PLANE_JOB_ROWS = 64


cdef extern from "math.h":
    float fmaf(float, float, float) noexcept nogil


def winograd_planes_scratch_floats(int columns):
    """Floats of scratch per thread for winograd_products_planes of that many columns."""
    return Y9K_PLANE_SCRATCH(columns)


def winograd_products_planes(const float[:, :, :] u, const float[:, :, :] v,
                             float[:, :, :] m, float[:, ::1] scratch, bint portable=False):
    """m[k] = u[k] @ v[k] for every plane k: u (P, F, R), v (P, R, N), m (P, F, N), each
    with contiguous rows. scratch: a 64-byte aligned row of winograd_planes_scratch_floats(N)
    per OpenMP thread (unused by the portable twin, which `portable` or a CPU without
    AVX-512 takes: the same sums, bit for bit)."""
    cdef int P = u.shape[0], F = u.shape[1], R = u.shape[2], N = v.shape[2]
    cdef Py_ssize_t u_plane = u.strides[0] // 4, ldu = u.strides[1] // 4
    cdef Py_ssize_t v_plane = v.strides[0] // 4, ldv = v.strides[1] // 4
    cdef Py_ssize_t m_plane = m.strides[0] // 4, ldm = m.strides[1] // 4
    cdef int nb = (F + PLANE_JOB_ROWS - 1) // PLANE_JOB_ROWS
    cdef bint fast = _avx512 and not portable
    if (v.shape[0] != P or m.shape[0] != P or v.shape[1] != R or m.shape[1] != F
            or m.shape[2] != N or u.strides[2] != 4 or v.strides[2] != 4 or m.strides[2] != 4
            or (fast and (scratch.shape[1] < Y9K_PLANE_SCRATCH(N) or scratch.strides[0] % 64
                          or (<size_t> &scratch[0, 0]) % 64
                          or scratch.shape[0] < y9k_max_threads()))):
        raise ValueError("winograd_products_planes: shapes do not match")
    if P == 0 or F == 0 or N == 0:
        return
    cdef _PlanesJob job
    job.u, job.v, job.m = &u[0, 0, 0], &v[0, 0, 0], &m[0, 0, 0]
    job.u_plane, job.ldu, job.v_plane, job.ldv = u_plane, ldu, v_plane, ldv
    job.m_plane, job.ldm = m_plane, ldm
    job.scratch = &scratch[0, 0] if fast else NULL
    job.scratch_ld = scratch.strides[0] // 4 if fast else 0
    job.P, job.F, job.R, job.N, job.nb, job.fast = P, F, R, N, nb, fast
    with nogil:
        y9k_team(_planes_member, &job)


cdef struct _PlanesJob:
    const float* u
    const float* v
    float* m
    float* scratch
    Py_ssize_t u_plane, ldu, v_plane, ldv, m_plane, ldm, scratch_ld
    int P, F, R, N, nb, fast


cdef void _planes_member(void* p, int member, int members) noexcept nogil:
    # static: a member's jobs (plane, 64 rows) follow each other, so each prefetches the next
    # one's rows
    cdef _PlanesJob* j = <_PlanesJob*> p
    cdef long first, end, job, next_job
    cdef int k, f0, next_f0
    y9k_team_share(<long> j.P * j.nb, member, members, &first, &end)
    for job in range(first, end):
        k = <int> (job // j.nb)
        f0 = <int> (job % j.nb) * PLANE_JOB_ROWS
        if j.fast:
            next_job = min(job + 1, <long> j.P * j.nb - 1)
            next_f0 = <int> (next_job % j.nb) * PLANE_JOB_ROWS
            y9k_plane_rows(j.u + k * j.u_plane + f0 * j.ldu, j.ldu, min(PLANE_JOB_ROWS, j.F - f0),
                           j.R, j.v + k * j.v_plane, j.ldv, j.N,
                           j.m + k * j.m_plane + f0 * j.ldm, j.ldm,
                           j.scratch + member * j.scratch_ld,
                           j.u + (next_job // j.nb) * j.u_plane + next_f0 * j.ldu,
                           min(PLANE_JOB_ROWS, j.F - next_f0) if next_job != job else 0)
        else:
            _plane_rows_portable(j.u + k * j.u_plane + f0 * j.ldu, j.ldu,
                                 min(PLANE_JOB_ROWS, j.F - f0), j.R, j.v + k * j.v_plane,
                                 j.ldv, j.N, j.m + k * j.m_plane + f0 * j.ldm, j.ldm)


cdef void _plane_rows_portable(const float* u, Py_ssize_t ldu, int rows, int R,
                               const float* v, Py_ssize_t ldv, int N, float* m,
                               Py_ssize_t ldm) noexcept nogil:
    """y9k_plane_rows's sums: each of m's row's N sums adds its R terms in the order of r,
    one fused multiply-add each, from zero (the loop over the columns inside, so that the
    compiler's vectorising, even with reassociation allowed, keeps each sum's order)."""
    cdef int o, r, j
    cdef float a
    cdef float* out
    cdef const float* vr
    for o in range(rows):
        out = m + o * ldm
        for j in range(N):
            out[j] = 0
        for r in range(R):
            a = u[o * ldu + r]
            vr = v + r * ldv
            for j in range(N):
                out[j] = fmaf(a, vr[j], out[j])
