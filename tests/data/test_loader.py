"""Tests of the batch loader: determinism across workers/resume, errors, clean shutdown."""
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from yolo9000.data import loader as loader_module
from yolo9000.data.augment import AugmentConfig
from yolo9000.errors import UserError
from yolo9000.data.loader import Batch, BatchLoader
from conftest import VOC_SAMPLE



def make_records(folder: Path, n=10, boxes_per_image=2):
    """n small JPEGs with a bright rectangle each, and ImageRecord-like records."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        img[h // 4: h // 2, w // 4: 3 * w // 4] = (250, 30, 30)
        path = folder / f"img{i:02d}.jpg"
        Image.fromarray(img).save(path, quality=95)
        boxes = np.tile(np.array([[0.5, 0.375, 0.5, 0.25]], np.float32), (boxes_per_image, 1))
        boxes[:, 0] += np.linspace(-0.1, 0.1, boxes_per_image, dtype=np.float32)
        records.append(SimpleNamespace(path=str(path), width=w, height=h, boxes=boxes,
                                       classes=np.arange(boxes_per_image) % 3,
                                       difficult=np.zeros(boxes_per_image, bool)))
    return records


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return make_records(tmp_path_factory.mktemp("loader_images"))


def sizes(index):
    return [(64, 64), (96, 64), (64, 96)][index % 3]


def assert_same_batch(a: Batch, b: Batch):
    assert a.index == b.index and a.paths == b.paths and a.record_indices == b.record_indices
    assert np.array_equal(a.images, b.images)
    assert len(a.truths) == len(b.truths)
    for ta, tb in zip(a.truths, b.truths):
        assert np.array_equal(ta, tb)


def children_alive(pids):
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


# --------------------------------------------------------------------------- which images

def test_each_epoch_is_a_permutation_and_batches_straddle_epochs(records):
    loader = BatchLoader(records, batch_size=4, augment=AugmentConfig(), seed=3, workers=0)
    slots = [k for i in range(5) for k in loader.members(i)]     # 20 slots = 2 epochs of 10
    assert sorted(slots[:10]) == list(range(10)) and sorted(slots[10:]) == list(range(10))
    assert slots[:10] != slots[10:]                              # reshuffled per epoch
    assert loader.epoch_of(2) == 0 and loader.epoch_of(3) == 1   # batch 2 = slots 8..11
    expected = np.random.default_rng([3, 1]).permutation(10)
    assert slots[10:] == expected.tolist()
    unshuffled = BatchLoader(records, 4, AugmentConfig(), workers=0, shuffle=False)
    assert [k for i in range(3) for k in unshuffled.members(i)] == list(range(10)) + [0, 1]


def test_get_builds_the_requested_batch(records):
    loader = BatchLoader(records, batch_size=3, augment=AugmentConfig(), seed=0, workers=0)
    batch = loader.get(4, 96, 64)
    assert batch.images.shape == (3, 3, 64, 96) and batch.images.dtype == np.float32
    assert (batch.width, batch.height) == (96, 64)
    assert batch.paths == [records[k].path for k in loader.members(4)]
    for truth in batch.truths:
        assert truth.dtype == np.float32 and truth.shape[1] == 5
        assert np.all((truth[:, :4] >= 0) & (truth[:, :4] <= 1))


# --------------------------------------------------------------------------- determinism

def test_same_batches_inline_prefetched_and_after_resume(records):
    config = AugmentConfig(jitter=0.2, hue=0.1, saturation=1.5, exposure=1.5)
    with BatchLoader(records, 4, config, seed=7, workers=0) as inline:
        reference = [inline.get(i, *sizes(i)) for i in range(6)]
    with BatchLoader(records, 4, config, seed=7, workers=2, prefetch=3) as pool:
        got = list(pool.iterate(0, 6, sizes))
        assert [i for i, _ in got] == list(range(6))
        for (_, batch), ref in zip(got, reference):
            assert_same_batch(batch, ref)
        # the same loader again, resuming in the middle
        for (i, batch) in pool.iterate(3, 6, sizes):
            assert_same_batch(batch, reference[i])
    with BatchLoader(records, 4, config, seed=7, workers=1) as fresh:   # a resumed run
        for (i, batch) in fresh.iterate(4, 6, sizes):
            assert_same_batch(batch, reference[i])
    with BatchLoader(records, 4, config, seed=8, workers=0) as other_seed:
        assert not np.array_equal(other_seed.get(0, 64, 64).images, reference[0].images)
    # augmentation really differs between batches that contain the same images
    assert not np.array_equal(reference[0].images[0], reference[3].images[0])


def test_spawn_workers_give_the_same_batches(records, monkeypatch):
    monkeypatch.setattr(loader_module, "_context", lambda: mp.get_context("spawn"))
    config = AugmentConfig()
    with BatchLoader(records, 2, config, seed=1, workers=0) as inline:
        reference = [inline.get(i, 64, 64) for i in range(2)]
    with BatchLoader(records, 2, config, seed=1, workers=1) as pool:
        for i, batch in pool.iterate(0, 2, lambda i: (64, 64)):
            assert_same_batch(batch, reference[i])


def test_unbounded_iteration_and_abandoned_iterator(records):
    with BatchLoader(records, 2, AugmentConfig(), seed=0, workers=2) as pool:
        first = pool.iterate(0, None, sizes)
        seen = [next(first)[0] for _ in range(5)]
        assert seen == list(range(5))
        second = pool.iterate(10, 12, sizes)     # supersedes `first` mid-flight
        assert [i for i, _ in second] == [10, 11]
        with pytest.raises(RuntimeError, match="newer iterate"):
            next(first)


def test_max_boxes_keeps_a_seeded_subset(tmp_path):
    records = make_records(tmp_path, n=3, boxes_per_image=12)
    for workers in (0, 2):
        with BatchLoader(records, 3, AugmentConfig(jitter=0.0), seed=2, workers=workers,
                         max_boxes=5) as pool:
            (_, batch), = list(pool.iterate(0, 1, lambda i: (64, 64)))
            assert all(len(t) <= 5 for t in batch.truths)
            assert any(len(t) == 5 for t in batch.truths)
            if workers == 0:
                first = batch
            else:
                assert_same_batch(batch, first)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_raises_user_error_naming_it(tmp_path, workers):
    records = make_records(tmp_path, n=4)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    records[2].path = str(broken)
    with BatchLoader(records, 4, AugmentConfig(), workers=workers, shuffle=False) as pool:
        with pytest.raises(UserError) as info:
            for _ in pool.iterate(0, 3, lambda i: (64, 64)):
                pass
        assert "broken.jpg" in str(info.value)


def test_dead_worker_is_reported_not_waited_for(records):
    pool = BatchLoader(records, 2, AugmentConfig(), workers=2)
    try:
        it = pool.iterate(0, None, lambda i: (64, 64))
        next(it)
        for pid in pool.worker_pids():
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="died"):
            for _ in range(20):
                next(it)
    finally:
        pool.close()
    assert mp.active_children() == []


# --------------------------------------------------------------------------- shutdown

def test_close_leaves_no_children(records):
    pool = BatchLoader(records, 2, AugmentConfig(), workers=2)
    it = pool.iterate(0, 100, sizes)
    next(it)                         # workers busy with prefetched batches
    pids = pool.worker_pids()
    assert len(children_alive(pids)) == 2
    pool.close()
    pool.close()                     # idempotent
    assert children_alive(pids) == []
    assert mp.active_children() == []
    with pytest.raises(RuntimeError, match="closed"):
        pool.get(0, 64, 64)


def test_keyboard_interrupt_in_consumer_then_context_exit(records):
    with pytest.raises(KeyboardInterrupt):
        with BatchLoader(records, 2, AugmentConfig(), workers=2) as pool:
            for i, _ in pool.iterate(0, 100, sizes):
                pids = pool.worker_pids()
                if i == 2:
                    raise KeyboardInterrupt
    assert children_alive(pids) == []
    assert mp.active_children() == []


def test_ctrl_c_stops_a_training_process_and_its_workers(records, tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C does."""
    script = tmp_path / "consumer.py"
    paths = [r.path for r in records]
    script.write_text(textwrap.dedent(f"""
        import signal, sys, time
        import numpy as np
        from types import SimpleNamespace
        from yolo9000.data.augment import AugmentConfig
        # Ctrl-C as a terminal's process takes it, also where this test runs as a background
        # job of a shell without job control (which starts its children with SIGINT ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from yolo9000.data.loader import BatchLoader
        records = [SimpleNamespace(path=p, boxes=np.array([[.5, .5, .2, .2]], np.float32),
                                   classes=np.array([0])) for p in {paths!r}]
        with BatchLoader(records, 2, AugmentConfig(), workers=2) as pool:
            for i, batch in pool.iterate(0, None, lambda i: (64, 64)):
                if i == 0:
                    print(*pool.worker_pids(), flush=True)
                time.sleep(0.02)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in stderr
    deadline = time.monotonic() + 5       # orphans would be reparented, not vanish
    while children_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children_alive(pids) == []


# --------------------------------------------------------------------------- real data

def test_voc_sample_batches(tmp_path):
    voc = VOC_SAMPLE
    if not voc.exists():
        pytest.skip(f"the VOC 2007 sample is not at {VOC_SAMPLE}")
    from yolo9000.data import formats
    ds = formats.load_dataset(voc, format="voc")
    with BatchLoader(ds, 4, AugmentConfig(enabled=False), workers=0, shuffle=False) as plain:
        batch = plain.get(0, 128, 128)
    rec = ds.records[0]
    assert batch.paths[0] == rec.path
    # without augmentation the truth is the record's boxes letterboxed, in the same order
    scale = min(128 / rec.width, 128 / rec.height)
    new_w, new_h = int(rec.width * scale), int(rec.height * scale)
    expected_cx = (rec.boxes[:, 0] * new_w + (128 - new_w) // 2) / 128
    truth = batch.truths[0]
    assert truth[:, 4].tolist() == rec.classes.tolist()
    assert np.allclose(truth[:, 0], expected_cx, atol=1.0 / 128)
