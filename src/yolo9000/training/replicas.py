"""Parallel subdivisions: the mini-batches of one training iteration computed side by side.

darknet splits a batch into `subdivisions` mini-batches that run one after another, each with
its own batch-norm statistics, and sums their gradients before the update. On a small CPU the
products of a mini-batch are too small for BLAS to keep two cores busy (two single-threaded
mini-batches at once do ~1.7x the work of one two-threaded one), so here up to `count`
mini-batches run at the same time, each on a replica of the network in its own thread with
one BLAS/OpenMP thread (NumPy and the Cython kernels release the GIL).

The result is the sequential one: every replica starts from the main network's parameters,
sees `seen` as it would sequentially, and afterwards its gradients are added to the main
network's and its batch-norm rolling statistics are folded in as if its update had come after
the previous mini-batches' (rolling = (1 − m)·rolling + m·batch is linear in the batch term).
"""
import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..kernels import core
from .optim import flat

STATISTICS = ("rolling_mean", "rolling_variance")


class ReplicaPool:
    def __init__(self, net, count):
        self.net = net
        self.count = max(1, int(count))
        self.replicas = [copy.deepcopy(net) for _ in range(self.count - 1)]
        self.executor = ThreadPoolExecutor(max_workers=self.count - 1) if self.count > 1 else None
        self.threads = 0     # of the copies between networks (0: OpenMP's count)

    def close(self):
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    def run(self, batches, step):
        """Run step(net, batch) -> dict of sums for each batch (len(batches) <= count): the
        first on the main network in this thread, the rest on replicas. Returns the dicts in
        order; gradients, statistics and `seen` end up on the main network."""
        if len(batches) == 1 or self.executor is None:
            return [step(self.net, b) for b in batches]
        if len(batches) > self.count:
            raise ValueError(f"{len(batches)} mini-batches for {self.count} parallel slots")
        main = self.net
        start_stats = {(i, name): p.copy() for i, name, p, _ in main.parameters()
                       if name in STATISTICS}
        seen = main.seen
        used = self.replicas[:len(batches) - 1]
        for replica, batch in zip(used, batches):
            seen += batch.images.shape[0]
            self._sync(replica)
            replica.seen = seen
        futures = [self.executor.submit(_single_threaded, step, r, b)
                   for r, b in zip(used, batches[1:])]
        try:
            results = [step(main, batches[0])]
        finally:
            results += [f.result() for f in futures]
        # fold the replicas in, in mini-batch order (deterministic)
        for replica in used:
            self._merge(replica, start_stats)
        main.seen = used[-1].seen
        return results

    def _sync(self, replica):
        """Replica := main's parameters, statistics and input size; zero gradients (the
        weights' lazily, as zero_grads does). The copies in one parallel region on
        `threads` threads (0: OpenMP's count)."""
        main = self.net
        if (replica.width, replica.height) != (main.width, main.height):
            replica.resize(main.width, main.height)
        core.copy_arrays([flat(q) for _, _, q, _ in replica.parameters()],
                         [flat(p) for _, _, p, _ in main.parameters()], self.threads)
        replica.zero_grads()
        replica.weights_changed()

    def _merge(self, replica, start_stats):
        trained, statistics = [], []
        for (i, name, p, g), (_, _, q, rg) in zip(self.net.parameters(), replica.parameters()):
            if g is not None:
                trained.append((flat(g), flat(rg)))
            elif name in STATISTICS:
                statistics.append((i, name, p, q))
        core.add_arrays([g for g, _ in trained], [rg for _, rg in trained], self.threads)
        for i, name, p, q in statistics:
            keep = np.float32(1.0 - self.net.layers[i].bn.momentum)
            # replica: q = keep·r0 + m·batch  ->  main: p = keep·p + m·batch
            p *= keep
            p += q - keep * start_stats[(i, name)]


def _single_threaded(step, net, batch):
    core.set_num_threads(1)      # OpenMP's thread count is per calling thread
    return step(net, batch)
