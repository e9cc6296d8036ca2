"""The fused optimiser updates over many arrays at once (core.sgd_update / core.adam_update):
arrays cut into chunks that share one parallel region, each array with its own decay."""
import numpy as np
import pytest

from yolo9000.kernels import core

# empty, single values, and lengths on either side of the chunk boundaries
SIZES = [0, 1, core.UPDATE_CHUNK - 1, core.UPDATE_CHUNK, 2 * core.UPDATE_CHUNK + 5, 7]


def arrays(seed, count=1, scale=1.0):
    rng = np.random.default_rng(seed)
    return [[(scale * rng.standard_normal(n)).astype(np.float32) for n in SIZES]
            for _ in range(count)]


def test_sgd_update_of_many_arrays_matches_darknets_rule_array_by_array():
    (w, grad, velocity) = arrays(0, 3)
    decay = np.array([0.0, 0.5, 0.01, 0.02, 0.03, 0.04], np.float32)
    step, momentum = 0.05, 0.9
    expected = []
    for j in range(len(SIZES)):
        v = velocity[j].astype(np.float64) - grad[j] - decay[j] * w[j].astype(np.float64)
        expected.append((w[j] + step * v, momentum * v))
    core.sgd_update(w, grad, velocity, step, decay, momentum)
    for j, (ew, ev) in enumerate(expected):
        np.testing.assert_allclose(w[j], ew, rtol=1e-6, atol=1e-7, err_msg=f"array {j}")
        np.testing.assert_allclose(velocity[j], ev, rtol=1e-6, atol=1e-7, err_msg=f"array {j}")


def test_adam_update_of_many_arrays_matches_adamw_array_by_array():
    (w, grad, first) = arrays(1, 3)
    (second,) = arrays(2, 1, scale=0.1)
    # away from zero, where m / sqrt(v) would magnify float32's rounding of v
    second = [np.float32(0.01) + s * s for s in second]
    decay = np.array([0.0, 0.5, 0.01, 0.0, 0.03, 0.04], np.float32)
    inv_batch, b1, b2, step, eps = 0.25, 0.9, 0.999, 0.01, 1e-8
    # the reference in float64 from the float32 values of the constants the kernel takes
    b1, b2, step, eps = (float(np.float32(c)) for c in (b1, b2, step, eps))
    expected = []
    for j in range(len(SIZES)):
        g = grad[j].astype(np.float64) * inv_batch
        m = b1 * first[j] + (1 - b1) * g
        v = b2 * second[j].astype(np.float64) + (1 - b2) * g * g
        p = w[j] - decay[j] * w[j].astype(np.float64)
        expected.append((p - step * m / (np.sqrt(v) + eps), m, v))
    core.adam_update(w, grad, first, second, inv_batch, b1, b2, step, eps, decay)
    for j, (ew, em, ev) in enumerate(expected):
        np.testing.assert_allclose(w[j], ew, rtol=1e-5, atol=1e-7, err_msg=f"array {j}")
        np.testing.assert_allclose(first[j], em, rtol=1e-6, atol=1e-7, err_msg=f"array {j}")
        np.testing.assert_allclose(second[j], ev, rtol=1e-6, atol=1e-9, err_msg=f"array {j}")


def test_an_array_updated_among_others_gets_the_bits_it_gets_alone():
    """Where a value falls (which chunk, which thread) does not change its arithmetic."""
    together = arrays(3, 4)
    alone = [[a.copy() for a in group] for group in together]
    decay = np.linspace(0, 0.05, len(SIZES)).astype(np.float32)
    core.adam_update(*together, 0.5, 0.9, 0.999, 0.01, 1e-8, decay)
    for j in range(len(SIZES)):
        core.adam_update(*[[group[j]] for group in alone], 0.5, 0.9, 0.999, 0.01, 1e-8,
                         decay[j:j + 1])
        for got, expected in zip(together, alone):
            np.testing.assert_array_equal(got[j], expected[j])


def test_arrays_of_different_sizes_are_refused():
    w, grad, velocity = arrays(4, 3)
    grad[2] = grad[2][:-1]
    with pytest.raises(ValueError, match="differ in size"):
        core.sgd_update(w, grad, velocity, 0.1, np.zeros(len(w), np.float32), 0.9)
    with pytest.raises(ValueError, match="one decay"):
        core.sgd_update(w, w, w, 0.1, np.zeros(2, np.float32), 0.9)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_sums_the_guard_reads_are_those_of_each_array(optimizer):
    """Per array: Σ(w_new − w_old)², Σw_old², Σ(new state)², Σgrad², against float64 of the
    arrays before and after; a NaN gradient shows in its own array's sums only."""
    (w, grad, first) = arrays(5, 3)
    (second,) = arrays(6, 1, scale=0.1)
    second = [np.float32(0.01) + s * s for s in second]
    grad[4][17] = np.nan
    before = [a.astype(np.float64) for a in w]
    decay = np.full(len(SIZES), 0.01, np.float32)
    if optimizer == "sgd":
        sums = core.sgd_update(w, grad, first, 0.05, decay, 0.9)
        states = [[v] for v in first]
    else:
        sums = core.adam_update(w, grad, first, second, 0.5, 0.9, 0.999, 0.01, 1e-8, decay)
        states = [[m, v] for m, v in zip(first, second)]
    assert sums.shape == (len(SIZES), 4) and sums.dtype == np.float64
    for j in range(len(SIZES)):
        with np.errstate(invalid="ignore"):
            expected = [np.sum((w[j] - before[j]) ** 2), np.sum(before[j] ** 2),
                        sum(np.sum(x.astype(np.float64) ** 2) for x in states[j]),
                        np.sum(grad[j].astype(np.float64) ** 2)]
        if j == 4:
            assert np.isnan(sums[j, 3]) and np.isnan(sums[j, 0])
            assert np.isfinite(np.delete(sums, 4, axis=0)).all()
            continue
        # float32 sums over each chunk of 32768, added in float64
        np.testing.assert_allclose(sums[j], expected, rtol=1e-5, err_msg=f"array {j}")


def test_copy_and_add_arrays_chunk_by_chunk():
    src, dst, extra = arrays(7, 3)
    core.copy_arrays(dst, src, 2)
    for j in range(len(SIZES)):
        np.testing.assert_array_equal(dst[j], src[j], err_msg=f"array {j}")
    core.add_arrays(src, [e.copy() for e in extra], 2)
    for j in range(len(SIZES)):
        np.testing.assert_array_equal(src[j], dst[j] + extra[j], err_msg=f"array {j}")
    with pytest.raises(ValueError, match="differ in size"):
        core.copy_arrays(dst, src[:-1])


TINY_CFG = ("[net]\nwidth=8\nheight=8\nchannels=2\n[convolutional]\nbatch_normalize=1\n"
            "filters=3\nsize=3\nstride=1\npad=1\nactivation=leaky\n")


def guarded_step(weight, gradient, lr=0.01):
    """One SGD step of a tiny network whose first weight is `weight` and whose gradients are
    `gradient` everywhere: the guard's verdict."""
    from yolo9000 import Network
    from yolo9000.training.guard import StepGuard
    from yolo9000.training.optim import SGD
    net = Network.from_cfg(TINY_CFG)
    for _, name, p, g in net.parameters():
        if name == "weights":
            p.reshape(-1)[0] = weight
        if g is not None:
            g[...] = gradient
    opt = SGD(net)
    guard = StepGuard(net, opt)
    before = guard.snapshot()
    with np.errstate(all="ignore"):
        opt.step(lr, 1)
    return guard.unusable_update(before)


def test_squares_past_float32_go_to_the_exact_passes():
    """A weight of 1e20 (finite; its square is not in float32): the sums are not finite, the
    passes over the arrays find every value finite and the change small: the step is kept;
    with a gradient that moves it by 1e21 it is not. A NaN gradient and a step 1e4 times the
    weights are refused with their own words."""
    assert guarded_step(1e20, 0.1) is None
    assert guarded_step(1e20, -1e23, lr=1.0).startswith("the update is ")
    assert guarded_step(0.5, np.nan) == "non-finite gradient of layer 0 weights"
    assert guarded_step(0.5, 0.1, lr=1e6).startswith("the update is ")
