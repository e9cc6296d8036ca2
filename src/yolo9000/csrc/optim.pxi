# The optimisers' updates: one pass over each parameter array.
# (a section of the compiled core: ../_kernels.pyx includes it)

def sgd_update(float[::1] w, const float[::1] grad, float[::1] velocity, float step,
               float decay, float momentum):
    """darknet's SGD update, fused: v −= grad + decay·w; w += step·v; v *= momentum."""
    cdef Py_ssize_t n = w.shape[0], i
    cdef float v
    if grad.shape[0] != n or velocity.shape[0] != n:
        raise ValueError("sgd_update: arrays differ in size")
    with nogil:
        for i in prange(n, schedule="static"):
            v = velocity[i] - grad[i]
            v = v - decay * w[i]
            w[i] = w[i] + step * v
            velocity[i] = momentum * v


def adam_update(float[::1] w, const float[::1] grad, float[::1] first, float[::1] second,
                float inv_batch, float beta1, float beta2, float step, float eps,
                float decay_step):
    """Adam with decoupled weight decay, fused: with g = grad·inv_batch,
    m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², w −= decay_step·w, w −= step·m/(√v + eps)."""
    cdef Py_ssize_t n = w.shape[0], i
    cdef float g, m, v, p
    cdef float c1 = 1 - beta1, c2 = 1 - beta2
    if grad.shape[0] != n or first.shape[0] != n or second.shape[0] != n:
        raise ValueError("adam_update: arrays differ in size")
    with nogil:
        for i in prange(n, schedule="static"):
            g = grad[i] * inv_batch
            m = beta1 * first[i] + c1 * g
            v = beta2 * second[i] + c2 * (g * g)
            first[i] = m
            second[i] = v
            p = w[i] - decay_step * w[i]
            w[i] = p - step * m / (sqrtf(v) + eps)
