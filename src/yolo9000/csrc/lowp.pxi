# bf16 inference products (lowp_x86.h): the packing of weights and columns, and the product
# with the fp32 epilogue, on AMX, AVX512-BF16 or the portable twin.
# (a section of the compiled core: ../_kernels.pyx includes it)

# the kernels, as lowp_x86.h numbers them
BF16_PORTABLE = Y9K_BF16_PORTABLE
BF16_AVX512 = Y9K_BF16_AVX512
BF16_AMX = Y9K_BF16_AMX
# W's rows, B's columns and K are padded to multiples of this
LOWP_BLOCK = Y9K_LOWP_BLOCK


def bf16_kernels():
    """The bf16 kernels this CPU (and the switch) allow, fastest first; the portable twin last."""
    kernels = []
    if _paths & Y9K_AMX_BF16:
        kernels.append(BF16_AMX)
    if _paths & Y9K_AVX512_BF16:
        kernels.append(BF16_AVX512)
    kernels.append(BF16_PORTABLE)
    return kernels


def bf16_padded(Py_ssize_t n):
    """n rounded up to the packing's multiple (32)."""
    return y9k_lowp_round_up(n)


def bf16_pack_weights(const float[:, ::1] w, unsigned short[::1] out):
    """W (M, K) rounded to bf16 into out, blocks of 16 rows x 32 k: bf16_padded(M) x
    bf16_padded(K) values."""
    cdef int M = w.shape[0], K = w.shape[1]
    if out.shape[0] < y9k_lowp_round_up(M) * y9k_lowp_round_up(K):
        raise ValueError("bf16_pack_weights: out is too small")
    with nogil:
        y9k_bf16_pack_a(&w[0, 0], w.shape[1], M, K, <uint16_t*> &out[0])


def bf16_pack_columns(const float[:, ::1] b, unsigned short[::1] out):
    """B (K, N) rounded to bf16 into out, panels of 16 columns by pairs of k:
    bf16_padded(K) x bf16_padded(N) values."""
    cdef int K = b.shape[0], N = b.shape[1]
    if out.shape[0] < y9k_lowp_round_up(K) * y9k_lowp_round_up(N):
        raise ValueError("bf16_pack_columns: out is too small")
    with nogil:
        y9k_bf16_pack_b(&b[0, 0], b.shape[1], K, N, <uint16_t*> &out[0], _avx512)


def bf16_pack_im2col(const float[:, :, ::1] x, int ksize, int stride, int pad,
                     unsigned short[::1] out):
    """The im2col matrix of one image x (C, H, W), (C·k·k, out_h·out_w), rounded to bf16 and
    packed as bf16_pack_columns packs a matrix, the fp32 matrix never written. Both packings
    use AVX-512 where the kernels' switch allows it (the same bits as without)."""
    cdef int C = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef int OH = (H + 2 * pad - ksize) // stride + 1, OW = (W + 2 * pad - ksize) // stride + 1
    if OH <= 0 or OW <= 0:
        raise ValueError("bf16_pack_im2col: the input is smaller than the kernel")
    if out.shape[0] < y9k_lowp_round_up(C * ksize * ksize) * y9k_lowp_round_up(OH * OW):
        raise ValueError("bf16_pack_im2col: out is too small")
    with nogil:
        y9k_bf16_pack_im2col(&x[0, 0, 0], C, H, W, ksize, stride, pad, OH, OW,
                             <uint16_t*> &out[0], _avx512)


def bf16_matmul(int kernel, const unsigned short[::1] w, const unsigned short[::1] b, int K,
                const float[::1] scale, const float[::1] bias, int act, float[:, :] out):
    """out (M, N) = act(scale[m] * (W x B)[m, n] + bias[m]) from W and B packed (K their
    unpadded depth), on `kernel` (one of bf16_kernels()); out's rows contiguous, any row
    stride (nothing around it is written)."""
    cdef int M = out.shape[0], N = out.shape[1]
    if out.strides[1] != sizeof(float) or out.strides[0] % sizeof(float):
        raise ValueError("bf16_matmul: out's rows must be contiguous floats")
    if kernel not in bf16_kernels():
        raise ValueError(f"bf16 kernel {kernel} is not available on this CPU")
    if (w.shape[0] < y9k_lowp_round_up(M) * y9k_lowp_round_up(K)
            or b.shape[0] < y9k_lowp_round_up(K) * y9k_lowp_round_up(N)):
        raise ValueError("bf16_matmul: the packed operands are too small for the output")
    if scale.shape[0] < M or bias.shape[0] < M:
        raise ValueError("bf16_matmul: scale and bias need one value per row")
    if M == 0 or N == 0:
        return
    with nogil:
        y9k_bf16_gemm(kernel, M, N, K, <const uint16_t*> &w[0], <const uint16_t*> &b[0],
                      &scale[0], &bias[0], act, &out[0, 0], out.strides[0] // sizeof(float))


def bf16_pairs_size(int C, int H, int W, int pad):
    """uint16 values of x (C, H, W) packed in channel pairs with a border (bf16_pack_pairs),
    its channels padded to a multiple of 32."""
    return (y9k_lowp_round_up(C) // 2) * y9k_pairs_plane(H, W, pad) * 2


def bf16_pack_pairs(const float[:, :, ::1] x, int pad, unsigned short[::1] out):
    """x (C, H, W) rounded to bf16 into out as [C'/2][H'][W + pad][2]: channel pairs side by
    side, each row starting with `pad` zeros (its left border, and the right border of the row
    before), `pad` zero rows above, below `pad` zero rows and slack up to H' = H + 2 pad +
    ceil((pad + 31) / (W + pad)) rows, zeros up to the next plane, an odd number of 64-byte
    lines on; C' = C rounded up to 32, the channels from C on zeros."""
    cdef int C = x.shape[0], H = x.shape[1], W = x.shape[2]
    if pad < 0:
        raise ValueError("bf16_pack_pairs: negative padding")
    if out.shape[0] < bf16_pairs_size(C, H, W, pad):
        raise ValueError("bf16_pack_pairs: out is too small")
    with nogil:
        y9k_bf16_pack_pairs(&x[0, 0, 0], C, H, W, pad, y9k_lowp_round_up(C),
                            <uint16_t*> &out[0], _avx512)


cdef _check_conv_amx(int M, int C, int H, int W, int ksize, int pad, int OH, int OW,
                     int positions, const unsigned short[::1] w, const unsigned short[::1] xb,
                     const float[::1] scale, const float[::1] bias, bint pool):
    """bf16_conv_amx's checks, C already padded, `positions` the output's per filter."""
    if BF16_AMX not in bf16_kernels():
        raise ValueError("bf16_conv_amx: this CPU has no AMX-BF16 (or the kernel refused it)")
    if C % 32 or OH <= 0 or OW <= 0:
        raise ValueError("bf16_conv_amx: needs C a multiple of 32 and an output")
    if pool and (OH % 2 or OW % 2 or positions != (OH // 2) * (OW // 2)):
        raise ValueError("bf16_conv_amx: pooling needs an even output and out (M, out_h/2 · "
                         "out_w/2)")
    if not pool and positions != OH * OW:
        raise ValueError("bf16_conv_amx: needs out (M, out_h·out_w)")
    if (w.shape[0] < y9k_lowp_round_up(M) * ksize * ksize * C
            or xb.shape[0] < bf16_pairs_size(C, H, W, pad)):
        raise ValueError("bf16_conv_amx: the packed operands are too small")
    if scale.shape[0] < M or bias.shape[0] < M:
        raise ValueError("bf16_conv_amx: scale and bias need one value per filter")


def bf16_conv_amx(const unsigned short[::1] w, const unsigned short[::1] xb, int C, int H,
                  int W, int ksize, int pad, const float[::1] scale, const float[::1] bias,
                  int act, float[:, ::1] out, bint pool=False):
    """out (M, out_h·out_w) = act(scale · conv(x) + bias), a k x k stride-1 convolution on AMX
    tiles without a column matrix: x (C channels) as bf16_pack_pairs packs it, W (M, k·k·C':
    taps major, channels minor, C' = C rounded up to 32 with zero weights) packed by
    bf16_pack_weights. With `pool` (out_h and out_w even) out (M, out_h/2 · out_w/2) is the
    2x2/2 maxpool of that, taken in the epilogue (the same bits as maxpool_forward's)."""
    cdef int M = out.shape[0]
    C = y9k_lowp_round_up(C)
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    _check_conv_amx(M, C, H, W, ksize, pad, OH, OW, out.shape[1], w, xb, scale, bias, pool)
    with nogil:
        y9k_bf16_conv_amx(M, C, H, W, ksize, pad, <const uint16_t*> &w[0],
                          <const uint16_t*> &xb[0], &scale[0], &bias[0], act, pool, &out[0, 0],
                          NULL)


def bf16_conv_amx_pairs(const unsigned short[::1] w, const unsigned short[::1] xb, int C,
                        int H, int W, int ksize, int pad, const float[::1] scale,
                        const float[::1] bias, int act, int M, unsigned short[::1] out,
                        int out_pad, bint pool=False, bint portable_rounding=False):
    """bf16_conv_amx's output (M filters, pooled with `pool`) written instead as the next
    layer's input: rounded to bf16 and packed as bf16_pack_pairs packs it with padding
    `out_pad`, its border and zero channels included (out: bf16_pairs_size(M, out_h, out_w,
    out_pad) values or more). `portable_rounding`: the portable twin's rounding loop instead
    of AVX-512's (the same bits)."""
    C = y9k_lowp_round_up(C)
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    cdef int PH = OH // 2 if pool else OH, PW = OW // 2 if pool else OW
    _check_conv_amx(M, C, H, W, ksize, pad, OH, OW, PH * PW, w, xb, scale, bias, pool)
    if M <= 0 or out_pad < 0:
        raise ValueError("bf16_conv_amx_pairs: needs filters and a padding of 0 or more")
    if out.shape[0] < bf16_pairs_size(M, PH, PW, out_pad):
        raise ValueError("bf16_conv_amx_pairs: out is too small")
    cdef y9k_pairs_out pairs
    pairs.data = <uint16_t*> &out[0]
    pairs.plane = y9k_pairs_plane(PH, PW, out_pad)
    pairs.width = y9k_pairs_width(PW, out_pad)
    pairs.pad = out_pad
    pairs.avx512 = _avx512 and not portable_rounding
    with nogil:
        y9k_bf16_conv_amx(M, C, H, W, ksize, pad, <const uint16_t*> &w[0],
                          <const uint16_t*> &xb[0], &scale[0], &bias[0], act, pool, NULL,
                          &pairs)


# -- the RGB input layer: a depth C·k·k that fits one tile ---------------------------------
def bf16_rgb_applies(int C, int ksize, int stride):
    """Whether a convolution's whole depth C·k·k fits one tile (LOWP_BLOCK: the RGB layer's
    3 x 3x3 = 27), stride 1: bf16_conv_rgb's convolutions."""
    return stride == 1 and 0 < C * ksize * ksize <= Y9K_LOWP_BLOCK


def bf16_image_size(int C, int H, int W, int pad):
    """uint16 values of x (C, H, W) packed by bf16_pack_image."""
    return C * y9k_rgb_plane(H, W, pad)


def bf16_pack_image(const float[:, :, ::1] x, int pad, unsigned short[::1] out):
    """x (C, H, W) rounded to bf16 into out as [C][H'][W + pad], a plane every
    bf16_image_size(1, H, W, pad) values: each row starting with `pad` zeros (its left border,
    and the right border of the row before), `pad` zero rows above, below `pad` zero rows and
    slack (the rows of bf16_pack_pairs' planes), zeros to the plane's end (whole 64-byte
    lines)."""
    cdef int C = x.shape[0], H = x.shape[1], W = x.shape[2]
    if pad < 0:
        raise ValueError("bf16_pack_image: negative padding")
    if out.shape[0] < bf16_image_size(C, H, W, pad):
        raise ValueError("bf16_pack_image: out is too small")
    with nogil:
        y9k_bf16_pack_image(&x[0, 0, 0], C, H, W, pad, <uint16_t*> &out[0], _avx512)


cdef _check_conv_rgb(int kernel, int M, int C, int H, int W, int ksize, int pad, int OH,
                     int OW, int positions, const unsigned short[::1] w,
                     const unsigned short[::1] img, const float[::1] scale,
                     const float[::1] bias, bint pool):
    """bf16_conv_rgb's checks, `positions` the output's per filter."""
    if kernel not in bf16_kernels():
        raise ValueError(f"bf16 kernel {kernel} is not available on this CPU")
    if not bf16_rgb_applies(C, ksize, 1) or OH <= 0 or OW <= 0 or pad < 0:
        raise ValueError("bf16_conv_rgb: needs C·k·k <= 32 and an output")
    if pool and (OH % 2 or OW % 2 or positions != (OH // 2) * (OW // 2)):
        raise ValueError("bf16_conv_rgb: pooling needs an even output and out (M, out_h/2 · "
                         "out_w/2)")
    if not pool and positions != OH * OW:
        raise ValueError("bf16_conv_rgb: needs out (M, out_h·out_w)")
    if (w.shape[0] < y9k_lowp_round_up(M) * Y9K_LOWP_BLOCK
            or img.shape[0] < bf16_image_size(C, H, W, pad)):
        raise ValueError("bf16_conv_rgb: the packed operands are too small")
    if scale.shape[0] < M or bias.shape[0] < M:
        raise ValueError("bf16_conv_rgb: scale and bias need one value per filter")


def bf16_conv_rgb(int kernel, const unsigned short[::1] w, const unsigned short[::1] img,
                  int C, int H, int W, int ksize, int pad, const float[::1] scale,
                  const float[::1] bias, int act, float[:, ::1] out, bint pool=False):
    """out (M, out_h·out_w) = act(scale · conv(x) + bias), a k x k stride-1 convolution of
    depth C·k·k <= 32 (bf16_rgb_applies) without a column matrix, on `kernel` (one of
    bf16_kernels()): x as bf16_pack_image packs it, W (M, C·k·k) packed by bf16_pack_weights
    (as for bf16_matmul). With `pool` (out_h and out_w even) out (M, out_h/2 · out_w/2) is the
    2x2/2 maxpool of that, taken in the epilogue (the same bits as maxpool_forward's)."""
    cdef int M = out.shape[0]
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    _check_conv_rgb(kernel, M, C, H, W, ksize, pad, OH, OW, out.shape[1], w, img, scale, bias,
                    pool)
    if M == 0:
        return
    with nogil:
        y9k_bf16_conv_rgb(kernel, M, C, H, W, ksize, pad, <const uint16_t*> &w[0],
                          <const uint16_t*> &img[0], &scale[0], &bias[0], act, pool,
                          &out[0, 0], NULL, NULL)


def bf16_conv_rgb_pairs(int kernel, const unsigned short[::1] w,
                        const unsigned short[::1] img, int C, int H, int W, int ksize,
                        int pad, const float[::1] scale, const float[::1] bias, int act,
                        int M, unsigned short[::1] out, int out_pad,
                        bint portable_rounding=False):
    """bf16_conv_rgb's pooled output (M filters; out_h and out_w even) written instead as the
    next layer's input, as bf16_conv_amx_pairs writes it: rounded to bf16 and packed as
    bf16_pack_pairs packs it with padding `out_pad`, its border and zero channels included
    (out: bf16_pairs_size(M, out_h/2, out_w/2, out_pad) values or more)."""
    cdef int OH = H + 2 * pad - ksize + 1, OW = W + 2 * pad - ksize + 1
    cdef int PH = OH // 2, PW = OW // 2
    _check_conv_rgb(kernel, M, C, H, W, ksize, pad, OH, OW, PH * PW, w, img, scale, bias,
                    True)
    if M <= 0 or out_pad < 0:
        raise ValueError("bf16_conv_rgb_pairs: needs filters and a padding of 0 or more")
    if out.shape[0] < bf16_pairs_size(M, PH, PW, out_pad):
        raise ValueError("bf16_conv_rgb_pairs: out is too small")
    cdef y9k_pairs_out pairs
    pairs.data = <uint16_t*> &out[0]
    pairs.plane = y9k_pairs_plane(PH, PW, out_pad)
    pairs.width = y9k_pairs_width(PW, out_pad)
    pairs.pad = out_pad
    pairs.avx512 = _avx512 and not portable_rounding
    with nogil:
        y9k_bf16_conv_rgb(kernel, M, C, H, W, ksize, pad, <const uint16_t*> &w[0],
                          <const uint16_t*> &img[0], &scale[0], &bias[0], act, True, NULL,
                          &pairs, NULL)
