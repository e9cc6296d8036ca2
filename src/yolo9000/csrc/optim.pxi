# The optimisers' updates: one pass over every parameter array of a step, in one parallel
# region. OpenMP's idle threads sleep at once (OMP_WAIT_POLICY=PASSIVE, see __init__.py), and
# waking one took ~90 us here: a region per array cost the shapes model's Adam step (29
# arrays, 1.4M values) 3.2 ms where its arithmetic takes 0.5 ms. So the arrays are cut into
# chunks of up to UPDATE_CHUNK values, and the chunks of all of them share one region (each
# value's arithmetic is the same whichever chunk or thread it falls in).
#
# Each update also returns, per array, what the bad-step guard (training/guard.py) judges a
# step by, summed while the values pass (in float32, a chunk's sums then added in float64):
# the squared change of the weights, their squared size before it, the squares of the new
# optimiser state and of the gradient. Finite sums mean every value is finite; a sum that is
# not (a value that is not, or squares past float32's range) sends the guard to its exact
# passes over the arrays. Its own passes over 17 MB of weights and state each step (4 ms of
# the shapes demo's step, single-threaded beside a replica) are not needed otherwise; in
# float64 the sums had doubled the SGD step on yolov2-tiny-voc (10.9 -> 19.8 ms).
# (a section of the compiled core: ../_kernels.pyx includes it)

UPDATE_CHUNK = 32768


cdef inline void _sgd_span(float *w, const float *grad, float *velocity, Py_ssize_t a,
                           Py_ssize_t b, float step, float decay, float momentum,
                           double *sums) noexcept nogil:
    cdef Py_ssize_t i
    cdef float v, old, new, d
    cdef float change = 0, size = 0, state = 0, gradient = 0
    for i in range(a, b):
        old = w[i]
        v = velocity[i] - grad[i]
        v = v - decay * old
        new = old + step * v
        w[i] = new
        velocity[i] = momentum * v
        d = new - old
        change += d * d
        size += old * old
        state += velocity[i] * velocity[i]
        gradient += grad[i] * grad[i]
    sums[0] = change
    sums[1] = size
    sums[2] = state
    sums[3] = gradient


cdef inline void _adam_span(float *w, const float *grad, float *first, float *second,
                            Py_ssize_t a, Py_ssize_t b, float inv_batch, float beta1,
                            float beta2, float step, float eps,
                            float decay_step, double *sums) noexcept nogil:
    cdef Py_ssize_t i
    cdef float g, m, v, p, old, new, d
    cdef float c1 = 1 - beta1, c2 = 1 - beta2
    cdef float change = 0, size = 0, state = 0, gradient = 0
    for i in range(a, b):
        old = w[i]
        g = grad[i] * inv_batch
        m = beta1 * first[i] + c1 * g
        v = beta2 * second[i] + c2 * (g * g)
        first[i] = m
        second[i] = v
        p = old - decay_step * old
        new = p - step * m / (sqrtf(v) + eps)
        w[i] = new
        d = new - old
        change += d * d
        size += old * old
        state += m * m + v * v
        gradient += grad[i] * grad[i]
    sums[0] = change
    sums[1] = size
    sums[2] = state
    sums[3] = gradient


def _update_chunks(list arrays, list others, str name):
    """(array index, start, end) of each chunk of the 1-D float32 arrays, checked against the
    arrays updated beside them (the same sizes)."""
    sizes = [a.shape[0] for a in arrays]
    for group in others:
        if len(group) != len(arrays) or any(o.shape[0] != s for o, s in zip(group, sizes)):
            raise ValueError(f"{name}: arrays differ in size")
    index, start, end = [], [], []
    for j, n in enumerate(sizes):
        for a in range(0, n, UPDATE_CHUNK):
            index.append(j)
            start.append(a)
            end.append(min(n, a + UPDATE_CHUNK))
    return (np.array(index, np.intp), np.array(start, np.intp), np.array(end, np.intp))


UPDATE_SUMS = ("change", "size", "state", "gradient")


cdef int _region_threads(int threads, Py_ssize_t chunks) noexcept:
    """The threads of a region of `chunks` chunks: `threads`, or OpenMP's count where 0 (the
    training loop asks for all its threads while its replicas have set one for the kernels)."""
    if chunks <= 1:
        return 1
    return threads if threads > 0 else y9k_max_threads()


def _sums_by_array(double[:, ::1] chunk_sums, Py_ssize_t[::1] index, Py_ssize_t arrays):
    """The chunks' sums added up per array, in chunk order (the same bits on any threads)."""
    out = np.zeros((arrays, 4), np.float64)
    cdef double[:, ::1] o = out
    cdef Py_ssize_t c, k
    for c in range(chunk_sums.shape[0]):
        for k in range(4):
            o[index[c], k] += chunk_sums[c, k]
    return out


cdef float **_pointer_table(list groups) except NULL:
    """The first values of the 1-D float32 arrays of `groups` (lists of one length n), group
    after group in one malloc'd table: table[g * n + j] is groups[g][j]'s (NULL if empty).
    The caller frees it."""
    cdef Py_ssize_t n = len(groups[0]), g, j
    cdef float[::1] view
    cdef float **table = <float **> malloc(len(groups) * max(n, 1) * sizeof(float *))
    if table == NULL:
        raise MemoryError()
    try:
        for g, arrays in enumerate(groups):
            for j, a in enumerate(arrays):
                view = a
                table[g * n + j] = &view[0] if view.shape[0] else NULL
    except BaseException:
        free(table)
        raise
    return table


def sgd_update(list w, list grad, list velocity, float step, const float[::1] decay,
               float momentum, int threads=0):
    """darknet's SGD update of each array j of w (1-D float32), fused: v −= grad + decay[j]·w;
    w += step·v; v *= momentum. Returns (arrays, 4) float64: per array the sums UPDATE_SUMS
    names (Σ(w_new − w_old)², Σw_old², Σv_new², Σgrad², each chunk's in float32)."""
    if decay.shape[0] != len(w):
        raise ValueError("sgd_update: one decay per array")
    index, start, end = _update_chunks(w, [grad, velocity], "sgd_update")
    cdef Py_ssize_t[::1] ci = index, cs = start, ce = end
    cdef Py_ssize_t c, j, chunks = ci.shape[0], n = len(w)
    threads = _region_threads(threads, chunks)
    chunk_sums = np.zeros((max(chunks, 1), 4), np.float64)
    cdef double[:, ::1] sums = chunk_sums
    cdef float **pw = _pointer_table([w, grad, velocity])
    cdef float **pg = pw + n
    cdef float **pv = pw + 2 * n
    try:
        with nogil:
            for c in prange(chunks, schedule="static", num_threads=threads):
                j = ci[c]
                _sgd_span(pw[j], pg[j], pv[j], cs[c], ce[c], step, decay[j], momentum,
                          &sums[c, 0])
    finally:
        free(pw)
    return _sums_by_array(chunk_sums[:chunks], index, n)


def adam_update(list w, list grad, list first, list second, float inv_batch, float beta1,
                float beta2, float step, float eps, const float[::1] decay_step, int threads=0):
    """Adam with decoupled weight decay on each array j of w (1-D float32), fused: with
    g = grad·inv_batch, m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², w −= decay_step[j]·w,
    w −= step·m/(√v + eps). Returns (arrays, 4) float64: per array the sums UPDATE_SUMS names
    (Σ(w_new − w_old)², Σw_old², Σ(m² + v²) new, Σgrad², each chunk's in float32)."""
    if decay_step.shape[0] != len(w):
        raise ValueError("adam_update: one decay_step per array")
    index, start, end = _update_chunks(w, [grad, first, second], "adam_update")
    cdef Py_ssize_t[::1] ci = index, cs = start, ce = end
    cdef Py_ssize_t c, j, chunks = ci.shape[0], n = len(w)
    threads = _region_threads(threads, chunks)
    chunk_sums = np.zeros((max(chunks, 1), 4), np.float64)
    cdef double[:, ::1] sums = chunk_sums
    cdef float **pw = _pointer_table([w, grad, first, second])
    cdef float **pg = pw + n
    cdef float **pm = pw + 2 * n
    cdef float **pv = pw + 3 * n
    try:
        with nogil:
            for c in prange(chunks, schedule="static", num_threads=threads):
                j = ci[c]
                _adam_span(pw[j], pg[j], pm[j], pv[j], cs[c], ce[c], inv_batch, beta1, beta2,
                           step, eps, decay_step[j], &sums[c, 0])
    finally:
        free(pw)
    return _sums_by_array(chunk_sums[:chunks], index, n)


def copy_arrays(list dst, list src, int threads=0):
    """dst[j][...] = src[j] for 1-D float32 arrays of equal sizes, in one parallel region on
    `threads` threads (0: OpenMP's count): the training loop's copies of every parameter
    (the guard's snapshot, a replica's weights), which one thread did at a third less
    bandwidth while the other core idled."""
    index, start, end = _update_chunks(dst, [src], "copy_arrays")
    cdef Py_ssize_t[::1] ci = index, cs = start, ce = end
    cdef Py_ssize_t c, j, chunks = ci.shape[0], n = len(dst)
    threads = _region_threads(threads, chunks)
    cdef float **pd = _pointer_table([dst, src])
    cdef float **ps = pd + n
    try:
        with nogil:
            for c in prange(chunks, schedule="static", num_threads=threads):
                j = ci[c]
                memcpy(pd[j] + cs[c], ps[j] + cs[c], (ce[c] - cs[c]) * sizeof(float))
    finally:
        free(pd)


def add_arrays(list dst, list src, int threads=0):
    """dst[j] += src[j] for 1-D float32 arrays of equal sizes, as copy_arrays (a replica's
    gradients summed into the main network's)."""
    index, start, end = _update_chunks(dst, [src], "add_arrays")
    cdef Py_ssize_t[::1] ci = index, cs = start, ce = end
    cdef Py_ssize_t c, i, j, chunks = ci.shape[0], n = len(dst)
    threads = _region_threads(threads, chunks)
    cdef float **pd = _pointer_table([dst, src])
    cdef float **ps = pd + n
    cdef float *d
    cdef const float *a
    try:
        with nogil:
            for c in prange(chunks, schedule="static", num_threads=threads):
                j = ci[c]
                d = pd[j]
                a = ps[j]
                for i in range(cs[c], ce[c]):
                    d[i] = d[i] + a[i]
    finally:
        free(pd)
