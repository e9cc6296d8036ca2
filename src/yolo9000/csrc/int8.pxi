# int8 inference products (int8_x86.h): the packing of quantized weights, the quantizing
# packings of the input, and the exact int32 product with the fp32 epilogue, on AMX-INT8,
# AVX512-VNNI or the portable twin.
# (a section of the compiled core: ../_kernels.pyx includes it)

# the kernels, as int8_x86.h numbers them
INT8_PORTABLE = Y9K_INT8_PORTABLE
INT8_VNNI = Y9K_INT8_VNNI
INT8_AMX = Y9K_INT8_AMX
# K (the depth) is padded to a multiple of this; W's rows and B's columns to LOWP_BLOCK's
INT8_DEPTH = Y9K_INT8_DEPTH


def int8_kernels():
    """The int8 kernels this CPU (and the switch) allow, fastest first; the portable twin last."""
    kernels = []
    if _paths & Y9K_AMX_INT8:
        kernels.append(INT8_AMX)
    if _paths & Y9K_AVX512_VNNI:
        kernels.append(INT8_VNNI)
    kernels.append(INT8_PORTABLE)
    return kernels


def int8_padded_depth(Py_ssize_t k):
    """k rounded up to the packing's depth unit (64)."""
    return y9k_int8_round_depth(k)


def int8_weights_size(int M, int K):
    """int8 values of W (M, K) packed by int8_pack_weights."""
    return y9k_lowp_round_up(M) * y9k_int8_round_depth(K)


def int8_columns_size(int K, int N):
    """int8 values of B (K, N) packed by int8_pack_im2col."""
    return y9k_int8_round_depth(K) * y9k_lowp_round_up(N)


def int8_pack_weights(const signed char[:, ::1] w, signed char[::1] out):
    """W int8 (M, K) into out, blocks of 16 rows x 64 k: int8_weights_size(M, K) values."""
    cdef int M = w.shape[0], K = w.shape[1]
    if out.shape[0] < int8_weights_size(M, K):
        raise ValueError("int8_pack_weights: out is too small")
    if M == 0 or K == 0:
        raise ValueError("int8_pack_weights: W is empty")
    with nogil:
        y9k_int8_pack_a(<const int8_t*> &w[0, 0], K, M, K, <int8_t*> &out[0])


def int8_pack_direct_weights(const signed char[:, ::1] w, signed char[::1] out):
    """W int8 (M, K; K in the direct kernel's steps, int8_direct_depth) into out for
    int8_conv_amx: per block of 32 filters, per 64-deep step, two tiles (filters 0-15, 16-31)
    of [16 quads of k][16 filters][4 k]; int8_weights_size(M, K) values."""
    cdef int M = w.shape[0], K = w.shape[1]
    if out.shape[0] < int8_weights_size(M, K):
        raise ValueError("int8_pack_direct_weights: out is too small")
    if M == 0 or K == 0:
        raise ValueError("int8_pack_direct_weights: W is empty")
    with nogil:
        y9k_int8_pack_direct(<const int8_t*> &w[0, 0], K, M, K, <int8_t*> &out[0])


def _check_input_scale(float input_scale):
    if not (0 < input_scale < float("inf")):
        raise ValueError(f"the input scale must be positive and finite, not {input_scale}")


def int8_image_size(int C, int H, int W):
    """int8 values of the scratch int8_pack_im2col quantizes x (C, H, W) into."""
    return y9k_image_size(C, H, W)


def int8_pack_im2col(const float[:, :, ::1] x, float input_scale, int ksize, int stride,
                     int pad, signed char[::1] out, signed char[::1] image):
    """The im2col matrix of one image x (C, H, W), (C·k·k, out_h·out_w), quantized
    (clip(rint(x / input_scale), -127, 127)) and packed in panels of 16 columns by quads of k:
    int8_columns_size(C·k·k, out_h·out_w) values, the fp32 matrix never written; x is
    quantized once into `image` (int8_image_size(C, H, W) values of scratch). AVX-512 where
    the kernels' switch allows it (the same bits as without)."""
    cdef int C = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef int OH = (H + 2 * pad - ksize) // stride + 1, OW = (W + 2 * pad - ksize) // stride + 1
    _check_input_scale(input_scale)
    if ksize <= 0 or stride <= 0 or pad < 0 or OH <= 0 or OW <= 0:
        raise ValueError("int8_pack_im2col: the input is smaller than the kernel")
    if out.shape[0] < int8_columns_size(C * ksize * ksize, OH * OW):
        raise ValueError("int8_pack_im2col: out is too small")
    if image.shape[0] < int8_image_size(C, H, W):
        raise ValueError("int8_pack_im2col: image is too small")
    with nogil:
        y9k_int8_pack_im2col(&x[0, 0, 0], input_scale, C, H, W, ksize, stride, pad, OH, OW,
                             <int8_t*> &out[0], <int8_t*> &image[0], _avx512)


def int8_matmul(int kernel, const signed char[::1] w, const signed char[::1] b, int K,
                const int[::1] row_offsets, const float[::1] multiplier, const float[::1] bias,
                int act, float[:, :] out):
    """out (M, N) = act(multiplier[m] · (W x B)[m, n] + bias[m]) from W and B packed (K their
    unpadded depth; the product an exact int32 sum, rounded once to fp32), on `kernel` (one
    of int8_kernels()); row_offsets: 128 · Σk W[m, k] for each of W's padded rows (the VNNI
    kernel's correction). out's rows contiguous, any row stride (nothing around it written)."""
    cdef int M = out.shape[0], N = out.shape[1]
    if out.strides[1] != sizeof(float) or out.strides[0] % sizeof(float):
        raise ValueError("int8_matmul: out's rows must be contiguous floats")
    if kernel not in int8_kernels():
        raise ValueError(f"int8 kernel {kernel} is not available on this CPU")
    if w.shape[0] < int8_weights_size(M, K) or b.shape[0] < int8_columns_size(K, N):
        raise ValueError("int8_matmul: the packed operands are too small for the output")
    if multiplier.shape[0] < M or bias.shape[0] < M or row_offsets.shape[0] < y9k_lowp_round_up(M):
        raise ValueError("int8_matmul: multiplier and bias need one value per row, "
                         "row_offsets one per padded row")
    if M == 0 or N == 0:
        return
    with nogil:
        y9k_int8_gemm(kernel, M, N, K, <const int8_t*> &w[0], <const int8_t*> &b[0],
                      <const int32_t*> &row_offsets[0], &multiplier[0], &bias[0], act,
                      &out[0, 0], out.strides[0] // sizeof(float), _avx512)


def int8_direct_depth(int C, int ksize):
    """The depth of a filter packed for int8_conv_amx, its taps in the direct kernel's steps:
    with 64 channels or more, k·k·C' (taps major, C' = C rounded up to 64); with fewer, k rows
    of ceil(k / t) groups of t taps of s channel slots, t·s = 64 (s = 16 for up to 16
    channels, 32 for up to 32), the slots past C and the taps past k zero weights."""
    return y9k_direct_depth(C, ksize)


def int8_direct_slots(int C):
    """The channel slots of one tap in a step of the direct kernel: 16, 32, or C rounded up to
    64 (see int8_direct_depth)."""
    return y9k_direct_slots(C)


def int8_cl_size(int C, int H, int W, int pad):
    """int8 values of x (C, H, W) packed by int8_pack_cl."""
    return y9k_cl_size(C, H, W, pad)


def int8_pack_cl(const float[:, :, ::1] x, float input_scale, int pad, signed char[::1] out):
    """x (C, H, W) quantized (clip(rint(x / input_scale), -127, 127)) into out channels
    last: [H'][W + pad][S] bytes, S = int8_direct_slots(C) channel slots a position (the
    slots from C on zeros), each row starting with `pad` zero positions (its left border, and
    the right border of the row before), `pad` zero rows above, below zero rows up to
    H' = H + 2 pad + ceil((pad + 31) / (W + pad)) rows; then 1024 zero bytes."""
    cdef int C = x.shape[0], H = x.shape[1], W = x.shape[2]
    _check_input_scale(input_scale)
    if pad < 0:
        raise ValueError("int8_pack_cl: negative padding")
    if out.shape[0] < int8_cl_size(C, H, W, pad):
        raise ValueError("int8_pack_cl: out is too small")
    with nogil:
        y9k_int8_pack_cl(&x[0, 0, 0], input_scale, C, H, W, pad, <int8_t*> &out[0], _avx512)


def int8_conv_amx(const signed char[::1] w, const signed char[::1] xq, int C, int H, int W,
                  int ksize, int pad, const float[::1] multiplier, const float[::1] bias,
                  int act, float[:, ::1] out, bint pool=False):
    """out (M, out_h·out_w) = act(multiplier · conv(x) + bias), a k x k stride-1 convolution
    on AMX tiles without a column matrix: x (C channels) as int8_pack_cl packs it, W (M,
    int8_direct_depth(C, k)) packed by int8_pack_direct_weights. With `pool` (out_h and out_w
    even) out (M, out_h/2 · out_w/2) is the 2x2/2 maxpool of that, taken in the epilogue (the
    same bits as maxpool_forward's)."""
    cdef int M = out.shape[0]
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    _check_int8_conv_amx(w, xq, M, C, H, W, ksize, pad, multiplier, bias, pool)
    if out.shape[1] != ((OH // 2) * (OW // 2) if pool else OH * OW):
        raise ValueError("int8_conv_amx: needs out (M, out_h·out_w), or (M, out_h/2 · "
                         "out_w/2) to pool")
    if M == 0:
        return
    with nogil:
        y9k_int8_conv_amx(M, C, H, W, ksize, pad, <const int8_t*> &w[0], <const int8_t*> &xq[0],
                          &multiplier[0], &bias[0], act, pool, &out[0, 0], NULL, 1.0, 0,
                          NULL)


def int8_conv_amx_cl(const signed char[::1] w, const signed char[::1] xq, int C, int H,
                     int W, int ksize, int pad, const float[::1] multiplier,
                     const float[::1] bias, int act, int M, signed char[::1] next_input,
                     float next_scale, int next_pad, bint pool=False):
    """int8_conv_amx's output (M filters; pooled with `pool`) handed to the next int8 direct
    convolution: written into next_input as int8_pack_cl(output, next_scale, next_pad)
    writes it, the same bytes, without the fp32 output."""
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    _check_int8_conv_amx(w, xq, M, C, H, W, ksize, pad, multiplier, bias, pool)
    _check_input_scale(next_scale)
    if next_pad < 0:
        raise ValueError("int8_conv_amx_cl: negative padding")
    if pool:
        OH, OW = OH // 2, OW // 2
    if next_input.shape[0] < int8_cl_size(M, OH, OW, next_pad):
        raise ValueError("int8_conv_amx_cl: next_input is too small")
    if M <= 0:
        raise ValueError("int8_conv_amx_cl: no filters")
    with nogil:
        y9k_int8_conv_amx(M, C, H, W, ksize, pad, <const int8_t*> &w[0], <const int8_t*> &xq[0],
                          &multiplier[0], &bias[0], act, pool, NULL, <int8_t*> &next_input[0],
                          next_scale, next_pad, NULL)


def int8_conv_amx_pairs(const signed char[::1] w, const signed char[::1] xq, int C, int H,
                        int W, int ksize, int pad, const float[::1] multiplier,
                        const float[::1] bias, int act, int M, unsigned short[::1] out,
                        int out_pad, bint pool=False, bint portable_rounding=False):
    """int8_conv_amx's output (M filters; pooled with `pool`) handed to a bf16 direct
    convolution: rounded to bf16 and packed as bf16_pack_pairs packs it with padding
    `out_pad`, its border and zero channels included (out: bf16_pairs_size(M, out_h, out_w,
    out_pad) values or more), without the fp32 output. `portable_rounding`: the portable
    twin's rounding loop instead of AVX-512's (the same bits)."""
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    _check_int8_conv_amx(w, xq, M, C, H, W, ksize, pad, multiplier, bias, pool)
    if M <= 0 or out_pad < 0:
        raise ValueError("int8_conv_amx_pairs: needs filters and a padding of 0 or more")
    if pool:
        OH, OW = OH // 2, OW // 2
    if out.shape[0] < bf16_pairs_size(M, OH, OW, out_pad):
        raise ValueError("int8_conv_amx_pairs: out is too small")
    cdef y9k_pairs_out pairs
    pairs.data = <uint16_t*> &out[0]
    pairs.plane = y9k_pairs_plane(OH, OW, out_pad)
    pairs.width = y9k_pairs_width(OW, out_pad)
    pairs.pad = out_pad
    pairs.avx512 = _avx512 and not portable_rounding
    with nogil:
        y9k_int8_conv_amx(M, C, H, W, ksize, pad, <const int8_t*> &w[0], <const int8_t*> &xq[0],
                          &multiplier[0], &bias[0], act, pool, NULL, NULL, 1.0, 0, &pairs)


def bf16_conv_rgb_cl(int kernel, const unsigned short[::1] w,
                     const unsigned short[::1] img, int C, int H, int W, int ksize,
                     int pad, const float[::1] scale, const float[::1] bias, int act,
                     int M, signed char[::1] next_input, float next_scale, int next_pad,
                     bint portable_rounding=False):
    """bf16_conv_rgb's pooled output (M filters; out_h and out_w even) handed to the next int8
    direct convolution, as int8_conv_amx_cl hands its output: written into next_input as
    int8_pack_cl(pooled output, next_scale, next_pad) writes it, the same bytes, without
    the fp32 output. `portable_rounding`: the scalar requantization instead of AVX-512's (the
    same bytes)."""
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    cdef int PH = OH // 2, PW = OW // 2
    _check_conv_rgb(kernel, M, C, H, W, ksize, pad, OH, OW, PH * PW, w, img, scale, bias,
                    True)
    _check_input_scale(next_scale)
    if M <= 0 or next_pad < 0:
        raise ValueError("bf16_conv_rgb_cl: needs filters and a padding of 0 or more")
    if next_input.shape[0] < int8_cl_size(M, PH, PW, next_pad):
        raise ValueError("bf16_conv_rgb_cl: next_input is too small")
    cdef int avx512 = _avx512 and not portable_rounding
    with nogil:
        y9k_bf16_conv_rgb_cl(kernel, M, C, H, W, ksize, pad, <const uint16_t*> &w[0],
                                <const uint16_t*> &img[0], &scale[0], &bias[0], act,
                                <int8_t*> &next_input[0], next_scale, next_pad, avx512)


def _check_int8_conv_amx(const signed char[::1] w, const signed char[::1] xq, int M, int C,
                         int H, int W, int ksize, int pad, const float[::1] multiplier,
                         const float[::1] bias, bint pool):
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    if INT8_AMX not in int8_kernels():
        raise ValueError("int8_conv_amx: this CPU has no AMX-INT8 (or the kernel refused it)")
    if C <= 0 or ksize <= 0 or pad < 0 or OH <= 0 or OW <= 0:
        raise ValueError("int8_conv_amx: needs channels and an output")
    if pool and (OH % 2 or OW % 2):
        raise ValueError("int8_conv_amx: pooling needs an even output")
    if (w.shape[0] < int8_weights_size(M, y9k_direct_depth(C, ksize))
            or xq.shape[0] < int8_cl_size(C, H, W, pad)):
        raise ValueError("int8_conv_amx: the packed operands are too small")
    if multiplier.shape[0] < M or bias.shape[0] < M:
        raise ValueError("int8_conv_amx: multiplier and bias need one value per filter")
