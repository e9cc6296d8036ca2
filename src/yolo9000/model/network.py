"""A network is the list of layers built from a darknet cfg, plus the [net] hyper-parameters.

    net = Network.from_cfg("yolov2-voc")      # bundled name or path; width=, height= override
    y = net.forward(x)                          # x float32 (N, C, H, W) in [0, 1]
    y = net.forward(x, train=True); dx = net.backward(dy)
    net.resize(width, height)                   # new input size, same weights (multi-scale)
"""
import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from .cfg import Config, load_cfg, parse_cfg_text
from ..errors import UserError
from ..memory import available_memory, describe_bytes
from ..kernels import lowp
from ..layers.base import BuildContext
from ..layers.convolutional import ConvolutionalLayer
from ..layers.maxpool import MaxpoolLayer
from ..layers.route import RouteLayer
from .registry import build_layer


OBJECTNESS_PRIOR = 0.01
# Memory for the convolutions' cached Winograd filters (16/9 of their weights each, F(4x4, 3x3)'s
# 36/9, weight blocks 9/9): half the weights' size plus this much. yolov2-voc at 416 then caches
# 182.5 MB (of 236: its three 512 -> 1024 13x13 layers read their weights in place instead,
# 1.07-1.10x the time from blocks) and peaks at 439 MB for one forward, within issue 25's
# 463 MB, since its 64 -> 128 layers at 104x104 go by bands (their chunks' workspaces side by
# side had taken 26 MB more: with 64 MB it cached 146.5 MB, one 1024 -> 1024 layer in place
# too, and peaked at 428 MB, now 403). With 160 MB it cached all 236 and peaked at 514 MB
# (see BENCHMARKS.md#winograd-cache-budget); caching no blocks at all, 65.5 MB, peaks at
# 346 MB. The inference budget being 1.5 x weights + 300 MB, that leaves room for the heap's
# fragmentation over repeated forwards.
WINOGRAD_CACHE_HEADROOM = 96 * 2**20


@dataclass
class NetOptions:
    """The [net] section: input size and training hyper-parameters."""
    width: int = 416
    height: int = 416
    channels: int = 3
    batch: int = 1
    subdivisions: int = 1
    learning_rate: float = 0.001
    momentum: float = 0.9
    decay: float = 0.0005
    burn_in: int = 0
    power: float = 4.0
    max_batches: int = 0
    policy: str = "constant"
    steps: list = field(default_factory=list)
    scales: list = field(default_factory=list)
    gamma: float = 1.0               # the `exp` policy's factor per iteration
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    angle: float = 0.0
    # classifier training crops (darknet's load_data_augment): a random short side in
    # [min_crop, max_crop] (0: darknet's defaults, width and 2·width), aspect jitter, or the
    # centre crop only
    min_crop: int = 0
    max_crop: int = 0
    aspect: float = 1.0
    center: int = 0

    @classmethod
    def from_section(cls, s):
        o = cls()
        o.width = s.get_int("width", 416)
        o.height = s.get_int("height", 416)
        o.channels = s.get_int("channels", 3)
        o.batch = s.get_int("batch", 1)
        o.subdivisions = s.get_int("subdivisions", 1)
        o.learning_rate = s.get_float("learning_rate", 0.001)
        o.momentum = s.get_float("momentum", 0.9)
        o.decay = s.get_float("decay", 0.0005)
        o.burn_in = s.get_int("burn_in", 0)
        o.power = s.get_float("power", 4.0)
        o.max_batches = s.get_int("max_batches", 0)
        o.policy = (s.get_str("policy", "constant") or "constant").strip()
        o.steps = s.get_ints("steps", [])
        o.scales = s.get_floats("scales", [])
        o.gamma = s.get_float("gamma", 1.0)
        o.hue = s.get_float("hue", 0.0)
        o.saturation = s.get_float("saturation", 1.0)
        o.exposure = s.get_float("exposure", 1.0)
        o.angle = s.get_float("angle", 0.0)
        o.min_crop = s.get_int("min_crop", 0)
        o.max_crop = s.get_int("max_crop", 0)
        o.aspect = s.get_float("aspect", 1.0)
        o.center = s.get_int("center", 0)
        # darknet's other [net] options: recurrent time steps, its own Adam switch, gradient
        # clipping, the `step` policy (which the trainer refuses by name). None changes the
        # network; they only steer darknet's training.
        s.ignore("time_steps", "notruth", "random", "adam", "B1", "B2", "eps", "inputs",
                 "max_ratio", "min_ratio", "clip", "step", "scale")
        for key in ("width", "height", "channels"):
            if getattr(o, key) <= 0:
                raise s.error(f"{key} must be positive", key)
        if o.policy == "steps" and len(o.steps) != len(o.scales):
            raise s.error("steps and scales must have the same length", "scales")
        s.check_all_read()
        return o


class Network:
    def __init__(self, config: Config, width=None, height=None, seed=0, files=None):
        """Layers built from `config`; convolution weights start as darknet's random
        initialisation (He normal), reproducible through `seed`."""
        self.config = config
        self.source = config.source
        self.options = NetOptions.from_section(config.net)
        if width is not None:
            self.options.width = int(width)
        if height is not None:
            self.options.height = int(height)
        self.layers = []
        self.sections = config.layers
        self.seen = 0
        self.weights_header = (0, 2, 0)
        self.names = None      # class names, when a checkpoint carries them
        self.meta = {}         # everything else a checkpoint carries
        # an int8 checkpoint's record (model/quantization.py), None for fp32 weights
        self.quantization = None
        self.weights_file = None   # the file the weights were last loaded from
        shape = (self.options.channels, self.options.height, self.options.width)
        from .wordtree import cfg_class_map, cfg_word_tree
        from .zoo import referenced_files
        # the tree= / map= files, carried into checkpoints (zoo.cfg_file)
        self.files = dict(files) if files else referenced_files(config)
        where = dict(cfg_source=config.source, files=self.files)
        context = BuildContext(np.random.default_rng(seed),
                               read_tree=functools.partial(cfg_word_tree, **where),
                               read_class_map=functools.partial(cfg_class_map, **where))
        for section in self.sections:
            layer = build_layer(section, shape, context)
            self.layers.append(layer)
            shape = layer.out_shape
            context.shapes.append(shape)
        # inference precision (set_precision): fp32 unless asked, and what resolving said
        self.precision = lowp.FP32
        self.precision_note = lowp.FP32
        self._init_objectness_prior()
        self._plan_memory()
        self._plan_winograd()
        self._plan_pooling()
        self._plan_hand_offs()

    def _init_objectness_prior(self, prior=OBJECTNESS_PRIOR):
        """Start the objectness of a fresh detector at `prior` instead of σ(0) = .5.

        With darknet's squared error on σ(objectness), the thousands of empty cells push every
        objectness down hard in the first iterations; at any brisk learning rate it overshoots
        into the flat tail of the sigmoid, where the few responsible cells get almost no
        gradient and training stalls. Starting near the true frequency of objects avoids that
        (the prior-probability initialisation of Lin et al., 2017). Loaded weights replace it."""
        region = self.region
        if region is None or len(self.layers) < 2 or self.layers[-2].kind != "conv":
            return
        conv = self.layers[-2]
        entries = region.coords + 1 + region.classes
        if conv.filters != region.num * entries:
            return
        conv.biases.reshape(region.num, entries)[:, region.coords] = np.log(prior / (1 - prior))

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_cfg(cls, cfg, width=None, height=None, seed=0):
        """A bundled model name, a .cfg path, or cfg text (when it contains a newline)."""
        if isinstance(cfg, str) and "\n" in cfg:
            return cls(parse_cfg_text(cfg, "<cfg text>"), width, height, seed)
        return cls(load_cfg(cfg), width, height, seed)

    @classmethod
    def load(cls, path, width=None, height=None):
        """A network built from the cfg stored in an .h5 checkpoint, with its weights."""
        from .checkpoint import read_checkpoint_cfg, read_checkpoint_files
        text, (saved_w, saved_h) = read_checkpoint_cfg(path)
        net = cls(parse_cfg_text(text, f"{path} (stored cfg)"),
                  width if width is not None else saved_w, height if height is not None else saved_h,
                  files=read_checkpoint_files(path))
        net.load_weights(path)
        return net

    def _plan_memory(self):
        # last layer index that reads each output: inference drops activations after that
        n = len(self.layers)
        self._last_use = list(range(1, n + 1))
        for i, layer in enumerate(self.layers):
            if isinstance(layer, RouteLayer):
                for j in layer.sources:
                    self._last_use[j] = max(self._last_use[j], i)

    def _plan_winograd(self):
        """Choose the convolutions whose Winograd filters stay cached for inference.

        All of them would add 16/9 of their 3x3 weights (F(4x4, 3x3)'s 36/9, weight blocks'
        9/9: 236 MB for yolov2-voc). The time one saves is proportional to its products, i.e.
        to filters x channels x tiles, and its memory to filters x channels, so the saving per
        byte grows with the number of tiles of the feature map; at equal size, wider inputs
        make better use of BLAS. Layers are taken in that order while the total stays within
        the budget; the others transform their filters on each call when the call has enough
        tiles to pay for it (F(4x4, 3x3) layers always), and use im2col otherwise (see
        ConvolutionalLayer._winograd_applies)."""
        weights_bytes = 4 * sum(p.size for _, _, p, _ in self.parameters())
        budget = 0.5 * weights_bytes + WINOGRAD_CACHE_HEADROOM
        convs = [layer for layer in self.layers
                 if isinstance(layer, ConvolutionalLayer) and layer.use_winograd]
        for layer in convs:
            if layer.precision != lowp.FP32:
                layer.set_winograd_cache(False)     # it never runs Winograd at inference
        convs = [layer for layer in convs if layer.precision == lowp.FP32]
        convs.sort(key=lambda l: (l.out_shape[1] * l.out_shape[2], l.in_shape[0]), reverse=True)
        used = 0
        for layer in convs:
            size = layer.winograd_filter_bytes()
            layer.set_winograd_cache(used + size <= budget)
            if layer.cache_winograd:
                used += size
        self.winograd_cache_bytes = used

    # -- properties ------------------------------------------------------------------------
    @property
    def width(self):
        return self.options.width

    @property
    def height(self):
        return self.options.height

    @property
    def channels(self):
        return self.options.channels

    @property
    def input_shape(self):
        return (self.channels, self.height, self.width)

    @property
    def output_shape(self):
        return self.layers[-1].out_shape

    @property
    def region(self):
        """The final region layer, or None for a classifier."""
        last = self.layers[-1]
        return last if last.kind == "region" else None

    @property
    def classifier(self):
        """The index of the softmax layer whose probabilities are a classifier's output (the
        last layer, or followed only by [cost] layers), or None for a detector."""
        i = len(self.layers) - 1
        while i > 0 and self.layers[i].kind == "cost":
            i -= 1
        return i if self.layers[i].kind == "softmax" else None

    # -- the verbs -------------------------------------------------------------------------
    def _check_input(self, x):
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"input of shape {tuple(x.shape)} does not fit the network; "
                             f"expected (N, {self.channels}, {self.height}, {self.width})")
        return np.ascontiguousarray(x, dtype=np.float32)

    def forward(self, x, train=False, watch_inputs=None, layer_seconds=None):
        """The last layer's output. `watch_inputs(i, inputs)`, if given, sees each layer's
        input before it runs (calibration's statistics, without keeping every output).
        `layer_seconds`, a list, gets each layer's wall time appended in order (None for a
        maxpool its convolution took in its epilogue): bench.py's profile."""
        return self._run(x, train, keep_all=False, watch_inputs=watch_inputs,
                         layer_seconds=layer_seconds)[-1]

    def forward_all(self, x, train=False):
        """Every layer's output (for inspection and tests)."""
        return self._run(x, train, keep_all=True)

    def _plan_pooling(self):
        """Convolutions followed by a 2x2/2 maxpool that alone reads their output: inference
        runs the pair as one (ConvolutionalLayer.forward_pooled), and so does training where
        the convolution can (forward_train_pooled). Depends on the shapes."""
        self._pooled_pairs = {
            i for i, (layer, after) in enumerate(zip(self.layers, self.layers[1:]))
            if isinstance(layer, ConvolutionalLayer) and isinstance(after, MaxpoolLayer)
            and after.tiles and self._last_use[i] == i + 1}

    @property
    def pooled_pairs(self):
        """Indices of the convolutions whose forward also does the maxpool after them
        (inference: forward_pooled, when the call takes the direct or Winograd kernel;
        training: forward_train_pooled, under batch norm)."""
        return frozenset(self._pooled_pairs)

    def _plan_hand_offs(self):
        """The convolutions whose inference output goes straight into the next convolution's
        packed input (kernels/handoff.py): conv i hands off to conv j when j is i + 1, or
        i + 2 through the maxpool its epilogue takes (pooled_pairs), i's output (or the
        pool's) has no other reader, and j reads a precision i writes packed (both bf16, or
        both int8, on the direct kernel; or i the bf16 rgb kernel pooling, j bf16 or int8
        direct: an int8 network's RGB layer, kept unquantized, hands layer 2 its int8 input; or i
        int8 direct, j bf16 direct: its last layer, kept unquantized).
        Depends on the shapes and the precisions."""
        self._hand_offs = {}
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, ConvolutionalLayer):
                continue
            pooled = i in self._pooled_pairs
            if pooled and not layer.pools_in_epilogue():
                continue
            writes = layer.packed_outputs(pooled)
            j = i + 2 if pooled else i + 1
            if not writes or j >= len(self.layers) or self._last_use[j - 1] != j:
                continue
            consumer = self.layers[j]
            if not isinstance(consumer, ConvolutionalLayer):
                continue
            reads = consumer.packed_input()
            if reads is not None and reads in writes:
                self._hand_offs[i] = consumer.input_hand_off()

    @property
    def hand_offs(self):
        """{convolution index: the handoff.HandOff its inference output is written as} for
        the convolutions that hand theirs to the next one packed (not in training,
        forward_all or with watch_inputs, which read every output in fp32)."""
        return dict(self._hand_offs)

    def _run(self, x, train, keep_all, watch_inputs=None, layer_seconds=None):
        x = self._check_input(x)
        outputs = [None] * len(self.layers)
        pairs = set() if keep_all else self._pooled_pairs
        hand_offs = {} if train or keep_all or watch_inputs is not None else self._hand_offs
        for i, layer in enumerate(self.layers):
            if isinstance(layer, RouteLayer):
                inp = [outputs[j] for j in layer.sources]
            else:
                inp = outputs[i - 1] if i > 0 else x
            made_before = i - 1 in pairs and outputs[i] is not None
            if watch_inputs is not None and not made_before:
                watch_inputs(i, inp)
            started = time.perf_counter() if layer_seconds is not None else None
            if made_before:
                pass            # the maxpool's output, made by the convolution before it
            elif (i in pairs and train
                  and (pooled := layer.forward_train_pooled(inp)) is not None):
                outputs[i + 1] = pooled
            elif (i in pairs and not train
                  and (pooled := layer.forward_pooled(inp, hand_offs.get(i))) is not None):
                outputs[i + 1] = pooled
            elif i in hand_offs:
                outputs[i] = layer.forward(inp, train, hand_off=hand_offs[i])
            else:
                outputs[i] = layer.forward(inp, train)
            if layer_seconds is not None:
                layer_seconds.append(None if made_before else time.perf_counter() - started)
            if not keep_all:
                # inference holds only the outputs a later layer still reads, not all of them
                for j in range(max(0, i - 1), i):
                    if self._last_use[j] <= i:
                        outputs[j] = None
                if isinstance(layer, RouteLayer):
                    for j in layer.sources:
                        if self._last_use[j] <= i:
                            outputs[j] = None
        return outputs

    def backward(self, dy, start=None, input_grad=True, layer_seconds=None):
        """Back-propagate dL/d(output of layer `start`, default the last) to the input.

        Parameter gradients accumulate on the layers (call zero_grads() between steps).
        Returns dL/dx for the network input (None with input_grad=False, which training uses
        to skip the most expensive product of the first convolution). `layer_seconds`, a
        dict, gets each layer's backward wall time by index (none for a maxpool whose
        convolution pooled in its training forward: that convolution's backward unpools):
        bench.py's profile."""
        n = len(self.layers)
        start = n - 1 if start is None else (start % n)
        grads = [None] * n
        # a copy of the caller's gradient: every gradient in this loop is then read once, by
        # the layer it is handed to, which may write over it (a route's parts are views)
        grads[start] = np.array(dy, dtype=np.float32, copy=True)
        dx = None
        for i in range(start, -1, -1):
            g = grads[i]
            grads[i] = None
            if g is None:
                continue
            layer = self.layers[i]
            if i - 1 in self._pooled_pairs and self.layers[i - 1].pooled_in_training:
                grads[i - 1] = g        # the convolution's backward takes the pooled gradient
                continue
            started = time.perf_counter()
            if i == 0 and not input_grad and layer.kind == "conv":
                layer.backward(g, need_input_grad=False, dy_is_scratch=True)
                layer.forget_forward()
                if layer_seconds is not None:
                    layer_seconds[i] = time.perf_counter() - started
                break
            d = layer.backward(g, dy_is_scratch=True)
            layer.forget_forward()
            if layer_seconds is not None:
                layer_seconds[i] = time.perf_counter() - started
            if isinstance(layer, RouteLayer):
                for j, part in zip(layer.sources, d):
                    grads[j] = part if grads[j] is None else grads[j] + part
            elif i == 0:
                dx = d
            else:
                grads[i - 1] = d if grads[i - 1] is None else grads[i - 1] + d
        for layer in self.layers:        # those the gradient did not reach
            layer.settle_grads()
        if dx is None and input_grad:
            dx = np.zeros((np.shape(dy)[0],) + self.input_shape, np.float32)
        return dx

    def resize(self, width, height):
        """New input size; every layer recomputes its shapes, parameters are untouched."""
        width, height = int(width), int(height)
        self.options.width, self.options.height = width, height
        shape = (self.channels, height, width)
        shapes = []
        for layer in self.layers:
            if isinstance(layer, RouteLayer):
                layer.resize([shapes[j] for j in layer.sources])
            else:
                layer.resize(shape)
            shape = layer.out_shape
            shapes.append(shape)
        self._plan_winograd()
        self._plan_pooling()
        self._plan_hand_offs()

    def set_precision(self, precision, kernel=None):
        """Run inference in `precision`: "fp32", "bf16" (on the fastest unit the CPU has;
        PrecisionUnavailable, one line, without one), "int8" (an int8 checkpoint's weights on
        AMX-INT8 or VNNI; one line of error without a unit, or on fp32 weights, naming the
        convert command) or "auto" (int8 for an int8 checkpoint where the CPU has a unit, else
        bf16 where it has one, else fp32). fp32 and bf16 run an int8 checkpoint's weights
        dequantized, and the note says so. `kernel` names a kernel of
        kernels.lowp.BF16_KERNELS (or kernels.int8.INT8_KERNELS for int8) instead of the
        fastest (e.g. "portable"). Training is always fp32. Returns (and keeps, as
        precision_note) a line saying what runs, e.g. "auto: bf16 on amx"."""
        quantized = self.quantization is not None
        resolved, kernel, note = lowp.resolve_precision(precision, kernel, quantized)
        if resolved == lowp.INT8 and not quantized:
            from .quantization import not_quantized_message
            raise UserError(not_quantized_message(self))
        if quantized and resolved != lowp.INT8:
            note += " (an int8 checkpoint: its weights dequantized)"
        for layer in self.layers:
            if isinstance(layer, ConvolutionalLayer):
                layer.set_precision(resolved, kernel)
        self.precision, self.precision_note = resolved, note
        self._plan_winograd()
        self._plan_hand_offs()
        return note

    def layer_paths(self, batch=1):
        """{layer index: how an inference forward of `batch` images computes it} for the
        convolutions (ConvolutionalLayer.inference_path)."""
        return {i: layer.inference_path(batch) for i, layer in enumerate(self.layers)
                if isinstance(layer, ConvolutionalLayer)}

    def zero_grads(self):
        for layer in self.layers:
            layer.zero_grads()

    def clear_quantization(self):
        """Back to an fp32 network (weights as they are): loading fp32 weights does this."""
        for layer in self.layers:
            if isinstance(layer, ConvolutionalLayer) and layer.quantized:
                layer.clear_quantization()
        self.quantization = None
        if self.precision == lowp.INT8:
            self.set_precision(lowp.FP32)

    def weights_changed(self):
        """Call after writing parameters in place (net.layers[i].weights[...] = ...): layers
        drop what they derived from the old values (the convolutions' Winograd filters).
        The optimisers and load_weights call it themselves."""
        for layer in self.layers:
            layer.weights_changed()

    def parameters(self):
        """(layer index, name, parameter, gradient or None) for every parameter array."""
        for i, layer in enumerate(self.layers):
            layer.settle_grads()
            for name, p in layer.params.items():
                yield i, name, p, layer.grads.get(name)

    def num_parameters(self):
        return int(sum(p.size for _, name, p, g in self.parameters() if g is not None))

    def flops(self):
        return float(sum(layer.flops() for layer in self.layers))

    def memory_needed(self, batch, train=False, optimizer_buffers=0, size=None):
        """A low estimate of the bytes that running `batch` images at `size` (width, height;
        default the current size) takes: the parameters, plus for inference the cached
        Winograd filters and twice the largest input + output of a layer (the scratch of
        im2col and Winograd), for training twice every layer's output (what the backward
        keeps) and a gradient and `optimizer_buffers` arrays per parameter. Measured peaks
        are 1.5 to 3 times this activation part, so work refused on it cannot fit."""
        parameters = sum(p.size for layer in self.layers for p in layer.params.values())
        outputs = [math.prod(layer.out_shape) for layer in self.layers]
        scale = 1.0 if size is None else size[0] * size[1] / (self.width * self.height)
        if train:
            parameters *= 2 + optimizer_buffers
            per_image = 2 * sum(outputs)
            cache = 0
        else:
            inputs = [math.prod(self.input_shape)] + outputs[:-1]
            per_image = 2 * max(i + o for i, o in zip(inputs, outputs))
            cache = self.winograd_cache_bytes
        return int(4 * (parameters + batch * scale * per_image) + cache)

    # -- files -----------------------------------------------------------------------------
    def load_weights(self, path, cutoff=None):
        """darknet .weights or an .h5 checkpoint, told apart by content; with `cutoff`, only
        the first `cutoff` layers (a backbone). The file must fit the layers it fills (shapes
        for a checkpoint, the float count for .weights), or it is a UserError naming the
        first layer that does not."""
        from .checkpoint import check_weights_format, load_checkpoint_into
        from .darknet_weights import check_finite_weights, read_darknet_weights
        if cutoff is not None and cutoff < 1:
            raise UserError(f"cutoff {cutoff}: give a number of layers, at least 1", path=path)
        if check_weights_format(path):
            load_checkpoint_into(self, path, cutoff=cutoff)
        else:
            read_darknet_weights(self, path, cutoff=cutoff)
            self.clear_quantization()
        check_finite_weights(self, path, cutoff)
        self.weights_file = path
        if self.quantization is not None:
            # what runs now is an int8 file's weights dequantized (or int8): the note says so
            self.set_precision(self.precision)
        return self

    def save_weights(self, path, cutoff=None):
        from .darknet_weights import write_darknet_weights
        write_darknet_weights(self, path, cutoff=cutoff)

    def save(self, path, names=None, optimizer=None, input_size=None, **meta):
        from .checkpoint import save_checkpoint
        save_checkpoint(self, path, names=names if names is not None else self.names,
                        optimizer=optimizer, meta=meta, input_size=input_size)

    # -- display ---------------------------------------------------------------------------
    def summary(self, paths=False):
        """darknet-style table: index, type, filters, size/stride, input -> output, memory
        (the layer's parameters and its output for one image), BFLOPs; then the totals and
        the memory estimates of inference and training (memory_needed); with `paths` each
        convolution's row ends with the path it takes at inference (layer_paths)."""
        rows = ["layer     filters    size              input                output"
                "         memory"]
        paths = self.layer_paths() if paths else {}
        total = 0.0
        for i, layer in enumerate(self.layers):
            c, h, w = layer.in_shape
            oc, oh, ow = layer.out_shape
            filters = getattr(layer, "filters", "")
            bflops = layer.flops() / 1e9
            total += bflops
            floats = math.prod(layer.out_shape) + sum(p.size for p in layer.params.values())
            memory = f"{describe_bytes(4 * floats):>11s}"
            if isinstance(layer, RouteLayer):
                rows.append(f"{i:5d} route  {layer.describe():<28s}   ->  "
                            f"{ow:4d} x{oh:4d} x{oc:5d}  {memory}")
                continue
            extra = f"  {bflops:7.3f} BFLOPs" if bflops > 0 else ""
            if i in paths:
                extra += f"  {paths[i]}"
            rows.append(f"{i:5d} {layer.kind:<6s} {str(filters):>5s}  {layer.describe():<14s}"
                        f"{w:4d} x{h:4d} x{c:5d}   ->  {ow:4d} x{oh:4d} x{oc:5d}  {memory}{extra}")
        rows.append(f"total {total:.3f} BFLOPs, {self.num_parameters():,} parameters")
        mini_batch = max(1, self.options.batch // max(1, self.options.subdivisions))
        inference = describe_bytes(self.memory_needed(1))
        training = describe_bytes(self.memory_needed(mini_batch, train=True, optimizer_buffers=1))
        available = available_memory()
        rows.append(f"memory: about {inference} to run one image, {training} to train "
                    f"mini-batches of {mini_batch} with SGD (available: "
                    f"{'unknown' if available is None else describe_bytes(available)})")
        return "\n".join(rows)

    def __repr__(self):
        return f"Network({self.source}, {len(self.layers)} layers, input {self.input_shape})"
