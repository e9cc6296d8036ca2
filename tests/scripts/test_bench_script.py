"""Smoke test of scripts/bench.py on the golden mini network (64x64): it runs, the JSON holds
every figure, and the figures are positive. No timing is judged (the machine is shared)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOLDEN

from conftest import REPO
SCRIPT = REPO / "scripts" / "bench.py"


def run_bench(*args, cwd):
    # one thread: the smoke run stays seconds long even when other jobs load the machine
    proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--quick", "--threads", "1"],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def mini_cfg():
    return GOLDEN / "mini.cfg"


@pytest.fixture(scope="module")
def report(mini_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out.json"
    proc = run_bench("forward", "train", "memory", "--profile", "--cfg", str(mini_cfg),
                     "--json", str(out), cwd=out.parent)
    return json.loads(out.read_text()), proc.stdout


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_timing_rows(report):
    data, stdout = report
    rows = data["results"]
    whats = [r["what"] for r in rows]
    assert whats == ["forward mini 64 b1", "forward mini 64 b2", "train iter mini 64 b2",
                     "fwd+bwd mini 64 b2", "fwd+bwd mini 64 b1"]
    torch_side = data["settings"]["torch"]
    for r in rows:
        assert positive(r["ours_ms"]) and positive(r["gflops"])
        assert len(r["ours_times_ms"]) == 2 and all(positive(t) for t in r["ours_times_ms"])
        assert r["ours_min_ms"] <= r["ours_ms"] <= r["ours_max_ms"]
        if torch_side:
            assert positive(r["torch_ms"]) and positive(r["ratio"])
            assert r["ratio"] == pytest.approx(r["ours_ms"] / r["torch_ms"])
        else:
            assert r["torch_ms"] is None and r["ratio"] is None
        assert r["what"] in stdout
    for r in rows[2:]:
        assert r["loss_finite"] and positive(r["ours_loss_ms"])


def test_torch_sees_the_same_network(report):
    data, _ = report
    if not data["settings"]["torch"]:
        pytest.skip("torch not importable")
    for r in data["results"][:2]:
        # same weights and input on both sides, so the outputs agree to float32 rounding
        assert r["max_abs_diff_vs_torch"] < 1e-3 * max(1.0, r["max_abs_output"])


def test_memory_and_environment(report):
    data, stdout = report
    mem = data["memory"]
    torch_side = ["torch-train"] if data["settings"]["torch"] else []
    assert [m["mode"] for m in mem] == ["inference", "train"] + torch_side
    for m in mem:
        assert positive(m["peak_mb"]) and positive(m["weights_mb"]) and positive(m["base_rss_mb"])
        assert m["peak_mb"] >= m["base_rss_mb"]
    assert mem[0]["budget_mb"] == pytest.approx(1.5 * mem[0]["weights_mb"] + 300)
    env = data["environment"]
    assert env["threads_ours"] == 1 and isinstance(env["openmp_enabled"], bool)
    assert set(env["kernel_paths"]) == {"sse2", "avx2_fma", "avx512f", "avx512_bf16", "amx_bf16",
                                        "avx512_vnni", "amx_int8", "amx_refused",
                                        "portable_kernels"}
    assert len(data["load_average_start"]) == 3 and len(data["load_average_end"]) == 3
    assert "load average at start" in stdout and "load average at end" in stdout


def test_profile_tables(report, mini_cfg):
    from yolo9000.model.network import Network
    net = Network.from_cfg(str(mini_cfg))
    n_layers = len(net.layers)
    data, stdout = report
    titles = [p["title"].split(" mini")[0] for p in data["profile"]]
    assert titles == ["forward", "forward(train=True)", "backward", "update"]
    fwd, train_fwd, bwd, update = data["profile"]
    assert [r["type"] for r in update["layers"]] == ["sgd", "zero"]
    assert [r["index"] for r in fwd["layers"]] == list(range(n_layers))
    # the walks are the network's: the maxpools its convolutions pool in their epilogues
    # (mini's first two; in training, in their batch norm pass) take no time of their own
    assert net.pooled_pairs == {0, 2}
    assert [fwd["layers"][i]["ms"] for i in (1, 3)] == [0, 0]
    assert fwd["layers"][5]["ms"] > 0
    assert [train_fwd["layers"][i]["ms"] for i in (1, 3)] == [0, 0]
    assert [train_fwd["layers"][i]["path"] for i in (1, 3)] == [
        "in layer 0's batch norm pass", "in layer 2's batch norm pass"]
    assert train_fwd["layers"][5]["ms"] > 0
    # backward starts below the region layer and ends at the first convolution; those two
    # maxpools' convolutions unpool their gradient
    assert [r["index"] for r in bwd["layers"]] == [
        i for i in range(n_layers - 1) if i not in (1, 3)]
    for p in data["profile"]:
        assert sum(r["percent"] for r in p["layers"]) == pytest.approx(100)
        assert positive(p["total_ms"])
    assert "profile: forward mini 64 b1" in stdout
    # as Network's forward: the 2x2/2 maxpools after a convolution taken in its epilogue,
    # their time on the convolution's row
    pooled = [r for r in fwd["layers"] if "pooled_by" in r]
    assert pooled and all(r["type"] == "max" and r["ms"] == 0
                          and r["path"] == f"in layer {r['index'] - 1}'s epilogue"
                          and r["pooled_by"] == r["index"] - 1 for r in pooled)
    assert all(positive(fwd["layers"][r["pooled_by"]]["ms"]) for r in pooled)


def test_bad_benchmark_name_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "fowrard"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "unknown benchmark 'fowrard'" in proc.stderr


def test_anchors_section(tmp_path):
    out = tmp_path / "a.json"
    proc = run_bench("anchors", "--no-torch", "--json", str(out), cwd=tmp_path)
    a = json.loads(out.read_text())["anchors"]
    assert a["n_boxes"] == 100_000 and a["k"] == 9 and a["repeats"] == 2
    assert positive(a["median_s"]) and 0 < a["avg_iou"] <= 1
    assert "anchors k-means: 100,000 boxes" in proc.stdout


def test_onnx_section(mini_cfg, tmp_path):
    out = tmp_path / "onnx.json"
    proc = run_bench("onnx", "--no-torch", "--cfg", str(mini_cfg), "--json", str(out),
                     cwd=tmp_path)
    section = json.loads(out.read_text())["onnx"]
    try:
        import onnx  # noqa: F401
    except ImportError:
        assert "onnx is not installed" in section["skipped"] and not section["rows"]
        return
    rows = section["rows"]
    assert [r["what"] for r in rows] == ["onnx mini 64 b1", "onnx mini 64 b2"]
    for r in rows:
        assert positive(r["ours_ms"]) and len(r["ours_times_ms"]) == 2
        for engine in ("onnxruntime", "openvino"):
            if engine in r["skipped"]:
                assert r[f"{engine}_ms"] is None and "not installed" in r["skipped"][engine]
            else:
                assert positive(r[f"{engine}_ms"]) and positive(r[f"{engine}_ratio"])
                # the engine ran the same network on the same input
                assert r[f"max_abs_diff_{engine}"] < 1e-4 * max(1.0, r["max_abs_output"])
        assert r["what"] in proc.stdout


def test_video_section(tmp_path, mini_cfg):
    pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")
    out = tmp_path / "v.json"
    proc = run_bench("video", "--no-torch", "--cfg", str(mini_cfg), "--json", str(out),
                     cwd=tmp_path)
    video = json.loads(out.read_text())["video"]
    assert video["clip"] == {"width": 640, "height": 360, "frames": 16, "rate": 30,
                             "codec": "libx264"}
    assert [r["what"] for r in video["rows"]] == ["video mini 64 b1 640x360",
                                                  "video mini 64 b2 640x360"]
    for r in video["rows"]:
        assert r["frames"] == 16 and positive(r["fps"]) and len(r["fps_runs"]) == 2
        assert set(r["stage_ms"]) == {"decode", "network", "draw", "encode"}
        assert all(positive(v) for v in r["stage_ms"].values())
        assert positive(r["forward_alone_ms"]) and positive(r["letterbox_alone_ms"])
        assert r["what"] in proc.stdout
