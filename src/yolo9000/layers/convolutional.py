"""darknet's [convolutional]: convolution, optional batch norm, bias, activation.

Forward is im2col (Cython) + one BLAS matrix product per image; 1×1 stride-1 convolutions use
the input directly as the column matrix. At inference batch norm, bias and activation are one
fused pass (a·x + b, then the activation).

3×3 stride-1 "same" convolutions (most of a YOLOv2's work) use Winograd F(2x2, 3x3) instead
(winograd.py): the same function with 16/36 of the multiplications. It needs the filters in
transformed form, U (16/9 the size of the weights), or at inference on 13x13 maps (where an
AVX-512 kernel transforms them inside its products, through F(4x4, 3x3) there: 36 products per
4x4 outputs) the weights regrouped in blocks
(WeightBlocks), or without a cache the weights themselves, which that kernel regroups as it
goes. At inference either form is cached between calls (`cache_winograd`, which the network
may switch off to bound memory); the cache belongs to one state of the weights, so
everything that writes weights calls weights_changed() (the optimisers, weight and
checkpoint loading).
Training never uses the cache; a training forward through Winograd keeps its U only until the
backward, whose input gradient (a convolution with the flipped, transposed filters: U's planes
reordered) reuses it. The weight gradient goes through Winograd too, from the tiles'
transforms; both are the same function as im2col's backward.

The same convolutions on few input channels (an RGB input: a reduction of only 27 for BLAS)
use a direct kernel instead, where the CPU has AVX2 and FMA. At inference a convolution
followed by a 2x2/2 maxpool can take the maxima in its epilogue (forward_pooled). On maps of
at most 2x2, where every output position sees every input position, the im2col path is one
dense matrix product instead (dense_weights), without im2col's products on the padding.

At inference the layer may run in bf16 instead (set_precision; kernels/lowp.py): its
weights packed once (cached as Winograd's filters are, dropped by weights_changed()), its
input rounded per call, products on AMX, AVX512-BF16 or the portable twin, the same fp32
epilogue; the RGB input layer too, where the unit has a kernel that beats the fp32 direct
one (set_precision). On the direct AMX kernel the input may arrive already packed from the
layer before, and with a `hand_off` the output leaves packed for the next (kernels/handoff.py;
the network plans which: Network.hand_offs). Training is always fp32.

Or in int8, once quantized (model/quantization.py; an int8 checkpoint): the layer then owns
its int8 weights, their per-filter scales and its input's scale, and its fp32 weights hold
the dequantized values (what fp32, bf16 and training read). The int8 products
(kernels/int8.py) quantize the input per call and end in the same fp32 epilogue, the weight
and input scales folded into its scale. A layer not quantized (the first and last are kept
fp32 by default) runs fp32 when the network runs int8, the RGB layer bf16 on AMX
(set_precision).

zero_grads() leaves the weight gradient to be written over by the next backward.
"""
import numpy as np

from ..kernels import core
from ..kernels import gemm, handoff, int8, lowp, winograd, workspace
from .activations import activation_code, activation_to_onnx
from .base import Layer
from .batchnorm import BatchNorm

# The sample of the weights a cached packing is checked against (_weights_stamp): runs of
# consecutive weights, few cache lines from a cold array.
WEIGHT_SAMPLE_RUNS = 8
WEIGHT_SAMPLE_RUN = 32
# floats of im2col matrix per product (64 MB): wide enough for BLAS, small enough for memory
COLUMN_BUDGET = 16 * 2**20
# At inference a 1x1 convolution over a map of this many positions or more multiplies image
# by image: each product is wide enough for BLAS, and images side by side cost two copies
# (the inputs into one matrix, the outputs back to image order). yolov2-voc batch 8, one
# thread, CPU time, ms per image, side by side -> image by image: 128 -> 64 at 104x104 5.00
# -> 3.94, 256 -> 128 at 52x52 2.83 -> 1.87, 512 -> 256 at 26x26 1.74 -> 1.41, but 1024 ->
# 512 at 13x13 (169 positions) 1.20 -> 1.24 (see BENCHMARKS.md#matrix-products-in-bands)
POINTWISE_IMAGE_POSITIONS = 512
# Winograd needs enough input channels for its 16 products (reductions over the channels) to
# run well in BLAS; the RGB input layer goes to the direct kernel (or im2col) instead
WINOGRAD_MIN_CHANNELS = 8
# Without a cached U, transforming the filters costs about what Winograd saves on ~80 tiles
# (measured at 1024x1024 channels), so a call needs several times that to pay: a 13×13 map
# (49 tiles) only from batch 9 on
WINOGRAD_MIN_TILES_UNCACHED = 400
# A training forward's U serves its backward's input gradient too, so it pays on fewer tiles:
# forward + backward of one layer at 256..1024 channels on 13x13 maps (one thread) lost 5-10%
# at batch 1 (49 tiles), tied or won at batch 2 (98) and won 20-30% from batch 4 on; the
# demo's 8x8 maps at batch 4 (64 tiles: 128 -> 256, 384 -> 192) took 0.92x and 0.71x
# im2col's time through Winograd, weight gradient included (BENCHMARKS.md#demo)
WINOGRAD_MIN_TILES_TRAINING = 64
# The training pair of a batch-normalised convolution and the 2x2/2 maxpool after it as one
# (forward_train_pooled) from maps of this many outputs: measured pair by pair against the
# two layers' kernels (batch norm pass + maxpool, maxpool backward + batch norm backward; two
# threads), forward + backward, ms: 416x416 x16 at batch 8 31.9 -> 26.2 and 30.4 -> 27.5
# (two runs), 208x208 x32 16.9 -> 13.1, 52x52 x128 2.9 -> 2.0 and 2.3 -> 2.3; darknet-mini's
# at batch 64: 64x64 x16 3.20 -> 3.14, 32x32 x32 2.10 -> 1.65, 16x16 x64 1.45 -> 1.33, but
# 8x8 x128 0.90 -> 1.00 and 4x4 x256 0.91 -> 1.28 (the unpooling's calls per plane cost more
# than the passes they save)
TRAIN_POOLED_MIN_OUTPUTS = 256
# Maps of at most 2x2 (one tile an image) multiply one dense matrix instead of im2col's
# (_dense_applies), measured against im2col up to batch 64 (BENCHMARKS.md#small-maps): they
# keep the earlier threshold, Winograd only from 96 tiles
WINOGRAD_MIN_TILES_TRAINING_DENSE = 96


class ConvolutionalLayer(Layer):
    kind = "conv"
    forward_state = ("_x", "_xp", "_z", "_y", "_pooled", "_train_u", "_train_dense")

    def __init__(self, in_shape, filters, size=1, stride=1, pad=0, padding=None,
                 batch_normalize=False, activation="logistic", groups=1, rng=None):
        super().__init__(in_shape)
        if groups != 1:
            raise ValueError("grouped convolutions (groups != 1) are not supported")
        if filters <= 0 or size <= 0 or stride <= 0:
            raise ValueError("filters, size and stride must be positive")
        self.filters, self.size, self.stride = int(filters), int(size), int(stride)
        # darknet: pad=1 means "same" padding size/2; otherwise the explicit padding= value
        self.padding = self.size // 2 if pad else int(padding or 0)
        self.activation = activation
        self.act = activation_code(activation)
        c = self.in_shape[0]
        # darknet's initialisation: N(0, 2/fan_in) (He), biases 0, BN scales 1
        rng = rng if rng is not None else np.random.default_rng(0)
        fan_in = c * self.size * self.size
        self.weights = (rng.standard_normal((self.filters, c, self.size, self.size), np.float32)
                        * np.float32(np.sqrt(2.0 / fan_in)))
        self.biases = np.zeros(self.filters, np.float32)
        # np.zeros leaves the pages untouched until written: inference never pays for these
        self.weight_grad = np.zeros(self.weights.shape, np.float32)
        self._weight_grad_is_zero = False
        self.bias_grad = np.zeros(self.biases.shape, np.float32)
        self.params = {"weights": self.weights, "biases": self.biases}
        self.grads = {"weights": self.weight_grad, "biases": self.bias_grad}
        self.bn = BatchNorm(self.filters) if batch_normalize else None
        # Winograd's transformed filters at inference (see the module docstring)
        self.use_winograd = (self.size == 3 and self.stride == 1 and self.padding == 1
                             and c >= WINOGRAD_MIN_CHANNELS)
        self.cache_winograd = self.use_winograd
        self.use_direct = (self.size == 3 and self.stride == 1 and self.padding == 1
                           and not self.use_winograd and c * 9 <= core.DIRECT_MAX_TAPS
                           and core.direct_conv_available())
        self._train_u = None       # the training forward's U, for its backward's input gradient
        self._train_dense = None   # the training forward's dense_weights(), for its backward
        self._pooled = None        # forward_train_pooled's output, for its backward
        self._affine = None        # _inference_affine's (key, a, b)
        self._u = None             # cached transformed filters, and their _weights_stamp()
        self._u_stamp = None
        # inference precision (set_precision): fp32, or bf16 on the named kernel with the
        # weights packed once, and what they were packed from (as the Winograd cache's)
        self.precision = lowp.FP32
        self.bf16_kernel = None
        self._bf16 = None
        self._bf16_stamp = None
        # int8 (quantize): the int8 weights, their scales and the input's scale, and the
        # stamp of the fp32 weights they were dequantized into; the weights packed once
        self.int8_weights = self.weight_scales = self.input_scale = None
        self._int8_source = None
        self.int8_kernel = None
        self._int8 = None
        if self.bn is not None:
            self.params.update(scales=self.bn.scales, rolling_mean=self.bn.rolling_mean,
                               rolling_variance=self.bn.rolling_variance)
            self.grads["scales"] = self.bn.scale_grad
        self.resize(in_shape)

    @classmethod
    def from_section(cls, s, in_shape, context):
        # binary or XNOR weights, and darknet's transposed ("flipped") weight order, change
        # what the layer computes or how its weights are read
        for key in ("binary", "xnor", "flipped"):
            s.expect_default(key, 0)
        s.ignore("dot")     # darknet's training-only penalty on similar filters
        filters, size = s.get_int("filters", 1), s.get_int("size", 1)
        batch_normalize = bool(s.get_int("batch_normalize", 0))
        if filters > 0 and size > 0:        # (others are refused by the constructor)
            # weights, biases and batch norm's scales, mean and variance
            context.claim_parameters(
                filters * (in_shape[0] * size * size + (4 if batch_normalize else 1)))
        return cls(in_shape, filters=filters, size=size,
                   stride=s.get_int("stride", 1), pad=s.get_int("pad", 0),
                   padding=s.get_int("padding", 0), batch_normalize=batch_normalize,
                   activation=(s.get_str("activation", "logistic") or "logistic").strip(),
                   groups=s.get_int("groups", 1), rng=context.rng)

    @property
    def batch_normalize(self):
        return self.bn is not None

    def resize(self, in_shape):
        c, h, w = (int(v) for v in in_shape)
        if c != self.weights.shape[1]:
            raise ValueError(f"conv expects {self.weights.shape[1]} input channels, got {c}")
        out_h = (h + 2 * self.padding - self.size) // self.stride + 1
        out_w = (w + 2 * self.padding - self.size) // self.stride + 1
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"input {h}x{w} is too small for a {self.size}x{self.size} convolution")
        self.in_shape = (c, h, w)
        self.out_shape = (self.filters, out_h, out_w)

    # -- gradients -----------------------------------------------------------------------------
    def zero_grads(self):
        """Zero the gradients; the weights' (most of a network's gradient bytes: 38 MB for a
        1024x1024 3x3 layer) lazily: the next backward writes its gradient over them instead of
        adding it to zeros (the same bits, one pass less); settle_grads() zeroes them for
        anyone reading before that."""
        for g in self.grads.values():
            if g is not self.weight_grad:
                g.fill(0.0)
        self._weight_grad_is_zero = True

    def settle_grads(self):
        if self._weight_grad_is_zero:
            self.weight_grad.fill(0.0)
            self._weight_grad_is_zero = False

    def _add_weight_grad(self, dw):
        """weight_grad += dw (F, C, k, k), or = dw when it is lazily zero."""
        if self._weight_grad_is_zero:
            np.copyto(self.weight_grad, dw)
            self._weight_grad_is_zero = False
        else:
            self.weight_grad += dw

    # -- Winograd ------------------------------------------------------------------------------
    def weights_changed(self):
        """Tell the layer its weights were written: drops the cached Winograd filters.

        Called by everything in the package that writes weights (optimiser steps, loading
        .weights and checkpoints); code that assigns layer.weights[...] itself must call it
        too (or Network.weights_changed()) before the next inference forward."""
        self._u = self._u_stamp = None
        self._train_u = None
        self._bf16 = self._bf16_stamp = None
        self._int8 = None

    def set_winograd_cache(self, cache):
        """Keep (True) or not (False) the Winograd filters between inference calls."""
        self.cache_winograd = bool(cache) and self.use_winograd
        if not self.cache_winograd:
            self._u = None

    def _weights_stamp(self):
        """What a cache derived from the weights (Winograd's filters, bf16's packing, the int8
        weights) was made from: the weights array itself (a replaced array, layer.weights =
        ..., counts) and a sample of its values - a safety net, not the mechanism: a few
        hundred weights, compared on each cached use, catch wholesale rewrites (another
        loader) that forgot weights_changed(). The sample is 8 runs of 32 consecutive weights
        spread over the array: 16 cache lines to fetch from a cold array where 256 weights
        one stride apart were 256 lines (and pages); kept as bytes, so comparing is one
        memcmp (see BENCHMARKS.md#per-call-overheads)."""
        flat = self.weights.reshape(-1)
        runs, run = WEIGHT_SAMPLE_RUNS, WEIGHT_SAMPLE_RUN
        if flat.size <= runs * run:
            return self.weights, flat.tobytes()
        step = flat.size // runs
        return self.weights, flat[: runs * step].reshape(runs, step)[:, :run].tobytes()

    def _made_from_these_weights(self, stamp):
        """Whether a cache stamped `stamp` (_weights_stamp()) still matches the weights."""
        return (stamp is not None and stamp[0] is self.weights
                and stamp[1] == self._weights_stamp()[1])

    def _uses_weight_blocks(self):
        """Whether inference multiplies through the products kernel, from WeightBlocks or,
        uncached, the weights themselves (13x13 maps of many channels; any batch size)."""
        c, h, w = self.in_shape
        return winograd.blocks_apply(c, self.filters, h, w)

    def _uses_f4(self):
        """Whether this layer's Winograd is F(4x4, 3x3) (winograd.f4_applies), in inference
        and training alike."""
        c, h, w = self.in_shape
        return self.use_winograd and winograd.f4_applies(c, self.filters, h, w)

    def winograd_filter_bytes(self):
        """Bytes of the filters the inference cache holds (the network's plan)."""
        f, c = self.weights.shape[:2]
        if self._uses_weight_blocks():
            return 4 * winograd.block_floats(f, c)
        if self._uses_f4():
            return 4 * winograd.filter4_floats(f, c)
        return 4 * winograd.filter_floats(f, c)

    def _winograd_filters(self, cache, blocks, f4=False):
        """The filters for winograd.convolve (filters(), or with `blocks` WeightBlocks or,
        uncached, the weights themselves, which its products kernel regroups as it goes), or
        with f4 winograd.convolve4's (filters4()); the cached ones if `cache`."""
        if blocks and not cache:
            self._u = None
            return self.weights
        make = (winograd.WeightBlocks if blocks else winograd.filters4 if f4
                else winograd.filters)
        if not cache:
            self._u = None
            return make(self.weights)
        if (self._u is None or isinstance(self._u, winograd.WeightBlocks) != blocks
                or (not blocks and self._u.shape[0] != (winograd.TILES4 if f4 else winograd.TILES))
                or not self._made_from_these_weights(self._u_stamp)):
            self._u = None        # free the old one before making the new
            self._u = make(self.weights)
            self._u_stamp = self._weights_stamp()
        return self._u

    def _winograd_applies(self, n, train):
        """(through Winograd, with the cached filters, from the weights themselves through
        the products kernel) for this call."""
        if not self.use_winograd:
            return False, False, False
        if not train and self._uses_weight_blocks():
            # uncached, from the weights themselves: 0.6-0.65x im2col's time at 13x13
            # (512 -> 1024 and 1024 -> 1024, batch 1 and 8), 1.08-1.09x cached blocks' (see
            # BENCHMARKS.md#winograd-products-from-weight-blocks)
            return True, self.cache_winograd, True
        if self.cache_winograd and not train:
            return True, True, False
        if self._uses_f4():
            # uncached, F(4x4, 3x3) transforms its filters on each call, which pays on any
            # call (a 26x26 256 -> 512 layer at batch 1, the least favourable: 13.7 ms against
            # im2col's 18.2, 8.3 cached; see BENCHMARKS.md#winograd-cache-budget); in training
            # its maps have 169 2x2 tiles or more, past WINOGRAD_MIN_TILES_TRAINING anyway
            return True, False, False
        th, tw = winograd.tile_grid(self.out_shape[1], self.out_shape[2])
        threshold = self._min_training_tiles() if train else WINOGRAD_MIN_TILES_UNCACHED
        return n * th * tw >= threshold, False, False

    def _min_training_tiles(self):
        """Tiles of a training call from which it takes Winograd."""
        return (WINOGRAD_MIN_TILES_TRAINING_DENSE if self._dense_applies()
                else WINOGRAD_MIN_TILES_TRAINING)

    # -- precision -----------------------------------------------------------------------------
    def set_precision(self, precision, kernel=None):
        """Run inference in `precision` (lowp.PRECISIONS; bf16 and int8 need `kernel`, a name
        of lowp.BF16_KERNELS or int8.INT8_KERNELS the CPU has: Network.set_precision resolves
        both). In bf16 the RGB input layer runs lowp's "rgb" kernel where it has one (AMX, the
        portable twin): its depth of 27 is one tile's, built in L1 for each 32 positions with
        the maxpool in the epilogue, 0.31x the fp32 direct kernel's time at 416x416 (32
        filters; 0.40x with 16), where im2col's panels had made it 2x slower; the image's
        rounding to bf16 stays within the bf16 networks' bounds (tests/kernels/test_lowp.py).
        On AVX512-BF16 alone, where that kernel is slower, a layer that takes the fp32 direct
        kernel keeps it, as do the direct kernel's layers too deep for one tile (4-8
        channels). In int8 a layer that was not quantized (an int8 checkpoint keeps its first
        and last layers unquantized by default) runs bf16 where AMX has a path for it, "rgb"
        for the RGB layer and "direct" for the last (lowp.bf16_kernel_in_int8), else fp32:
        fp32 there would take 3x and 1.7x bf16's time, and rounding to bf16 loses less than
        int8's per-tensor scale would."""
        if precision not in lowp.PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}")
        if precision == lowp.BF16 and kernel not in lowp.BF16_KERNELS:
            raise ValueError(f"bf16 needs a kernel, one of {', '.join(lowp.BF16_KERNELS)}")
        if precision == lowp.INT8 and kernel not in int8.INT8_KERNELS:
            raise ValueError(f"int8 needs a kernel, one of {', '.join(int8.INT8_KERNELS)}")
        if precision == lowp.INT8 and not self.quantized:
            kernel = lowp.bf16_kernel_in_int8(kernel, self.in_shape[0], self.size, self.stride)
            precision = lowp.FP32 if kernel is None else lowp.BF16
        if (precision == lowp.BF16 and self.use_direct
                and lowp.bf16_path(kernel, self.in_shape[0], self.size, self.stride) != "rgb"):
            precision = lowp.FP32
        bf16_kernel = kernel if precision == lowp.BF16 else None
        int8_kernel = kernel if precision == lowp.INT8 else None
        if bf16_kernel != self.bf16_kernel:
            self._bf16 = None        # packed for one kernel's layout
        if int8_kernel != self.int8_kernel:
            self._int8 = None
        self.precision, self.bf16_kernel, self.int8_kernel = precision, bf16_kernel, int8_kernel

    # -- int8 ----------------------------------------------------------------------------------
    @property
    def quantized(self):
        return self.input_scale is not None

    def quantize(self, int8_weights, weight_scales, input_scale):
        """Make this layer an int8 one: its int8 weights (F, C, k, k), their per-filter scales
        (F,) and its input's scale (kernels/int8.py's conventions). Its fp32 weights become the
        dequantized int8 weights, so that fp32, bf16 (and a checkpoint) see what int8 runs."""
        int8_weights = np.asarray(int8_weights)
        weight_scales = np.asarray(weight_scales, np.float32).reshape(-1)
        if int8_weights.dtype != np.int8 or int8_weights.shape != self.weights.shape:
            raise ValueError(f"int8 weights of shape {self.weights.shape} needed, got "
                             f"{int8_weights.dtype} {int8_weights.shape}")
        if weight_scales.shape != (self.filters,):
            raise ValueError(f"{self.filters} weight scales needed, got {weight_scales.shape}")
        input_scale = np.float32(input_scale)
        if not (np.isfinite(input_scale) and input_scale > 0
                and np.all(np.isfinite(weight_scales)) and np.all(weight_scales > 0)):
            raise ValueError("int8 scales must be positive and finite")
        self.weights[...] = int8_weights * weight_scales[:, None, None, None]
        self.weights_changed()
        self.int8_weights, self.weight_scales = int8_weights.copy(), weight_scales.copy()
        self.input_scale = input_scale
        self._int8_source = self._weights_stamp()

    def clear_quantization(self):
        """Back to an fp32 layer (its weights stay as they are)."""
        self.int8_weights = self.weight_scales = self.input_scale = None
        self._int8_source = None
        self._int8 = None
        if self.precision == lowp.INT8:
            self.set_precision(lowp.FP32)

    def _int8_packed(self):
        """The int8 weights packed for the kernel, once; they change only through quantize(),
        which drops the packing (weights_changed), so the one check is that the fp32 weights
        are still what the int8 ones were dequantized into."""
        if not self._made_from_these_weights(self._int8_source):
            raise ValueError("the weights of this int8 layer were written after it was "
                             "quantized: quantize it again (or clear_quantization())")
        if self._int8 is None:
            # packed for the path inference_path() names: direct on AMX where it applies
            self._int8 = int8.Int8Weights(q=self.int8_weights, scales=self.weight_scales,
                                          kernel=self.int8_kernel,
                                          direct=self._int8_direct())
        return self._int8

    def _int8_direct(self):
        return int8.int8_direct_applies(self.int8_kernel, self.in_shape[0], self.stride)

    def _lowp_output(self, x, pool, hand_off):
        """Where a bf16 or int8 forward of x writes: an fp32 array, or with `hand_off` the
        packed activation the next layer reads (refused if this layer cannot write it)."""
        f, oh, ow = self.out_shape
        shape = (x.shape[0], f) + ((oh // 2, ow // 2) if pool else (oh, ow))
        if hand_off is None:
            return np.empty(shape, np.float32)
        if hand_off.precision not in self.packed_outputs(pool):
            raise ValueError(f"this layer hands off its output packed in "
                             f"{' or '.join(self.packed_outputs(pool)) or 'nothing'}; asked "
                             f"{hand_off.precision}")
        return handoff.packed_output(hand_off, shape, reading=x)

    def _forward_int8(self, x, a, b, pool=False, hand_off=None):
        z = self._lowp_output(x, pool, hand_off)
        return int8.convolve_int8(x, self._int8_packed(), self.input_scale, self.size,
                                  self.stride, self.padding, z, a, b, self.act,
                                  self.int8_kernel, pool=pool)

    def _bf16_weights(self):
        if self._bf16 is None or not self._made_from_these_weights(self._bf16_stamp):
            self._bf16 = None        # free the old one before making the new
            self._bf16 = lowp.BF16Weights(self.weights, taps_major=self._bf16_direct())
            self._bf16_stamp = self._weights_stamp()
        return self._bf16

    def _bf16_direct(self):
        return lowp.direct_applies(self.bf16_kernel, self.in_shape[0], self.stride)

    def _bf16_path(self):
        return lowp.bf16_path(self.bf16_kernel, self.in_shape[0], self.size, self.stride)

    def _forward_bf16(self, x, a, b, pool=False, hand_off=None):
        z = self._lowp_output(x, pool, hand_off)
        return lowp.convolve_bf16(x, self._bf16_weights(), self.size, self.stride,
                                  self.padding, z, a, b, self.act, self.bf16_kernel, pool=pool)

    def inference_path(self, batch=1):
        """How an inference forward of `batch` images computes this layer: "bf16 amx direct",
        "bf16 amx rgb", "bf16 avx512_bf16 im2col", "int8 vnni im2col", "fp32 direct",
        "fp32 winograd", "fp32 im2col", ..."""
        if self.precision == lowp.BF16:
            return f"bf16 {self.bf16_kernel} {self._bf16_path()}"
        if self.precision == lowp.INT8:
            return f"int8 {self.int8_kernel} {'direct' if self._int8_direct() else 'im2col'}"
        if self.use_direct:
            return "fp32 direct"
        if self._winograd_applies(batch, False)[0]:
            return "fp32 winograd"
        return "fp32 im2col"

    @property
    def is_pointwise(self):
        return self.size == 1 and self.stride == 1 and self.padding == 0

    # -- small maps ------------------------------------------------------------------------
    def _dense_applies(self):
        """Whether every output position sees every input position through some tap (3x3
        'same' on maps of at most 2x2: darknet-mini's last layers): the convolution is then
        one dense matrix of (output, position) x (channel, position), whose product does the
        16 multiplications of a 2x2 map's pairs instead of im2col's 36 (9 taps x 4 outputs,
        20 of them on the zero padding)."""
        _, h, w = self.in_shape
        k, pad = self.size, self.padding
        return (not self.is_pointwise and self.stride == 1 and self.out_shape[1:] == (h, w)
                and max(h, w) - 1 <= min(pad, k - 1 - pad)
                and h * w <= core.SMALL_MAP_MAX_POSITIONS)

    def dense_weights(self):
        """The (F·P, C·P) matrix of the convolution on its P = H·W positions (_dense_applies):
        row (f, p), column (c, q) holds the weight of the tap from input position q to output
        position p (core.small_map_weights)."""
        f, c = self.weights.shape[:2]
        _, h, w = self.in_shape
        out = np.empty((f * h * w, c * h * w), np.float32)
        core.small_map_weights(np.ascontiguousarray(self.weights, np.float32), self.padding,
                               h, w, out)
        return out

    def _convolve_dense(self, x, train):
        """conv(x) (N, F, H·W) through dense_weights(): one product (N, C·P) @ (C·P, F·P)."""
        n = x.shape[0]
        f, oh, ow = self.out_shape
        dense = self.dense_weights()
        if train:
            self._train_dense = dense
        z = np.empty((n, f * oh * ow), np.float32)
        gemm.matmul(x.reshape(n, -1), dense.T, z)
        return z.reshape(n, f, oh * ow)

    def _dense_backward(self, g, need_input_grad):
        """The weight gradient (added) and dL/dx (None unless need_input_grad) of
        _convolve_dense, g (N, F, P): the weights' gradient as the dense matrix's (F·P, C·P),
        each tap's the sum of its positions' pairs."""
        n = g.shape[0]
        c, h, w = self.in_shape
        dense = self._train_dense if self._train_dense is not None else self.dense_weights()
        self._train_dense = None
        g2 = np.ascontiguousarray(g, np.float32).reshape(n, -1)
        x2 = self._x.reshape(n, -1)
        d_dense = gemm.matmul(g2.T, x2, np.empty(dense.shape, np.float32))
        if self._weight_grad_is_zero:
            # lazily zero: the gradient written in place
            core.small_map_weight_grad(d_dense, self.padding, h, w, self.weight_grad)
            self._weight_grad_is_zero = False
        else:
            dw = np.empty(self.weights.shape, np.float32)
            core.small_map_weight_grad(d_dense, self.padding, h, w, dw)
            self.weight_grad += dw
        if not need_input_grad:
            return None
        dx = gemm.matmul(g2, dense, np.empty((n, c * h * w), np.float32))
        return dx.reshape(n, c, h, w)

    def _chunks(self, n):
        """Split a batch into groups of images whose column matrices fit COLUMN_BUDGET floats.

        Small feature maps (13×13) give skinny matrices that BLAS runs far below its peak; the
        columns of several images side by side make one wide product instead."""
        c, h, w = self.in_shape
        _, oh, ow = self.out_shape
        per_image = c * self.size * self.size * oh * ow
        m = max(1, min(n, COLUMN_BUDGET // max(per_image, 1)))
        return [(a, min(a + m, n)) for a in range(0, n, m)]

    def _columns(self, x, a, b):
        """The im2col matrix (C·k·k, m·out_h·out_w) of images a..b, images side by side."""
        c, h, w = self.in_shape
        _, oh, ow = self.out_shape
        s = oh * ow
        m = b - a
        if self.is_pointwise:
            if m == 1:
                return x[a].reshape(c, s)
            col = workspace.borrow((c, m * s))
            col.reshape(c, m, s)[...] = x[a:b].reshape(m, c, s).transpose(1, 0, 2)
            return col
        col = workspace.borrow((c * self.size * self.size, m * s))
        core.im2col_images(x, a, b, self.size, self.stride, self.padding, col)
        return col

    def _convolve(self, x, train=False):
        if self._dense_applies():
            return self._convolve_dense(x, train)
        n = x.shape[0]
        f, oh, ow = self.out_shape
        s = oh * ow
        z = np.empty((n, f, s), np.float32)
        w2d = self.weights.reshape(f, -1)
        by_image = self.is_pointwise and not train and s >= POINTWISE_IMAGE_POSITIONS
        for a, b in ([(a, a + 1) for a in range(n)] if by_image else self._chunks(n)):
            col = self._columns(x, a, b)
            if b - a == 1:
                gemm.matmul(w2d, col, z[a])
            else:
                zm = gemm.matmul(w2d, col, np.empty((f, (b - a) * s), np.float32))
                z[a:b] = zm.reshape(f, b - a, s).transpose(1, 0, 2)
        return z

    def _affine_parameters(self):
        """The arrays _inference_affine is a function of (their current objects)."""
        if self.bn is None:
            return (self.biases,)
        return self.biases, self.bn.scales, self.bn.rolling_mean, self.bn.rolling_variance

    def _inference_affine(self):
        """(a, b) with output = act(a·conv(x) + b): batch norm (rolling statistics) and bias,
        read-only arrays.

        Kept between calls, keyed on the exact bytes (and dtypes) of the parameters it is
        made from: a write of any kind (in place or a new array, by an optimiser, a loader,
        a training forward's rolling statistics or a caller who never says so) changes the
        key, so the cache cannot go stale. Its ~15 small NumPy operations took 20-30 us a
        layer in a forward (cold caches after each kernel), the key's copies a few."""
        # (dtype objects, not dtype.str, which builds a string per call: 2.3x the key's time)
        key = [(p.dtype, p.tobytes()) for p in self._affine_parameters()]
        cached = self._affine
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        if self.bn is not None:
            a, b = self.bn.inference_affine()
            b = b + self.biases
        else:
            a, b = np.ones(self.filters, np.float32), self.biases
        a = np.array(a, np.float32, order="C")       # copies: the cache owns them
        b = np.array(b, np.float32, order="C")
        a.flags.writeable = b.flags.writeable = False
        self._affine = (key, a, b)
        return a, b

    @staticmethod
    def _direct_padded(x):
        """x zero-padded by 1, with room for the direct kernel's last block of 64 outputs to
        read past the row."""
        n, c, h, w = x.shape
        # the border alone zeroed: np.zeros wrote the whole array once more (19 MB for the
        # 416 px RGB layer at batch 8)
        xp = np.empty((n, c, h + 2, w + 2 + core.DIRECT_BLOCK), np.float32)
        xp[:, :, (0, h + 1), :] = 0
        xp[:, :, 1:h + 1, 0] = 0
        xp[:, :, 1:h + 1, w + 1:] = 0
        xp[:, :, 1:h + 1, 1:w + 1] = x
        return xp

    def _direct(self, x, a, b, act, train, pool):
        n = x.shape[0]
        f, oh, ow = self.out_shape
        xp = self._direct_padded(x)
        w2d = self.weights.reshape(f, -1)
        if pool:
            z = np.empty((n, f, oh // 2, ow // 2), np.float32)
            scratch = workspace.borrow((core.get_max_threads(), 2 * f * ow))
            core.conv3x3_direct_pooled(xp, w2d, z, a, b, act, scratch)
            return z
        z = np.empty((n,) + self.out_shape, np.float32)
        if train:
            self._xp = xp       # the weight gradient reads the same padded input
        core.conv3x3_direct(xp, w2d, z, a, b, act)
        return z

    def _direct_weight_grad(self, g):
        """dL/dW (F, C·9) of the direct kernel's convolution, for g = dL/dz (N, F, H·W)."""
        partial = np.zeros((core.get_max_threads(), self.weights[0].size * self.filters))
        core.conv3x3_direct_weight_grad(self._xp, g, partial)
        return partial.sum(axis=0).astype(np.float32).reshape(self.filters, -1)

    def _convolve_fused(self, x, a, b, act, train, pool=False):
        """act(a·conv(x) + b) (N, F, H, W) through the direct kernel or Winograd, whose
        epilogues are fused, or with `pool` (inference, even size) its 2x2/2 maxpool
        (N, F, H/2, W/2); None when neither kernel applies to this call."""
        self._train_u = self._train_dense = None
        if self.use_direct:
            return self._direct(x, a, b, act, train, pool)
        winograd_now, cache, blocks = self._winograd_applies(x.shape[0], train)
        if winograd_now:
            f, oh, ow = self.out_shape
            z = np.empty((x.shape[0], f) + ((oh // 2, ow // 2) if pool else (oh, ow)),
                         np.float32)
            if self._uses_f4():
                # the input gradient needs the flipped filters' own transform (backward
                # makes it), so a training forward keeps no U
                u = self._winograd_filters(cache, False, f4=True)
                return winograd.convolve4(x, u, z, a, b, act, pool=pool)
            u = self._winograd_filters(cache, blocks)
            if train:
                self._train_u = u
            return winograd.convolve(x, u, z, a, b, act, pool=pool)
        return None

    def forward_pooled(self, x, hand_off=None):
        """The inference output through a 2x2/2 maxpool, the pooling done in the Winograd,
        direct, bf16 direct or rgb, or int8 direct kernel's epilogue (the full output is never
        written: voc's 32x416x416 is 22 MB); None when this call takes none of them or the
        output size is odd (the caller then runs forward and the maxpool).
        `hand_off` as forward's (with pools_in_epilogue())."""
        if not self.pools_in_epilogue():
            if hand_off is not None:
                raise ValueError("this layer cannot hand off a pooled output")
            return None
        x = self._inference_input(x)
        a, b = self._inference_affine()
        if self.precision == lowp.BF16:
            return self._forward_bf16(x, a, b, pool=True, hand_off=hand_off)
        if self.precision == lowp.INT8:
            return self._forward_int8(x, a, b, pool=True, hand_off=hand_off)
        if hand_off is not None:
            raise ValueError(f"a {self.precision} layer cannot hand off its output packed")
        return self._convolve_fused(x, a, b, self.act, False, pool=True)

    def pools_in_epilogue(self):
        """Whether forward_pooled may take the maxpool in this layer's epilogue: in bf16 on
        the direct and rgb kernels, in int8 on the direct kernel, in fp32 when the direct or
        Winograd kernel takes the call; never on an odd output."""
        if self.out_shape[1] % 2 or self.out_shape[2] % 2:
            return False
        if self.precision == lowp.BF16:
            return self._bf16_path() != "im2col"
        if self.precision == lowp.INT8:
            return self._int8_direct()
        return self.precision == lowp.FP32

    def packed_input(self):
        """The precision of the packed input (handoff.PackedActivation) this layer's
        inference forward reads in place, or None: bf16 or int8 on the direct kernel."""
        if self.precision == lowp.BF16 and self._bf16_direct():
            return lowp.BF16
        if self.precision == lowp.INT8 and self._int8_direct():
            return lowp.INT8
        return None

    def packed_outputs(self, pooled):
        """The precisions this layer's inference forward (forward_pooled with `pooled`) can
        write its output packed in for the next layer (handoff.PackedActivation), a tuple,
        empty for none: what packed_input() reads, and on the rgb kernel when it pools bf16
        pairs or an int8 channels-last input (an int8 network's RGB layer, kept unquantized, runs rgb and
        feeds an int8 layer), on the int8 direct kernel an int8 channels-last input or bf16 pairs (its last
        layer, kept unquantized, runs bf16 direct)."""
        if (pooled and self.precision == lowp.BF16 and self._bf16_path() == "rgb"
                and self.pools_in_epilogue()):
            return (lowp.BF16, lowp.INT8)
        reads = self.packed_input()
        if reads == lowp.INT8:
            return (lowp.INT8, lowp.BF16)
        return () if reads is None else (reads,)

    def input_hand_off(self):
        """The handoff.HandOff a layer before writes this layer's packed input as (its
        padding and precision; in int8 its input scale), or None (packed_input())."""
        precision = self.packed_input()
        if precision is None:
            return None
        return handoff.HandOff(self.padding, precision,
                               self.input_scale if precision == lowp.INT8 else None)

    def _inference_input(self, x):
        """x as the inference kernels read it: a packed activation checked to be this
        layer's, else a contiguous float32 array."""
        if not isinstance(x, handoff.PackedActivation):
            return np.ascontiguousarray(x, dtype=np.float32)
        if self.packed_input() != x.precision:
            raise ValueError(f"a packed {x.precision} activation handed to a layer that "
                             f"runs {self.precision} "
                             f"({self.inference_path(x.shape[0])}), which cannot read it")
        return x.check((x.shape[0],) + self.in_shape, self.padding, x.precision,
                       self.input_scale if x.precision == lowp.INT8 else None)

    def forward(self, x, train=False, hand_off=None):
        """The output (N, F, out_h, out_w). At inference x may be a packed activation handed
        off by the layer before (packed_input()), and with `hand_off` (a handoff.HandOff,
        from Network.hand_offs) the output is one too, packed for the next layer."""
        if not train:
            x = self._inference_input(x)
            a, b = self._inference_affine()
            if self.precision == lowp.BF16:
                return self._forward_bf16(x, a, b, hand_off=hand_off)
            if self.precision == lowp.INT8:
                return self._forward_int8(x, a, b, hand_off=hand_off)
            if hand_off is not None:
                raise ValueError(f"a {self.precision} layer cannot hand off its output packed")
            n = x.shape[0]
            y = self._convolve_fused(x, a, b, self.act, train)
            if y is not None:
                return y
            z = self._convolve(x)
            core.scale_bias_activate(z, a, b, self.act)
            return z.reshape((n,) + self.out_shape)
        if isinstance(x, handoff.PackedActivation) or hand_off is not None:
            raise ValueError("training reads and writes fp32 activations, never packed ones")
        z = self._train_products(x)
        n = x.shape[0]
        self._pooled = None
        if self.bn is not None:
            # z (before batch norm) is what backward needs; y is a new array
            self._z = z
            self._y = self.bn.forward_train(z, self.biases, self.act, np.empty_like(z))
        else:
            self._z = None
            core.scale_bias_activate(z, np.ones(self.filters, np.float32), self.biases,
                                     self.act)
            self._y = z
        return self._y.reshape((n,) + self.out_shape)

    def _train_products(self, x):
        """The training forward's convolution z (N, F, out_h·out_w), before batch norm and
        activation; x kept for backward."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        ones, zeros = np.ones(self.filters, np.float32), np.zeros(self.filters, np.float32)
        z = self._convolve_fused(x, ones, zeros, 0, True)
        z = self._convolve(x, True) if z is None else z.reshape(n, self.filters, -1)
        self._x = x
        return z

    @property
    def trains_pooled(self):
        """Whether forward_train_pooled applies: batch norm, a piecewise-linear activation
        and an even output (the maxpool's 2x2/2 windows tile it) of at least
        TRAIN_POOLED_MIN_OUTPUTS positions."""
        f, oh, ow = self.out_shape
        return (self.bn is not None and self.act != core.ACT_LOGISTIC
                and oh % 2 == 0 and ow % 2 == 0 and oh * ow >= TRAIN_POOLED_MIN_OUTPUTS)

    @property
    def pooled_in_training(self):
        """Whether the forward kept for backward was forward_train_pooled's (backward then
        takes the pooled output's gradient)."""
        return self._pooled is not None

    def forward_train_pooled(self, x):
        """The training forward followed by a 2x2/2 maxpool, as one: returns the pooled
        output (N, F, out_h/2, out_w/2); the full activated output is never written, and
        backward then takes the pooled output's gradient and unpools it (each window's to
        the first of its values, recomputed from z, equal to the maximum, as the maxpool's
        backward does). None when trains_pooled does not hold (the caller runs the two
        layers)."""
        if not self.trains_pooled:
            return None
        if isinstance(x, handoff.PackedActivation):
            raise ValueError("training reads and writes fp32 activations, never packed ones")
        z = self._train_products(x)
        f, oh, ow = self.out_shape
        pooled = np.empty((x.shape[0], f, oh // 2, ow // 2), np.float32)
        self._z, self._y = z, None
        self._pooled = self.bn.forward_train_pooled(z, oh, ow, self.biases, self.act, pooled)
        return pooled

    def backward(self, dy, need_input_grad=True, dy_is_scratch=False):
        """dL/dx (None when need_input_grad is False: the network's first layer skips the
        col2im and the product that only the input gradient needs). dy_is_scratch: the
        caller will not read dy again, so the gradient at the convolution's output may be
        written over it (saves an array as large as the layer's output). After
        forward_train_pooled, dy is the gradient of its pooled output."""
        n = dy.shape[0]
        f, oh, ow = self.out_shape
        c, h, w = self.in_shape
        if self._pooled is not None:
            # dy is the gradient of forward_train_pooled's output
            g = np.empty((n, f, oh * ow), np.float32)
            self.bn.backward_pooled(self._z, self._pooled,
                                    np.ascontiguousarray(dy, dtype=np.float32), self.biases,
                                    self.act, self.bias_grad, g)
            return self._backward_products(g, need_input_grad)
        dy = np.ascontiguousarray(dy, dtype=np.float32).reshape(n, f, oh * ow)
        g = dy if dy_is_scratch else np.empty_like(dy)
        if self.bn is not None:
            self.bn.backward(self._z, self._y, dy, self.biases, self.act, self.bias_grad, g)
        else:
            core.batchnorm_activate_backward(dy, self._y, self.act, g, self.bias_grad)
        return self._backward_products(g, need_input_grad)

    def _winograd_backward(self, n, need_input_grad):
        """(weight gradient, input gradient): which of the two go through Winograd."""
        if not self.use_winograd:
            return False, False
        th, tw = winograd.tile_grid(self.out_shape[1], self.out_shape[2])
        tiles = n * th * tw
        # the weight gradient needs no U: 10-30% faster than im2col's from 98 tiles on, but at
        # 49 (13x13, batch 1; 1024x1024 channels, two threads) 22.6 ms against 14.0, its 16
        # products too thin to pay for writing and transforming a 64 MB dU. The input
        # gradient's products sum over the filters, as the forward's over channels; without
        # the forward's U it makes one
        weights = tiles >= self._min_training_tiles()
        inputs = (need_input_grad and self.filters >= WINOGRAD_MIN_CHANNELS
                  and (self._train_u is not None or tiles >= WINOGRAD_MIN_TILES_UNCACHED))
        return weights, inputs

    def _backward_products(self, g, need_input_grad):
        """Accumulate dL/dweights and return dL/dx (None unless need_input_grad) from g, the
        gradient at the convolution's output (N, F, out_h·out_w)."""
        n = g.shape[0]
        f, oh, ow = self.out_shape
        c, h, w = self.in_shape
        winograd_weights, winograd_input = self._winograd_backward(n, need_input_grad)
        dx = None
        if winograd_weights or winograd_input:
            g4 = np.ascontiguousarray(g, np.float32).reshape(n, f, oh, ow)
        f4 = self._uses_f4()
        if winograd_weights:
            # written over a lazily zero gradient, added to one that holds a sum
            accumulate = not self._weight_grad_is_zero
            if f4:
                winograd.weight_gradient4(self._x, g4, self.weight_grad, accumulate)
            else:
                winograd.weight_gradient(self._x, g4, self.weight_grad, accumulate)
            self._weight_grad_is_zero = False
        if winograd_input and f4:
            dx = winograd.input_gradient4(g4, winograd.flipped_filters4(self.weights),
                                          np.empty((n, c, h, w), np.float32))
        elif winograd_input:
            u = self._train_u if self._train_u is not None else winograd.filters(self.weights)
            dx = winograd.input_gradient(g4, u, np.empty((n, c, h, w), np.float32))
        self._train_u = None
        if self.use_direct:
            self._add_weight_grad(self._direct_weight_grad(g).reshape(self.weights.shape))
        im2col_weights = not (winograd_weights or self.use_direct)
        im2col_input = need_input_grad and not winograd_input
        if not (im2col_weights or im2col_input):
            return dx
        if self._dense_applies() and im2col_weights and im2col_input == need_input_grad:
            return self._dense_backward(g, need_input_grad)
        w2d = self.weights.reshape(f, -1)
        dw = None        # the first chunk's product is the sum so far (no zeroing pass)
        in_place = False
        if im2col_input:
            dx = np.zeros((n, c, h, w), np.float32)
        s = oh * ow
        for a, b in self._chunks(n):
            m = b - a
            gm = g[a] if m == 1 else np.ascontiguousarray(g[a:b].transpose(1, 0, 2)).reshape(f, m * s)
            # through gemm.py like the forward's products (OpenBLAS's own threads were
            # measured to stall for seconds on these shapes on a busy machine)
            if im2col_weights:
                col = self._columns(self._x, a, b)
                if dw is None and self._weight_grad_is_zero:
                    # lazily zero: the first product is the gradient, written in place
                    dw = gemm.matmul(gm, col.T, self.weight_grad.reshape(f, -1))
                    self._weight_grad_is_zero = False
                    in_place = True
                else:
                    product = gemm.matmul(gm, col.T, np.empty(w2d.shape, np.float32))
                    if dw is None:
                        dw = product
                    else:
                        dw += product
            if not im2col_input:
                continue
            dcol = gemm.matmul(w2d.T, gm, np.empty((w2d.shape[1], gm.shape[1]), np.float32))
            if self.is_pointwise:
                dx[a:b] = dcol.reshape(c, m, h * w).transpose(1, 0, 2).reshape(m, c, h, w)
            else:
                core.col2im_images(dcol, self.size, self.stride, self.padding, dx, a, b)
        if im2col_weights and not in_place:
            self._add_weight_grad(dw.reshape(self.weights.shape))
        return dx

    def to_onnx(self, graph, x):
        """One Conv, batch norm folded into its weights and bias (in float64, then float32),
        and the activation."""
        weights, bias = self.weights.astype(np.float64), self.biases.astype(np.float64)
        if self.bn is not None:
            a, b = self.bn.inference_affine(np.float64)
            weights = weights * a[:, None, None, None]
            bias = bias + b
        y = graph.op("Conv", [x, graph.constant(weights, "weights"), graph.constant(bias, "bias")],
                     "conv", kernel_shape=[self.size] * 2, strides=[self.stride] * 2,
                     pads=[self.padding] * 4)
        return activation_to_onnx(graph, y, self.activation)

    def flops(self):
        f, oh, ow = self.out_shape
        return 2.0 * f * oh * ow * self.in_shape[0] * self.size * self.size

    def describe(self):
        return f"{self.size} x {self.size} / {self.stride}"
