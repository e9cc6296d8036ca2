"""The low-precision kernels' team of threads (csrc/team.c): the same bits on any number of
threads, workers that sleep and wake, callers from several threads at once, and a forked
child. Each case runs in a fresh process with a time limit, so a lost wake-up fails the test
instead of hanging the suite."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from yolo9000.kernels import core

# a script run in a fresh process: the RGB kernel (portable twin: on every CPU) on a random
# 3 x 70 x 90 image, `CALLS` times, printing a digest of every output and the team's state
SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys, threading, time
    import numpy as np
    from yolo9000.kernels import core, lowp
    from yolo9000.kernels.threads import set_threads
    threads, calls, pause, callers, fork = (int(sys.argv[1]), int(sys.argv[2]),
                                            float(sys.argv[3]), int(sys.argv[4]),
                                            sys.argv[5] == "fork")
    set_threads(threads)
    rng = np.random.default_rng(7)
    c, h, w, f = 3, 70, 90, 40
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    image = np.empty(core.bf16_image_size(c, h, w, 1), np.uint16)
    core.bf16_pack_image(x, 1, image)
    packed = lowp.BF16Weights(rng.standard_normal((f, c, 3, 3)).astype(np.float32))
    scale = rng.uniform(0.5, 2, f).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    kernel = lowp.BF16_KERNELS["portable"]

    def digest():
        out = np.empty((f, h * w), np.float32)
        core.bf16_conv_rgb(kernel, packed.data, image, c, h, w, 3, 1, scale, bias,
                           core.ACT_LEAKY, out)
        return hashlib.sha256(out.tobytes()).hexdigest()

    def run(found):
        for _ in range(calls):
            found.add(digest())
            if pause:
                time.sleep(pause)

    found = set()
    if callers == 1:
        run(found)      # set_threads's count is the main thread's (as OpenMP's)
    else:
        team = [threading.Thread(target=run, args=(found,)) for _ in range(callers)]
        for t in team:
            t.start()
        for t in team:
            t.join()
    if fork:
        r, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(wr, digest().encode())
            os._exit(0)
        os.waitpid(pid, 0)
        found.add(os.read(r, 64).decode())
    print(json.dumps({"digests": sorted(found), **core.team_state()}))
""")


def run_script(threads, calls=20, pause=0.0, callers=1, fork=False, spin_us=None):
    env = dict(os.environ)
    env.pop("YOLO9000_SPIN_US", None)
    if spin_us is not None:
        env["YOLO9000_SPIN_US"] = spin_us
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(threads), str(calls), str(pause),
                        str(callers), "fork" if fork else "-"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


needs_threads = pytest.mark.skipif(not core.openmp_enabled(),
                                   reason="built without OpenMP: the kernels run on one thread")


def test_one_thread_starts_no_worker():
    state = run_script(1)
    assert state["workers"] == 0
    assert len(state["digests"]) == 1


@needs_threads
def test_the_same_bits_on_any_number_of_threads():
    one = run_script(1)
    for threads in (2, 3):
        state = run_script(threads)
        assert state["workers"] == threads - 1
        assert state["spin_us"] == 2000
        assert state["digests"] == one["digests"]


@needs_threads
def test_workers_that_sleep_between_calls_wake_for_each():
    """No spinning: every call finds the worker asleep and must wake it (and the caller sleeps
    till the worker is done); a lost wake-up would hang here."""
    one = run_script(1)
    state = run_script(2, calls=200, pause=0.0005, spin_us="0")
    assert state["spin_us"] == 0
    assert state["digests"] == one["digests"]
    state = run_script(2, calls=100, pause=0.0, spin_us="not a number")
    assert state["spin_us"] == 2000
    assert state["digests"] == one["digests"]


@needs_threads
def test_callers_on_several_threads_at_once():
    """One job at a time has the team; a call made meanwhile runs on its caller alone."""
    one = run_script(1)
    state = run_script(2, calls=30, callers=4)
    assert state["digests"] == one["digests"]


@needs_threads
def test_a_forked_child_starts_its_own_team():
    one = run_script(1)
    state = run_script(2, calls=5, fork=True)
    assert state["digests"] == one["digests"]
