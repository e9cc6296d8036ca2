"""yolo9000 benchmarks: forward, training iteration, anchor k-means, peak memory, ONNX runtimes.

    python scripts/bench.py [forward train anchors memory onnx video] [--repeats 5] [--threads N]
                            [--json FILE] [--profile] [--quick] [--no-torch]
                            [--cfg CFG] [--size N|native] [--batch 8] [--precision fp32,bf16]

forward  median time per image and effective GFLOP/s (net.flops() / time) of yolov2-voc and
         yolov2-tiny-voc at 416x416, batch 1 and batch 8 (per-image time = batch time / 8).
train    one full training iteration of yolov2-tiny-voc at 416, batch 8: forward(train=True),
         region loss on random plausible truths (3 boxes per image), backward, SGD step; and
         forward + region loss + backward at batch 1. Then the small layers: the training
         iteration of darknet-mini (a classifier: softmax cross-entropy on random labels) at
         64 px, batch 64, PyTorch's gradients zeroed with set_to_none=True (issue 25's row).
         With --cfg, that cfg's rows only (a detector or a classifier).
anchors  scripts/bench_anchors.py's bench_anchors() (1M boxes, k=9, 10 restarts), if present.
memory   peak resident memory (VmHWM / ru_maxrss) of yolov2-voc inference at 416, batch 1, and
         of the yolov2-tiny-voc batch-8 training iteration, each in a fresh subprocess, next
         to the weights' size (4 bytes x every parameter incl. BN statistics) and the
         inference budget 1.5 x weights + 300 MB; with torch, PyTorch's training iteration
         the same way (its own fresh process: torch's libraries count, as for its users).
         --precision P[,P...] (fp32, bf16, int8, auto; default fp32): a row per precision,
         each saying (`paths`) how many convolutions take which path (Network.layer_paths).
         int8 runs a copy of the network made int8 as `convert --quantize int8` makes it,
         calibrated on CALIBRATION_INPUTS random inputs instead of images (the weights are
         random too; the rows say so).
onnx     the forward models exported by `yolo9000 export` (model/onnx_export.py, a dynamic
         batch) and run by ONNX Runtime and OpenVINO (CPU, fp32, the same threads as ours),
         and OpenVINO in bf16 (INFERENCE_PRECISION_HINT bf16, `openvino_bf16`) where the CPU
         has a bf16 unit; ours in each --precision (`ours_<precision>` beside fp32's `ours`)
         beside our own forward, interleaved, on the same input: median time per image at
         batch 1 and batch 8, and each engine's largest difference from our output. An engine
         that is not installed is skipped (so is the section without the onnx package).
video    `yolo9000 detect clip.mp4 --model yolov2-tiny-voc` as the command runs it
         (inference/video.annotate_video) on a 640x360 H.264 clip made here (VIDEO_FRAMES frames
         of moving shapes, 30 fps), at 416, batch 1 and the large batch: frames/s end to end
         (decode, letterbox, forward, NMS, draw, encode) and where the time goes: each stage's
         own time per frame (decode, draw and encode run on threads of their own, the
         letterbox on the decoding pool, all overlapping the forward), the letterbox and the
         forward alone on the clip's frames, and the frames/s the forward alone allows. The
         median of --repeats runs. Needs PyAV (the [video] extra); skipped without it.

Weights are random (the same file for us and PyTorch: tests/torch_darknet.py's
write_random_darknet_weights when torch is importable, otherwise numpy-random parameters).

PyTorch side by side (when `import torch` works): the same cfg built by tests/torch_darknet.py,
same weights, same input, torch.set_num_threads equal to ours. Runs are interleaved
(ours, torch, ours, torch, ...) so machine noise hits both alike; the figures are medians.
  forward: torch.no_grad(), batch-norm with rolling statistics.
  train:   batch-norm with batch statistics through F.batch_norm (what nn.BatchNorm2d runs; the
           darknet-exact hand-written form is for the equality tests, not for timing),
           loss = 0.5 * sum of squares of
           the network output (region activation included), autograd backward,
           torch.optim.SGD(momentum=.9, weight_decay=5e-4 on conv weights only, as darknet).
           Ours computes the real region loss instead, whose cost is reported separately
           (`ours_loss_ms` in the JSON) so the comparison can be read either way.
           Rows: `train iter` (forward, loss, backward, update) at the large batch, and
           `fwd+bwd` (no update) at the large batch and at batch 1.
Both sides skip the input gradient of the first convolution.

GFLOP/s for training counts the forward FLOPs plus, for every convolution, the weight-gradient
product and (except the first) the input-gradient product, each as many FLOPs as its forward.

--cfg CFG replaces every model with CFG (at its own [net] size unless --size is given); with
--quick (2 repeats, batch 2, 100k anchor boxes) it makes a seconds-long smoke run.

No timing here is asserted against anything: the machine may be shared, so the load average
is printed at the start and the end for readers to judge the numbers. On a loaded machine
compare with --threads 1: pools of threads that spin while waiting (OpenMP's and OpenBLAS's)
lose badly when other processes hold the cores.
"""
# yolo9000 first: it sets the OpenMP/OpenBLAS waiting policy (see yolo9000/__init__.py), which
# only takes effect before NumPy and torch load their thread pools; both sides then share it.
import yolo9000  # noqa: F401  isort: skip

import argparse
import collections
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
SCRIPTS = REPO / "scripts"

WHATS = ("forward", "train", "anchors", "memory", "onnx", "video")
FORWARD_MODELS = ("yolov2-voc", "yolov2-tiny-voc")
TRAIN_MODEL = "yolov2-tiny-voc"
# the small layers' training row: 64 px maps down to 2x2, a batch as the classifier trains
SMALL_TRAIN_MODEL, SMALL_TRAIN_SIZE, SMALL_TRAIN_BATCH = "darknet-mini", 64, 64
MEMORY_INFERENCE_MODEL = "yolov2-voc"
VIDEO_MODEL = "yolov2-tiny-voc"
VIDEO_SIZE = (640, 360)
VIDEO_RATE = 30
VIDEO_FRAMES = 150          # 5 s of video; 16 with --quick
BOXES_PER_IMAGE = 3
# repeated steps on one batch must keep the weights finite; the step's cost does not depend on lr
LEARNING_RATE = 1e-5
MOMENTUM, DECAY = 0.9, 5e-4
# region loss past darknet's 12800-image warm-up (the steady state of a training run)
SEEN = 100_000
MB = 2**20
THREAD_ENV_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                   "MKL_NUM_THREADS", "YOLO9000_THREADS")


# -- models, weights, inputs -------------------------------------------------------------------
def cfg_path(model):
    """A .cfg path for a bundled model name or a path (torch_darknet needs a real file)."""
    p = Path(model)
    if p.suffix == ".cfg" or p.exists():
        return p.resolve()
    from yolo9000.model.zoo import BUNDLED_DIR
    return BUNDLED_DIR / f"{model}.cfg"


def model_label(model):
    return Path(model).stem if str(model).endswith(".cfg") else str(model)


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def import_torch_darknet():
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import torch_darknet
    return torch_darknet


def randomise_parameters(net, seed):
    """numpy-random but plausible parameters (He-like weights, BN statistics near 1) when
    torch_darknet's weight writer is not available."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.kind != "conv":
            continue
        fan_in = layer.weights[0].size
        gain = 1.0 if layer.activation == "linear" else 2.0
        std = (0.85 if layer.batch_normalize else 1.0) * np.sqrt(gain / fan_in)
        layer.weights[...] = rng.standard_normal(layer.weights.shape, np.float32) * np.float32(std)
        layer.biases[...] = rng.standard_normal(layer.biases.shape, np.float32) * np.float32(0.1)
        if layer.batch_normalize:
            p = layer.params
            p["scales"][...] = rng.uniform(0.5, 1.5, p["scales"].shape)
            p["rolling_mean"][...] = rng.standard_normal(p["rolling_mean"].shape) * 0.1
            p["rolling_variance"][...] = rng.uniform(0.5, 1.5, p["rolling_variance"].shape)
    net.weights_changed()      # written in place: drop anything derived from the old weights


class WeightStore:
    """One random weights file per model for the whole run (shared with torch and the memory
    subprocesses); None per model when torch_darknet cannot be imported."""

    def __init__(self, folder, use_file):
        self.folder = Path(folder)
        self.use_file = use_file
        self.paths = {}

    def path(self, model):
        if not self.use_file:
            return None
        if model not in self.paths:
            td = import_torch_darknet()
            out = self.folder / f"{model_label(model)}.weights"
            td.write_random_darknet_weights(cfg_path(model), out, seed=0)
            self.paths[model] = out
        return self.paths[model]


def build_ours(model, size, weights):
    from yolo9000.model.network import Network
    w, h = size if size else (None, None)
    net = Network.from_cfg(str(cfg_path(model)), width=w, height=h)
    if weights is not None:
        net.load_weights(weights)
    else:
        randomise_parameters(net, seed=0)
    return net


# random inputs an int8 copy of a benchmark network is calibrated on (it has no images)
CALIBRATION_INPUTS = 4
CALIBRATED_ON = f"calibrated on {CALIBRATION_INPUTS} random inputs"


def quantize_on_random_inputs(net):
    """`net` made int8 (model/quantization.py's percentile rule, the ends kept fp32) with its
    input scales calibrated on random inputs: the benchmark's weights are random, and so is
    what it feeds them."""
    from yolo9000.model import quantization
    layers = quantization.layers_to_quantize(net)
    observed = quantization.Calibration(net, layers)
    for seed in range(CALIBRATION_INPUTS):
        observed.observe(random_input(net, 1, seed=100 + seed))
    quantization.quantize_network(net, observed.input_scales(), "percentile",
                                  quantization.PERCENTILE,
                                  {"directory": "random inputs (scripts/bench.py)",
                                   "images": CALIBRATION_INPUTS})
    return net


def network_for(precision, model, opts, store, net):
    """The network to run `precision` on: `net` itself, or for int8 an int8 copy (so `net`
    keeps its fp32 weights for the other precisions)."""
    if precision != "int8":
        return net
    return quantize_on_random_inputs(build_ours(model, opts.size, store.path(model)))


def precision_note(net):
    """What runs, and for an int8 copy what it was calibrated on."""
    note = net.precision_note
    return f"{note} ({CALIBRATED_ON})" if net.quantization is not None else note


def build_torch(model, net, weights):
    td = import_torch_darknet()
    tnet = td.build_torch_net(cfg_path(model), net.width, net.height, return_all=False)
    td.load_darknet_weights(tnet, weights)
    return tnet


def random_input(net, batch, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((batch,) + net.input_shape, dtype=np.float32)


def random_truths(region, batch, seed=2):
    """BOXES_PER_IMAGE boxes per image, [cx, cy, w, h, class] normalised, sizes 5-50 %."""
    rng = np.random.default_rng(seed)
    truths = []
    for _ in range(batch):
        wh = rng.uniform(0.05, 0.5, (BOXES_PER_IMAGE, 2))
        centre = rng.uniform(wh / 2, 1 - wh / 2)
        cls = rng.integers(0, region.classes, (BOXES_PER_IMAGE, 1))
        truths.append(np.hstack([centre, wh, cls]).astype(np.float32))
    return truths


def weights_bytes(net):
    """4 bytes x every parameter, BN rolling statistics included (what a .weights file holds)."""
    return 4 * sum(p.size for _, _, p, _ in net.parameters())


def train_flops(net):
    """Per image: forward + weight gradient + input gradient (skipped for the first conv)."""
    total = 0.0
    for i, layer in enumerate(net.layers):
        f = layer.flops()
        total += f
        if layer.kind == "conv":
            total += f * (2 if i > 0 else 1)
    return total


# -- one training step, ours and torch's ------------------------------------------------------
class Objective:
    """What a training step of `net` starts its backward from: the region loss on random
    plausible truths (a detector), or the softmax cross-entropy on random labels (a
    classifier ending in [softmax], as ClassificationTask.train_minibatch computes it)."""

    def __init__(self, net, batch, seed=2):
        last = net.layers[-1]
        self.region = last if last.kind == "region" else None
        if self.region is not None:
            self.truths = random_truths(last, batch, seed)
            self.start = len(net.layers) - 2
            return
        index = net.classifier
        if index is None or net.layers[index].tree is not None:
            raise SystemExit(f"{net.source}: train needs a detector ([region]) or a classifier "
                             "ending in a plain [softmax]")
        classes = math.prod(net.layers[index].out_shape)
        self.labels = np.random.default_rng(seed).integers(0, classes, batch)
        self.start = index - 1

    def loss(self, output):
        """(loss, gradient at the output of layer self.start)."""
        if self.region is not None:
            loss, grad_raw, _ = self.region.loss(self.truths, SEEN)
            return loss, grad_raw
        from yolo9000.layers.cost import softmax_cross_entropy
        loss, grad, _ = softmax_cross_entropy(output, self.labels)
        return loss, grad


class OursTrainer:
    def __init__(self, net, x, objective, update=True):
        from yolo9000.training.optim import SGD
        self.net, self.x, self.objective, self.update = net, x, objective, update
        self.sgd = SGD(net, momentum=MOMENTUM, decay=DECAY) if update else None
        self.loss_seconds = []
        self.last_loss = None

    def step(self):
        net = self.net
        net.zero_grads()
        output = net.forward(self.x, train=True)
        t = time.perf_counter()
        loss, grad = self.objective.loss(output)
        self.loss_seconds.append(time.perf_counter() - t)
        net.backward(grad, start=self.objective.start, input_grad=False)
        if self.update:
            self.sgd.step(LEARNING_RATE, self.x.shape[0])
        self.last_loss = float(loss)


class TorchTrainer:
    def __init__(self, tnet, x, update=True, set_to_none=False):
        import torch
        td = import_torch_darknet()
        # idiomatic batch norm (F.batch_norm, as nn.BatchNorm2d): the PyTorch a user would run
        td.set_train_mode_bn(tnet, True, update_rolling=True, idiomatic=True)
        self.tnet, self.update, self.set_to_none = tnet, update, set_to_none
        self.x = torch.from_numpy(x)
        decayed = [p for n, p in tnet.named_parameters() if n.endswith(".weight")]
        others = [p for n, p in tnet.named_parameters() if not n.endswith(".weight")]
        self.opt = torch.optim.SGD([{"params": decayed, "weight_decay": DECAY},
                                    {"params": others, "weight_decay": 0.0}],
                                   lr=LEARNING_RATE, momentum=MOMENTUM)
        self.last_loss = None

    def step(self):
        self.opt.zero_grad(set_to_none=self.set_to_none)
        out = self.tnet(self.x)
        loss = 0.5 * out.square().sum()
        loss.backward()
        if self.update:
            self.opt.step()
        self.last_loss = float(loss.detach())


# -- timing ------------------------------------------------------------------------------------
def fresh_block_pool():
    """Empty the block pool (main runs with it on, as training does) before a comparison, as
    a new process would start: blocks freed by the cases timed before would fill it with
    sizes this one never asks for and turn its own away, fresh pages faulted in on every call
    (measured: 1,200-1,300 faults a call and 62 -> 67-71 ms/img on yolov2-voc b8 in the onnx
    rows, which followed every other case)."""
    from yolo9000.kernels import core
    from yolo9000.kernels.threads import KEEP_FREED_BYTES
    core.use_block_pool(0)
    core.use_block_pool(KEEP_FREED_BYTES)


def time_interleaved(runs, repeats, warmup=1):
    """{name: [seconds...]} timing each callable once per round, rounds interleaved, from an
    empty block pool."""
    fresh_block_pool()
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runs}
    gc.collect()
    for _ in range(repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def summarise(seconds, divide=1):
    """Medians etc. in ms, each time divided by `divide` (the batch, for per-image figures)."""
    ms = [1000.0 * s / divide for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "times_ms": ms}


def make_row(what, model, size, batch, unit, flops_per_image, ours, torch_=None, extra=None):
    """One result row; `ours`/`torch_` are summaries of per-unit times."""
    per_image_ms_factor = batch if unit == "ms/iter" else 1
    row = {"what": what, "model": model, "width": size[0], "height": size[1], "batch": batch,
           "unit": unit, "ours_ms": ours["median_ms"], "ours_min_ms": ours["min_ms"],
           "ours_max_ms": ours["max_ms"], "ours_times_ms": ours["times_ms"],
           "gflops": flops_per_image * per_image_ms_factor / (ours["median_ms"] * 1e6),
           "torch_ms": None, "torch_times_ms": None, "ratio": None, "torch_gflops": None}
    if torch_ is not None:
        row.update(torch_ms=torch_["median_ms"], torch_times_ms=torch_["times_ms"],
                   ratio=ours["median_ms"] / torch_["median_ms"],
                   torch_gflops=flops_per_image * per_image_ms_factor / (torch_["median_ms"] * 1e6))
    row.update(extra or {})
    return row


# -- benchmarks --------------------------------------------------------------------------------
def layer_path_counts(net):
    """{path: how many convolutions take it} at batch 1 (Network.layer_paths)."""
    return dict(collections.Counter(net.layer_paths().values()))


def bench_forward(model, opts, store):
    net = build_ours(model, opts.size, store.path(model))
    tnet = build_torch(model, net, store.path(model)) if opts.torch else None
    rows = []
    for precision in opts.precisions:
        runs = network_for(precision, model, opts, store, net)
        runs.set_precision(precision)
        for row in bench_forward_precision(model, opts, runs, tnet):
            if precision != "fp32":
                row["what"] += f" {precision}"
            row.update(precision=precision_note(runs), paths=layer_path_counts(runs))
            rows.append(row)
    net.set_precision("fp32")
    return rows


def bench_forward_precision(model, opts, net, tnet):
    size = (net.width, net.height)
    rows = []
    for batch in (1, opts.batch):
        x = random_input(net, batch)
        runs = {"ours": lambda: net.forward(x)}
        extra = {}
        if tnet is not None:
            import torch
            xt = torch.from_numpy(x)

            def torch_forward():
                with torch.no_grad():
                    return tnet(xt)
            runs["torch"] = torch_forward
            # same weights, same input: the outputs must agree, else the comparison is void
            ours_y, torch_y = net.forward(x), torch_forward().numpy()
            extra["max_abs_diff_vs_torch"] = float(np.max(np.abs(ours_y - torch_y)))
            extra["max_abs_output"] = float(np.max(np.abs(torch_y)))
        times = time_interleaved(runs, opts.repeats)
        ours = summarise(times["ours"], batch)
        theirs = summarise(times["torch"], batch) if "torch" in times else None
        rows.append(make_row(f"forward {model_label(model)} {size[0]} b{batch}", model_label(model),
                             size, batch, "ms/img", net.flops(), ours, theirs, extra))
    return rows


def bench_train(model, opts, store):
    rows = train_rows(model, opts.size, store, opts, (
        (opts.batch, True, "train iter"), (opts.batch, False, "fwd+bwd"), (1, False, "fwd+bwd")))
    if not opts.cfg:
        size = (SMALL_TRAIN_SIZE, SMALL_TRAIN_SIZE)
        rows += train_rows(SMALL_TRAIN_MODEL, size, store, opts,
                           ((SMALL_TRAIN_BATCH, True, "train iter"),), set_to_none=True)
    return rows


def train_rows(model, size, store, opts, cases, set_to_none=False):
    """A row per (batch, update, label) of `model`'s training step at `size`, ours beside
    PyTorch's (its gradients zeroed with set_to_none or not) when installed."""
    net = build_ours(model, size, store.path(model))
    size = (net.width, net.height)
    use_torch = opts.torch
    rows = []
    for batch, update, label in cases:
        x = random_input(net, batch)
        ours_t = OursTrainer(net, x, Objective(net, batch), update)
        runs = {"ours": ours_t.step}
        if use_torch:
            torch_t = TorchTrainer(build_torch(model, net, store.path(model)), x, update,
                                   set_to_none)
            runs["torch"] = torch_t.step
        times = time_interleaved(runs, opts.repeats)
        ours = summarise(times["ours"])
        theirs = summarise(times["torch"]) if use_torch else None
        loss_ms = 1000 * statistics.median(ours_t.loss_seconds[-opts.repeats:])
        extra = {"ours_loss_ms": loss_ms, "ours_final_loss": ours_t.last_loss,
                 "update": update, "loss_finite": bool(np.isfinite(ours_t.last_loss))}
        if use_torch:
            extra["torch_final_loss"] = torch_t.last_loss
            extra["torch_set_to_none"] = set_to_none
        rows.append(make_row(f"{label} {model_label(model)} {size[0]} b{batch}", model_label(model),
                             size, batch, "ms/iter", train_flops(net), ours, theirs, extra))
    return rows


def bench_anchors_section(opts):
    path = SCRIPTS / "bench_anchors.py"
    if not path.is_file():
        return {"skipped": "scripts/bench_anchors.py is absent"}
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_anchors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "bench_anchors"):
        return {"skipped": "scripts/bench_anchors.py has no bench_anchors()"}
    n_boxes, restarts = (100_000, 2) if opts.quick else (1_000_000, 10)
    return module.bench_anchors(n_boxes=n_boxes, k=9, restarts=restarts, repeats=opts.repeats)


# -- the exported network in ONNX Runtime and OpenVINO ----------------------------------------
ONNX_ENGINES = ("onnxruntime", "openvino", "openvino_bf16")


def onnx_engine(name, path, threads):
    """A callable x -> output of the ONNX file at `path` in engine `name` (CPU, `threads`
    threads; fp32, openvino_bf16 in bf16), or the reason it cannot run as a string."""
    try:
        if name == "onnxruntime":
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return lambda x: session.run(None, {"images": x})[0]
        import openvino as ov
        core = ov.Core()
        bf16 = name == "openvino_bf16"
        if bf16 and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return "this CPU has no bf16 unit OpenVINO uses"
        # f32 explicitly: on a CPU with bf16 units OpenVINO would otherwise run in bf16
        compiled = core.compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return lambda x: request.infer([x])[compiled.outputs[0]]
    except ImportError as e:
        return f"{name} is not installed ({e})"


def bench_onnx(model, opts, store, folder):
    """Rows of our forward against the exported file in each installed engine."""
    from yolo9000.model.onnx_export import export_onnx
    net = build_ours(model, opts.size, store.path(model))
    size = (net.width, net.height)
    path = export_onnx(net, Path(folder) / f"{model_label(model)}.onnx", dynamic_batch=True)
    engines, skipped = {}, {}
    for name in ONNX_ENGINES:
        engine = onnx_engine(name, path, opts.threads)
        if isinstance(engine, str):
            skipped[name] = engine
        else:
            engines[name] = engine
    rows = []
    # ours in each lower precision beside fp32, as "ours_<precision>"
    lower = [p for p in opts.precisions if p != "fp32"]
    # a network per precision: each keeps what it derives from the weights (Winograd's
    # filters, bf16's packing) as a user's would
    nets = {precision: build_ours(model, opts.size, store.path(model)) for precision in lower}
    for precision, other in nets.items():
        if precision == "int8":
            quantize_on_random_inputs(other)
        other.set_precision(precision)
    for batch in (1, opts.batch):
        x = random_input(net, batch)
        runs = {"ours": lambda: net.forward(x)}
        expected = net.forward(x)
        extra = {"skipped": skipped, "max_abs_output": float(np.max(np.abs(expected)))}
        for precision, other in nets.items():
            runs[f"ours_{precision}"] = (lambda other: lambda: other.forward(x))(other)
            extra[f"max_abs_diff_ours_{precision}"] = float(
                np.max(np.abs(other.forward(x) - expected)))
        for name, engine in engines.items():
            runs[name] = (lambda engine: lambda: engine(x))(engine)
            # same weights, same input: the outputs must agree, else the comparison is void
            extra[f"max_abs_diff_{name}"] = float(np.max(np.abs(engine(x) - expected)))
        times = time_interleaved(runs, opts.repeats)
        row = {"what": f"onnx {model_label(model)} {size[0]} b{batch}", "model": model_label(model),
               "width": size[0], "height": size[1], "batch": batch, "unit": "ms/img"}
        for name, seconds in times.items():
            s = summarise(seconds, batch)
            row.update({f"{name}_ms": s["median_ms"], f"{name}_times_ms": s["times_ms"]})
        for name in ONNX_ENGINES:
            row.setdefault(f"{name}_ms", None)
            row[f"{name}_ratio"] = (row["ours_ms"] / row[f"{name}_ms"]
                                    if row[f"{name}_ms"] else None)
        for precision in lower:
            # ours in bf16 against OpenVINO in bf16, the goal's ratio
            row[f"ours_{precision}_ratio_openvino_bf16"] = (
                row[f"ours_{precision}_ms"] / row["openvino_bf16_ms"]
                if row["openvino_bf16_ms"] else None)
        row.update(extra)
        row["precisions"] = {precision: precision_note(other) for precision, other in nets.items()}
        rows.append(row)
    return rows


def bench_onnx_section(opts, store, folder):
    try:
        import onnx  # noqa: F401
    except ImportError:
        return {"skipped": 'onnx is not installed (pip install "yolo9000[onnx]")', "rows": []}
    rows = []
    for model in opts.forward_models:
        rows += bench_onnx(model, opts, store, folder)
        for r in rows[-2:]:
            engines = ", ".join(f"{name} {r[f'{name}_ms']:.1f}" for name in ONNX_ENGINES
                                if r[f"{name}_ms"] is not None)
            print(f"[{time.strftime('%H:%M:%S')}] {r['what']}: ours {r['ours_ms']:.1f}"
                  f"{', ' + engines if engines else ''} ms/img", file=sys.stderr, flush=True)
    return {"skipped": None, "rows": rows}


def print_onnx(section):
    if section["skipped"]:
        print(f"onnx: skipped ({section['skipped']})")
        return
    header = (f"{'what':<34s} {'ours ms':>9s} {'ORT ms':>9s} {'ours/ORT':>9s} "
              f"{'OpenVINO ms':>12s} {'ours/OV':>8s} {'OV bf16 ms':>11s}")
    print(header)
    print("-" * len(header))
    for r in section["rows"]:
        print(f"{r['what']:<34s} {r['ours_ms']:9.1f} {fmt(r['onnxruntime_ms'], '9.1f'):>9s} "
              f"{fmt(r['onnxruntime_ratio'], '9.2f'):>9s} {fmt(r['openvino_ms'], '12.1f'):>12s} "
              f"{fmt(r['openvino_ratio'], '8.2f'):>8s} {fmt(r['openvino_bf16_ms'], '11.1f'):>11s}")
        for key in r:
            if key.startswith("ours_") and key.endswith("_ratio_openvino_bf16"):
                precision = key[len("ours_"):-len("_ratio_openvino_bf16")]
                print(f"  ours {precision} {r[f'ours_{precision}_ms']:.1f} ms/img, "
                      f"{fmt(r[key], '.2f')} x OpenVINO bf16, max |difference| from ours fp32 "
                      f"{r[f'max_abs_diff_ours_{precision}']:.2e} "
                      f"({r.get('precisions', {}).get(precision, precision)})")
    skipped = {k: v for r in section["rows"] for k, v in r["skipped"].items()}
    for name, why in skipped.items():
        print(f"  {name}: skipped ({why})")
    diffs = [(name, r[f"max_abs_diff_{name}"], r["max_abs_output"]) for r in section["rows"]
             for name in ONNX_ENGINES if f"max_abs_diff_{name}" in r]
    for name in ONNX_ENGINES:
        mine = [(d, m) for n, d, m in diffs if n == name]
        if mine:
            print(f"  outputs ours vs {name}: max |difference| {max(d for d, _ in mine):.2e} "
                  f"(outputs up to {max(m for _, m in mine):.2f})")
# -- video, end to end -------------------------------------------------------------------------
def make_clip(path, frames, width, height, rate):
    """An H.264 .mp4 (as phones and cameras write) of coloured shapes moving over a smooth
    background, written with PyAV."""
    import av
    from PIL import Image
    rng = np.random.default_rng(0)
    grid = rng.integers(40, 216, (6, 10, 3), dtype=np.uint8)
    background = np.asarray(Image.fromarray(grid).resize((width, height), Image.BILINEAR))
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = background.copy()
            for k, colour in enumerate(((230, 25, 75), (60, 180, 75), (0, 130, 200))):
                cx = (width * (0.2 + 0.3 * k) + 4 * i) % width
                cy = height * (0.3 + 0.2 * k) + 30 * np.sin(i / 10 + k)
                frame[(xx - cx) ** 2 + (yy - cy) ** 2 < (25 + 10 * k) ** 2] = colour
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def bench_video(opts, store, folder):
    try:
        import av  # noqa: F401
    except ImportError:
        return {"skipped": "PyAV is not installed (pip install \".[video]\")"}
    from yolo9000.data.images import letterbox
    from yolo9000.data.video import VideoSource
    from yolo9000.inference.detector import Detector
    from yolo9000.inference.video import annotate_video
    model = opts.cfg or VIDEO_MODEL
    n_frames = 16 if opts.quick else VIDEO_FRAMES
    clip = Path(folder) / "clip.mp4"
    make_clip(clip, n_frames, *VIDEO_SIZE, VIDEO_RATE)
    net = build_ours(model, opts.size, store.path(model))
    detector = Detector.from_network(net, names=[str(k) for k in range(net.region.classes)])
    frames = [f.rgb for f in VideoSource(clip).frames()]
    size = (net.width, net.height)
    letterbox_ms = summarise(time_interleaved(
        {"letterbox": lambda: letterbox(frames[0], *size)}, opts.repeats)["letterbox"])
    rows = []
    for batch in dict.fromkeys((1, opts.batch)):
        x = np.stack([letterbox(frames[k % n_frames], *size)[0] for k in range(batch)])
        forward = summarise(time_interleaved({"f": lambda: net.forward(x)}, opts.repeats)["f"],
                            batch)
        runs = []
        for repeat in range(opts.repeats):
            runs.append(annotate_video(detector, clip, Path(folder) / f"out{repeat}.mp4",
                                       batch_size=batch))
        runs.sort(key=lambda r: r.fps)
        run = runs[len(runs) // 2]
        per_frame = {stage: 1000 * getattr(run, f"{stage}_seconds") / run.frames
                     for stage in ("decode", "network", "draw", "encode")}
        rows.append({"what": f"video {model_label(model)} {size[0]} b{batch} "
                             f"{VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}",
                     "model": model_label(model), "width": size[0], "height": size[1],
                     "batch": batch, "frames": run.frames, "fps": run.fps,
                     "fps_runs": [r.fps for r in runs],
                     "stage_ms": per_frame, "letterbox_alone_ms": letterbox_ms["median_ms"],
                     "forward_alone_ms": forward["median_ms"],
                     "forward_alone_fps": 1000 / forward["median_ms"]})
    return {"clip": {"width": VIDEO_SIZE[0], "height": VIDEO_SIZE[1], "frames": n_frames,
                     "rate": VIDEO_RATE, "codec": "libx264"}, "rows": rows}


# -- memory, in fresh subprocesses -------------------------------------------------------------
def peak_memory():
    """(VmHWM, ru_maxrss) in bytes: the process's peak resident set, two ways."""
    hwm = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maxrss *= 1 if sys.platform == "darwin" else 1024     # bytes on macOS, KiB on Linux
    return hwm, maxrss


def current_rss():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_child(spec):
    """Runs in the subprocess: build, load, one inference or two training iterations (ours,
    or with mode "torch-train" PyTorch's, which is then the only network trained there)."""
    from yolo9000.kernels.threads import keep_freed_memory, set_threads
    threads = set_threads(spec["threads"])
    if spec["mode"] == "torch-train":
        return torch_memory_child(spec, threads)
    # as `yolo9000` runs: glibc keeps freed blocks for reuse, training adds the block pool
    keep_freed_memory(block_pool=spec["mode"] == "train")
    base_rss = current_rss()
    size = tuple(spec["size"]) if spec["size"] else None
    from yolo9000.model.network import Network
    w, h = size if size else (None, None)
    net = Network.from_cfg(str(cfg_path(spec["model"])), width=w, height=h)
    built_rss = current_rss()      # parameters (and whatever the layers allocate up front)
    if spec["weights"]:
        net.load_weights(spec["weights"])
    else:
        randomise_parameters(net, seed=0)
    loaded_hwm = peak_memory()[0]
    x = random_input(net, spec["batch"])
    if spec["mode"] == "inference":
        net.forward(x)
    else:
        trainer = OursTrainer(net, x, Objective(net, spec["batch"]))
        for _ in range(2):      # the second step runs with every buffer already allocated
            trainer.step()
    hwm, maxrss = peak_memory()
    return {"base_rss": base_rss, "built_rss": built_rss, "loaded_hwm": loaded_hwm,
            "vm_hwm": hwm, "ru_maxrss": maxrss,
            "weights_bytes": weights_bytes(net), "width": net.width, "height": net.height,
            "weights_from": "file" if spec["weights"] else "numpy-random"}


def torch_memory_child(spec, threads):
    """PyTorch's two training steps (TorchTrainer) in this fresh process: our network is
    built only for its input shape and weights and deleted before torch allocates anything."""
    import torch
    torch.set_num_threads(threads)
    base_rss = current_rss()
    size = tuple(spec["size"]) if spec["size"] else None
    net = build_ours(spec["model"], size, spec["weights"])
    x = random_input(net, spec["batch"])
    width, height, weights = net.width, net.height, weights_bytes(net)
    tnet = build_torch(spec["model"], net, spec["weights"])
    del net
    gc.collect()
    built_rss = current_rss()
    trainer = TorchTrainer(tnet, x)
    for _ in range(2):
        trainer.step()
    hwm, maxrss = peak_memory()
    return {"base_rss": base_rss, "built_rss": built_rss, "loaded_hwm": built_rss,
            "vm_hwm": hwm, "ru_maxrss": maxrss, "weights_bytes": weights, "width": width,
            "height": height, "weights_from": "file" if spec["weights"] else "numpy-random"}


def bench_memory(opts, store):
    jobs = [("inference", opts.cfg or MEMORY_INFERENCE_MODEL, 1),
            ("train", opts.cfg or TRAIN_MODEL, opts.batch)]
    if opts.torch:
        jobs.append(("torch-train", opts.cfg or TRAIN_MODEL, opts.batch))
    rows = []
    for mode, model, batch in jobs:
        weights = store.path(model)
        spec = {"mode": mode, "model": str(model), "batch": batch, "threads": opts.threads,
                "size": list(opts.size) if opts.size else None,
                "weights": str(weights) if weights else None}
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child",
                               json.dumps(spec)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"memory subprocess failed:\n{proc.stderr}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        peak = r["vm_hwm"] or r["ru_maxrss"]
        budget = 1.5 * r["weights_bytes"] + 300 * MB if mode == "inference" else None
        rows.append({"what": f"peak RSS {mode} {model_label(model)} {r['width']} b{batch}",
                     "mode": mode, "model": model_label(model), "batch": batch,
                     "width": r["width"], "height": r["height"],
                     "peak_mb": peak / MB, "vm_hwm_mb": (r["vm_hwm"] or 0) / MB,
                     "ru_maxrss_mb": r["ru_maxrss"] / MB,
                     "base_rss_mb": (r["base_rss"] or 0) / MB,
                     "built_rss_mb": (r["built_rss"] or 0) / MB,
                     "loaded_peak_mb": (r["loaded_hwm"] or 0) / MB,
                     "weights_mb": r["weights_bytes"] / MB,
                     "budget_mb": budget / MB if budget else None,
                     "within_budget": (peak <= budget) if budget else None,
                     "weights_from": r["weights_from"]})
    return rows


# -- per-layer profile -------------------------------------------------------------------------
def profile_forward(net, x, train, repeats):
    """Median ms of each layer's forward over `repeats` forwards, timed by Network.forward
    itself (at inference a convolution and the 2x2/2 maxpool it pools in its epilogue are one
    call, timed on the convolution's row, the maxpool's row 0 with `pooled_by`; outputs
    handed off packed as Network.hand_offs plans); returns the rows."""
    per_layer = [[] for _ in net.layers]
    pooled = set()          # convolutions whose epilogue made the maxpool after them
    for _ in range(repeats):
        seconds = []
        net.forward(x, train=train, layer_seconds=seconds)
        for i, t in enumerate(seconds):
            if t is None:
                pooled.add(i - 1)
            per_layer[i].append(t or 0.0)
    rows = [{"index": i, "type": layer.kind, "out_shape": list(layer.out_shape),
             "ms": 1000 * statistics.median(ts), "flops": layer.flops() * x.shape[0]}
            for i, (layer, ts) in enumerate(zip(net.layers, per_layer))]
    for i in pooled:
        rows[i + 1]["pooled_by"] = i
    return rows


def profile_backward(net, x, objective, repeats):
    """Median ms of each layer's backward (the objective's gradient in, no input gradient
    for the first convolution), timed by Network.backward itself (no row for a maxpool its
    convolution pooled in the training forward: that convolution's backward unpools, on its
    row)."""
    per_layer = [[] for _ in net.layers]
    for _ in range(repeats):
        net.zero_grads()
        _, grad_raw = objective.loss(net.forward(x, train=True))
        seconds = {}
        net.backward(grad_raw, start=objective.start, input_grad=False, layer_seconds=seconds)
        for i, t in seconds.items():
            per_layer[i].append(t)
    rows = []
    for i, (layer, ts) in enumerate(zip(net.layers, per_layer)):
        if not ts:
            continue
        f = layer.flops() * x.shape[0]
        if layer.kind == "conv":
            f *= 2 if i > 0 else 1
        rows.append({"index": i, "type": layer.kind, "out_shape": list(layer.out_shape),
                     "ms": 1000 * statistics.median(ts), "flops": f})
    return rows


def finish_profile(title, rows):
    total = sum(r["ms"] for r in rows) or 1e-9
    for r in rows:
        r["percent"] = 100 * r["ms"] / total
        r["gflops"] = r["flops"] / (r["ms"] * 1e6) if r["ms"] > 0 and r["flops"] else None
    return {"title": title, "total_ms": total, "layers": rows}


def bench_profile(opts, store, whats):
    repeats = max(1, min(opts.repeats, 3))
    profiles = []
    if "forward" in whats:
        for model in opts.forward_models:
            net = build_ours(model, opts.size, store.path(model))
            x = random_input(net, 1)
            net.forward(x)   # warm-up
            for precision in opts.precisions:
                runs = network_for(precision, model, opts, store, net)
                runs.set_precision(precision)
                runs.forward(x)   # warm-up (and the bf16 or int8 weights packed)
                rows = profile_forward(runs, x, False, repeats)
                paths = runs.layer_paths()
                for r in rows:
                    r["path"] = (f"in layer {r['pooled_by']}'s epilogue" if "pooled_by" in r
                                 else paths.get(r["index"], ""))
                profiles.append(finish_profile(
                    f"forward {model_label(model)} {runs.width} b1 {precision_note(runs)}, "
                    f"median of {repeats}", rows))
            net.set_precision("fp32")
    if "train" in whats:
        model = opts.train_model
        net = build_ours(model, opts.size, store.path(model))
        x = random_input(net, opts.batch)
        objective = Objective(net, opts.batch)
        OursTrainer(net, x, objective, update=False).step()   # warm-up
        rows = profile_forward(net, x, True, repeats)
        for r in rows:
            if "pooled_by" in r:
                r["path"] = f"in layer {r['pooled_by']}'s batch norm pass"
        profiles.append(finish_profile(
            f"forward(train=True) {model_label(model)} {net.width} b{opts.batch}, "
            f"median of {repeats}", rows))
        profiles.append(finish_profile(
            f"backward {model_label(model)} {net.width} b{opts.batch}, median of {repeats}",
            profile_backward(net, x, objective, repeats)))
        profiles.append(finish_profile(
            f"update {model_label(model)} (SGD step, zeroing the gradients), median of {repeats}",
            profile_update(net, repeats)))
    return profiles


def profile_update(net, repeats):
    """Median ms of the SGD step and of zero_grads over every parameter (the rest of an
    iteration after backward); `output` is the number of values each touches."""
    from yolo9000.training.optim import SGD
    sgd = SGD(net, momentum=MOMENTUM, decay=DECAY)
    trained = int(sum(p.size for _, _, p, g in net.parameters() if g is not None))
    rows = []
    for index, (what, fn) in enumerate((("sgd", lambda: sgd.step(LEARNING_RATE, 1)),
                                         ("zero", net.zero_grads))):
        fn()
        ts = []
        for _ in range(max(repeats, 5)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        rows.append({"index": index, "type": what, "out_shape": [trained],
                     "ms": 1000 * statistics.median(ts), "flops": None})
    return rows


# -- environment -------------------------------------------------------------------------------
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import yolo9000.kernels.threads as yt
        return [{"libraries": yt._blas_libraries(), "note": "threadpoolctl not installed"}]
    return [{k: d.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                   "threading_layer", "filepath")}
            for d in threadpool_info()]


def environment(opts):
    import yolo9000
    from yolo9000 import _kernels
    env = {"cpu": cpu_model(), "cores_available": len(os.sched_getaffinity(0))
           if hasattr(os, "sched_getaffinity") else os.cpu_count(),
           "threads_ours": opts.threads, "openmp_enabled": bool(_kernels.openmp_enabled()),
           "openmp_max_threads": int(_kernels.get_max_threads()),
           # the instruction-set paths the kernels took (YOLO9000_PORTABLE_KERNELS: none)
           "kernel_paths": _kernels.cpu_features(),
           "python": platform.python_version(), "numpy": np.__version__,
           "yolo9000": getattr(yolo9000, "__version__", "?"), "blas": blas_info(),
           "torch": None, "threads_torch": None,
           # these change threading behaviour a lot on a small shared machine
           "env_vars": {k: os.environ[k] for k in THREAD_ENV_VARS if k in os.environ}}
    if opts.torch:
        import torch
        env["torch"] = torch.__version__
        env["threads_torch"] = torch.get_num_threads()
    return env


# -- output ------------------------------------------------------------------------------------
def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def print_table(rows):
    header = (f"{'what':<34s} {'unit':>7s} {'ours ms':>9s} {'min-max':>15s} {'torch ms':>9s} "
              f"{'ours/torch':>10s} {'GFLOP/s':>8s} {'torch GFLOP/s':>13s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        spread = f"{r['ours_min_ms']:.1f}-{r['ours_max_ms']:.1f}"
        print(f"{r['what']:<34s} {r['unit']:>7s} {r['ours_ms']:9.1f} {spread:>15s} "
              f"{fmt(r['torch_ms'], '9.1f'):>9s} {fmt(r['ratio'], '10.2f'):>10s} "
              f"{r['gflops']:8.1f} {fmt(r['torch_gflops'], '13.1f'):>13s}")


def print_memory(rows):
    header = (f"{'what':<46s} {'peak MB':>8s} {'start MB':>9s} {'built MB':>9s} {'loaded MB':>9s} "
              f"{'weights MB':>10s} {'budget MB':>9s} {'ok':>3s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        ok = "-" if r["within_budget"] is None else ("yes" if r["within_budget"] else "NO")
        print(f"{r['what']:<46s} {r['peak_mb']:8.0f} {r['base_rss_mb']:9.0f} {r['built_rss_mb']:9.0f} "
              f"{r['loaded_peak_mb']:9.0f} {r['weights_mb']:10.1f} "
              f"{fmt(r['budget_mb'], '9.0f'):>9s} {ok:>3s}")
    print("(peak = VmHWM of a fresh process; start = RSS after importing numpy and yolo9000; "
          "built = RSS after Network.from_cfg;\n loaded = peak after load_weights, before any "
          "forward; budget = 1.5 x weights + 300 MB, inference only)")


def print_video(v):
    if "skipped" in v:
        print(f"video: skipped ({v['skipped']})")
        return
    clip = v["clip"]
    print(f"video: {clip['width']}x{clip['height']} {clip['codec']} clip, {clip['frames']} "
          f"frames; per frame each stage's own time (the stages overlap on threads)")
    header = (f"{'what':<38s} {'frames/s':>8s} {'decode':>7s} {'letterbox':>9s} "
              f"{'forward+NMS':>11s} {'draw':>6s} {'encode':>7s} {'forward alone':>13s}")
    print(header)
    print("-" * len(header))
    for r in v["rows"]:
        ms = r["stage_ms"]
        print(f"{r['what']:<38s} {r['fps']:8.1f} {ms['decode']:7.1f} "
              f"{r['letterbox_alone_ms']:9.1f} {ms['network']:11.1f} {ms['draw']:6.1f} "
              f"{ms['encode']:7.1f} {r['forward_alone_ms']:7.1f} ms/img")
    print("(ms per frame; letterbox: alone, on one frame, it runs on the decoding pool; "
          "forward+NMS: in the pipeline, overlapped by the rest; forward alone: no other work)")


def print_profile(p):
    print(f"\nprofile: {p['title']} (sum of layers {p['total_ms']:.1f} ms)")
    print(f"{'layer':>5s} {'type':<8s} {'output':>16s} {'ms':>9s} {'%':>6s} {'GFLOP/s':>8s}  path")
    for r in p["layers"]:
        shape = "x".join(str(v) for v in r["out_shape"])
        print(f"{r['index']:5d} {r['type']:<8s} {shape:>16s} {r['ms']:9.2f} {r['percent']:6.1f} "
              f"{fmt(r['gflops'], '8.1f'):>8s}  {r.get('path', '')}")


def print_environment(env, load_start):
    print(f"CPU: {env['cpu']} ({env['cores_available']} cores available)")
    print(f"threads: ours {env['threads_ours']} (OpenMP {'on' if env['openmp_enabled'] else 'OFF'},"
          f" max {env['openmp_max_threads']}), torch {env['threads_torch'] or '- (not used)'}")
    for b in env["blas"]:
        if "user_api" in b:
            version = f" {b['version']}" if b["version"] else ""
            print(f"  {b['user_api']}: {b['internal_api']}{version}, "
                  f"{b['num_threads']} threads ({Path(b['filepath'] or '').name})")
        else:
            print(f"  BLAS: {b}")
    print(f"python {env['python']}, numpy {env['numpy']}, yolo9000 {env['yolo9000']}, "
          f"torch {env['torch'] or 'not used'}")
    if env["env_vars"]:
        print("environment: " + " ".join(f"{k}={v}" for k, v in env["env_vars"].items()))
    print("load average at start: " + " ".join(f"{v:.2f}" for v in load_start))
    if load_start[0] > env["cores_available"]:
        print(f"warning: the machine is loaded (1-minute load {load_start[0]:.1f} on "
              f"{env['cores_available']} cores): multi-threaded figures will be pessimistic")


def progress(rows):
    """Each row on stderr as soon as it is measured (a full run takes many minutes)."""
    for r in rows:
        torch_part = f", torch {r['torch_ms']:.1f}" if r["torch_ms"] is not None else ""
        print(f"[{time.strftime('%H:%M:%S')}] {r['what']}: ours {r['ours_ms']:.1f}{torch_part} "
              f"{r['unit']}", file=sys.stderr, flush=True)
    return rows


# -- main --------------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="*", metavar="WHAT",
                    help=f"any of {', '.join(WHATS)} (default: all)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    ap.add_argument("--json", type=Path, help="write every number to this file")
    ap.add_argument("--profile", action="store_true", help="per-layer timing tables")
    ap.add_argument("--quick", action="store_true",
                    help="2 repeats, batch 2, small anchor problem (smoke test)")
    ap.add_argument("--no-torch", dest="torch", action="store_false", help="skip PyTorch")
    ap.add_argument("--cfg", help="run every benchmark on this cfg instead of the YOLOv2 models")
    ap.add_argument("--size", default=None,
                    help="input size N (N x N), or 'native' for the cfg's [net] size "
                         "(default 416, or native with --cfg)")
    ap.add_argument("--batch", type=int, default=None, help="large batch (default 8; 2 with --quick)")
    ap.add_argument("--precision", default="fp32",
                    help="forward and onnx: our precisions, comma-separated (fp32, bf16, int8, "
                         "auto); int8 on a copy calibrated on random inputs")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.memory_child:
        return opts
    unknown = [w for w in opts.what if w not in WHATS]
    if unknown:
        ap.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(WHATS)}")
    opts.what = [w for w in WHATS if w in opts.what] if opts.what else list(WHATS)
    if opts.repeats is None:
        opts.repeats = 2 if opts.quick else 5
    if opts.repeats < 1:
        ap.error("--repeats must be at least 1")
    if opts.batch is None:
        opts.batch = 2 if opts.quick else 8
    size = opts.size if opts.size is not None else ("native" if opts.cfg else "416")
    if size == "native":
        opts.size = None
    else:
        try:
            n = int(size)
        except ValueError:
            ap.error("--size takes a number or 'native'")
        if n <= 0 or n % 32:
            ap.error("--size must be a positive multiple of 32")
        opts.size = (n, n)
    if opts.cfg and not Path(opts.cfg).is_file():
        ap.error(f"--cfg {opts.cfg}: no such file")
    from yolo9000.kernels.precisions import FP32, PRECISION_CHOICES
    opts.precisions = [p.strip() for p in opts.precision.split(",") if p.strip()]
    for p in opts.precisions:
        if p not in PRECISION_CHOICES:
            ap.error(f"--precision {p!r}: choose from {', '.join(PRECISION_CHOICES)}")
    if FP32 not in opts.precisions:
        opts.precisions.insert(0, FP32)     # the reference every other precision is read against
    opts.forward_models = [opts.cfg] if opts.cfg else list(FORWARD_MODELS)
    opts.train_model = opts.cfg or TRAIN_MODEL
    opts.torch = opts.torch and torch_available()
    return opts


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.memory_child:
        print(json.dumps(memory_child(json.loads(opts.memory_child))))
        return 0
    from yolo9000.kernels import core
    from yolo9000.kernels.threads import KEEP_FREED_BYTES, default_threads, keep_freed_memory
    from yolo9000.kernels.threads import set_threads
    # the allocator settings `yolo9000` runs with: the block pool keeps freed blocks in
    # training only (below: a limit of 0 keeps none, as the inference commands run)
    keep_freed_memory(block_pool=True)
    if opts.torch:
        import torch     # before set_threads, so threadpoolctl sees every BLAS in the process
    opts.threads = set_threads(opts.threads if opts.threads else default_threads())
    if opts.torch:
        torch.set_num_threads(opts.threads)
    load_start = os.getloadavg()
    env = environment(opts)
    print_environment(env, load_start)
    report = {"environment": env, "settings": {
        "what": opts.what, "repeats": opts.repeats, "batch": opts.batch, "quick": opts.quick,
        "size": list(opts.size) if opts.size else "native", "cfg": opts.cfg,
        "torch": opts.torch, "learning_rate": LEARNING_RATE, "seen": SEEN,
        "boxes_per_image": BOXES_PER_IMAGE,
        "torch_train_loss": "0.5 * sum of squares of the output" if opts.torch else None},
        "results": [], "anchors": None, "memory": None, "profile": None, "onnx": None,
        "video": None,
        "load_average_start": list(load_start)}
    with tempfile.TemporaryDirectory(prefix="yolo9000-bench-") as tmp:
        store = WeightStore(tmp, use_file=torch_available())
        report["settings"]["weights"] = ("torch_darknet.write_random_darknet_weights(seed=0)"
                                         if store.use_file else "numpy random (seed 0)")
        rows = report["results"]
        if "forward" in opts.what:
            core.use_block_pool(0)
            for model in opts.forward_models:
                rows += progress(bench_forward(model, opts, store))
        if "train" in opts.what:
            core.use_block_pool(KEEP_FREED_BYTES)
            rows += progress(bench_train(opts.train_model, opts, store))
        if "anchors" in opts.what:
            report["anchors"] = bench_anchors_section(opts)
        if "memory" in opts.what:
            report["memory"] = bench_memory(opts, store)
        if "onnx" in opts.what:
            core.use_block_pool(0)
            report["onnx"] = bench_onnx_section(opts, store, tmp)
        if "video" in opts.what:
            core.use_block_pool(0)
            report["video"] = bench_video(opts, store, tmp)
        if opts.profile:
            report["profile"] = bench_profile(opts, store, opts.what)
    load_end = os.getloadavg()
    report["load_average_end"] = list(load_end)

    if rows:
        print()
        print_table(rows)
        if any(r.get("ours_loss_ms") for r in rows):
            for r in rows:
                if "ours_loss_ms" in r:
                    print(f"  {r['what']}: of which the loss {r['ours_loss_ms']:.1f} ms "
                          f"(torch side: sum-of-squares loss)")
        for r in rows:
            if r.get("precision", "fp32") != "fp32":
                print(f"  {r['what']}: {r['precision']}; convolutions: "
                      + ", ".join(f"{n} {path}" for path, n in r["paths"].items()))
        diffs = [r["max_abs_diff_vs_torch"] for r in rows if "max_abs_diff_vs_torch" in r]
        if diffs:
            print(f"  outputs ours vs torch: max |difference| {max(diffs):.2e}")
    a = report["anchors"]
    if a is not None:
        print()
        if "skipped" in a:
            print(f"anchors: skipped ({a['skipped']})")
        else:
            print(f"anchors k-means: {a['n_boxes']:,} boxes, k = {a['k']}, {a['restarts']} restarts: "
                  f"median {a['median_s']:.2f} s over {a['repeats']} runs "
                  f"(min {a['min_s']:.2f}, max {a['max_s']:.2f}), avg IoU {a['avg_iou']:.4f}")
    if report["memory"]:
        print()
        print_memory(report["memory"])
    if report["onnx"]:
        print()
        print_onnx(report["onnx"])
    if report["video"]:
        print()
        print_video(report["video"])
    for p in report["profile"] or []:
        print_profile(p)
    print("\nload average at end: " + " ".join(f"{v:.2f}" for v in load_end))
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        tmp_json = opts.json.with_name(opts.json.name + ".tmp")
        tmp_json.write_text(json.dumps(report, indent=2))
        os.replace(tmp_json, opts.json)
        print(f"numbers written to {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
