# One matrix product in pieces, each with single-threaded BLAS, on the OpenMP threads.
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


def sgemm_pieces(size_t sgemm_address, const float[:, :] a, const float[:, :] b, float[:, :] c,
                 int pieces, bint by_rows):
    """c = a @ b through the ILP64 cblas_sgemm at sgemm_address, in `pieces` bands of rows
    (by_rows) or columns of c shared out between the OpenMP threads (BLAS must be at one
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
    with nogil:
        for piece in prange(pieces, schedule="dynamic"):
            lo = <int> (<long long> span * piece // pieces)
            hi = <int> (<long long> span * (piece + 1) // pieces)
            if by_rows:
                sgemm(Y9K_CBLAS_ROW_MAJOR, ta, tb, hi - lo, n, k, 1.0, &a[lo, 0], lda, &b[0, 0],
                      ldb, 0.0, &c[lo, 0], ldc)
            else:
                sgemm(Y9K_CBLAS_ROW_MAJOR, ta, tb, m, hi - lo, k, 1.0, &a[0, 0], lda, &b[0, lo],
                      ldb, 0.0, &c[0, lo], ldc)
    return True
