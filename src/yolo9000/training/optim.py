"""darknet's optimiser and learning-rate schedule.

SGD with momentum and weight decay exactly as darknet's update_convolutional_layer:
    v ← v − ∇L − decay·batch·w      (decay on conv weights only, not biases or BN scales)
    w ← w + lr/batch · v
    v ← momentum · v
where ∇L is summed over the images of the batch (the region loss sums over images), so lr/batch
turns it into a mean. Both optimisers update all the parameter arrays in one fused pass
(Cython, one parallel region a step): the NumPy form of the same formulas made four passes and
two temporaries per array, and a parallel region per array woke OpenMP's sleeping thread 29
times a step.
"""
import numpy as np

from ..kernels import core

DECAYED = {"weights"}      # parameter names that get weight decay


def flat(a):
    """a as one dimension, a view: the form the passes over every parameter take (an array
    that would need a copy is refused: writes into a copy would be lost)."""
    view = a.view()
    view.shape = (a.size,)
    return view


class SGD:
    state_buffers = 1       # arrays of the parameters' size it keeps (velocity)
    # after step(): (trained arrays, 4) float64, per array in net.parameters()' order the sums
    # core.UPDATE_SUMS names (the squared change, the squared weights before it, the squared
    # state and gradient), which the bad-step guard reads
    last_update = None
    # threads of the update's parallel region (0: OpenMP's count); the trainer sets its own
    # while replicas have set one thread for the kernels
    threads = 0

    def __init__(self, net, momentum=0.9, decay=0.0005):
        self.net = net
        self.momentum = float(momentum)
        self.decay = float(decay)
        # velocity buffers, keyed like the checkpoint: "NNN/name"
        self.velocity = {f"{i:03d}/{name}": np.zeros_like(p)
                         for i, name, p, g in net.parameters() if g is not None}

    def step(self, lr, batch):
        w, grad, velocity, decay = [], [], [], []
        for i, name, p, g in self.net.parameters():
            if g is None:
                continue
            w.append(flat(p))
            grad.append(flat(g))
            velocity.append(flat(self.velocity[f"{i:03d}/{name}"]))
            decay.append(self.decay * batch if name in DECAYED else 0.0)
        self.last_update = core.sgd_update(w, grad, velocity, lr / batch,
                                           np.array(decay, np.float32), self.momentum,
                                           self.threads)
        self.net.weights_changed()

    def state(self):
        return {"velocity": {k.replace("/", "_"): v for k, v in self.velocity.items()},
                "momentum": np.float64(self.momentum), "decay": np.float64(self.decay)}

    def load_state(self, state):
        saved = state.get("velocity", {})
        for key, v in self.velocity.items():
            stored = saved.get(key.replace("/", "_"))
            if stored is None or stored.shape != v.shape:
                raise ValueError(f"optimiser state has no matching buffer for {key}")
            v[...] = stored


class Adam:
    """Adam (Kingma & Ba) with decoupled weight decay on conv weights (AdamW).

    Not darknet's optimiser: an option for short CPU runs from scratch, where its per-parameter
    step sizes reach a useful detector in far fewer images than SGD at darknet's rates. The
    gradient is averaged over the batch before use."""
    state_buffers = 2       # first and second moments
    last_update = None      # as SGD's
    threads = 0

    def __init__(self, net, beta1=0.9, beta2=0.999, decay=0.0005, eps=1e-8):
        self.net = net
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.decay = float(decay)
        self.t = 0
        self.first = {f"{i:03d}/{name}": np.zeros_like(p)
                      for i, name, p, g in net.parameters() if g is not None}
        self.second = {k: np.zeros_like(v) for k, v in self.first.items()}

    def step(self, lr, batch):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        correction = np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        w, grad, first, second, decay = [], [], [], [], []
        for i, name, p, g in self.net.parameters():
            if g is None:
                continue
            key = f"{i:03d}/{name}"
            w.append(flat(p))
            grad.append(flat(g))
            first.append(flat(self.first[key]))
            second.append(flat(self.second[key]))
            decay.append(lr * self.decay if name in DECAYED else 0.0)
        self.last_update = core.adam_update(w, grad, first, second, 1.0 / batch, b1, b2,
                                            lr * correction, self.eps,
                                            np.array(decay, np.float32), self.threads)
        self.net.weights_changed()

    def state(self):
        return {"first": {k.replace("/", "_"): v for k, v in self.first.items()},
                "second": {k.replace("/", "_"): v for k, v in self.second.items()},
                "t": np.int64(self.t)}

    def load_state(self, state):
        for store, key in ((self.first, "first"), (self.second, "second")):
            saved = state.get(key, {})
            for k, v in store.items():
                stored = saved.get(k.replace("/", "_"))
                if stored is None or stored.shape != v.shape:
                    raise ValueError(f"optimiser state has no matching buffer for {k}")
                v[...] = stored
        self.t = int(state["t"])


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def optimizer_class(name):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}' ({', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name]


def make_optimizer(name, net, options):
    if optimizer_class(name) is SGD:
        return SGD(net, options.momentum, options.decay)
    return Adam(net, decay=options.decay)


def learning_rate(options, iteration):
    """darknet's get_current_rate for `iteration` (number of weight updates done so far)."""
    lr = options.learning_rate
    if options.burn_in and iteration < options.burn_in:
        return lr * (iteration / options.burn_in) ** options.power
    policy = options.policy
    if policy == "constant":
        return lr
    if policy == "steps":
        for step, scale in zip(options.steps, options.scales):
            if step > iteration:
                break
            lr *= scale
        return lr
    if policy == "poly":
        return lr * (1 - iteration / max(options.max_batches, 1)) ** options.power
    if policy == "exp":
        return lr * (options.gamma ** iteration) if hasattr(options, "gamma") else lr
    raise ValueError(f"learning-rate policy '{policy}' is not supported (constant, steps, poly)")
