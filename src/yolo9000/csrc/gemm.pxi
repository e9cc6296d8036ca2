# One matrix product in pieces, each with single-threaded BLAS, on the team's threads.
# (a section of the compiled core: ../_kernels.pyx includes it)

cdef inline int _blas_layout(Py_ssize_t* shape, Py_ssize_t* strides, Py_ssize_t* ld) noexcept nogil:
    """Y9K_CBLAS_NO_TRANS with ld the row stride for a row-major 2-D view, Y9K_CBLAS_TRANS
    with ld the column stride for a transposed one (floats); 0 for any other strides."""
    if (strides[1] == sizeof(float) and strides[0] % sizeof(float) == 0
            and strides[0] // sizeof(float) >= shape[1]):
        ld[0] = strides[0] // sizeof(float)
        return Y9K_CBLAS_NO_TRANS
    if (strides[0] == sizeof(float) and strides[1] % sizeof(float) == 0
            and strides[1] // sizeof(float) >= shape[0]):
        ld[0] = strides[1] // sizeof(float)
        return Y9K_CBLAS_TRANS
    return 0


cdef inline Py_ssize_t _row_step(int trans, Py_ssize_t ld) noexcept nogil:
    """floats from one row of a 2-D view to the next: ld row-major, 1 transposed"""
    return ld if trans == Y9K_CBLAS_NO_TRANS else 1


cdef inline Py_ssize_t _column_step(int trans, Py_ssize_t ld) noexcept nogil:
    """floats from one column of a 2-D view to the next: 1 row-major, ld transposed"""
    return 1 if trans == Y9K_CBLAS_NO_TRANS else ld


cdef struct _SgemmPiecesJob:
    y9k_sgemm_ilp64 sgemm
    int ta, tb, m, n, k, pieces, span, by_rows
    const float* a
    const float* b
    float* c
    Py_ssize_t lda, ldb, ldc
    long next


cdef void _sgemm_pieces_member(void* p, int member, int members) noexcept nogil:
    # dynamic, one piece at a time, on the team (csrc/team.c): its idle threads stay awake
    # between the layers of a forward
    cdef _SgemmPiecesJob* j = <_SgemmPiecesJob*> p
    cdef long piece
    cdef int lo, hi
    while True:
        piece = y9k_team_take(&j.next, 1)
        if piece >= j.pieces:
            return
        lo = <int> (<long long> j.span * piece // j.pieces)
        hi = <int> (<long long> j.span * (piece + 1) // j.pieces)
        if j.by_rows:
            j.sgemm(Y9K_CBLAS_ROW_MAJOR, j.ta, j.tb, hi - lo, j.n, j.k, 1.0,
                    j.a + lo * _row_step(j.ta, j.lda), j.lda, j.b, j.ldb, 0.0, j.c + lo * j.ldc,
                    j.ldc)
        else:
            j.sgemm(Y9K_CBLAS_ROW_MAJOR, j.ta, j.tb, j.m, hi - lo, j.k, 1.0, j.a, j.lda,
                    j.b + lo * _column_step(j.tb, j.ldb), j.ldb, 0.0, j.c + lo, j.ldc)


def sgemm_pieces(size_t sgemm_address, const float[:, :] a, const float[:, :] b, float[:, :] c,
                 int pieces, bint by_rows):
    """c = a @ b through the ILP64 cblas_sgemm at sgemm_address, in `pieces` bands of rows
    (by_rows) or columns of c shared out between the team's threads (BLAS must be at one
    thread). a and b row-major or transposed views, c row-major. False, writing nothing, for
    other strides or an empty product."""
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    cdef Py_ssize_t lda = 0, ldb = 0, ldc = 0
    cdef int ta, tb
    cdef int piece, lo, hi, span = m if by_rows else n
    cdef y9k_sgemm_ilp64 sgemm = <y9k_sgemm_ilp64> sgemm_address
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
    cdef _SgemmPiecesJob job
    job.sgemm = sgemm
    job.ta, job.tb, job.m, job.n, job.k = ta, tb, m, n, k
    job.a, job.b, job.c = &a[0, 0], &b[0, 0], &c[0, 0]
    job.lda, job.ldb, job.ldc = lda, ldb, ldc
    job.pieces, job.span, job.by_rows, job.next = pieces, span, by_rows, 0
    with nogil:
        y9k_team(_sgemm_pieces_member, &job)
    return True
