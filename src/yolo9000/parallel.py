"""Data parallelism over MPI: `mpiexec -n N yolo9000 train|evaluate|detect ...`.

Every rank holds the whole network. An iteration's `subdivisions` mini-batches are spread over
the ranks in contiguous blocks (rank r runs mini-batches r·L ... r·L + L − 1 of the iteration,
L = subdivisions / N), each loaded by the rank itself with the loader's (seed, index) sampling,
so the images of an iteration do not depend on N. After its block a rank's gradients, its share
of the batch-norm rolling statistics, its loss parts and its stop request go into one
contiguous float32 buffer, summed over the ranks by one in-place Allreduce; every rank then
holds the same sums and applies the same update, so N ranks compute what one process computes
with the same batch and subdivisions (to float32 rounding of the sums).

Rolling statistics: one process updates r ← k·r + m·b mini-batch after mini-batch (k = 1 − m),
so after S mini-batches r_S = k^S·r_0 + Σ_j k^(S−1−j)·m·b_j. A rank that ran block r from r_0
holds q = k^L·r_0 + Σ_(its j) k^(L−1−t)·m·b_j: its share q − k^L·r_0, scaled by k^((N−1−r)·L)
for the blocks after its own, sums over the ranks to r_S − k^S·r_0.

mpi4py is imported only when an MPI launcher started several ranks (its environment says so),
so a normal run never needs it. Rank 0 alone writes files and prints; the others' stdout and
stderr go to /dev/null. A rank that raises stops every rank (see `run_command`). The CLI
imports this module for every command: NumPy and the kernels are imported only when used.
Inference (`evaluate`, `detect`, validation during training) shares its images over the same
ranks through `world()`, so the module sits below both training and inference.
"""
import functools
import os
import sys
import time
import traceback

from .errors import UserError

# what MPI launchers put in each rank's environment: MPICH/hydra and Slurm's PMI, Open MPI,
# MVAPICH
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
# how long a failing rank waits for the others to fail at the same point (a bad option, a
# missing file: every rank sees it) before it stops them all with MPI_Abort
AGREE_SECONDS = 3.0
# the launcher stops forwarding a rank's output when it aborts: time to pass the message on
FORWARD_SECONDS = 0.5
INSTALL_HINT = 'pip install "yolo9000[mpi]"'


def _launcher_value(names, environ):
    for name in names:
        value = environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return None


def launched_size(environ=os.environ):
    """Ranks an MPI launcher started (1 when not launched by one)."""
    return _launcher_value(SIZE_VARIABLES, environ) or 1


def launched_rank(environ=os.environ):
    return _launcher_value(RANK_VARIABLES, environ) or 0


class SingleProcess:
    """The world of a run without MPI: one rank that does everything itself."""
    rank = 0
    size = 1
    is_main = True

    def shard(self, count):
        """The indices of `count` items (images) this rank handles."""
        return range(self.rank, count, self.size)

    def map_sharded(self, items, compute):
        """compute(this rank's items) -> {position among them: result}; returns
        {index in items: result} for all the items, on every rank."""
        return compute(list(items))

    def from_main(self, make):
        """make() run on rank 0 alone (it may write files), its result (or its exception) on
        every rank."""
        return make()

    def step_sync(self, net, subdivisions, mini_batch):
        return LocalSteps(subdivisions)


class LocalSteps:
    """Training steps in one process: the whole iteration here, nothing to exchange."""

    def __init__(self, subdivisions):
        self.subdivisions = subdivisions
        self.local_subdivisions = subdivisions

    def minibatch_index(self, position):
        """Global mini-batch index of this rank's `position`-th mini-batch of the run."""
        return position

    def begin(self, net):
        pass

    def finish(self, net, parts, stop_signals):
        pass

    def stopping(self, stop_signals):
        return bool(stop_signals)

    def settle(self, stop_signals):
        pass


class MPIWorld(SingleProcess):
    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.is_main = self.rank == 0
        # failure agreement on its own communicator: it never matches a training collective
        self.exit_comm = comm.Dup()

    def map_sharded(self, items, compute):
        items = list(items)
        mine = self.shard(len(items))
        local = compute([items[k] for k in mine])
        merged = {}
        for part in self.comm.allgather({mine[j]: value for j, value in local.items()}):
            merged.update(part)
        return dict(sorted(merged.items()))

    def from_main(self, make):
        result = error = None
        if self.is_main:
            try:
                result = make()
            except UserError as e:
                error = e
        result, error = self.comm.bcast((result, error), root=0)
        if error is not None:
            raise error
        return result

    def step_sync(self, net, subdivisions, mini_batch):
        if subdivisions % self.size:
            raise UserError(f"{self.size} ranks cannot share {subdivisions} subdivisions: "
                            f"start a number of ranks that divides --subdivisions")
        return RankSteps(self, net, subdivisions, mini_batch)


class RankSteps(LocalSteps):
    """One rank's share of each iteration and the Allreduce that completes it.

    The batch-norm rolling statistics are the network's parameters without a gradient (a
    layer's `grads` holds only its trainable parameters): told apart that way, this module
    needs nothing from the layers or the training code, which both sit above it."""

    def __init__(self, world, net, subdivisions, mini_batch):
        self.world = world
        self.subdivisions = subdivisions
        self.local_subdivisions = subdivisions // world.size
        self.mini_batch = mini_batch
        self.buffer = None
        self.start_statistics = None
        self.agreed_stop = False

    def minibatch_index(self, position):
        local = self.local_subdivisions
        iteration, k = divmod(position, local)
        return iteration * self.subdivisions + self.world.rank * local + k

    def begin(self, net):
        """Before this rank's block: remember the statistics, and count `seen` as one process
        would at the block's first mini-batch (the region loss depends on it)."""
        import numpy as np
        self.start_seen = net.seen
        statistics = [p for _, _, p, g in net.parameters() if g is None]
        if self.start_statistics is None:
            self.start_statistics = [p.copy() for p in statistics]
        else:
            for p, saved in zip(statistics, self.start_statistics):
                np.copyto(saved, p)
        net.seen += self.world.rank * self.local_subdivisions * self.mini_batch

    def finish(self, net, parts, stop_signals):
        """Sum gradients, statistics, loss parts and stop requests over the ranks (in place)."""
        import numpy as np
        from mpi4py import MPI
        grads = [g for _, _, _, g in net.parameters() if g is not None]
        stats = [(net.layers[i].bn.momentum, p)
                 for i, _, p, g in net.parameters() if g is None]
        keys = sorted(parts)
        size = sum(g.size for g in grads) + sum(p.size for _, p in stats) + len(keys) + 1
        if self.buffer is None or self.buffer.size != size:
            self.buffer = np.empty(size, np.float32)
        buffer = self.buffer
        at = 0
        for g in grads:
            buffer[at:at + g.size] = g.reshape(-1)
            at += g.size
        L, N, r = self.local_subdivisions, self.world.size, self.world.rank
        for (momentum, p), start in zip(stats, self.start_statistics):
            keep = 1.0 - momentum
            share = buffer[at:at + p.size]
            np.multiply(start.reshape(-1), np.float32(keep ** L), out=share)
            np.subtract(p.reshape(-1), share, out=share)
            share *= np.float32(keep ** ((N - 1 - r) * L))
            at += p.size
        buffer[at:at + len(keys)] = [parts[k] for k in keys]
        buffer[-1] = 1.0 if stop_signals else 0.0
        self.world.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        at = 0
        for g in grads:
            g.reshape(-1)[...] = buffer[at:at + g.size]
            at += g.size
        for (momentum, p), start in zip(stats, self.start_statistics):
            flat = p.reshape(-1)
            np.multiply(start.reshape(-1), np.float32((1.0 - momentum) ** self.subdivisions),
                        out=flat)
            flat += buffer[at:at + p.size]
            at += p.size
        for j, k in enumerate(keys):
            parts[k] = float(buffer[at + j])
        net.seen = self.start_seen + self.subdivisions * self.mini_batch
        self.agreed_stop = buffer[-1] > 0
        if self.agreed_stop and not stop_signals:
            stop_signals.append("another rank")

    def stopping(self, stop_signals):
        # the decision of the last Allreduce, not this rank's own signals: a signal that
        # arrived since is sent with the next step, so every rank leaves the loop together
        return self.agreed_stop

    def settle(self, stop_signals):
        """After the loop: a stop request that arrived after the last step reaches all ranks."""
        from mpi4py import MPI
        anyone = self.world.comm.allreduce(1 if stop_signals else 0, op=MPI.MAX)
        if anyone and not stop_signals:
            stop_signals.append("another rank")


@functools.lru_cache(maxsize=None)
def world():
    """This process's world: SingleProcess unless an MPI launcher started several ranks."""
    if launched_size() <= 1:
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError:
        raise UserError(f"started by an MPI launcher with {launched_size()} ranks, but mpi4py "
                        f"is not installed: {INSTALL_HINT}") from None
    return MPIWorld(MPI.COMM_WORLD)


# -- running a command on every rank -----------------------------------------------------------
def run_command(call, report):
    """Run call() on every rank of a multi-rank launch; single-process runs call it directly.

    report(exception) -> (exit code, message) turns an exception into what the CLI prints.
    Rank 0 alone prints. A rank that fails waits up to AGREE_SECONDS for the others to fail at
    the same point (an error every rank sees, a stop every rank agreed to): then rank 0 prints
    the message once and all exit with its code. Otherwise the others are stuck waiting for
    this rank, so it prints its message naming itself and stops them all with MPI_Abort."""
    if launched_size() <= 1:
        return call()
    if launched_rank() != 0:
        _silence()
    try:
        ranks = world()
    except UserError as e:
        if launched_rank() == 0:     # no MPI to agree with: rank 0 says it for all
            _say(f"error: {e}")
        sys.exit(1)
    try:
        if ranks.is_main:
            _say(f"MPI: {ranks.size} ranks, " + ", ".join(
                f"rank {r} pid {pid} on {host}" for r, (pid, host) in enumerate(
                    ranks.comm.allgather((os.getpid(), os.uname().nodename)))))
        else:
            ranks.comm.allgather((os.getpid(), os.uname().nodename))
        return call()
    except SystemExit:
        raise
    except BaseException as error:   # noqa: BLE001 - every failure must stop every rank
        outcome = report(error)
        if outcome is None:          # not a failure the CLI explains in a line: a bug
            outcome = 1, "".join(traceback.format_exception(error)).rstrip()
        _fail_together(ranks, *outcome)


def _fail_together(ranks, code, message):
    request = ranks.exit_comm.Ibarrier()
    deadline = time.monotonic() + AGREE_SECONDS
    while not request.Test():
        if time.monotonic() > deadline:
            _say(f"rank {ranks.rank} of {ranks.size} failed, stopping all ranks: {message}")
            time.sleep(FORWARD_SECONDS)
            ranks.comm.Abort(code or 1)
            # Abort may return before MPICH ends the job (seen on a loaded machine): never come
            # round the loop again to print the message a second time
            os._exit(code or 1)
        time.sleep(0.02)
    messages = ranks.exit_comm.gather((code, message), root=0)
    if ranks.is_main:
        distinct = {m for _, m in messages if m}
        if len(distinct) <= 1:
            if message:
                _say(message)
        else:
            for r, (_, m) in enumerate(messages):
                if m:
                    _say(f"rank {r}: {m}")
    sys.exit(code)


_real_stderr = None     # a silenced rank's own stderr


def _say(text):
    stream = _real_stderr or sys.stderr
    stream.write(text + "\n")
    stream.flush()


def _silence():
    """Ranks other than 0 print nothing (their messages about failures go to the real stderr)."""
    global _real_stderr
    _real_stderr = sys.stderr
    devnull = open(os.devnull, "w")
    sys.stdout = sys.stderr = devnull
