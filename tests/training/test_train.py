"""Training: exact resume, atomic checkpoints, schedule, and that a small model really learns."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from yolo9000 import Network
from yolo9000.model.network import NetOptions
from yolo9000.training.optim import SGD, Adam, learning_rate, make_optimizer
from yolo9000.training.guard import StepGuard
from yolo9000.training.settings import TrainSettings
from yolo9000.training.trainer import Trainer, multiscale_sizes, size_for_iteration


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from yolo9000.data.synthetic_shapes import make_shapes
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes(root / "data", n_train=24, n_val=6, size=96, seed=3)


def settings(shapes, out, **kw):
    base = dict(cfg="yolov2-shapes", data=str(shapes["train"]), out=str(out), max_batches=6,
                batch=4, subdivisions=2, learning_rate=0.005, burn_in=2, policy="steps",
                steps=[4], scales=[0.1], size=96, workers=0, seed=5, save_every=0, log=True)
    base.update(kw)
    return TrainSettings(**base)


def parameters(net):
    return {f"{i}/{name}": p.copy() for i, name, p, g in net.parameters()}


def test_resume_is_exact(shapes, tmp_path):
    """2N iterations straight == N, stop, resume from the checkpoint, N more (augmentation,
    multi-scale, gradient accumulation and the lr schedule all on)."""
    straight = Trainer(settings(shapes, tmp_path / "a"), echo=lambda *_: None).setup()
    assert straight.multiscale and straight.augment.enabled
    straight.train()
    first = Trainer(settings(shapes, tmp_path / "b"), echo=lambda *_: None).setup()
    first.train(iterations=3)
    assert first.iteration == 3
    resumed = Trainer(settings(shapes, tmp_path / "b"), echo=lambda *_: None).setup(resume=True)
    resumed.resume()
    assert resumed.iteration == 3 and resumed.net.seen == 3 * 4
    resumed.train()
    a, b = parameters(straight.net), parameters(resumed.net)
    assert a.keys() == b.keys()
    changed = 0
    for key in a:
        assert np.abs(a[key] - b[key]).max() <= 1e-6, key
        changed += not np.array_equal(a[key], parameters(Network.from_cfg(
            str(tmp_path / "a" / "model.cfg"), seed=5))[key]) if key.endswith("weights") else 0
    assert changed > 0          # training did move the weights
    assert resumed.net.seen == straight.net.seen == 6 * 4
    rows = (tmp_path / "b" / "train_log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 6   # header + one row per iteration, none duplicated by the resume
    assert b"\r" not in (tmp_path / "b" / "train_log.csv").read_bytes()   # one line ending
    assert len({len(r.split(",")) for r in rows}) == 1
    assert (tmp_path / "a" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp


@pytest.mark.parametrize("subdivisions", [2, 3])
def test_parallel_subdivisions_equal_sequential(shapes, tmp_path, subdivisions):
    """Mini-batches computed side by side on replicas give the sequential run's weights,
    rolling batch-norm statistics and `seen` (3 subdivisions on 2 slots: a group of 2, then 1)."""
    kw = dict(batch=2 * subdivisions, subdivisions=subdivisions, max_batches=4)
    sequential = Trainer(settings(shapes, tmp_path / "seq", **kw), echo=lambda *_: None).setup()
    sequential.train()
    parallel = Trainer(settings(shapes, tmp_path / "par", parallel=2, **kw),
                       echo=lambda *_: None).setup()
    parallel.train()
    a, b = parameters(sequential.net), parameters(parallel.net)
    start = parameters(Network.from_cfg(str(tmp_path / "seq" / "model.cfg"), seed=5))
    for key in a:
        scale = max(1.0, float(np.abs(a[key]).max()))
        assert np.abs(a[key] - b[key]).max() <= 2e-5 * scale, key
    for key in ("0/weights", "0/rolling_mean", "0/rolling_variance"):
        assert not np.allclose(a[key], start[key])     # both the update and the statistics moved
    assert parallel.net.seen == sequential.net.seen == 4 * 2 * subdivisions
    log_a = (tmp_path / "seq" / "train_log.csv").read_text().splitlines()
    log_b = (tmp_path / "par" / "train_log.csv").read_text().splitlines()
    loss = [line.split(",")[4] for line in log_a[1:]], [line.split(",")[4] for line in log_b[1:]]
    np.testing.assert_allclose(np.float64(loss[0]), np.float64(loss[1]), rtol=1e-4)


TINY_CFG = ("[net]\nwidth=8\nheight=8\nchannels=2\n[convolutional]\nbatch_normalize=1\n"
            "filters=3\nsize=3\nstride=1\npad=1\nactivation=leaky\n")


def run_steps(opt, net, gradients, lr, batch):
    """Apply ``opt`` once per dict of gradients (parameter name -> array)."""
    for grads in gradients:
        for _, name, _, g in net.parameters():
            if g is not None:
                g[...] = grads[name]
        opt.step(lr=lr, batch=batch)


def random_gradients(net, steps, seed):
    rng = np.random.default_rng(seed)
    return [{name: rng.standard_normal(g.shape).astype(np.float32)
             for _, name, _, g in net.parameters() if g is not None} for _ in range(steps)]


def test_sgd_several_steps_match_darknet_update_rule():
    """Momentum, decay on conv weights only, and lr/batch, step after step (float64 reference);
    momentum and decay come from the cfg's [net] options."""
    net = Network.from_cfg(TINY_CFG)
    start = {name: p.astype(np.float64) for _, name, p, g in net.parameters() if g is not None}
    gradients = random_gradients(net, 4, seed=1)
    lr, batch, momentum, decay = 0.1, 4, 0.8, 0.01
    opt = make_optimizer("sgd", net, NetOptions(momentum=momentum, decay=decay))
    run_steps(opt, net, gradients, lr, batch)
    for name, p in start.items():
        v = np.zeros_like(p)
        for grads in gradients:
            v = v - grads[name] - (decay * batch * p if name == "weights" else 0)
            p = p + lr / batch * v
            v = momentum * v
        got = next(q for _, n, q, _ in net.parameters() if n == name)
        np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6, err_msg=name)


def reference_adamw(p, gradients, lr, batch, decay, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba's Adam on the batch-mean gradient, in the order of computation the paper
    gives at the end of its section 2 (bias corrections folded into the step size, eps added
    to sqrt(v)), with decoupled weight decay."""
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(gradients, start=1):
        g = g / batch
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        p = p - lr * decay * p
        p = p - step * m / (np.sqrt(v) + eps)
    return p


# Ordinary gradients, and gradients so small that eps matters (there Adam's step depends on
# the gradient's scale, so dividing the summed gradient by the batch shows)
@pytest.mark.parametrize("scale", [1.0, 1e-7])
def test_adam_steps_match_a_hand_written_adamw(scale):
    net = Network.from_cfg(TINY_CFG)
    start = {name: p.astype(np.float64) for _, name, p, g in net.parameters() if g is not None}
    gradients = [{k: g * np.float32(scale) for k, g in grads.items()}
                 for grads in random_gradients(net, 5, seed=2)]
    lr, batch, decay = 0.01, 4, 0.05
    run_steps(make_optimizer("adam", net, NetOptions(decay=decay)), net, gradients, lr, batch)
    for name, p in start.items():
        expected = reference_adamw(p, [g[name] for g in gradients], lr, batch,
                                   decay if name == "weights" else 0.0)
        got = next(q for _, n, q, _ in net.parameters() if n == name)
        # each step moves a parameter by up to about lr: a missing bias correction is
        # several times that, far outside the tolerance
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_optimizer_state_resumes_exactly(optimizer):
    """Steps 1-2, state saved into a fresh optimiser on a copy, then steps 3-4 on both."""
    net = Network.from_cfg(TINY_CFG)
    gradients = random_gradients(net, 4, seed=3)
    straight = optimizer(net)
    run_steps(straight, net, gradients[:2], 0.01, 2)
    copy = Network.from_cfg(TINY_CFG)
    for (_, _, a, _), (_, _, b, _) in zip(net.parameters(), copy.parameters()):
        b[...] = a
    resumed = optimizer(copy)
    resumed.load_state(straight.state())
    run_steps(straight, net, gradients[2:], 0.01, 2)
    run_steps(resumed, copy, gradients[2:], 0.01, 2)
    for (_, name, a, _), (_, _, b, _) in zip(net.parameters(), copy.parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_learning_rate_schedule():
    o = NetOptions(learning_rate=0.1, burn_in=100, power=4, policy="steps", steps=[200, 300],
                   scales=[0.1, 0.5])
    assert learning_rate(o, 50) == pytest.approx(0.1 * 0.5 ** 4)
    assert learning_rate(o, 150) == pytest.approx(0.1)
    assert learning_rate(o, 200) == pytest.approx(0.01)
    assert learning_rate(o, 350) == pytest.approx(0.005)


def test_multiscale_sizes():
    assert multiscale_sizes(416) == list(range(320, 609, 32))
    assert multiscale_sizes(160) == [128, 160, 192, 224]
    sizes = {size_for_iteration(i, 416, 0, True) for i in range(0, 2000)}
    assert sizes <= set(range(320, 609, 32)) and len(sizes) > 5
    assert len({size_for_iteration(i, 416, 0, True) for i in range(10, 20)}) == 1   # every 10
    assert size_for_iteration(7, 416, 0, False) == 416


KILL_SCRIPT = r"""
import sys
from yolo9000 import Network
net = Network.from_cfg("yolov2-tiny-voc", width=96, height=96)
i = 0
while True:
    net.seen = i
    net.save(sys.argv[1])
    i += 1
    print(i, flush=True)
"""


def test_killed_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path):
    path = tmp_path / "last.h5"
    script = tmp_path / "writer.py"
    script.write_text(KILL_SCRIPT)
    rng = np.random.default_rng(0)
    for trial in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                                text=True)
        proc.stdout.readline()                          # at least one complete checkpoint
        time.sleep(float(rng.uniform(0.05, 0.4)))       # then die somewhere inside a write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        net = Network.load(path)                        # the last completed file, intact
        assert net.output_shape == (125, 3, 3)


def test_trainer_learns_a_single_batch(shapes, tmp_path):
    """Overfitting a handful of images must drive the loss far down (targets, loss, backward
    and optimiser agree); without augmentation the loss must fall by over 80%."""
    s = settings(shapes, tmp_path / "c", max_batches=50, batch=4, subdivisions=1,
                 learning_rate=0.01, burn_in=10, steps=[1000], augment=False, multiscale=False)
    t = Trainer(s, echo=lambda *_: None).setup()
    t.train_set = t.train_set.subset([0, 1, 2, 3])
    t.train()
    rows = (tmp_path / "c" / "train_log.csv").read_text().strip().splitlines()[1:]
    losses = [float(r.split(",")[4]) for r in rows]
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:3])


def test_anchors_txt_is_the_line_written_into_the_cfg(shapes, tmp_path):
    s = settings(shapes, tmp_path / "r", anchors=[1.23456, 2.5, 3, 4.25])
    Trainer(s, echo=lambda *_: None).setup()
    line = (tmp_path / "r" / "anchors.txt").read_text()
    assert line == "anchors = 1.2346,2.5000,  3.0000,4.2500\n"
    cfg = (tmp_path / "r" / "model.cfg").read_text().splitlines()
    assert "anchors=" + line[len("anchors = "):].strip() in cfg


def test_input_size_not_a_multiple_of_32(shapes, tmp_path):
    from yolo9000.errors import UserError
    with pytest.raises(UserError, match="^input size must be a positive multiple of 32, got 100$"):
        Trainer(settings(shapes, tmp_path / "r", size=100), echo=lambda *_: None).setup()
    cfg = tmp_path / "odd.cfg"
    cfg.write_text("[net]\nwidth=96\nheight=80\nchannels=3\nbatch=2\nmax_batches=1\n\n"
                   "[convolutional]\nfilters=50\nsize=1\nstride=32\nactivation=linear\n\n"
                   "[region]\nanchors=1,1, 2,2\nnum=2\nclasses=5\ncoords=4\n")
    with pytest.raises(UserError, match="odd.cfg: input height must be a positive multiple of "
                                        "32, got 80"):
        Trainer(settings(shapes, tmp_path / "q", cfg=str(cfg), size=None),
                echo=lambda *_: None).setup()


def test_resume_reads_old_run_folders_and_names_unknown_settings(shapes, tmp_path, capsys):
    import json
    from yolo9000.cli import main
    run = tmp_path / "r"
    Trainer(settings(shapes, run, max_batches=1, multiscale=False),
            echo=lambda *_: None).setup().train()
    args = json.loads((run / "args.json").read_text())
    assert "extra" not in args
    args["extra"] = {}                        # what 0.1.0 wrote
    (run / "args.json").write_text(json.dumps(args))
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(run)])
    assert e.value.code == 0, capsys.readouterr().err
    args["colour"] = "blue"
    (run / "args.json").write_text(json.dumps(args))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and err == [f"error: {run / 'args.json'}: unknown training "
                                         "settings: colour"]


def test_checkpoints_keep_the_base_size_whatever_the_multiscale_size(shapes, tmp_path):
    from yolo9000.model.checkpoint import read_checkpoint_cfg
    # a seed whose last multi-scale size (iterations 10..11) is not the base size 96
    seed = next(s for s in range(100) if size_for_iteration(11, 96, s, True) != 96)
    run = Trainer(settings(shapes, tmp_path / "r", max_batches=12, val=str(shapes["val"]),
                           eval_every=12, seed=seed), echo=lambda *_: None).setup()
    run.train()
    assert run.net.width != 96                       # the network ended at another size
    for name in ("last.h5", "best.h5"):
        _, size = read_checkpoint_cfg(tmp_path / "r" / "weights" / name)
        assert tuple(size) == (96, 96), name


def checkpoint_arrays(path):
    """Every parameter and optimiser array of a checkpoint, read with h5py directly."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: out.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return out


DIVERGING = dict(learning_rate=1e6, burn_in=0, save_every=1, multiscale=False, max_batches=8)


@pytest.mark.parametrize("optimizer, parallel", [("sgd", 1), ("adam", 1), ("sgd", 2)])
def test_divergence_keeps_the_last_good_step(shapes, tmp_path, optimizer, parallel):
    import re
    import warnings
    from yolo9000.errors import UserError
    kw = dict(DIVERGING, optimizer=optimizer, parallel=parallel)
    run = Trainer(settings(shapes, tmp_path / "d", **kw), echo=lambda *_: None).setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # no NumPy RuntimeWarning on the way
        with pytest.raises(UserError, match="try a lower --lr") as e:
            run.train()
    failed = int(re.search(r"diverged at iteration (\d+)", str(e.value)).group(1))
    assert f"last.h5 holds iteration {failed - 1}" in str(e.value)
    stored = checkpoint_arrays(tmp_path / "d" / "weights" / "last.h5")
    assert all(np.isfinite(v).all() for v in stored.values())
    # the same run stopped by --iterations just before the failure, no guard involved
    good = Trainer(settings(shapes, tmp_path / "g", **kw), echo=lambda *_: None).setup()
    if failed == 1:
        good.save(tmp_path / "g" / "weights" / "last.h5")     # the untrained start
    else:
        good.train(iterations=failed - 1)
    expected = checkpoint_arrays(tmp_path / "g" / "weights" / "last.h5")
    assert stored.keys() == expected.keys()
    for key in expected:
        if key != "optimizer/bad_steps":
            assert np.array_equal(stored[key], expected[key]), key


def test_a_checkpoint_naming_the_best_score_best_map_resumes_it(shapes, tmp_path):
    """yolo9000 0.1.0 stored the best validation score as optimizer/best_map."""
    import h5py
    first = Trainer(settings(shapes, tmp_path / "r"), echo=lambda *_: None).setup()
    first.train(iterations=1)
    with h5py.File(tmp_path / "r" / "weights" / "last.h5", "r+") as f:
        assert f["optimizer/best_score"][()] == -1.0       # no evaluation yet
        del f["optimizer/best_score"]
        f["optimizer/best_map"] = np.float64(0.375)
    resumed = Trainer(settings(shapes, tmp_path / "r"), echo=lambda *_: None).setup(resume=True)
    resumed.resume()
    assert resumed.best_score == 0.375 and resumed.iteration == 1


def test_max_bad_steps_skips_batches_without_a_trace(shapes, tmp_path, capsys):
    from yolo9000.errors import UserError
    stopped = Trainer(settings(shapes, tmp_path / "a", **DIVERGING), echo=lambda *_: None).setup()
    with pytest.raises(UserError, match=r"diverged at iteration (\d+)") as first:
        stopped.train()
    failed = stopped.iteration + 1
    skipping = Trainer(settings(shapes, tmp_path / "b", max_bad_steps=2, **DIVERGING),
                       echo=lambda *_: None).setup()
    with pytest.raises(UserError, match=f"diverged at iteration {failed + 2} "):
        skipping.train()
    err = capsys.readouterr().err
    assert f"iteration {failed}: " in err and "batch skipped (2 of at most 2)" in err
    a = checkpoint_arrays(tmp_path / "a" / "weights" / "last.h5")
    b = checkpoint_arrays(tmp_path / "b" / "weights" / "last.h5")
    for key in a:                    # skipped batches changed no weight, statistic or buffer
        if key.startswith("layers/") or key.startswith("optimizer/velocity"):
            assert np.array_equal(a[key], b[key]), key
    assert b["optimizer/iteration"] == failed + 1 and b["optimizer/bad_steps"] == 2


@pytest.mark.parametrize("lr, optimizer, problem", [
    (1e39, "sgd", "non-finite"),                       # overflows float32
    (1e6, "sgd", "times the size of the weights"),     # the repro: finite, wrecked weights
    (1e6, "adam", "times the size of the weights")])
def test_resume_a_diverged_run_with_a_lower_lr(shapes, tmp_path, lr, optimizer, problem):
    from conftest import run_installed
    from yolo9000.errors import UserError
    run = tmp_path / "r"
    # the very first update is refused, so last.h5 is the initial model
    trainer = Trainer(settings(shapes, run, **dict(DIVERGING, learning_rate=lr, max_batches=3,
                                                   optimizer=optimizer)),
                      echo=lambda *_: None).setup()
    initial = parameters(trainer.net)
    with pytest.raises(UserError, match="diverged at iteration 1 .*holds iteration 0") as e:
        trainer.train()
    assert problem in str(e.value)
    stored = checkpoint_arrays(run / "weights" / "last.h5")
    for key, value in initial.items():
        i, name = key.split("/")
        assert np.array_equal(stored[f"layers/{int(i):03d}/{name}"], value), key
    result = run_installed("train", "--resume", run, "--lr", "0.005", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "lr 0.005" in result.stdout
    resumed = checkpoint_arrays(run / "weights" / "last.h5")
    assert resumed["optimizer/iteration"] == 3
    assert all(np.isfinite(v).all() for v in resumed.values())
    assert '"learning_rate": 0.005' in (run / "args.json").read_text()   # kept for the next resume


def start_installed(*args, cwd):
    """The installed script in the background, with run_installed's clean environment."""
    from conftest import INSTALLED_SCRIPT
    env = {"PATH": f"{INSTALLED_SCRIPT.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
           "HOME": str(cwd), "LANG": "C.UTF-8", "YOLO9000_THREADS": "1"}
    return subprocess.Popen([str(INSTALLED_SCRIPT), *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def wait_for_iterations(run, count, proc, timeout=60):
    """Until train_log.csv has `count` rows (the trainer flushes one per iteration)."""
    log = run / "train_log.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > count:
            return
        time.sleep(0.02)
    raise AssertionError(f"no {count} iterations: {proc.poll()} {proc.communicate()}")


@pytest.mark.parametrize("sig, workers", [(signal.SIGINT, 0), (signal.SIGINT, 2),
                                          (signal.SIGTERM, 0)])
def test_a_signal_saves_last_h5_and_exits_130(shapes, tmp_path, sig, workers):
    from conftest import run_folder_args, run_installed
    run = tmp_path / "runs" / "r"
    proc = start_installed("train", "--cfg", "yolov2-shapes", "--data", shapes["train"],
                           "--size", 64, "--batch", 2, "--max-batches", 1000, "--save-every", 0,
                           "--workers", workers, "--no-multiscale", *run_folder_args(run),
                           cwd=tmp_path)
    try:
        wait_for_iterations(run, 3, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    last_line = err.strip().splitlines()[-1]
    stopped = int(checkpoint_arrays(run / "weights" / "last.h5")["optimizer/iteration"])
    assert stopped >= 3
    assert last_line == f"interrupted at iteration {stopped}; resume with --resume {run}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    resumed = run_installed("train", "--resume", run, "--iterations", 1, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at iteration {stopped}" in resumed.stdout
    assert checkpoint_arrays(run / "weights" / "last.h5")["optimizer/iteration"] == stopped + 1


def temp_files(folder):
    return sorted(p.name for p in folder.glob(".*.tmp"))


def test_stale_checkpoint_temps_are_removed_at_start_and_resume(shapes, tmp_path):
    run = tmp_path / "r"
    weights = run / "weights"
    planted = [".last.h5.k9x2_a.tmp", ".best.h5.0q1w.tmp"]

    def plant():
        weights.mkdir(parents=True, exist_ok=True)
        for name in planted:
            (weights / name).write_bytes(b"\x89HDF\r\n\x1a\n partial")
        (weights / ".notes.txt.ab12.tmp").write_text("not a checkpoint of ours")

    plant()
    messages = []
    trainer = Trainer(settings(shapes, run, max_batches=1, multiscale=False),
                      echo=messages.append).setup()
    assert temp_files(weights) == [".notes.txt.ab12.tmp"]
    assert sum("removed an unfinished checkpoint" in m for m in messages) == 2
    trainer.train()
    plant()
    Trainer(settings(shapes, run, max_batches=1, multiscale=False),
            echo=lambda *_: None).setup(resume=True).resume()
    assert temp_files(weights) == [".notes.txt.ab12.tmp"]


def test_checkpoints_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", str(source)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    Network.from_cfg("yolov2-shapes", width=64, height=64).save(tmp_path / "last.h5")
    renamed = next(i for i, (kind, _) in enumerate(events) if kind == "replace")
    assert ("fsync", events[renamed][1]) in events[:renamed]


def test_kill_9_loop_leaves_no_temp_files_and_resumes(shapes, tmp_path):
    from conftest import run_folder_args, run_installed
    run = tmp_path / "runs" / "r"
    weights = run / "weights"
    rng = np.random.default_rng(7)
    proc = start_installed("train", "--cfg", "yolov2-shapes", "--data", shapes["train"],
                           "--size", 64, "--batch", 2, "--max-batches", 1000, "--save-every", 1,
                           "--workers", 0, "--no-multiscale", *run_folder_args(run), cwd=tmp_path)
    iteration = 0
    for kill in range(3):
        try:
            wait_for_iterations(run, iteration + 2, proc)
            time.sleep(float(rng.uniform(0.0, 0.3)))
        finally:
            proc.kill()
            proc.communicate()
        resumed = run_installed("train", "--resume", run, "--iterations", 1, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert temp_files(weights) == []
        iteration = int(checkpoint_arrays(weights / "last.h5")["optimizer/iteration"])
        proc = start_installed("train", "--resume", run, cwd=tmp_path)
    proc.kill()
    proc.communicate()


def test_a_refused_step_after_good_ones_restores_the_step_before(shapes, tmp_path, monkeypatch):
    """The snapshot buffers are refreshed every step: refusing step 3 puts back the state after
    step 2 (weights, batch-norm statistics, optimiser state), not an older one."""
    from yolo9000.errors import UserError
    kw = dict(optimizer="adam", save_every=1, multiscale=False, max_batches=6)
    run = Trainer(settings(shapes, tmp_path / "d", **kw), echo=lambda *_: None).setup()
    real = StepGuard.non_finite_step
    monkeypatch.setattr(StepGuard, "non_finite_step", lambda guard, parts: (
        "refused for the test" if run.iteration == 2 else real(guard, parts)))
    with pytest.raises(UserError, match="diverged at iteration 3 .*holds iteration 2"):
        run.train()
    monkeypatch.undo()
    good = Trainer(settings(shapes, tmp_path / "g", **kw), echo=lambda *_: None).setup()
    good.train(iterations=2)
    stored = checkpoint_arrays(tmp_path / "d" / "weights" / "last.h5")
    expected = checkpoint_arrays(tmp_path / "g" / "weights" / "last.h5")
    assert stored.keys() == expected.keys()
    for key in expected:
        assert np.array_equal(stored[key], expected[key]), key


REPLICA_RUN = """
import hashlib, sys, time
from yolo9000.kernels import threads
# the look-up of BLAS's symbols made slow, so that the two replicas' first steps overlap it
# (as they did by chance in the demo), or made before training ("warm")
find = threads._blas_functions_named
threads._blas_functions_named = lambda *names: time.sleep(0.2) or find(*names)
if sys.argv[3] == "warm":
    threads.sgemm_address(), threads.blas_thread_functions()
from yolo9000.training.settings import TrainSettings
from yolo9000.training.trainer import Trainer
settings = TrainSettings(cfg="yolov2-shapes", data=sys.argv[1], out=sys.argv[2], max_batches=3,
                         batch=8, subdivisions=2, parallel=2, learning_rate=0.004, burn_in=0,
                         size=96, workers=0, seed=5, save_every=0, optimizer="adam", log=False)
trainer = Trainer(settings, echo=lambda *_: None).setup()
trainer.train()
digest = hashlib.sha256()
for _, _, p, _ in trainer.net.parameters():
    digest.update(p.tobytes())
print(digest.hexdigest())
"""


def test_parallel_subdivisions_are_reproducible_bit_for_bit(shapes, tmp_path):
    """The same training with two mini-batches side by side (replica threads), each run in a
    fresh process as `yolo9000 demo` is, gives the same weights to the bit, and the same as a
    process that looked BLAS up before training. A process's first step is where both
    replicas look BLAS up at once: before that look-up was made thread-safe, the second could
    find no sgemm and take another kernel (4 demo runs gave 3 different first steps)."""
    digests = {}
    for k, start in enumerate(("cold", "cold", "warm")):
        run = subprocess.run([sys.executable, "-c", REPLICA_RUN, str(shapes["train"]),
                              str(tmp_path / f"run{k}"), start], capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        digests[f"{start} {k}"] = run.stdout.split()[-1]
    assert len(set(digests.values())) == 1, digests
