# The optimisers' updates: one pass over every parameter array of a step, in one parallel
# region. OpenMP's idle threads sleep at once (OMP_WAIT_POLICY=PASSIVE, see __init__.py), and
# waking one took ~90 us here: a region per array cost the shapes model's Adam step (29
# arrays, 1.4M values) 3.2 ms where its arithmetic takes 0.5 ms. So the arrays are cut into
# chunks of up to UPDATE_CHUNK values, and the chunks of all of them share one region (each
# value's arithmetic is the same whichever chunk or thread it falls in).
# (a section of the compiled core: ../_kernels.pyx includes it)

UPDATE_CHUNK = 32768


cdef inline void _sgd_span(float *w, const float *grad, float *velocity, Py_ssize_t a,
                           Py_ssize_t b, float step, float decay, float momentum) noexcept nogil:
    cdef Py_ssize_t i
    cdef float v
    for i in range(a, b):
        v = velocity[i] - grad[i]
        v = v - decay * w[i]
        w[i] = w[i] + step * v
        velocity[i] = momentum * v


cdef inline void _adam_span(float *w, const float *grad, float *first, float *second,
                            Py_ssize_t a, Py_ssize_t b, float inv_batch, float beta1,
                            float beta2, float step, float eps,
                            float decay_step) noexcept nogil:
    cdef Py_ssize_t i
    cdef float g, m, v, p
    cdef float c1 = 1 - beta1, c2 = 1 - beta2
    for i in range(a, b):
        g = grad[i] * inv_batch
        m = beta1 * first[i] + c1 * g
        v = beta2 * second[i] + c2 * (g * g)
        first[i] = m
        second[i] = v
        p = w[i] - decay_step * w[i]
        w[i] = p - step * m / (sqrtf(v) + eps)


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


cdef float **_float_pointers(list arrays, float **out) except NULL:
    cdef float[::1] view
    for j, a in enumerate(arrays):
        view = a
        out[j] = &view[0] if view.shape[0] else NULL
    return out


def sgd_update(list w, list grad, list velocity, float step, const float[::1] decay,
               float momentum):
    """darknet's SGD update of each array j of w (1-D float32), fused: v −= grad + decay[j]·w;
    w += step·v; v *= momentum."""
    if decay.shape[0] != len(w):
        raise ValueError("sgd_update: one decay per array")
    index, start, end = _update_chunks(w, [grad, velocity], "sgd_update")
    cdef Py_ssize_t[::1] ci = index, cs = start, ce = end
    cdef Py_ssize_t c, j, chunks = ci.shape[0], n = len(w)
    cdef int threads = y9k_max_threads() if chunks > 1 else 1
    cdef float **pw = <float **> malloc(3 * max(n, 1) * sizeof(float *))
    if pw == NULL:
        raise MemoryError()
    cdef float **pg = pw + n
    cdef float **pv = pw + 2 * n
    try:
        _float_pointers(w, pw)
        _float_pointers(grad, pg)
        _float_pointers(velocity, pv)
        with nogil:
            for c in prange(chunks, schedule="static", num_threads=threads):
                j = ci[c]
                _sgd_span(pw[j], pg[j], pv[j], cs[c], ce[c], step, decay[j], momentum)
    finally:
        free(pw)


def adam_update(list w, list grad, list first, list second, float inv_batch, float beta1,
                float beta2, float step, float eps, const float[::1] decay_step):
    """Adam with decoupled weight decay on each array j of w (1-D float32), fused: with
    g = grad·inv_batch, m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², w −= decay_step[j]·w,
    w −= step·m/(√v + eps)."""
    if decay_step.shape[0] != len(w):
        raise ValueError("adam_update: one decay_step per array")
    index, start, end = _update_chunks(w, [grad, first, second], "adam_update")
    cdef Py_ssize_t[::1] ci = index, cs = start, ce = end
    cdef Py_ssize_t c, j, chunks = ci.shape[0], n = len(w)
    cdef int threads = y9k_max_threads() if chunks > 1 else 1
    cdef float **pw = <float **> malloc(4 * max(n, 1) * sizeof(float *))
    if pw == NULL:
        raise MemoryError()
    cdef float **pg = pw + n
    cdef float **pm = pw + 2 * n
    cdef float **pv = pw + 3 * n
    try:
        _float_pointers(w, pw)
        _float_pointers(grad, pg)
        _float_pointers(first, pm)
        _float_pointers(second, pv)
        with nogil:
            for c in prange(chunks, schedule="static", num_threads=threads):
                j = ci[c]
                _adam_span(pw[j], pg[j], pm[j], pv[j], cs[c], ce[c], inv_batch, beta1, beta2,
                           step, eps, decay_step[j])
    finally:
        free(pw)
