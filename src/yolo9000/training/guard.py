"""The bad-step guard: a training step whose loss or gradient is not finite, or whose update
leaves the weights wrecked, is undone without a trace. The loop (trainer.py) then skips the
batch, within --max-bad-steps, or stops with weights/last.h5 holding the step before."""
import math

import numpy as np

from ..kernels import core
from .optim import flat

# An optimiser step that changes the weights by more than this many times their own size (in
# the 2-norm over every trained parameter) is refused like a non-finite one. Useful steps are
# far smaller: on the shapes model Adam at lr 0.004 moved the weights by at most 0.8% of their
# size in a step, SGD at lr 0.01 without burn-in by at most 11%; lr 1e6 moves them 1e5 times.
MAX_UPDATE_RATIO = 10.0


class StepGuard:
    """Copies what a step changes before it, and tells why a step cannot be kept."""

    def __init__(self, net, optimizer):
        self.net = net
        self.optimizer = optimizer
        self._saved = None       # the buffers snapshot() copies a step's starting state into
        self.threads = 0

    def snapshot(self):
        """Everything a step changes: `seen`, every parameter (batch-norm statistics move in
        the forward pass) and the optimiser state, copied before each step so that a rejected
        step leaves no trace. The copies go into buffers kept from step to step (allocating
        them anew every iteration cost as much again as copying), on `threads` threads (0:
        OpenMP's count) in one parallel region."""
        params = [p for _, _, p, _ in self.net.parameters()]
        state = self.optimizer.state()
        if self._saved is None:
            self._saved = ([p.copy() for p in params], _copy_tree(state))
        else:
            arrays, copies = _tree_pairs(state, self._saved[1])
            core.copy_arrays([flat(p) for p in self._saved[0]] + copies,
                             [flat(p) for p in params] + arrays, self.threads)
        return (self.net.seen, *self._saved)

    def restore(self, snapshot):
        """Put back the state snapshot() copied, as if the step had never run."""
        seen, parameters, state = snapshot
        for (_, _, p, _), saved in zip(self.net.parameters(), parameters):
            np.copyto(p, saved)
        self.optimizer.load_state(state)
        self.net.seen = seen
        self.net.zero_grads()
        self.net.weights_changed()

    def non_finite_step(self, parts):
        """Why the step's loss (replicas included) says it cannot be applied, or None. Its
        gradient is judged with the update (unusable_update), from the optimiser's sums."""
        if not math.isfinite(parts.get("loss", 0.0)):
            return f"loss {parts.get('loss')}"
        return None

    def unusable_update(self, before):
        """Why the update just made cannot be kept, or None: a non-finite gradient; a finite
        but huge gradient can still overflow the weights or Adam's squared-gradient average,
        and an update many times the size of the weights themselves (a learning rate far too
        high) leaves weights that are finite but wrecked, so that every later step diverges, a
        resumed run's too.

        Judged from the sums of squares the optimiser's pass made per trained array (optim.py's
        last_update): all finite, every value is, and the ratio is theirs; the batch-norm
        statistics (moved by the forward pass, small) are read here. A sum that is not finite
        (a value that is not, or squares past float32's range) sends it to the exact passes
        over the arrays, with `before` (snapshot()) for the ratio."""
        sums = self.optimizer.last_update
        if sums is None or not np.isfinite(sums).all():
            return self._judged_by_passes(before)
        for i, name, p, g in self.net.parameters():
            if g is None and not np.isfinite(p).all():
                return f"the update made layer {i} {name} non-finite"
        return _ratio_problem(float(sums[:, 0].sum()), float(sums[:, 1].sum()))

    def _judged_by_passes(self, before):
        """unusable_update's judgement from the arrays themselves."""
        for i, name, _, g in self.net.parameters():
            if g is not None and not np.isfinite(g).all():
                return f"non-finite gradient of layer {i} {name}"
        for i, name, p, _ in self.net.parameters():
            if not np.isfinite(p).all():
                return f"the update made layer {i} {name} non-finite"
        if not all(np.isfinite(a).all() for a in _tree_arrays(self.optimizer.state())):
            return "the update made the optimiser state non-finite"
        # in float64: this path is taken where float32's squares overflow
        change = size = 0.0
        for (_, _, p, g), saved in zip(self.net.parameters(), before[1]):
            if g is not None:        # trained by the optimiser (not batch-norm statistics)
                b = saved.reshape(-1).astype(np.float64)
                change += float(np.sum(np.square(p.reshape(-1) - b)))
                size += float(np.dot(b, b))
        return _ratio_problem(change, size)


def _ratio_problem(change, size):
    """The refusal of an update whose squared change is `change` against the weights'
    squared size `size`, or None."""
    ratio = math.sqrt(change / size) if size > 0 else 0.0
    if ratio > MAX_UPDATE_RATIO:
        return f"the update is {ratio:.3g} times the size of the weights"
    return None


def _tree_arrays(tree):
    """Every array in a nested dict of optimiser state."""
    for value in tree.values():
        if isinstance(value, dict):
            yield from _tree_arrays(value)
        elif isinstance(value, np.ndarray):
            yield value


def _copy_tree(tree):
    return {k: _copy_tree(v) if isinstance(v, dict) else np.copy(v) for k, v in tree.items()}


def _tree_pairs(tree, copy):
    """(arrays of `tree`, their buffers in `copy`) for its arrays of one or more dimensions,
    flattened, in one order; its scalars are copied into `copy` here."""
    arrays, buffers = [], []
    for k, v in tree.items():
        if isinstance(v, dict):
            a, b = _tree_pairs(v, copy[k])
            arrays += a
            buffers += b
        elif isinstance(v, np.ndarray) and v.ndim:
            arrays.append(flat(v))
            buffers.append(flat(copy[k]))
        else:
            copy[k] = np.copy(v)
    return arrays, buffers
