# The activations (codes: y9k.h) and their gradients, and the fused scale + bias +
# activation epilogue.
# (a section of the compiled core: ../_kernels.pyx includes it)

# the codes of `act` arguments, for layers/activations.py
ACT_LINEAR = Y9K_ACT_LINEAR
ACT_LEAKY = Y9K_ACT_LEAKY
ACT_RELU = Y9K_ACT_RELU
ACT_LOGISTIC = Y9K_ACT_LOGISTIC


cdef inline float _activate(float v, int act) noexcept nogil:
    # max (v > w ? v : w) rather than a test of the sign: the signs of activations are close
    # to random, mispredicted branches cost more than the arithmetic, and the select
    # vectorises; max(v, 0.1v) is leaky for either sign (0.1·v in double, as darknet's .1*x)
    cdef float w
    if act == Y9K_ACT_LEAKY:
        w = <float> (0.1 * v)
        return v if v > w else w
    if act == Y9K_ACT_RELU:
        return v if v > 0 else 0
    if act == Y9K_ACT_LOGISTIC:
        return 1.0 / (1.0 + expf(-v))
    return v


cdef void _affine_activate(float* y, Py_ssize_t n, float a, float b, int act) noexcept nogil:
    """y = act(a·y + b) on n contiguous floats; one loop per activation so each vectorises."""
    cdef Py_ssize_t i
    cdef float v, w
    if act == Y9K_ACT_LEAKY:
        for i in range(n):
            v = a * y[i] + b
            w = <float> (0.1 * v)
            y[i] = v if v > w else w
    elif act == Y9K_ACT_RELU:
        for i in range(n):
            v = a * y[i] + b
            y[i] = v if v > 0 else 0
    elif act == Y9K_ACT_LOGISTIC:
        for i in range(n):
            y[i] = 1.0 / (1.0 + expf(-(a * y[i] + b)))
    else:
        for i in range(n):
            y[i] = a * y[i] + b


cdef inline float _act_grad(float d, float y, int act) noexcept nogil:
    """d·act'(z) from the activation's output y (darknet's gradients: leaky 0.1 where y <= 0)."""
    if act == Y9K_ACT_LEAKY:
        return d if y > 0 else <float> (0.1 * d)
    if act == Y9K_ACT_RELU:
        return d if y > 0 else 0
    if act == Y9K_ACT_LOGISTIC:
        return d * y * (1 - y)
    return d


cdef inline float _negative_slope(int act) noexcept nogil:
    """act'(v) for v <= 0 of the piecewise-linear activations (1 elsewhere)."""
    if act == Y9K_ACT_LEAKY:
        return 0.1
    if act == Y9K_ACT_RELU:
        return 0
    return 1


cdef struct _AffineJob:
    float* y
    const float* scale
    const float* bias
    int C, S, act


cdef void _affine_plane(void* p, long nc) noexcept nogil:
    cdef _AffineJob* j = <_AffineJob*> p
    _affine_activate(j.y + nc * j.S, j.S, j.scale[nc % j.C], j.bias[nc % j.C], j.act)


def scale_bias_activate(float[:, :, ::1] y, const float[::1] scale, const float[::1] bias, int act):
    """In place: y[n, c, :] = act(scale[c] * y[n, c, :] + bias[c]) — one pass over memory."""
    cdef int N = y.shape[0], C = y.shape[1], S = y.shape[2]
    cdef int nc
    if scale.shape[0] < C or bias.shape[0] < C:
        raise ValueError("scale_bias_activate: scale and bias need one value per channel")
    if N * C == 0 or S == 0:
        return
    cdef _AffineJob job
    job.y, job.scale, job.bias = &y[0, 0, 0], &scale[0], &bias[0]
    job.C, job.S, job.act = C, S, act
    with nogil:
        y9k_team_for(N * C, _affine_plane, &job)
