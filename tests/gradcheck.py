"""Finite-difference gradient checking for float32 layers.

The loss is L = Σ y·r for a fixed random r, so dL/dy = r. Central differences are taken in
float32 but the loss is summed in float64; entries are sampled at random (deterministic seed).
"""
import numpy as np


def _loss(forward, x, r):
    y = forward(x)
    return float(np.sum(y.astype(np.float64) * r))


def numeric_grad(f, array, indices, eps):
    """Central differences of f() w.r.t. array[idx] for each idx (array modified and restored)."""
    out = []
    flat = array.reshape(-1)
    for i in indices:
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out.append((plus - minus) / (2 * eps))
    return np.array(out)


def check_layer(layer, x, params=(), eps=1e-2, samples=40, rtol=2e-2, atol=2e-3, seed=0,
                train=True):
    """Compare layer.backward with finite differences for the input and the named parameters.

    Returns a dict name -> (analytic, numeric) of the sampled entries, after asserting they
    agree to |a − n| ≤ atol·scale + rtol·|n| where scale is the largest |n| seen."""
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(x, np.float32)
    y = layer.forward(x.copy(), train=train)
    r = rng.standard_normal(y.shape).astype(np.float32)
    layer.zero_grads()
    dx = layer.backward(r.copy())
    analytic = {"input": np.asarray(dx).reshape(-1)}
    for name in params:
        analytic[name] = layer.grads[name].reshape(-1).copy()
    results = {}
    targets = [("input", x)] + [(name, layer.params[name]) for name in params]
    for name, array in targets:
        n = array.size
        idx = rng.choice(n, size=min(samples, n), replace=False)
        # parameters and x are perturbed in place, so one closure serves both
        f = lambda: _loss(lambda v: layer.forward(v.copy(), train=train), x, r)
        num = numeric_grad(f, array, idx, eps)
        ana = analytic[name][idx]
        scale = max(np.abs(num).max(), 1e-3)
        bad = np.abs(ana - num) > atol * scale + rtol * np.abs(num)
        assert not bad.any(), (f"{name}: analytic {ana[bad][:5]} vs numeric {num[bad][:5]} "
                               f"at {idx[bad][:5]}")
        results[name] = (ana, num)
    return results
