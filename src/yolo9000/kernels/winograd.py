"""Winograd F(2x2, 3x3): 3x3 stride-1 "same" convolutions with 16 products per 2x2 outputs.

    U = filters(weights)                       # (16, F, C), once per set of weights
    convolve(x, U, z, scale, bias, act)        # z = act(scale·conv(x) + bias), z (N, F, H, W)
    input_gradient(dz, U, dx)                  # dx = dL/dx given dz = dL/dz (the same U)
    weight_gradient(x, dz, dw)                 # dw += dL/dweights

The input is cut into overlapping 4x4 tiles (stride 2), each transformed to V = Bᵀ d B (Cython,
winograd_input); the sum over channels is then 16 independent matrix products
M[k] = U[k] @ V[k] — one batched np.matmul, so BLAS does the work — and each 4x4 result goes
back to a 2x2 output tile (winograd_output), fused with the layer's affine epilogue and
activation. Against im2col + GEMM this does 16/36 of the multiplications (somewhat more on odd
sizes, whose last tile is half outside) and moves 4·C·H·W floats instead of 9·C·H·W.

On 13x13 maps (49 tiles an image: thin products, BLAS packs a 4 MB plane per call) an AVX-512
kernel does the products instead, transforming the filters inside them from WeightBlocks or
the weights themselves: the forward through F(4x4, 3x3) (f4_from_weights_applies: 11x11 to
20x20), the input gradient through F(2x2, 3x3).
With pool=True, convolve writes the 2x2/2 maxpool of its output (one window per 2x2 tile).

Two details matter for speed:
  * the tiles are processed in chunks whose V and M stay bounded (memory), while several
    images share one product on small maps (13x13 has only 49 tiles, few columns for BLAS);
  * the 16 planes of U, V and M are written (read) 16 at a time, one value per plane; with
    plane sizes that are multiples of 4 KiB every one of those addresses would fall in the
    same L1 set, so the planes are spaced by an odd number of cache lines instead.

F(4x4, 3x3) (the F4 functions at the end: filters4, convolve4, input_gradient4,
weight_gradient4) does the same on 4x4 output tiles: 36 products per 16 outputs, 1.78x fewer
multiplications than F(2x2, 3x3)'s, through the chunked products (on chunks of few columns,
26x26 at batch 1, an AVX-512 kernel instead of BLAS: planes_products) or, on few channels, by
bands of tile rows in one kernel (banded4), its input and output transforms with their
matrices in code. Layers whose maps make it pay take it (f4_applies).
"""
import numpy as np

from . import core
from . import gemm, workspace
from .threads import sgemm_address

TILES = 16                       # 4x4 transformed values per tile
LINE = 16                        # floats per 64-byte cache line
# floats of V + M per chunk (16 MB, less than the im2col matrix of a 416 px input layer):
# smaller chunks pay more per-call overhead than they gain in cache, larger ones lose it
# (see BENCHMARKS.md#winograd-chunks)...
CHUNK_FLOATS = 4 * 2**20
# ...but never fewer columns than this (small maps batch images side by side instead)
MIN_COLUMNS = 512


def plane_stride(n):
    """Floats between consecutive planes holding n floats each: n rounded up to whole cache
    lines, then to an odd number of lines, so the 16 planes map to 16 different cache sets."""
    lines = -(-n // LINE)
    if lines % 2 == 0:
        lines += 1
    return lines * LINE


def stacked(rows, cols, buffer=None, planes=TILES):
    """A (planes, rows, cols) float32 array whose planes are C-contiguous and spaced by
    plane_stride(rows * cols); carved from `buffer` (1-D) when given."""
    stride = plane_stride(rows * cols)
    size = (planes - 1) * stride + rows * cols
    flat = np.empty(size, np.float32) if buffer is None else buffer[:size]
    return np.lib.stride_tricks.as_strided(flat, (planes, rows, cols),
                                           (4 * stride, 4 * cols, 4), writeable=True)


def stacked_size(rows, cols, planes=TILES):
    return (planes - 1) * plane_stride(rows * cols) + rows * cols


def filters(weights):
    """U (16, F, C): the transformed 3x3 filters of weights (F, C, 3, 3)."""
    f, c = weights.shape[:2]
    u = stacked(f, c)
    core.winograd_filter(np.ascontiguousarray(weights, np.float32), u)
    return u


def filter_floats(f, c):
    return stacked_size(f, c)


# Few tiles (13x13 at batch 1: 49 columns per product): an AVX-512 kernel
# (core.winograd_products_from_weights) transforms the filters inside the products, block by
# block of 32 rows, from the 3x3 weights regrouped once (WeightBlocks: 9/16 of U's size, so
# an inference cache holds every 13x13 layer of a yolov2-voc within its budget); BLAS would
# pack each 4 MB plane of U per call. It wins up to about 100 columns, 13x13 at batch 1 and 2
# (see BENCHMARKS.md#winograd-products-from-weight-blocks). In training, where the blocks
# would be made twice a step, im2col is as fast at batch 1.
PRODUCTS_KERNEL = core.winograd_products_available()
BLOCK_ROWS = core.WINOGRAD_BLOCK_ROWS
PRODUCTS_MAX_COLUMNS = 100
# The forward from weight blocks (or the weights themselves) goes through F(4x4, 3x3) on maps
# where it pays, its filters transformed inside the products as F(2x2, 3x3)'s are: on a 13x13
# map 16 tiles of 36 products an image against 49 of 16 (0.73x the multiplications), but the
# filter transform makes 2.25x the values, which the few columns of batch 1 pay for. Measured
# (512 -> 1024, one layer, batch 1 / 8, F(4x4, 3x3)'s time over F(2x2, 3x3)'s): 4x4 1.61 /
# 0.86, 7x7 1.05 / 0.73, 9x9 1.06 / 0.95, 11x11 0.82 / 0.74, 13x13 0.91 / 0.80 (see
# BENCHMARKS.md#f4-from-weights): hence at least 9 tiles of 4x4 and at most 0.75x F(2x2, 3x3)'s
# products. The input gradient (transposed blocks) stays F(2x2, 3x3).
F4_FROM_WEIGHTS = True
F4_FROM_WEIGHTS_MIN_TILES = 9
F4_FROM_WEIGHTS_MAX_PRODUCTS = 0.75


def f4_from_weights_applies(h, w):
    """Whether convolve()'s forward from weight blocks (or the weights) on h x w maps goes
    through F(4x4, 3x3) (the same for every batch size and channel count)."""
    th4, tw4 = tile_grid(h, w, 4)
    th2, tw2 = tile_grid(h, w, 2)
    return (F4_FROM_WEIGHTS and th4 * tw4 >= F4_FROM_WEIGHTS_MIN_TILES
            and TILES4 * th4 * tw4 <= F4_FROM_WEIGHTS_MAX_PRODUCTS * TILES * th2 * tw2)


class WeightBlocks:
    """3x3 weights (F, C, 3, 3) regrouped for the products kernel: blocks of 32 rows of the
    products, the rows' values of one reduction index and tap contiguous. Rows are the
    filters (the forward's), or with `transposed` the channels (the input gradient's)."""

    def __init__(self, weights, transposed=False):
        f, c = weights.shape[:2]
        self.rows, reduction = (c, f) if transposed else (f, c)
        self.transposed = transposed
        self.data = np.empty((-(-self.rows // BLOCK_ROWS), reduction, 9, BLOCK_ROWS), np.float32)
        core.winograd_weight_blocks(np.ascontiguousarray(weights, np.float32), transposed,
                                    self.data)


def block_floats(f, c):
    """Floats of WeightBlocks of (f, c, 3, 3) weights."""
    return -(-f // BLOCK_ROWS) * BLOCK_ROWS * c * 9


def blocks_apply(c, f, h, w):
    """Whether convolve() of (C, H, W) -> (F, H, W) images multiplies through the products
    kernel, from WeightBlocks: maps of few tiles (13x13), channels the banded kernels leave
    to the chunked path. The same for every batch size, so that a batch gives the same bits
    as its images one by one (batches go through it in groups of few images)."""
    th, tw = tile_grid(h, w)
    return (PRODUCTS_KERNEL and th * tw <= PRODUCTS_MAX_COLUMNS
            and (c > BANDED_MAX_CHANNELS or f > 2 * BANDED_MAX_CHANNELS))


def tile_grid(h, w, side=2):
    """(tile rows, tile columns) covering an h x w output with side x side tiles."""
    return -(-h // side), -(-w // side)


def image_groups(n, most, th):
    """[(n0, n1, 0, th)]: the n images in groups of whole images, all of one size, the largest
    up to `most` that divides the batch, so that side by side no thread is left with a short
    last one (batch 8 at 52x52 went 3 + 3 + 2, see BENCHMARKS.md#winograd-chunks; at 13x13
    through F(4x4, 3x3) 6 + 2, see BENCHMARKS.md#f4-from-weights)."""
    m = max(1, min(n, most))
    while n % m:
        m -= 1
    return [(a, a + m, 0, th) for a in range(0, n, m)]


def chunks(n, h, w, c, f, side=2):
    """[(n0, n1, r0, r1)]: images n0..n1, tile rows r0..r1 of each, per product (tiles of
    side x side outputs: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3)).

    Whole images side by side while they fit the chunk, else tile-row bands of one image."""
    th, tw = tile_grid(h, w, side)
    per_column = (side + 2) ** 2 * (c + f)
    columns = max(MIN_COLUMNS, CHUNK_FLOATS // per_column)
    per_image = th * tw
    if per_image <= columns:
        return image_groups(n, columns // per_image, th)
    rows = max(1, columns // tw)
    return [(a, a + 1, r, min(r + rows, th)) for a in range(n) for r in range(0, th, rows)]


# Few channels (the 100-400 px layers of a YOLOv2): bands of tile rows whose V and M stay in
# the thread's cache, in one kernel (banded); it pays up to 64 -> 128 channels, in bands of
# 512K floats (V + M) (see BENCHMARKS.md#winograd-bands).
BANDED_MAX_CHANNELS = 64
BAND_FLOATS = 2**19
# fewer jobs than that leave threads idle: the chunked path then, whose products and
# transforms every thread shares
MIN_BANDS = 4
# the weight gradient by bands pays on fewer channels only (input + output channels; see
# BENCHMARKS.md#winograd-bands)
BANDED_WEIGHT_MAX_CHANNELS = 96
IDENTITY_ORDER = np.arange(TILES, dtype=np.int32)


def banded(x, u, z, scale, bias, act, order=IDENTITY_ORDER, transposed=False, pool=False):
    """convolve() by bands in one kernel (few channels, BLAS reachable); False if it does not
    apply. u: the stacked filters() array; order/transposed read its planes as
    input_gradient does."""
    n, c, h, w = x.shape
    f = z.shape[1]
    plan = _band_plan(n, c, f, h, w)
    if plan is None:
        return False
    rows, v_plane, m_plane, row = plan
    scratch = workspace.borrow((core.get_max_threads(), row))
    with gemm.single_threaded_blas():
        core.winograd_convolve_banded(x, u.ctypes.data, u.strides[0] // 4, order, transposed,
                                      f, z, scale, bias, act, sgemm_address(), rows,
                                      v_plane, m_plane, scratch, pool)
    return True


def _band_plan(n, c, f, h, w):
    """(tile rows per band, V plane, M plane, scratch row) for the banded kernels, or None
    when they do not apply (too many channels, too few bands, no BLAS to call)."""
    if not sgemm_address() or c > BANDED_MAX_CHANNELS or f > 2 * BANDED_MAX_CHANNELS:
        return None
    th, tw = tile_grid(h, w)
    rows = max(1, min(th, BAND_FLOATS // (TILES * (c + f) * tw)))
    # a fixed number, not one per thread: the choice (and so the roundings) must not depend
    # on the thread count, or parallel subdivisions (one thread each) would part from a
    # sequential run
    if n * ((th + rows - 1) // rows) < MIN_BANDS:
        return None
    v_plane = plane_stride(c * rows * tw)
    m_plane = plane_stride(f * rows * tw)
    return rows, v_plane, m_plane, TILES * (v_plane + m_plane) + 8 * (2 * tw + 2)


def banded_weight_gradient(x, dz, dw, accumulate=True):
    """weight_gradient() for few channels by bands (each band's dU its own, summed in band
    order: the same whatever the threads); False if it does not apply."""
    n, c, h, w = x.shape
    f = dz.shape[1]
    plan = _band_plan(n, c, f, h, w) if c + f <= BANDED_WEIGHT_MAX_CHANNELS else None
    if plan is None:
        return False
    rows, v_plane, m_plane, row = plan
    th, _ = tile_grid(h, w)
    parts = np.empty((n * ((th + rows - 1) // rows), TILES, f, c), np.float32)
    scratch = workspace.borrow((core.get_max_threads(), row))
    with gemm.single_threaded_blas():
        core.winograd_weight_grad_banded(x, dz, sgemm_address(), rows, v_plane, m_plane,
                                         scratch, parts)
    # pairwise sums over the bands' axis: a fixed order; one transform straight into dw
    core.winograd_filter_grad(parts.sum(axis=0), dw, accumulate)
    return True


def convolve(x, u, z, scale, bias, act, order=IDENTITY_ORDER, transposed=False, pool=False):
    """z[:] = act(scale[f] · (3x3 'same' convolution of x with the filters behind u) + bias[f]).

    x (N, C, H, W) and z (N, F, H, W) float32 C-contiguous; u from filters(), its planes read
    in `order` and, with `transposed`, as (C, F) transposed (input_gradient's filters), or
    WeightBlocks (transposed ones for the input gradient), or on maps blocks_apply names the
    (F, C, 3, 3) weights themselves (the forward only), which the products kernel reads in
    place. pool: z (N, F, H/2, W/2) gets the
    2x2/2 maxpool of that instead (H and W even; each 2x2 output tile is one window)."""
    n, c, h, w = x.shape
    f = z.shape[1]
    in_place = isinstance(u, np.ndarray) and u.ndim == 4
    blocks = in_place or isinstance(u, WeightBlocks)
    if in_place:
        u = np.ascontiguousarray(u, np.float32)
        if transposed or u.shape[:2] != (f, c):
            raise ValueError("the weights of another convolution (or transposed ones)")
    elif blocks:
        if u.transposed != transposed or u.rows != f:
            raise ValueError("weight blocks of another convolution")
    elif banded(x, u, z, scale, bias, act, order, transposed, pool):
        return z
    else:
        # views of u's planes: the 16 products read U transposed in place (64 MB at 1024^2)
        planes = u if order is IDENTITY_ORDER and not transposed else [
            u[k].T if transposed else u[k] for k in order]
    # the forward from weight blocks or the weights themselves: F(4x4, 3x3) where it pays
    f4 = blocks and not transposed and f4_from_weights_applies(h, w)
    side, tiles = (4, TILES4) if f4 else (2, TILES)
    th, tw = tile_grid(h, w, side)
    if f4:
        plane_order = IDENTITY4_ORDER

        def transform_input(x, n0, n1, r0, r1, v):
            core.winograd4_input(x, n0, n1, r0, r1, _input4_matrix(), v)

        def transform_output(m, z, n0, n1, r0, r1, *epilogue):
            core.winograd4_output(m, z, n0, n1, r0, r1, _output4_matrix(), *epilogue)
    else:
        plane_order = order
        transform_input, transform_output = core.winograd_input, core.winograd_output

    def chunk(n0, n1, r0, r1):
        cols = (n1 - n0) * (r1 - r0) * tw
        # V, M and the kernel's scratch side by side in the (running thread's) buffer
        nv = stacked_size(c, cols, tiles)
        nm = stacked_size(f, cols, tiles)
        threads = core.get_max_threads()
        per_thread = (core.winograd_scratch_floats(-(-cols // LINE) * LINE, tiles)
                      if blocks else 0)
        buf = workspace.borrow((nv + LINE + nm + 2 * LINE + threads * per_thread,))
        v = stacked(c, cols, buf, tiles)
        m = stacked(f, cols, buf[nv + LINE:], tiles)
        transform_input(x, n0, n1, r0, r1, v)
        if blocks:
            start = nv + LINE + nm + LINE
            start += (-(buf[start:].ctypes.data // 4)) % LINE        # 64-byte aligned
            scratch = buf[start:start + threads * per_thread].reshape(threads, per_thread)
            if in_place:
                core.winograd_products_in_place(u, plane_order, v, m, scratch)
            else:
                core.winograd_products_from_weights(u.data, f, plane_order, v, m, scratch)
        else:
            gemm.batched_matmul(planes, v, m)
        transform_output(m, z, n0, n1, r0, r1, scale, bias, act, pool)

    if blocks:
        # groups of whole images of at most PRODUCTS_MAX_COLUMNS tiles (the kernel's products
        # lose to BLAS's on wider ones)
        parts = image_groups(n, PRODUCTS_MAX_COLUMNS // (th * tw), th)
    else:
        parts = chunks(n, h, w, c, f)
    for_each_chunk(parts, chunk)
    return z


def for_each_chunk(parts, work):
    """work(*part) for every chunk: whole chunks side by side on the threads when there are
    several (each single-threaded: no hand-overs between threads inside a chunk, which cost
    ~0.7 ms each on the few-channel 416 px layers), else the threads share each chunk."""
    if len(parts) > 1 and gemm.run_side_by_side([lambda p=p: work(*p) for p in parts]):
        return
    for p in parts:
        work(*p)


# Backward. The input gradient of a 3x3 "same" convolution is the same convolution of dL/dz
# with every filter flipped spatially and filters and channels swapped. Flipping g reverses its
# rows and columns, and G J = P G (J reverses 3 entries, P swaps entries 0 and 3 of 4: rows 1
# and 2 of G are symmetric, rows 0 and 3 mirror each other), so the flipped filter's transform
# is G J g J Gᵀ = P U P: each 4x4 U with rows and columns 0 and 3 swapped, i.e. plane k of the
# new U is plane FLIPPED_PLANE[k] of the old one, transposed to (C, F).
_SWAP_0_3 = (3, 1, 2, 0)
FLIPPED_PLANE = np.array([4 * _SWAP_0_3[k // 4] + _SWAP_0_3[k % 4] for k in range(TILES)],
                         np.int32)


def input_gradient(dz, u, dx):
    """dx[:] = dL/dx of the convolution behind u (filters() of (F, C, 3, 3) weights, or their
    transposed WeightBlocks) given
    dz = dL/dz (N, F, H, W); dx (N, C, H, W). Both float32 C-contiguous."""
    c = dx.shape[1]
    return convolve(dz, u, dx, np.ones(c, np.float32), np.zeros(c, np.float32),
                    core.ACT_LINEAR, FLIPPED_PLANE, True)


def weight_gradient(x, dz, dw, accumulate=True):
    """dw += dL/dweights (F, C, 3, 3) of the 3x3 'same' convolution of x (N, C, H, W) given
    dz = dL/dz (N, F, H, W); all float32 C-contiguous. Without accumulate dw = dL/dweights
    (a gradient lazily zero is written, never zeroed and read: 38 MB at 1024x1024).

    Per chunk of tiles: V = Bᵀ d B, dM = A dY Aᵀ, dU[k] = dM[k] @ V[k]ᵀ (16 products summing
    over the chunk's tiles), then Gᵀ dU G; the chunks' sum is added to dw at the end: the same
    roundings whether dw starts at zero or holds earlier mini-batches' sum (parallel
    subdivisions add a replica's gradient to the main network's afterwards)."""
    if banded_weight_gradient(x, dz, dw, accumulate):
        return dw
    return _chunked_weight_gradient(x, dz, dw, 2, core.winograd_input,
                                    core.winograd_output_grad, core.winograd_filter_grad,
                                    accumulate)


def _chunked_weight_gradient(x, dz, dw, side, input_transform, output_grad_transform,
                             filter_grad_transform, accumulate=True):
    """weight_gradient() by chunks of side x side output tiles, through the given transforms
    (F(2x2, 3x3)'s or F(4x4, 3x3)'s, with their signatures)."""
    n, c, h, w = x.shape
    f = dz.shape[1]
    planes = (side + 2) ** 2
    _, tw = tile_grid(h, w, side)
    parts = chunks(n, h, w, c, f, side)
    cols_max = max((n1 - n0) * (r1 - r0) * tw for n0, n1, r0, r1 in parts)
    nu = stacked_size(f, c, planes)
    size = (nu + LINE + stacked_size(c, cols_max, planes) + LINE
            + stacked_size(f, cols_max, planes))

    def chunk(target, n0, n1, r0, r1, add=True):
        """Adds the chunk's transformed gradient to target (writes it without add)."""
        buf = workspace.borrow((size,))
        du = stacked(f, c, buf, planes)
        cols = (n1 - n0) * (r1 - r0) * tw
        v = stacked(c, cols, buf[nu + LINE:], planes)
        dm = stacked(f, cols, buf[nu + LINE + stacked_size(c, cols, planes) + LINE:], planes)
        input_transform(x, n0, n1, r0, r1, v)
        output_grad_transform(dz, n0, n1, r0, r1, dm)
        gemm.batched_matmul(dm, v.transpose(0, 2, 1), du)
        filter_grad_transform(du, target, add)

    if len(parts) == 1:
        # one chunk's transform added straight to dw is the same sum, bit for bit, as added
        # to zero first: no scratch gradient (36 MB at 1024x1024)
        chunk(dw, *parts[0], add=accumulate)
        return dw
    # each chunk its own sum (the chunks may run side by side), added up in chunk order: the
    # same roundings on any number of threads
    sums = np.empty((len(parts), f, c, 3, 3), np.float32)
    for_each_chunk([(sums[i],) + p + (False,) for i, p in enumerate(parts)], chunk)
    total = sums[0]
    for part in sums[1:]:
        total += part
    if accumulate:
        dw += total
    else:
        np.copyto(dw, total)
    return dw


# -- F(4x4, 3x3) ----------------------------------------------------------------------------------
# Interpolation points 0, 1, -1, 2, -1/2 and ∞ (Toom-Cook; Aᵀ's columns are the points'
# powers, G's rows them over the products of their differences, Bᵀ's rows the coefficients of
# the other points' polynomials). Measured in float32 against float64 sums (256 channels of
# random 6x6 tiles): 2.3e-6 mean and 5.8e-6 worst relative error a tile, against 4.3e-6 and
# 1.7e-5 for 0, ±1, ±2 (the usual choice) and 4.1e-6 and 2.3e-5 for 0, ±1, ±1/2: points on
# both sides of 1 in size balance the rounding of the large and the small powers (see
# BENCHMARKS.md#winograd-f4x4). Bᵀ and Aᵀ are exact in float32, G's thirds and fifteenths not.
TILES4 = 36
IDENTITY4_ORDER = np.arange(TILES4, dtype=np.int32)
F4_BT = np.array([
    [1, 3 / 2, -2, -3 / 2, 1, 0],
    [0, -1, -5 / 2, -1 / 2, 1, 0],
    [0, 1, 1 / 2, -5 / 2, 1, 0],
    [0, -1 / 2, -1, 1 / 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 1, 3 / 2, -2, -3 / 2, 1],
], np.float32)
F4_G = np.array([
    [1, 0, 0],
    [-1 / 3, -1 / 3, -1 / 3],
    [1 / 3, -1 / 3, 1 / 3],
    [1 / 15, 2 / 15, 4 / 15],
    [-16 / 15, 8 / 15, -4 / 15],
    [0, 0, 1],
], np.float32)
F4_AT = np.array([
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -1 / 2, 0],
    [0, 1, 1, 4, 1 / 4, 0],
    [0, 1, -1, 8, -1 / 8, 1],
], np.float32)


def f4_applies(c, f, h, w):
    """Whether a (C, H, W) -> (F, H, W) 3x3 convolution goes through F(4x4, 3x3), in
    inference and training alike: every layer but those the products from weight blocks take
    (13x13 maps of many channels), on maps of enough 4x4 tiles. The same for every batch
    size, so that a batch gives the bits of its images one by one."""
    th, tw = tile_grid(h, w, 4)
    return F4_ENABLED and th * tw >= F4_MIN_TILES and not blocks_apply(c, f, h, w)


# Measured layer by layer against F(2x2, 3x3) (see BENCHMARKS.md#winograd-f4x4), with the
# transforms in code: inference 0.67-0.94x the time on every yolov2-voc and tiny layer from
# 208x208 to 26x26 (the banded ones too), at batch 1 and 8; the training step 0.81-0.87x
# from 104x104 to 26x26 (the two 128 -> 256 layers 1.04-1.06x, within the noise), but 1.3-1.6x at 13x13, whose 16 tiles an image
# are half outside the map (256 outputs computed for 169), hence 26x26's 49 tiles at least.
# 13x13 inference keeps the products from weight blocks (1.5-1.8x faster at batch 1).
# Training on few channels (up to 96 input + output channels) took it only once its
# forward, input and weight gradients went by bands as F(2x2, 3x3)'s do (banded4,
# banded_weight_gradient4): layer steps 0.52-0.69x F(2x2, 3x3)'s from 32x32 batch 64 to
# 208x208 batch 8, against 1.2-1.4x before (see BENCHMARKS.md#f4-in-training-on-few-channels).
F4_ENABLED = True
F4_MIN_TILES = 49


# The input, output and output-gradient transforms with Bᵀ and Aᵀ written into their code
# (the C in csrc/winograd4_transforms.h, the same matrices as F4_BT and F4_AT); False: the
# general loops over F4_BT and F4_AT instead, the reference the tests hold those against
F4_TRANSFORMS_IN_CODE = True


def _input4_matrix():
    """Bᵀ for core.winograd4_input: None for the one written into its code."""
    return None if F4_TRANSFORMS_IN_CODE else F4_BT


def _output4_matrix():
    """Aᵀ for core.winograd4_output and winograd4_output_grad: None for the one written into
    their code."""
    return None if F4_TRANSFORMS_IN_CODE else F4_AT


def filters4(weights):
    """U (36, F, C): the F(4x4, 3x3) transforms of 3x3 filters weights (F, C, 3, 3)."""
    f, c = weights.shape[:2]
    u = stacked(f, c, planes=TILES4)
    core.winograd4_filter(np.ascontiguousarray(weights, np.float32), F4_G, u)
    return u


def filter4_floats(f, c):
    return stacked_size(f, c, TILES4)


def flipped_filters4(weights):
    """filters4() of the input gradient's filters: weights (F, C, 3, 3) flipped spatially,
    filters and channels swapped (F(4x4, 3x3)'s points are not symmetric, so U's planes
    cannot be reordered instead, as F(2x2, 3x3)'s are)."""
    return filters4(np.ascontiguousarray(weights[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)))


# F(4x4, 3x3) by bands on few channels, as banded() for F(2x2, 3x3): bands of V + M (36
# planes each) within BAND4_FLOATS. Inference batch 1, pooled, two threads on a loaded
# machine, medians (minima) of 21 interleaved, ms, chunked -> banded: 16 -> 32 at 208x208
# 9.4 (4.6) -> 9.7 (3.3); 32 -> 64 at 208x208 31.9 (18.2) -> 24.0 (5.0); 32 -> 64 at 104x104
# 4.6 (2.1) -> 1.8 (1.7). 64 -> 128 (192 channels) looked a tie in wall time on two shared
# cores, but takes 0.75-0.80x chunked's CPU time at 104x104 (batch 1 and 8) and 52x52
# (batch 8), and its batch-1 chunks (23 + 3 tile rows side by side) leave a thread idle;
# 128 -> 256 takes 1.4x by bands: hence up to 192 input + output channels (see
# BENCHMARKS.md#f4-by-bands). The weight gradient by bands keeps a dU per band (123 MB for
# 64 -> 128 at 104x104, batch 8): up to 96 channels, as measured before.
BAND4_FLOATS = 2**19
BANDED4_MAX_CHANNELS = 192
BANDED4_WEIGHT_MAX_CHANNELS = 96


def _band4_plan(n, c, f, h, w, max_channels):
    """(tile rows per band, V plane, M plane, scratch row) for the F(4x4, 3x3) banded
    kernels, or None when they do not apply (more than max_channels input + output
    channels, too few bands, no BLAS)."""
    if not sgemm_address() or c + f > max_channels:
        return None
    th, tw = tile_grid(h, w, 4)
    rows = max(1, min(th, BAND4_FLOATS // (TILES4 * (c + f) * tw)))
    # as _band_plan's: a number of bands that does not depend on the threads
    if n * -(-th // rows) < MIN_BANDS:
        return None
    v_plane = plane_stride(c * rows * tw)
    m_plane = plane_stride(f * rows * tw)
    return rows, v_plane, m_plane, TILES4 * (v_plane + m_plane) + 12 * (4 * tw + 2)


def banded4(x, u, z, scale, bias, act, pool=False):
    """convolve4() by bands in one kernel (few channels, BLAS reachable); False if it does
    not apply."""
    n, c, h, w = x.shape
    f = z.shape[1]
    plan = _band4_plan(n, c, f, h, w, BANDED4_MAX_CHANNELS)
    if plan is None:
        return False
    rows, v_plane, m_plane, row = plan
    scratch = workspace.borrow((core.get_max_threads(), row))
    with gemm.single_threaded_blas():
        core.winograd4_convolve_banded(x, u, z, scale, bias, act, _input4_matrix(),
                                       _output4_matrix(), sgemm_address(), rows, v_plane,
                                       m_plane, scratch, pool)
    return True


# Chunks of few columns (26x26 at batch 1: 49 tiles) multiply U by V in an AVX-512 kernel
# (core.winograd_products_planes: jobs of one plane's 64 rows, U's rows turned into
# reduction-major order chunk by chunk in the thread's cache) instead of BLAS, which packs
# each plane of U for those few columns: (512 x 256) @ (256 x 49) x 36, one thread, CPU
# time, 0.85-0.89x BLAS's time at 49 columns, 0.9-1.0x at 98, but 1.2-1.3x at 392 (batch 8,
# where BLAS's packed panels run at 81% of the FMA peak and the kernel at 70%): up to 100
# columns then (see BENCHMARKS.md#f4-products-kernel). Each of its sums adds the terms in
# order, one FMA each, as OpenBLAS's kernel does while the reduction fits one of its blocks:
# on yolov2-voc's 26x26 layers (256 channels) a batch of 8 through BLAS gives the bits of its
# images one by one through the kernel; other shapes (small products, long reductions) may
# round apart in the last bits, within the tolerances.
PLANES_KERNEL = PRODUCTS_KERNEL
PLANES_MAX_COLUMNS = 100


def _planes_scratch_per_thread(cols):
    """Each thread's row of the planes kernel's scratch, whole 64-byte lines (0: BLAS's)."""
    if not PLANES_KERNEL or cols > PLANES_MAX_COLUMNS:
        return 0
    return -(-core.winograd_planes_scratch_floats(cols) // LINE) * LINE


def planes_scratch_floats(cols):
    """Floats planes_products needs beside V and M for that many columns (0: BLAS's)."""
    per_thread = _planes_scratch_per_thread(cols)
    return core.get_max_threads() * per_thread + LINE if per_thread else 0


def planes_products(u, v, m, buffer):
    """m[k] = u[k] @ v[k] for the stacked planes, through the kernel on few columns (its
    scratch carved from `buffer`, planes_scratch_floats(columns) floats), else BLAS."""
    per_thread = _planes_scratch_per_thread(v.shape[2])
    if not per_thread:
        gemm.batched_matmul(u, v, m)
        return m
    threads = core.get_max_threads()
    start = (-(buffer.ctypes.data // 4)) % LINE                # 64-byte aligned
    scratch = buffer[start:start + threads * per_thread].reshape(threads, per_thread)
    core.winograd_products_planes(u, v, m, scratch)
    return m


def convolve4(x, u, z, scale, bias, act, pool=False):
    """convolve() through F(4x4, 3x3): u from filters4() (flipped_filters4() for an input
    gradient), by bands (few channels) or by chunks of tiles and their 36 batched
    products."""
    n, c, h, w = x.shape
    f = z.shape[1]
    _, tw = tile_grid(h, w, 4)
    if banded4(x, u, z, scale, bias, act, pool):
        return z

    def chunk(n0, n1, r0, r1):
        cols = (n1 - n0) * (r1 - r0) * tw
        nv = stacked_size(c, cols, TILES4)
        nm = stacked_size(f, cols, TILES4)
        buf = workspace.borrow((nv + LINE + nm + LINE + planes_scratch_floats(cols),))
        v = stacked(c, cols, buf, TILES4)
        m = stacked(f, cols, buf[nv + LINE:], TILES4)
        core.winograd4_input(x, n0, n1, r0, r1, _input4_matrix(), v)
        planes_products(u, v, m, buf[nv + LINE + nm + LINE:])
        core.winograd4_output(m, z, n0, n1, r0, r1, _output4_matrix(), scale, bias, act, pool)

    for_each_chunk(chunks(n, h, w, c, f, 4), chunk)
    return z


def input_gradient4(dz, u, dx):
    """input_gradient() through F(4x4, 3x3); u from flipped_filters4()."""
    c = dx.shape[1]
    return convolve4(dz, u, dx, np.ones(c, np.float32), np.zeros(c, np.float32),
                     core.ACT_LINEAR)


def banded_weight_gradient4(x, dz, dw, accumulate=True):
    """weight_gradient4() for few channels by bands (each band's dU its own, summed in band
    order, as banded_weight_gradient's); False if it does not apply."""
    n, c, h, w = x.shape
    f = dz.shape[1]
    plan = _band4_plan(n, c, f, h, w, BANDED4_WEIGHT_MAX_CHANNELS)
    if plan is None:
        return False
    rows, v_plane, m_plane, row = plan
    th, _ = tile_grid(h, w, 4)
    parts = np.empty((n * -(-th // rows), TILES4, f, c), np.float32)
    scratch = workspace.borrow((core.get_max_threads(), row))
    with gemm.single_threaded_blas():
        core.winograd4_weight_grad_banded(x, dz, _input4_matrix(), _output4_matrix(),
                                          sgemm_address(), rows, v_plane, m_plane, scratch,
                                          parts)
    core.winograd4_filter_grad(parts.sum(axis=0), F4_G, dw, accumulate)
    return True


def weight_gradient4(x, dz, dw, accumulate=True):
    """weight_gradient() through F(4x4, 3x3): dw += dL/dweights (= without accumulate), by
    bands (few channels) or by chunks."""
    if banded_weight_gradient4(x, dz, dw, accumulate):
        return dw
    def input_transform(x, n0, n1, r0, r1, v):
        core.winograd4_input(x, n0, n1, r0, r1, _input4_matrix(), v)

    def output_grad_transform(dz, n0, n1, r0, r1, dm):
        core.winograd4_output_grad(dz, n0, n1, r0, r1, _output4_matrix(), dm)

    def filter_grad_transform(du, target, add):
        core.winograd4_filter_grad(du, F4_G, target, add)

    return _chunked_weight_gradient(x, dz, dw, 4, input_transform, output_grad_transform,
                                    filter_grad_transform, accumulate)
