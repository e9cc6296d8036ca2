/* bf16 inference products: out[M, N] = act(a * (W[M, K] x B[K, N]) + b), W and B rounded to
   bfloat16 (round to nearest even), the products summed in fp32, the epilogue (batch norm,
   bias, activation) in fp32 as the fp32 path's.

   W is packed once (y9k_bf16_pack_a), B on each call (y9k_bf16_pack_b), both in the layout
   AMX's tiles load: W in blocks of 16 rows x 32 k, B in panels of 16 columns whose rows are
   pairs of k (the "VNNI" layout: B[k][n], B[k+1][n] side by side). K is padded with zeros to
   a multiple of 32 and M and N to multiples of 32 (the kernels work on 32x32 blocks of out;
   the epilogue writes only the rows and columns that exist).

   Three kernels read the same layout, chosen at run time: AMX tiles (tdpbf16ps), AVX512-BF16
   (vdpbf16ps) and the portable twin (scalar fp32 sums of the same bf16 products). */
#ifndef Y9K_LOWP_X86_H
#define Y9K_LOWP_X86_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "y9k.h"
#include "maxpool_sse2.h"

#define Y9K_LOWP_BLOCK 32          /* rows and columns of out per step; K's padding unit */
#define Y9K_LOWP_PANEL 16          /* columns of a B panel, rows of a W block */
/* the direct kernel's maps of at most this many blocks of 32 positions (13x13: 6) keep their
   sums between channel blocks (y9k_bf16_conv_amx) */
#define Y9K_LOWP_RESIDENT_PIECES 8

/* the kernel a product runs on */
enum { Y9K_BF16_PORTABLE = 0, Y9K_BF16_AVX512 = 1, Y9K_BF16_AMX = 2 };

static inline long y9k_lowp_round_up(long v) { return (v + 31) / 32 * 32; }

/* The input origins (top-left tap) of panel p's 16 output positions, for both im2col packers;
   columns past N read nothing: an origin no tap reaches */
static inline void y9k_panel_origins(long p, long N, int OW, int stride, int pad, int *iy0,
                                     int *ix0)
{
    for (int c = 0; c < 16; c++) {
        long n = p * 16 + c;
        iy0[c] = n < N ? (int) (n / OW) * stride - pad : -(1 << 29);
        ix0[c] = n < N ? (int) (n % OW) * stride - pad : -(1 << 29);
    }
}

/* fp32 -> bf16, round to nearest even; a NaN stays a (quiet) NaN */
static inline uint16_t y9k_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t) ((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}

static inline float y9k_from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t) h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* W (M x K, row stride ldw floats) -> blocks [M'/16][K'/32][16][32] (M', K' rounded up to 32) */
static void y9k_bf16_pack_a(const float *w, long ldw, int M, int K, uint16_t *out)
{
    long Kp = y9k_lowp_round_up(K), Mp = y9k_lowp_round_up(M), KB = Kp / 32;
    for (long mb = 0; mb < Mp / 16; mb++)
        for (long kb = 0; kb < KB; kb++) {
            uint16_t *block = out + (mb * KB + kb) * 512;
            for (int r = 0; r < 16; r++) {
                long m = mb * 16 + r;
                for (int c = 0; c < 32; c++) {
                    long k = kb * 32 + c;
                    block[r * 32 + c] = (m < M && k < K) ? y9k_to_bf16(w[m * ldw + k]) : 0;
                }
            }
        }
}

/* B (K x N, row stride ldb floats) -> panels [N'/16][K'/32][16 pairs of k][16 columns][2],
   on the OpenMP threads */
static void y9k_bf16_pack_b_portable(const float *b, long ldb, int K, int N, uint16_t *out)
{
    long Kp = y9k_lowp_round_up(K), Np = y9k_lowp_round_up(N), KB = Kp / 32;
    long panels = Np / 16;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long p = 0; p < panels; p++) {
        long n0 = p * 16, width = N - n0 < 16 ? (N - n0 > 0 ? N - n0 : 0) : 16;
        for (long kb = 0; kb < KB; kb++) {
            uint16_t *panel = out + (p * KB + kb) * 512;
            for (int r = 0; r < 16; r++) {
                long k = kb * 32 + 2 * r;
                const float *row0 = b + k * ldb + n0, *row1 = row0 + ldb;
                uint16_t *dst = panel + r * 32;
                if (width == 16 && k + 1 < K) {
                    for (int c = 0; c < 16; c++) {
                        dst[2 * c] = y9k_to_bf16(row0[c]);
                        dst[2 * c + 1] = y9k_to_bf16(row1[c]);
                    }
                    continue;
                }
                for (int c = 0; c < 16; c++) {
                    dst[2 * c] = (c < width && k < K) ? y9k_to_bf16(row0[c]) : 0;
                    dst[2 * c + 1] = (c < width && k + 1 < K) ? y9k_to_bf16(row1[c]) : 0;
                }
            }
        }
    }
}

/* the im2col matrix of one image x (C, H, W) for a k x k convolution (stride, pad; output
   OH x OW), K = C*k*k by N = OH*OW, packed as y9k_bf16_pack_b packs it, without writing the
   fp32 matrix: a panel's 16 columns are 16 output positions, its rows pairs of taps */
static void y9k_bf16_pack_im2col_portable(const float *x, int C, int H, int W, int ksize,
                                          int stride, int pad, int OH, int OW, uint16_t *out)
{
    long K = (long) C * ksize * ksize, N = (long) OH * OW;
    long Kp = y9k_lowp_round_up(K), Np = y9k_lowp_round_up(N), KB = Kp / 32;
    long panels = Np / 16;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long p = 0; p < panels; p++) {
        int iy0[16], ix0[16];
        y9k_panel_origins(p, N, OW, stride, pad, iy0, ix0);
        for (long kb = 0; kb < KB; kb++) {
            uint16_t *panel = out + (p * KB + kb) * 512;
            for (int r = 0; r < 32; r++) {
                long k = kb * 32 + r;
                uint16_t *dst = panel + (r / 2) * 32 + (r % 2);
                if (k >= K) {
                    for (int c = 0; c < 16; c++)
                        dst[2 * c] = 0;
                    continue;
                }
                int ch = (int) (k / (ksize * ksize)), tap = (int) (k % (ksize * ksize));
                int ky = tap / ksize, kx = tap % ksize;
                const float *plane = x + (long) ch * H * W;
                for (int c = 0; c < 16; c++) {
                    int iy = iy0[c] + ky, ix = ix0[c] + kx;
                    dst[2 * c] = ((unsigned) iy < (unsigned) H && (unsigned) ix < (unsigned) W)
                                     ? y9k_to_bf16(plane[(long) iy * W + ix]) : 0;
                }
            }
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define Y9K_HAVE_LOWP_X86 1

/* 16 pairs (even, odd) of fp32 -> 16 bf16 pairs, y9k_to_bf16's rounding in vector form */
__attribute__((target("avx512f")))
static inline __m512i y9k_bf16_pairs16(__m512 even, __m512 odd)
{
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i quiet = _mm512_set1_epi32(0x400000);
    __m512i e = _mm512_castps_si512(even), o = _mm512_castps_si512(odd);
    __mmask16 e_nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(e, abs_mask), inf);
    __mmask16 o_nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(o, abs_mask), inf);
    __m512i er = _mm512_add_epi32(e, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(e, 16), one)));
    __m512i orr = _mm512_add_epi32(o, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(o, 16), one)));
    er = _mm512_mask_mov_epi32(er, e_nan, _mm512_or_si512(e, quiet));
    orr = _mm512_mask_mov_epi32(orr, o_nan, _mm512_or_si512(o, quiet));
    return _mm512_or_si512(_mm512_srli_epi32(er, 16),
                           _mm512_and_si512(orr, _mm512_set1_epi32((int) 0xffff0000u)));
}

__attribute__((target("avx512f")))
static void y9k_bf16_pack_b_avx512(const float *b, long ldb, int K, int N, uint16_t *out)
{
    long Kp = y9k_lowp_round_up(K), Np = y9k_lowp_round_up(N), KB = Kp / 32;
    long panels = Np / 16;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long p = 0; p < panels; p++) {
        long n0 = p * 16, width = N - n0 < 16 ? (N - n0 > 0 ? N - n0 : 0) : 16;
        __mmask16 cols = (__mmask16) ((1u << width) - 1);
        for (long kb = 0; kb < KB; kb++) {
            uint16_t *panel = out + (p * KB + kb) * 512;
            for (int r = 0; r < 16; r++) {
                long k = kb * 32 + 2 * r;
                __m512 even = k < K ? _mm512_maskz_loadu_ps(cols, b + k * ldb + n0)
                                    : _mm512_setzero_ps();
                __m512 odd = k + 1 < K ? _mm512_maskz_loadu_ps(cols, b + (k + 1) * ldb + n0)
                                       : _mm512_setzero_ps();
                _mm512_storeu_si512(panel + r * 32, y9k_bf16_pairs16(even, odd));
            }
        }
    }
}

/* the im2col packing with gathers: 16 output positions per panel, their taps' validity
   (the zero padding) as masks */
__attribute__((target("avx512f")))
static void y9k_bf16_pack_im2col_avx512(const float *x, int C, int H, int W, int ksize,
                                        int stride, int pad, int OH, int OW, uint16_t *out)
{
    long K = (long) C * ksize * ksize, N = (long) OH * OW;
    long Kp = y9k_lowp_round_up(K), Np = y9k_lowp_round_up(N), KB = Kp / 32;
    long panels = Np / 16, plane = (long) H * W;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long p = 0; p < panels; p++) {
        int iy0[16], ix0[16];
        y9k_panel_origins(p, N, OW, stride, pad, iy0, ix0);
        /* stride 1 and the 16 positions on one output row: each tap's 16 inputs are
           contiguous, one masked load (the zero padding: lanes off the row) */
        int one_row = stride == 1 && p * 16 + 15 < N && iy0[0] == iy0[15];
        __m512i vy0 = _mm512_loadu_si512(iy0), vx0 = _mm512_loadu_si512(ix0);
        __m512i vh = _mm512_set1_epi32(H), vw = _mm512_set1_epi32(W);
        /* the offset of each position's (0, 0) tap in a plane; masked lanes never load */
        __m512i base = _mm512_add_epi32(_mm512_mullo_epi32(vy0, vw), vx0);
        for (long kb = 0; kb < KB; kb++) {
            uint16_t *panel = out + (p * KB + kb) * 512;
            for (int r = 0; r < 16; r++) {
                __m512 v[2];
                for (int h = 0; h < 2; h++) {
                    long k = kb * 32 + 2 * r + h;
                    if (k >= K) {
                        v[h] = _mm512_setzero_ps();
                        continue;
                    }
                    int ch = (int) (k / (ksize * ksize)), tap = (int) (k % (ksize * ksize));
                    int ky = tap / ksize, kx = tap % ksize;
                    if (one_row) {
                        int iy = iy0[0] + ky, ix = ix0[0] + kx;
                        if ((unsigned) iy >= (unsigned) H) {
                            v[h] = _mm512_setzero_ps();
                            continue;
                        }
                        /* lanes c with 0 <= ix + c < W */
                        int lo = ix < 0 ? -ix : 0, hi = W - ix < 16 ? W - ix : 16;
                        __mmask16 ok = hi > lo ? (__mmask16) (((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
                        v[h] = _mm512_maskz_loadu_ps(ok, x + ch * plane + (long) iy * W + ix);
                        continue;
                    }
                    __m512i iy = _mm512_add_epi32(vy0, _mm512_set1_epi32(ky));
                    __m512i ix = _mm512_add_epi32(vx0, _mm512_set1_epi32(kx));
                    __mmask16 ok = _mm512_cmplt_epu32_mask(iy, vh) & _mm512_cmplt_epu32_mask(ix, vw);
                    __m512i at = _mm512_add_epi32(base, _mm512_set1_epi32(ky * W + kx));
                    v[h] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), ok, at,
                                                    x + ch * plane, 4);
                }
                _mm512_storeu_si512(panel + r * 32, y9k_bf16_pairs16(v[0], v[1]));
            }
        }
    }
}
#else
#define Y9K_HAVE_LOWP_X86 0
#endif

/* the packings, with AVX-512 where `avx512` (the same bits either way) */
static void y9k_bf16_pack_b(const float *b, long ldb, int K, int N, uint16_t *out, int avx512)
{
#if Y9K_HAVE_LOWP_X86
    if (avx512) {
        y9k_bf16_pack_b_avx512(b, ldb, K, N, out);
        return;
    }
#endif
    (void) avx512;
    y9k_bf16_pack_b_portable(b, ldb, K, N, out);
}

static void y9k_bf16_pack_im2col(const float *x, int C, int H, int W, int ksize, int stride,
                                 int pad, int OH, int OW, uint16_t *out, int avx512)
{
#if Y9K_HAVE_LOWP_X86
    if (avx512) {
        y9k_bf16_pack_im2col_avx512(x, C, H, W, ksize, stride, pad, OH, OW, out);
        return;
    }
#endif
    (void) avx512;
    y9k_bf16_pack_im2col_portable(x, C, H, W, ksize, stride, pad, OH, OW, out);
}

/* out rows m0.. (rows of them), columns n0.. (cols) = act(a * acc + b) from a 32x32 block of
   sums; the same arithmetic as activation.pxi's _affine_activate (leaky: 0.1·v in double) */
static inline void y9k_lowp_epilogue(const float *acc, int rows, int cols, const float *a,
                                     const float *b, int act, float *out, long ldo)
{
    for (int i = 0; i < rows; i++) {
        const float *s = acc + i * 32;
        float *y = out + i * ldo, ai = a[i], bi = b[i];
        if (act == Y9K_ACT_LEAKY) {
            for (int j = 0; j < cols; j++) {
                float v = ai * s[j] + bi, w = (float) (0.1 * v);
                y[j] = v > w ? v : w;
            }
        } else if (act == Y9K_ACT_RELU) {
            for (int j = 0; j < cols; j++) {
                float v = ai * s[j] + bi;
                y[j] = v > 0 ? v : 0;
            }
        } else if (act == Y9K_ACT_LOGISTIC) {
            for (int j = 0; j < cols; j++)
                y[j] = 1.0f / (1.0f + expf(-(ai * s[j] + bi)));
        } else {
            for (int j = 0; j < cols; j++)
                y[j] = ai * s[j] + bi;
        }
    }
}

#if Y9K_HAVE_LOWP_X86
/* leaky's 0.1 v in double rounded to float, the scalar epilogue's w, on 16 values: in float as
   fma(v, c, v * d) with c = 0.1f and d = 0.1 - c rounded to float, which equals it for every
   float of magnitude 2^-120 or more (checked on all of them; NaNs keep their payload both
   ways), with no conversion to double and back (a third of an int8 hand-off's epilogue); a
   vector holding a negative value smaller than that takes the double products */
__attribute__((target("avx512f")))
static inline __m512 y9k_lowp_tenth16(__m512 v)
{
    __m512 p = _mm512_mul_ps(v, _mm512_set1_ps(-0x1.99999ap-30f));
    __asm__("" : "+v"(p));      /* not folded with the fma under -ffast-math */
    __m512 w = _mm512_fmadd_ps(v, _mm512_set1_ps(0x1.99999ap-4f), p);
    __mmask16 tiny = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-0x1p-120f), _CMP_GT_OQ)
                     & _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    if (__builtin_expect(tiny != 0, 0)) {
        const __m512d tenth = _mm512_set1_pd(0.1);
        __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(
            _mm512_cvtps_pd(_mm512_castps512_ps256(v)), tenth));
        __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_castpd_ps(
            _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), tenth));
        w = _mm512_castpd_ps(_mm512_insertf64x4(
            _mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
    }
    return w;
}

/* leaky (v > 0.1 v, the product as the scalar epilogue takes it: y9k_lowp_tenth16) or relu on
   16 values, linear unchanged; the logistic is left to the scalar loops. Every AVX-512
   epilogue (bf16, rgb, int8) activates through this one. Leaky keeps v where v >= 0 (there
   v > 0.1 v or both are the same zero) and takes w elsewhere (negatives, NaNs), the scalar
   choice's bits */
__attribute__((target("avx512f")))
static inline __m512 y9k_lowp_act16(__m512 v, int act)
{
    if (act == Y9K_ACT_LEAKY) {
        __m512 w = y9k_lowp_tenth16(v);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), w, v);
    } else if (act == Y9K_ACT_RELU) {
        const __m512 zero = _mm512_setzero_ps();
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), zero, v);
    }
    return v;
}

/* y9k_lowp_epilogue with AVX-512 (the bf16 units' CPUs all have it), the same operations in
   the same precisions: a * s then + b, never fused into one rounding (fp-contract=off), leaky's
   0.1·v in double; logistic's expf left to the scalar loop */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static inline __m512 y9k_lowp_affine_act16(__m512 s, __m512 ai, __m512 bi, int act)
{
    return y9k_lowp_act16(_mm512_add_ps(_mm512_mul_ps(ai, s), bi), act);
}

__attribute__((target("avx512f"), optimize("fp-contract=off")))
static void y9k_lowp_epilogue_avx512(const float *acc, int rows, int cols, const float *a,
                                     const float *b, int act, float *out, long ldo)
{
    if (act == Y9K_ACT_LOGISTIC) {
        y9k_lowp_epilogue(acc, rows, cols, a, b, act, out, ldo);
        return;
    }
    for (int i = 0; i < rows; i++) {
        const float *s = acc + i * 32;
        float *y = out + i * ldo;
        __m512 ai = _mm512_set1_ps(a[i]), bi = _mm512_set1_ps(b[i]);
        for (int j = 0; j < cols; j += 16) {
            __mmask16 m = cols - j >= 16 ? (__mmask16) 0xffff
                                         : (__mmask16) ((1u << (cols - j)) - 1);
            _mm512_mask_storeu_ps(y + j, m, y9k_lowp_affine_act16(_mm512_maskz_loadu_ps(m, s + j),
                                                                  ai, bi, act));
        }
    }
}

/* the epilogue of the AMX and AVX512-BF16 kernels */
#define Y9K_LOWP_EPILOGUE_UNIT y9k_lowp_epilogue_avx512
#else
#define Y9K_LOWP_EPILOGUE_UNIT y9k_lowp_epilogue
#endif

/* an epilogue of a 32x32 block of sums: y9k_lowp_epilogue or its AVX-512 form (the same bits);
   the rgb kernel's portable twin passes the scalar one, which needs no AVX-512 */
typedef void (*y9k_lowp_epilogue_fn)(const float *acc, int rows, int cols, const float *a,
                                     const float *b, int act, float *out, long ldo);

/* out rows (rows of them; row stride ldo) = the 2x2/2 maxima of act(a * acc + b) over two
   output rows of `cols` (even) columns, through `epilogue`: acc's columns 0-15 the upper row,
   16-31 the lower; the taps compared by the maxpool's own row (y9k_maxpool_2x2_s2_row: the
   lower row 16 floats after the upper), so the bits are the unfused maxpool's */
static inline void y9k_lowp_epilogue_pooled_by(y9k_lowp_epilogue_fn epilogue, const float *acc,
                                               int rows, int cols, const float *a,
                                               const float *b, int act, float *out, long ldo)
{
    float v[32 * 32];
    epilogue(acc, rows, cols, a, b, act, v, 32);
    epilogue(acc + 16, rows, cols, a, b, act, v + 16, 32);
    for (int i = 0; i < rows; i++)
        y9k_maxpool_2x2_s2_row(v + i * 32, out + i * ldo, 16, cols / 2);
}

static inline void y9k_lowp_epilogue_pooled(const float *acc, int rows, int cols,
                                            const float *a, const float *b, int act,
                                            float *out, long ldo)
{
    y9k_lowp_epilogue_pooled_by(Y9K_LOWP_EPILOGUE_UNIT, acc, rows, cols, a, b, act, out, ldo);
}

/* acc (32x32) = the block of W rows from block a0 (two 16-row blocks a0, a0 + KB*512) times
   B panels b0, b0 + KB*512; the portable twin: sums in fp32, k in order */
static void y9k_bf16_block_portable(const uint16_t *a0, const uint16_t *b0, long KB, float *acc)
{
    for (int i = 0; i < 32; i++)
        for (int j = 0; j < 32; j++) {
            const uint16_t *ab = a0 + (i / 16) * KB * 512 + (i % 16) * 32;
            const uint16_t *bb = b0 + (j / 16) * KB * 512 + (j % 16) * 2;
            float s = 0;
            for (long kb = 0; kb < KB; kb++)
                for (int r = 0; r < 16; r++) {
                    const uint16_t *ap = ab + kb * 512 + 2 * r, *bp = bb + kb * 512 + r * 32;
                    s += y9k_from_bf16(ap[0]) * y9k_from_bf16(bp[0])
                         + y9k_from_bf16(ap[1]) * y9k_from_bf16(bp[1]);
                }
            acc[i * 32 + j] = s;
        }
}

#if Y9K_HAVE_LOWP_X86
/* the same block with vdpbf16ps: 8 rows x 32 columns (16 accumulators) at a time */
__attribute__((target("avx512f,avx512bf16")))
static void y9k_bf16_block_avx512(const uint16_t *a0, const uint16_t *b0, long KB, float *acc)
{
    const uint16_t *b1 = b0 + KB * 512;
    for (int g = 0; g < 4; g++) {
        const uint16_t *ag = a0 + (g / 2) * KB * 512 + (g % 2) * 8 * 32;
        __m512 s[8][2];
        for (int i = 0; i < 8; i++)
            s[i][0] = s[i][1] = _mm512_setzero_ps();
        for (long kb = 0; kb < KB; kb++) {
            const uint16_t *ak = ag + kb * 512;
            const uint16_t *p0 = b0 + kb * 512, *p1 = b1 + kb * 512;
            for (int r = 0; r < 16; r++) {
                __m512bh v0 = (__m512bh) _mm512_loadu_si512(p0 + r * 32);
                __m512bh v1 = (__m512bh) _mm512_loadu_si512(p1 + r * 32);
                for (int i = 0; i < 8; i++) {
                    int32_t pair;
                    memcpy(&pair, ak + i * 32 + 2 * r, 4);
                    __m512bh av = (__m512bh) _mm512_set1_epi32(pair);
                    s[i][0] = _mm512_dpbf16_ps(s[i][0], av, v0);
                    s[i][1] = _mm512_dpbf16_ps(s[i][1], av, v1);
                }
            }
        }
        for (int i = 0; i < 8; i++) {
            _mm512_storeu_ps(acc + (g * 8 + i) * 32, s[i][0]);
            _mm512_storeu_ps(acc + (g * 8 + i) * 32 + 16, s[i][1]);
        }
    }
}

/* AMX's tile configuration: tiles 0-3 the 16x16 fp32 sums, 4-5 W blocks, 6-7 B panels, all
   16 rows of 64 bytes */
typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} y9k_tile_config;

__attribute__((target("amx-tile")))
static void y9k_amx_configure(void)
{
    y9k_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int i = 0; i < 8; i++) {
        cfg.rows[i] = 16;
        cfg.colsb[i] = 64;
    }
    /* GCC's _tile_loadconfig does not tell the compiler it reads cfg: without this barrier
       the stores above are dropped and ldtilecfg faults on garbage */
    __asm__ volatile("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
}

__attribute__((target("amx-tile")))
static void y9k_amx_release(void) { _tile_release(); }

/* The four accumulator tiles (0-3) of a 32 x 32 block of 4-byte sums, rows 128 bytes apart
   (bf16's fp32 sums, int8's int32): started from zero, or from the sums at acc to resume
   them exactly, and stored back to acc */
__attribute__((target("amx-tile"), always_inline))
static inline void y9k_amx_acc_start(const void *acc, int resume)
{
    const char *sums = (const char *) acc;
    if (resume) {
        _tile_loadd(0, sums, 128);
        _tile_loadd(1, sums + 64, 128);
        _tile_loadd(2, sums + 16 * 128, 128);
        _tile_loadd(3, sums + 16 * 128 + 64, 128);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
}

__attribute__((target("amx-tile"), always_inline))
static inline void y9k_amx_acc_store(void *acc)
{
    char *sums = (char *) acc;
    _tile_stored(0, sums, 128);
    _tile_stored(1, sums + 64, 128);
    _tile_stored(2, sums + 16 * 128, 128);
    _tile_stored(3, sums + 16 * 128 + 64, 128);
}

/* the same block with tdpbf16ps (the tiles configured by the calling thread) */
__attribute__((target("amx-tile,amx-bf16")))
static void y9k_bf16_block_amx(const uint16_t *a0, const uint16_t *b0, long KB, float *acc)
{
    const uint16_t *a1 = a0 + KB * 512, *b1 = b0 + KB * 512;
    y9k_amx_acc_start(acc, 0);
    for (long kb = 0; kb < KB; kb++) {
        _tile_loadd(4, a0 + kb * 512, 64);
        _tile_loadd(6, b0 + kb * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b1 + kb * 512, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + kb * 512, 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    y9k_amx_acc_store(acc);
}
#endif

/* -- convolutions on AMX without a column matrix (stride 1, C a multiple of 32) ----------
   The input is rounded once into channel pairs with a zero border, [C/2][H'][W'][2]: rows of
   W' = W + pad pairs whose first `pad` are zeros - the row's left border and, read past the
   previous row's end, that row's right border - `pad` zero rows above the image, and below it
   `pad` zero rows and the slack the last tiles read into (y9k_pairs_rows), zeros up to the
   plane's stride (y9k_pairs_plane). Output (oy, ox)
   is then flat position q = oy W' + ox and its tap (ky, kx) reads the pair at q + ky W' + kx:
   for a tap and 32 channels, 16 consecutive positions are one B tile whose 16 rows (channel
   pairs) lie a plane apart, which tdpbf16ps reads in place. The map is cut into flat ranges of
   16 positions that run across row ends; only the positions with ox >= OW (pad of every W')
   are computed for nothing (a 13x13 map: 169 of 192, where 16-position pieces of each row
   computed 169 of 224). W is packed in (tap, channel) order to match. */
static inline long y9k_pairs_width(int W, int pad) { return (long) W + pad; }

/* rows of a channel-pair plane: the last output's reads end before (H + 2 pad) W' + pad, its
   32-position block's 31 past it at most, for any kernel size the padding allows */
static inline long y9k_pairs_rows(int H, int W, int pad)
{
    long Wp = y9k_pairs_width(W, pad);
    return (long) H + 2L * pad + (pad + 31 + Wp - 1) / Wp;
}

/* pairs from one channel-pair plane to the next: its rows, then zeros up to an odd number of
   cache lines, so that a B tile's 16 rows start where a tile of positions starts in a line (a
   1x1 convolution's: one line a row, not two) and fall in 16 different cache sets */
static inline long y9k_pairs_plane(int H, int W, int pad)
{
    long lines = (y9k_pairs_rows(H, W, pad) * y9k_pairs_width(W, pad) + 15) / 16;
    return 16 * (lines | 1);
}

/* rows r0 and r1 (NULL: zeros) of two channels -> dst, pairs side by side */
static void y9k_bf16_pair_row_portable(const float *r0, const float *r1, int W, uint16_t *dst)
{
    for (int c = 0; c < W; c++) {
        dst[2 * c] = y9k_to_bf16(r0[c]);
        dst[2 * c + 1] = r1 ? y9k_to_bf16(r1[c]) : 0;
    }
}

#if Y9K_HAVE_LOWP_X86
__attribute__((target("avx512f")))
static void y9k_bf16_pair_row_avx512(const float *r0, const float *r1, int W, uint16_t *dst)
{
    for (int c = 0; c < W; c += 16) {
        __mmask16 m = W - c >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << (W - c)) - 1);
        __m512 odd = r1 ? _mm512_maskz_loadu_ps(m, r1 + c) : _mm512_setzero_ps();
        __m512i v = y9k_bf16_pairs16(_mm512_maskz_loadu_ps(m, r0 + c), odd);
        _mm512_mask_storeu_epi32(dst + 2 * c, m, v);
    }
}
#endif

/* zeros wherever a channel-pair plane (stride pairs) holds no value of the image: the `pad`
   rows above it, each row's first `pad` pairs, the rows below and the slack up to the next
   plane (the packing writes the rest; so does a hand-off's epilogue) */
static void y9k_pairs_clear_border(uint16_t *plane, int H, int W, int pad, long stride)
{
    long Wp = y9k_pairs_width(W, pad);
    memset(plane, 0, (size_t) pad * Wp * 4);
    memset(plane + (pad + (long) H) * Wp * 2, 0, (size_t) (stride - (pad + H) * Wp) * 4);
    /* a row's border is a pair or two: stores, not a memset call per row */
    for (long y = 0; y < H; y++)
        for (int k = 0; k < 2 * pad; k++)
            plane[(y + pad) * Wp * 2 + k] = 0;
}

/* rows r0 and r1 (NULL: zeros) of two channels -> dst, pairs side by side, with AVX-512
   where `avx512` (the same bits either way) */
static inline void y9k_bf16_pair_row(const float *r0, const float *r1, int W, uint16_t *dst,
                                     int avx512)
{
#if Y9K_HAVE_LOWP_X86
    if (avx512) {
        y9k_bf16_pair_row_avx512(r0, r1, W, dst);
        return;
    }
#endif
    (void) avx512;
    y9k_bf16_pair_row_portable(r0, r1, W, dst);
}

typedef struct {
    const float *x;
    int C, H, W, pad, avx512;
    long Wp, stride;
    uint16_t *out;
} y9k_bf16_pairs_job;

static void y9k_bf16_pack_pair_plane(void *job, long cp)
{
    const y9k_bf16_pairs_job *j = (const y9k_bf16_pairs_job *) job;
    int H = j->H, W = j->W;
    uint16_t *plane = j->out + cp * j->stride * 2;
    if (2 * cp >= j->C) {
        memset(plane, 0, (size_t) j->stride * 4);
        return;
    }
    /* an odd C's last channel pairs with zeros */
    const float *x0 = j->x + 2 * cp * H * W;
    const float *x1 = 2 * cp + 1 < j->C ? x0 + (long) H * W : NULL;
    y9k_pairs_clear_border(plane, H, W, j->pad, j->stride);
    for (long y = 0; y < H; y++)
        y9k_bf16_pair_row(x0 + y * W, x1 ? x1 + y * W : NULL, W,
                          plane + ((y + j->pad) * j->Wp + j->pad) * 2, j->avx512);
}

/* x (C, H, W) -> out [Cp/2][H'][W'][2] bf16 (Cp >= C even: the channels from C on are
   zeros), the layout above */
static void y9k_bf16_pack_pairs(const float *x, int C, int H, int W, int pad, int Cp,
                                uint16_t *out, int avx512)
{
    y9k_bf16_pairs_job j = {x, C, H, W, pad, avx512, y9k_pairs_width(W, pad),
                            y9k_pairs_plane(H, W, pad), out};
    y9k_team_for(Cp / 2, y9k_bf16_pack_pair_plane, &j);
}

/* a convolution's output handed off (kernels/handoff.py): written as the next layer's input,
   packed in channel pairs as y9k_bf16_pack_pairs packs it with that layer's padding, instead
   of in fp32 */
typedef struct {
    uint16_t *data;     /* the pairs of the output's channels 0 and 1 */
    long plane;         /* pairs from one channel pair to the next (y9k_pairs_plane) */
    long width;         /* pairs a row (y9k_pairs_width) */
    int pad;
    int avx512;         /* the rounding with AVX-512 or the portable twin's (the same bits) */
} y9k_pairs_out;

/* the values of a hand-off (M filters in MB blocks of 32, a PH x PW output) that no epilogue
   writes: every plane's border and slack, and the whole planes of the zero channels past M;
   this member's share of them, without waiting for the others (the epilogues write none of
   these values) */
static void y9k_pairs_clear_outside(const y9k_pairs_out *pairs, int M, long MB, int PH, int PW,
                                    int member, int members)
{
    long first, end;
    y9k_team_share(MB * 16, member, members, &first, &end);
    for (long cp = first; cp < end; cp++) {
        uint16_t *plane = pairs->data + cp * pairs->plane * 2;
        if (2 * cp >= M)
            memset(plane, 0, (size_t) pairs->plane * 4);
        else
            y9k_pairs_clear_border(plane, PH, PW, pairs->pad, pairs->plane);
    }
}

/* rows (filters; the first even) x cols of fp32 values v (row stride ldv), rounded to bf16
   into the hand-off's pairs at output position (y, x) */
static inline void y9k_bf16_store_pairs(const float *v, int rows, int cols, long ldv,
                                        const y9k_pairs_out *dst, long filter, long y, long x)
{
    uint16_t *at = dst->data + (filter / 2 * dst->plane + (y + dst->pad) * dst->width
                                + dst->pad + x) * 2;
    for (int i = 0; i < rows; i += 2)
        y9k_bf16_pair_row(v + i * ldv, i + 1 < rows ? v + (i + 1) * ldv : NULL, cols,
                          at + (long) (i / 2) * dst->plane * 2, dst->avx512);
}

#if Y9K_HAVE_LOWP_X86
/* y9k_lowp_epilogue_avx512 of rows x cols sums (acc's rows, 32 apart) rounded to bf16 pairs
   at dst (two filters a pair, `plane` pairs from one pair to the next), in registers: the
   bits of that epilogue followed by y9k_bf16_pair_row, without the fp32 values stored and
   read back (logistic is not taken here: that epilogue leaves it to the scalar loop) */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static void y9k_bf16_epilogue_pairs_avx512(const float *acc, int rows, int cols,
                                           const float *a, const float *b, int act,
                                           uint16_t *dst, long plane)
{
    for (int i = 0; i < rows; i += 2) {
        int odd = i + 1 < rows;
        const float *s0 = acc + i * 32, *s1 = s0 + 32;
        __m512 a0 = _mm512_set1_ps(a[i]), b0 = _mm512_set1_ps(b[i]);
        __m512 a1 = _mm512_set1_ps(odd ? a[i + 1] : 0), b1 = _mm512_set1_ps(odd ? b[i + 1] : 0);
        uint16_t *d = dst + (long) (i / 2) * plane * 2;
        for (int j = 0; j < cols; j += 16) {
            __mmask16 m = cols - j >= 16 ? (__mmask16) 0xffff
                                         : (__mmask16) ((1u << (cols - j)) - 1);
            __m512 even = y9k_lowp_affine_act16(_mm512_maskz_loadu_ps(m, s0 + j), a0, b0, act);
            __m512 other = odd ? y9k_lowp_affine_act16(_mm512_maskz_loadu_ps(m, s1 + j), a1,
                                                       b1, act)
                               : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(d + 2 * j, m, y9k_bf16_pairs16(even, other));
        }
    }
}
#endif

#if Y9K_HAVE_LOWP_X86
/* y9k_lowp_epilogue_pooled's maxima (acc's columns 0-15 a window's upper row, 16-31 its
   lower; cols even, at most 16) rounded to bf16 pairs at dst as above, in registers: each
   tap activated as that epilogue does, the taps compared in its order (vmaxps(t, best) is its
   t > best ? t : best), the same bits */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static void y9k_bf16_epilogue_pooled_pairs_avx512(const float *acc, int rows, int cols,
                                                  const float *a, const float *b, int act,
                                                  uint16_t *dst, long plane)
{
    const __m512i left = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i right = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0);
    __mmask16 m = (__mmask16) ((1u << cols) - 1), half = (__mmask16) ((1u << (cols / 2)) - 1);
    for (int i = 0; i < rows; i += 2) {
        __m512 best[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int h = 0; h < 2 && i + h < rows; h++) {
            const float *s = acc + (i + h) * 32;
            __m512 ai = _mm512_set1_ps(a[i + h]), bi = _mm512_set1_ps(b[i + h]);
            __m512 up = y9k_lowp_affine_act16(_mm512_maskz_loadu_ps(m, s), ai, bi, act);
            __m512 low = y9k_lowp_affine_act16(_mm512_maskz_loadu_ps(m, s + 16), ai, bi, act);
            __m512 v = _mm512_permutexvar_ps(left, up);
            v = _mm512_max_ps(_mm512_permutexvar_ps(right, up), v);
            v = _mm512_max_ps(_mm512_permutexvar_ps(left, low), v);
            best[h] = _mm512_max_ps(_mm512_permutexvar_ps(right, low), v);
        }
        _mm512_mask_storeu_epi32(dst + (long) (i / 2) * plane * 2, half,
                                 y9k_bf16_pairs16(best[0], best[1]));
    }
}
#endif

/* y9k_lowp_epilogue_pooled's maxima of rows (filters from `filter`, even) x cols sums written
   to the hand-off at pooled position (y, x): in registers with AVX-512, or the portable twin
   (that epilogue, then the scalar rounding: the same bits) */
static inline void y9k_bf16_epilogue_pooled_pairs(const float *acc, int rows, int cols,
                                                  const float *a, const float *b, int act,
                                                  const y9k_pairs_out *dst, long filter,
                                                  long y, long x)
{
#if Y9K_HAVE_LOWP_X86
    if (dst->avx512 && act != Y9K_ACT_LOGISTIC) {
        y9k_bf16_epilogue_pooled_pairs_avx512(acc, rows, cols, a, b, act,
                                              dst->data + (filter / 2 * dst->plane
                                                           + (y + dst->pad) * dst->width
                                                           + dst->pad + x) * 2,
                                              dst->plane);
        return;
    }
#endif
    float v[32 * 16];
    y9k_lowp_epilogue_pooled(acc, rows, cols, a, b, act, v, 16);
    y9k_bf16_store_pairs(v, rows, cols / 2, 16, dst, filter, y, x);
}

/* act(a * acc + b) of rows (filters from `filter`, even) x cols sums (acc's rows 32 apart)
   written to the hand-off at output position (y, x): the AVX-512 epilogue in registers, or
   the portable twin (the scalar epilogue, then the scalar rounding: the same bits) */
static inline void y9k_bf16_epilogue_pairs(const float *acc, int rows, int cols,
                                           const float *a, const float *b, int act,
                                           const y9k_pairs_out *dst, long filter, long y, long x)
{
#if Y9K_HAVE_LOWP_X86
    if (dst->avx512 && act != Y9K_ACT_LOGISTIC) {
        y9k_bf16_epilogue_pairs_avx512(acc, rows, cols, a, b, act,
                                       dst->data + (filter / 2 * dst->plane
                                                    + (y + dst->pad) * dst->width + dst->pad
                                                    + x) * 2,
                                       dst->plane);
        return;
    }
#endif
    float v[32 * 32];
    y9k_lowp_epilogue(acc, rows, cols, a, b, act, v, 32);
    y9k_bf16_store_pairs(v, rows, cols, 32, dst, filter, y, x);
}

/* the first column of output segment s (16 positions of a row; a row wider than 16 ends
   with a segment that overlaps the one before, which recomputes the same sums): the pooled
   kernel's pieces, whose two tiles are a window's two rows */
static inline int y9k_segment_x(int s, int per_row, int OW)
{
    int j = s % per_row;
    return OW <= 16 ? 0 : (16 * j + 16 <= OW ? 16 * j : OW - 16);
}

/* where a piece's two tiles of 16 output positions start in the packed input, in `unit`s (a
   position's elements in a plane: bf16 pairs 2; the int8 channels-last input counts
   positions, 1): flat positions piece * 32 and piece * 32 + 16, or with `pool` segment
   piece % per_row of rows 2r and 2r + 1 (r = piece / per_row), the two rows one pooling
   window spans */
static inline void y9k_lowp_piece_offsets(long piece, int pool, int per_row, int OW, long Wp,
                                          int unit, long *off0, long *off1)
{
    if (pool) {
        long oy = 2 * (piece / per_row);
        int ox = y9k_segment_x((int) (piece % per_row), per_row, OW);
        *off0 = (oy * Wp + ox) * unit;
        *off1 = ((oy + 1) * Wp + ox) * unit;
    } else {
        *off0 = piece * 32 * unit;
        *off1 = *off0 + 16 * unit;
    }
}

/* the epilogue of flat positions q0 .. q0 + 31 (acc's 32 columns; rows W' apart) for filters
   f0 ..: the columns that are outputs (ox < OW, oy < OH) written, row by row, in fp32 to
   out (row stride ldo) or, with `pairs`, to the hand-off */
static inline void y9k_lowp_epilogue_flat(y9k_lowp_epilogue_fn epilogue, const float *acc,
                                          int rows, long q0, long Wp, int OW, int OH,
                                          const float *a, const float *b, int act, float *out,
                                          long ldo, const y9k_pairs_out *pairs, long f0)
{
    for (int j = 0; j < 32;) {
        long q = q0 + j, oy = q / Wp, ox = q % Wp;
        int run = Wp - ox < 32 - j ? (int) (Wp - ox) : 32 - j;
        if (oy >= OH)
            break;
        if (ox < OW) {
            int cols = OW - ox < run ? (int) (OW - ox) : run;
            if (pairs) {
                y9k_bf16_epilogue_pairs(acc + j, rows, cols, a, b, act, pairs, f0, oy, ox);
            } else {
                epilogue(acc + j, rows, cols, a, b, act, out + oy * OW + ox, ldo);
            }
        }
        j += run;
    }
}

#if Y9K_HAVE_LOWP_X86
/* acc (32x32) = 32 filters (blocks a0, a0 + KB*512) x two segments at pair offsets off0,
   off1 of xb, summed over the taps and channel blocks cb0 .. cb1 - 1 (of CB); with `resume`
   added to the sums acc holds (the same fp32 sums, in the same order, as one call over all
   the channel blocks: the tiles store and load them exactly) */
__attribute__((target("amx-tile,amx-bf16")))
static void y9k_bf16_conv_block_amx(const uint16_t *a0, long KB, const uint16_t *xb, long off0,
                                    long off1, int ksize, long Wp, int cb0, int cb1, int CB,
                                    long plane_bytes, float *acc, int resume)
{
    const uint16_t *a1 = a0 + KB * 512;
    long block_elems = 16 * plane_bytes / 2;     /* 16 channel pairs on */
    y9k_amx_acc_start(acc, resume);
    /* channel blocks outermost: a block's taps read overlapping windows of the same 16
       planes, from L1 after the first (taps outermost read them all from L2 once per tap) */
    for (int cb = cb0; cb < cb1; cb++)
        for (int ky = 0; ky < ksize; ky++)
            for (int kx = 0; kx < ksize; kx++) {
                long kb = (long) (ky * ksize + kx) * CB + cb;
                const uint16_t *src = xb + (ky * Wp + kx) * 2 + cb * block_elems;
                _tile_loadd(4, a0 + kb * 512, 64);
                _tile_loadd(6, src + off0, plane_bytes);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(7, src + off1, plane_bytes);
                _tile_dpbf16ps(1, 4, 7);
                _tile_loadd(5, a1 + kb * 512, 64);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
    y9k_amx_acc_store(acc);
}

/* y9k_bf16_conv_amx's sizes and operands, shared by its team */
typedef struct {
    int M, ksize, OH, OW, per_row, CB, act, pool, span, chunk;
    long Wp, pieces, KB, MB, plane_bytes, ldo, group, groups;
    const uint16_t *wp, *xb;
    const float *a, *b;
    float *out;
    const y9k_pairs_out *pairs;
    long next;              /* the next task not yet taken */
} y9k_bf16_conv_job;

/* dynamic: on a machine shared with other work a thread that loses its core for a while
   leaves its blocks to the others (static shares: yolov2-voc in bf16 took a median 90 ms
   against 61 ms, with the load average at 4 on 2 cores); every block's sums are the same
   whichever thread computes them */
static void y9k_bf16_conv_amx_member(void *job, int member, int members)
{
    y9k_bf16_conv_job *j = (y9k_bf16_conv_job *) job;
    static __thread float accs[Y9K_LOWP_RESIDENT_PIECES][32 * 32] __attribute__((aligned(64)));
    int M = j->M, OH = j->OH, OW = j->OW, per_row = j->per_row, CB = j->CB, act = j->act;
    int pool = j->pool, span = j->span;
    long Wp = j->Wp, pieces = j->pieces, KB = j->KB, MB = j->MB, ldo = j->ldo;
    long group = j->group, groups = j->groups;
    const float *a = j->a, *b = j->b;
    const y9k_pairs_out *pairs = j->pairs;
    if (pairs)
        y9k_pairs_clear_outside(pairs, M, MB, pool ? OH / 2 : OH, pool ? OW / 2 : OW, member,
                                members);
    y9k_amx_configure();
    for (long t0; (t0 = y9k_team_take(&j->next, j->chunk)) < MB * groups;)
        for (long task = t0; task < t0 + j->chunk && task < MB * groups; task++) {
            long mb = task / groups, first = task % groups * group;
            long end = first + group < pieces ? first + group : pieces;
            int rows = M - mb * 32 < 32 ? (int) (M - mb * 32) : 32;
            const uint16_t *w0 = j->wp + mb * 2 * KB * 512;
            for (int cb = 0; cb < CB; cb += span)
                for (long piece = first; piece < end; piece++) {
                    long off0, off1;
                    y9k_lowp_piece_offsets(piece, pool, per_row, OW, Wp, 2, &off0, &off1);
                    y9k_bf16_conv_block_amx(w0, KB, j->xb, off0, off1, j->ksize, Wp, cb,
                                            cb + span < CB ? cb + span : CB, CB,
                                            j->plane_bytes, accs[piece - first], cb > 0);
                }
            for (long piece = first; piece < end; piece++) {
                float *acc = accs[piece - first];
                if (!pool) {
                    y9k_lowp_epilogue_flat(Y9K_LOWP_EPILOGUE_UNIT, acc, rows, piece * 32, Wp,
                                           OW, OH, a + mb * 32, b + mb * 32, act,
                                           pairs ? NULL : j->out + mb * 32 * ldo, ldo, pairs,
                                           mb * 32);
                    continue;
                }
                /* ox even (OW even: the overlapping last segment starts at OW - 16) */
                long oy = 2 * (piece / per_row);
                int ox = y9k_segment_x((int) (piece % per_row), per_row, OW);
                int cols = OW - ox < 16 ? OW - ox : 16;
                if (pairs) {
                    y9k_bf16_epilogue_pooled_pairs(acc, rows, cols, a + mb * 32, b + mb * 32,
                                                   act, pairs, mb * 32, oy / 2, ox / 2);
                    continue;
                }
                y9k_lowp_epilogue_pooled(acc, rows, cols, a + mb * 32, b + mb * 32, act,
                                         j->out + mb * 32 * ldo + (oy / 2) * (OW / 2) + ox / 2,
                                         ldo);
            }
        }
    y9k_amx_release();
}

/* out (M, OH*OW) = act(a * conv(x) + b) for a k x k stride-1 convolution (pad), x given as
   y9k_bf16_pack_pairs packs it, C its channels padded to a multiple of 32, W packed in (tap,
   channel) order with the same padding; a block is 32 filters by 32 flat positions. With
   `pool` (OH and OW even) out (M, OH/2 * OW/2) is its 2x2/2 maxpool instead, the full output
   never written: a block's two tiles are then the same 16 columns of two rows, the rows one
   window spans. With `pairs` (not NULL) the output (pooled or not) is written there instead
   of out, packed as y9k_bf16_pack_pairs packs it with padding pairs->pad and round_up(M)
   channels, border and zero channels included */
static void y9k_bf16_conv_amx(int M, int C, int H, int W, int ksize, int pad,
                              const uint16_t *wp, const uint16_t *xb, const float *a,
                              const float *b, int act, int pool, float *out,
                              const y9k_pairs_out *pairs)
{
    y9k_bf16_conv_job j = {0};
    j.M = M; j.ksize = ksize; j.act = act; j.pool = pool;
    j.wp = wp; j.xb = xb; j.a = a; j.b = b; j.out = out; j.pairs = pairs;
    j.OH = H + 2 * pad - ksize + 1;
    j.OW = W + 2 * pad - ksize + 1;
    j.Wp = y9k_pairs_width(W, pad);
    j.per_row = j.OW <= 16 ? 1 : (j.OW + 15) / 16;
    /* flat positions up to the last output's, 32 a block */
    long flat = (long) (j.OH - 1) * j.Wp + j.OW;
    j.pieces = pool ? (long) (j.OH / 2) * j.per_row : (flat + 31) / 32;
    j.CB = C / 32;
    j.KB = (long) ksize * ksize * j.CB;
    j.MB = y9k_lowp_round_up(M) / 32;
    j.plane_bytes = y9k_pairs_plane(H, W, pad) * 4;
    j.ldo = pool ? (long) (j.OH / 2) * (j.OW / 2) : (long) j.OH * j.OW;
    /* where the W blocks a piece reads repeat (several channel blocks), a thread takes a
       block of 32 filters over a group of up to Y9K_LOWP_RESIDENT_PIECES pieces, a span of
       channel blocks (at least 8 W blocks of 16 filters: 18 KB for 3x3, 16 KB for 1x1) at a
       time across the group, so that the span's W is read from L1 by every piece after the
       first, the sums resumed (1x1 on maps of more than 8 pieces keeps one call a block:
       1.02-1.04x with groups, the span's W already most of what a piece reads) */
    j.span = (8 + ksize * ksize - 1) / (ksize * ksize);
    int resident = j.CB > j.span && (ksize > 1 || j.pieces <= Y9K_LOWP_RESIDENT_PIECES);
    j.group = resident ? Y9K_LOWP_RESIDENT_PIECES : 1;
    j.groups = (j.pieces + j.group - 1) / j.group;
    j.chunk = resident ? 1 : 4;
    if (!resident)
        j.span = j.CB;
    y9k_team(y9k_bf16_conv_amx_member, &j);
}
#else
/* no AMX on this architecture: never called (bf16_kernels() does not list it) */
static void y9k_bf16_conv_amx(int M, int C, int H, int W, int ksize, int pad,
                              const uint16_t *wp, const uint16_t *xb, const float *a,
                              const float *b, int act, int pool, float *out,
                              const y9k_pairs_out *pairs)
{
    (void) M; (void) C; (void) H; (void) W; (void) ksize; (void) pad; (void) wp; (void) xb;
    (void) a; (void) b; (void) act; (void) pool; (void) out; (void) pairs;
}
#endif

/* out (M x N, row stride ldo) = act(a[m] * (W x B)[m, n] + b[m]) from packed W and B (K' =
   K rounded up to 32), on the OpenMP threads in 32x32 blocks, on `kernel`
   (Y9K_BF16_*: the caller checked the CPU has it) */
static void y9k_bf16_gemm(int kernel, int M, int N, int K, const uint16_t *wp,
                          const uint16_t *bp, const float *a, const float *b, int act,
                          float *out, long ldo)
{
    long KB = y9k_lowp_round_up(K) / 32;
    long MB = y9k_lowp_round_up(M) / 32, NB = y9k_lowp_round_up(N) / 32;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        float acc[32 * 32] __attribute__((aligned(64)));
#if Y9K_HAVE_LOWP_X86
        if (kernel == Y9K_BF16_AMX)
            y9k_amx_configure();
#endif
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
        for (long blk = 0; blk < MB * NB; blk++) {
            long mb = blk / NB, nb = blk % NB;
            const uint16_t *a0 = wp + mb * 2 * KB * 512, *b0 = bp + nb * 2 * KB * 512;
#if Y9K_HAVE_LOWP_X86
            if (kernel == Y9K_BF16_AMX)
                y9k_bf16_block_amx(a0, b0, KB, acc);
            else if (kernel == Y9K_BF16_AVX512)
                y9k_bf16_block_avx512(a0, b0, KB, acc);
            else
#endif
                y9k_bf16_block_portable(a0, b0, KB, acc);
            int rows = M - mb * 32 < 32 ? (int) (M - mb * 32) : 32;
            int cols = N - nb * 32 < 32 ? (int) (N - nb * 32) : 32;
#if Y9K_HAVE_LOWP_X86
            if (kernel != Y9K_BF16_PORTABLE) {
                y9k_lowp_epilogue_avx512(acc, rows, cols, a + mb * 32, b + mb * 32, act,
                                         out + mb * 32 * ldo + nb * 32, ldo);
                continue;
            }
#endif
            y9k_lowp_epilogue(acc, rows, cols, a + mb * 32, b + mb * 32, act,
                              out + mb * 32 * ldo + nb * 32, ldo);
        }
#if Y9K_HAVE_LOWP_X86
        if (kernel == Y9K_BF16_AMX)
            y9k_amx_release();
#endif
    }
}


#if Y9K_HAVE_LOWP_X86
/* W floats -> bf16, y9k_to_bf16's rounding 16 at a time */
__attribute__((target("avx512f")))
static void y9k_bf16_round_row_avx512(const float *src, int W, uint16_t *dst)
{
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i quiet = _mm512_set1_epi32(0x400000);
    int i = 0;
    for (; i + 16 <= W; i += 16) {
        __m512i v = _mm512_castps_si512(_mm512_loadu_ps(src + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(v, abs_mask), inf);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(v, 16), one);
        __m512i r = _mm512_add_epi32(v, _mm512_add_epi32(bias, lsb));
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(v, quiet));
        _mm256_storeu_si256((__m256i *) (dst + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
    for (; i < W; i++)
        dst[i] = y9k_to_bf16(src[i]);
}
#endif

/* -- the RGB input layer: convolutions whose whole depth fits one tile ---------------------
   A stride-1 convolution of depth K = C·k·k <= 32 (the RGB layer: 3 channels x 3x3 = 27, one
   tile's 32). The channel-pair layout above would pad its 3 channels to 32 (a tenth of the
   products real) and im2col's panels write a column matrix (9.3 MB for 416x416). Here the
   image is rounded once into bf16 planes with the flat rows of the pairs layout (rows of
   W' = W + pad values whose first `pad` are zeros; output position q = oy W' + ox reads tap
   (ky, kx) at q + ky W' + kx; the rows and slack of y9k_pairs_rows), and for each 32 output
   positions the two B tiles (16 pairs of k by 16 positions, 2 KB) are built in L1, row by
   row from two runs of 16 consecutive values: k in the weights' own (channel, ky, kx) order,
   so W is packed as for im2col's products (y9k_bf16_pack_a, K padded to 32). The product is
   y9k_bf16_gemm's block (AMX, AVX512-BF16 or the portable twin, K' = 32: one step), its
   epilogue the fp32 one, the 2x2/2 maxpool fused as the direct kernel's. */

/* values from one channel's plane to the next: the pairs layout's rows, whole cache lines */
static inline long y9k_rgb_plane(int H, int W, int pad)
{
    return (y9k_pairs_rows(H, W, pad) * y9k_pairs_width(W, pad) + 31) / 32 * 32;
}

typedef struct {
    const float *x;
    int H, W, pad, avx512;
    long Wp, plane, rows;
    uint16_t *out;
} y9k_bf16_image_job;

static void y9k_bf16_pack_image_row(void *job, long cr)
{
    const y9k_bf16_image_job *j = (const y9k_bf16_image_job *) job;
    long Wp = j->Wp, plane = j->plane;
    long c = cr / j->rows, r = cr % j->rows, y = r - j->pad;
    uint16_t *dst = j->out + c * plane + r * Wp;
    long width = (r + 1) * Wp <= plane ? Wp : plane - r * Wp;
    if (y < 0 || y >= j->H || width < Wp) {
        memset(dst, 0, (size_t) width * 2);
        return;
    }
    const float *src = j->x + (c * j->H + y) * (long) j->W;
    memset(dst, 0, (size_t) j->pad * 2);
    dst += j->pad;
#if Y9K_HAVE_LOWP_X86
    if (j->avx512) {
        y9k_bf16_round_row_avx512(src, j->W, dst);
        return;
    }
#endif
    for (int i = 0; i < j->W; i++)
        dst[i] = y9k_to_bf16(src[i]);
}

/* x (C, H, W) -> out [C][rows][W + pad] bf16 with the border and slack above */
static void y9k_bf16_pack_image(const float *x, int C, int H, int W, int pad, uint16_t *out,
                                int avx512)
{
    y9k_bf16_image_job j = {x, H, W, pad, avx512, y9k_pairs_width(W, pad),
                            y9k_rgb_plane(H, W, pad), 0, out};
    j.rows = j.plane / j.Wp + 1;         /* the last (partial) row: the plane's end */
    y9k_team_for((long) C * j.rows, y9k_bf16_pack_image_row, &j);
}

/* the two B tiles of positions q0 .. q0 + 15 and q1 .. q1 + 15 (tiles[0..511], [512..1023]):
   row r holds the pairs (k = 2r, 2r + 1) of its 16 positions side by side, value k read at
   img + offsets[k] + q; rows from (K + 1) / 2 on, and k = K in the last, zeros */
static void y9k_bf16_rgb_tiles_portable(const uint16_t *img, const long *offsets, int K,
                                        long q0, long q1, uint16_t *tiles)
{
    for (int t = 0; t < 2; t++) {
        const uint16_t *at = img + (t ? q1 : q0);
        uint16_t *tile = tiles + t * 512;
        for (int r = 0; r < 16; r++)
            for (int h = 0; h < 2; h++) {
                int k = 2 * r + h;
                for (int j = 0; j < 16; j++)
                    tile[r * 32 + 2 * j + h] = k < K ? at[offsets[k] + j] : 0;
            }
    }
}

#if Y9K_HAVE_LOWP_X86
/* the same tiles, a row a vector: the two runs widened to 32 bits, the odd one shifted up */
__attribute__((target("avx512f")))
static void y9k_bf16_rgb_tiles_avx512(const uint16_t *img, const long *offsets, int K,
                                      long q0, long q1, uint16_t *tiles)
{
    const __m512i zero = _mm512_setzero_si512();
    for (int t = 0; t < 2; t++) {
        const uint16_t *at = img + (t ? q1 : q0);
        uint16_t *tile = tiles + t * 512;
        for (int r = 0; r < 16; r++) {
            int k = 2 * r;
            __m512i even = k < K ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                       (const __m256i *) (at + offsets[k]))) : zero;
            __m512i odd = k + 1 < K ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                          (const __m256i *) (at + offsets[k + 1]))) : zero;
            _mm512_store_si512(tile + r * 32, _mm512_or_si512(even, _mm512_slli_epi32(odd, 16)));
        }
    }
}
#endif

#if Y9K_HAVE_LOWP_X86
/* y9k_bf16_block_amx with K' = 32 for the first 16 rows of acc alone: a block of at most 16
   filters (tiny's RGB layer) skips the products of the second W block, zeros */
__attribute__((target("amx-tile,amx-bf16")))
static void y9k_bf16_rgb_block16_amx(const uint16_t *a0, const uint16_t *tiles, float *acc)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_loadd(4, a0, 64);
    _tile_loadd(6, tiles, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, tiles + 512, 64);
    _tile_dpbf16ps(1, 4, 7);
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
}
#endif

#if Y9K_HAVE_LOWP_X86
/* a window's running maximum taking the next tap t lane by lane in the maxpool's order: t
   only where it is greater (y9k_maxpool_2x2_s2_row's rule: a NaN never wins, ties keep the
   earlier tap) */
__attribute__((target("avx512f")))
static inline __m512 y9k_later_if_greater16(__m512 best, __m512 t)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, best, _CMP_GT_OQ), best, t);
}

/* the windows' maxima of the affine values of two filters' rows (their upper 16 values, then
   their lower 16; `up1`, `low1` the second filter's): lanes 0-7 the first filter's 8 windows,
   8-15 the second's, each the maximum of upper left, upper right, lower left, lower right in
   that order (y9k_later_if_greater16) */
__attribute__((target("avx512f")))
static inline __m512 y9k_lowp_window_max16(__m512 up0, __m512 low0, __m512 up1, __m512 low1)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __m512 v = _mm512_permutex2var_ps(up0, even, up1);
    v = y9k_later_if_greater16(v, _mm512_permutex2var_ps(up0, odd, up1));
    v = y9k_later_if_greater16(v, _mm512_permutex2var_ps(low0, even, low1));
    return y9k_later_if_greater16(v, _mm512_permutex2var_ps(low0, odd, low1));
}

/* a * s + b on 16 fp32 sums, the product rounded before the sum (the barrier keeps the
   compiler from fusing the two into an FMA wherever this is inlined) */
__attribute__((target("avx512f")))
static inline __m512 y9k_lowp_affine16(const float *s, __m512 a, __m512 b)
{
    __m512 p = _mm512_mul_ps(a, _mm512_load_ps(s));
    __asm__("" : "+v"(p));
    return _mm512_add_ps(p, b);
}

/* y9k_lowp_epilogue_pooled for the activations that never decrease (linear, leaky, relu),
   two filters by 8 windows a vector: a * s + b on a window's four values, their maximum in
   the same order (a later value winning only if greater), then the activation once, which
   gives the maximum of the activated values (the unfused maxpool's). A quarter of the
   activations and no scalar loop: the pooled epilogue was two thirds of the RGB kernel's
   time (BENCHMARKS.md#bf16-products) */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static void y9k_lowp_epilogue_pooled_avx512(const float *acc, int rows, int cols,
                                           const float *a, const float *b, int act,
                                           float *out, long ldo)
{
    /* lanes 0-7: filter i's windows, 8-15: filter i + 1's */
    __mmask16 first = (__mmask16) ((1u << (cols / 2)) - 1), second = (__mmask16) (first << 8);
    for (int i = 0; i < rows; i += 2) {
        int next = i + 1 < rows ? i + 1 : i;
        __m512 a0 = _mm512_set1_ps(a[i]), b0 = _mm512_set1_ps(b[i]);
        __m512 a1 = _mm512_set1_ps(a[next]), b1 = _mm512_set1_ps(b[next]);
        const float *s0 = acc + i * 32, *s1 = acc + next * 32;
        __m512 v = y9k_lowp_window_max16(y9k_lowp_affine16(s0, a0, b0),
                                         y9k_lowp_affine16(s0 + 16, a0, b0),
                                         y9k_lowp_affine16(s1, a1, b1),
                                         y9k_lowp_affine16(s1 + 16, a1, b1));
        v = y9k_lowp_act16(v, act);
        _mm512_mask_storeu_ps(out + i * ldo, first, v);
        if (next != i)
            _mm512_mask_storeu_ps(out + next * ldo - 8, second, v);
    }
}
#endif

/* where the rgb kernel hands a block's pooled output when it goes neither to fp32 rows nor to
   bf16 pairs (int8_x86.h's int8 channels-last input): put() gets the block's sums as the
   pooled epilogues do (rows filters from `filter`, a, b, act; cols even, at most 16: a
   window's upper row in acc's columns 0-15, its lower in 16-31) for the pooled map at (y, x),
   and writes the values the fp32 output would hold (the rgb kernel's choice of epilogue for
   `kernel`) its own way */
typedef struct y9k_pooled_sink {
    void (*put)(const struct y9k_pooled_sink *sink, int kernel, const float *acc, int rows,
                int cols, const float *a, const float *b, int act, long filter, long y, long x);
    const void *data;
} y9k_pooled_sink;

/* y9k_bf16_conv_rgb's sizes and operands, shared by its team */
typedef struct {
    int kernel, M, K, OH, OW, per_row, act, pool;
    long Wp, pieces, MB, ldo;
    long offsets[32];
    y9k_lowp_epilogue_fn epilogue;
    const uint16_t *wp, *img;
    const float *a, *b;
    float *out;
    const y9k_pairs_out *pairs;
    const y9k_pooled_sink *sink;
    long next;              /* the next piece not yet taken */
} y9k_bf16_rgb_job;

/* dynamic, as the other bf16 kernels: a thread that loses its core leaves its pieces */
static void y9k_bf16_conv_rgb_member(void *job, int member, int members)
{
    const long chunk = 16;
    y9k_bf16_rgb_job *j = (y9k_bf16_rgb_job *) job;
    uint16_t tiles[2 * 512] __attribute__((aligned(64)));
    float acc[32 * 32] __attribute__((aligned(64)));
    int kernel = j->kernel, M = j->M, OH = j->OH, OW = j->OW, per_row = j->per_row;
    int act = j->act, pool = j->pool;
    long Wp = j->Wp, pieces = j->pieces, MB = j->MB, ldo = j->ldo;
    const float *a = j->a, *b = j->b;
    const y9k_pairs_out *pairs = j->pairs;
    const y9k_pooled_sink *sink = j->sink;
    if (pairs)
        y9k_pairs_clear_outside(pairs, M, MB, OH / 2, OW / 2, member, members);
#if Y9K_HAVE_LOWP_X86
    if (kernel == Y9K_BF16_AMX)
        y9k_amx_configure();
#endif
    for (long p0; (p0 = y9k_team_take(&j->next, chunk)) < pieces;)
        for (long piece = p0; piece < p0 + chunk && piece < pieces; piece++) {
            long q0 = piece * 32, q1 = q0 + 16, oy = 0;
            int ox = 0;
            if (pool) {
                oy = 2 * (piece / per_row);
                ox = y9k_segment_x((int) (piece % per_row), per_row, OW);
                q0 = oy * Wp + ox;
                q1 = q0 + Wp;
            }
#if Y9K_HAVE_LOWP_X86
            if (kernel != Y9K_BF16_PORTABLE)
                y9k_bf16_rgb_tiles_avx512(j->img, j->offsets, j->K, q0, q1, tiles);
            else
#endif
                y9k_bf16_rgb_tiles_portable(j->img, j->offsets, j->K, q0, q1, tiles);
            for (long mb = 0; mb < MB; mb++) {
                const uint16_t *a0 = j->wp + mb * 2 * 512;
                int rows = M - mb * 32 < 32 ? (int) (M - mb * 32) : 32;
#if Y9K_HAVE_LOWP_X86
                if (kernel == Y9K_BF16_AMX && rows <= 16)
                    y9k_bf16_rgb_block16_amx(a0, tiles, acc);
                else if (kernel == Y9K_BF16_AMX)
                    y9k_bf16_block_amx(a0, tiles, 1, acc);
                else if (kernel == Y9K_BF16_AVX512)
                    y9k_bf16_block_avx512(a0, tiles, 1, acc);
                else
#endif
                    y9k_bf16_block_portable(a0, tiles, 1, acc);
                if (!pool) {
                    y9k_lowp_epilogue_flat(j->epilogue, acc, rows, q0, Wp, OW, OH, a + mb * 32,
                                           b + mb * 32, act, j->out + mb * 32 * ldo, ldo, NULL,
                                           0);
                    continue;
                }
                int cols = OW - ox < 16 ? OW - ox : 16;
                if (pairs) {
                    y9k_bf16_epilogue_pooled_pairs(acc, rows, cols, a + mb * 32, b + mb * 32,
                                                   act, pairs, mb * 32, oy / 2, ox / 2);
                    continue;
                }
                if (sink) {
                    sink->put(sink, kernel, acc, rows, cols, a + mb * 32, b + mb * 32, act,
                              mb * 32, oy / 2, ox / 2);
                    continue;
                }
                float *pooled = j->out + mb * 32 * ldo + (oy / 2) * (OW / 2) + ox / 2;
#if Y9K_HAVE_LOWP_X86
                if (kernel != Y9K_BF16_PORTABLE && act != Y9K_ACT_LOGISTIC) {
                    y9k_lowp_epilogue_pooled_avx512(acc, rows, cols, a + mb * 32, b + mb * 32,
                                                   act, pooled, ldo);
                    continue;
                }
#endif
                y9k_lowp_epilogue_pooled_by(j->epilogue, acc, rows, cols, a + mb * 32,
                                            b + mb * 32, act, pooled, ldo);
            }
        }
#if Y9K_HAVE_LOWP_X86
    if (kernel == Y9K_BF16_AMX)
        y9k_amx_release();
#endif
}

/* out (M, OH*OW) = act(a * conv(x) + b) for a k x k stride-1 convolution (pad) of depth
   K = C k k <= 32, x as y9k_bf16_pack_image packs it, W (M, K) as y9k_bf16_pack_a packs it;
   with `pool` (OH, OW even) out (M, OH/2 * OW/2) its 2x2/2 maxpool, a block's two tiles the
   same 16 columns of a window's two rows (the last segment of a row overlapping the one
   before, as the direct kernel's). On `kernel` (Y9K_BF16_*: the caller checked the CPU has
   it); the tiles are built and the epilogue run with AVX-512 on the AMX and AVX512-BF16
   kernels (whose CPUs have it), in scalar C on the portable twin: the same bits. With
   `pairs` (not NULL; pooled only) the pooled output is written there instead, as the direct
   kernel's hand-off writes it (out unused); with `sink` (pooled only) each block's sums go
   to the sink (out unused) */
static void y9k_bf16_conv_rgb(int kernel, int M, int C, int H, int W, int ksize, int pad,
                              const uint16_t *wp, const uint16_t *img, const float *a,
                              const float *b, int act, int pool, float *out,
                              const y9k_pairs_out *pairs, const y9k_pooled_sink *sink)
{
    y9k_bf16_rgb_job j = {0};
    j.kernel = kernel; j.M = M; j.act = act; j.pool = pool;
    j.wp = wp; j.img = img; j.a = a; j.b = b; j.out = out; j.pairs = pairs; j.sink = sink;
    j.OH = H + 2 * pad - ksize + 1;
    j.OW = W + 2 * pad - ksize + 1;
    j.K = C * ksize * ksize;
    j.Wp = y9k_pairs_width(W, pad);
    long plane = y9k_rgb_plane(H, W, pad);
    j.per_row = j.OW <= 16 ? 1 : (j.OW + 15) / 16;
    long flat = (long) (j.OH - 1) * j.Wp + j.OW;
    j.pieces = pool ? (long) (j.OH / 2) * j.per_row : (flat + 31) / 32;
    j.MB = y9k_lowp_round_up(M) / 32;
    j.ldo = pool ? (long) (j.OH / 2) * (j.OW / 2) : (long) j.OH * j.OW;
    for (int k = 0; k < j.K; k++) {
        int c = k / (ksize * ksize), tap = k % (ksize * ksize);
        j.offsets[k] = c * plane + (long) (tap / ksize) * j.Wp + tap % ksize;
    }
    j.epilogue = y9k_lowp_epilogue;
#if Y9K_HAVE_LOWP_X86
    if (kernel != Y9K_BF16_PORTABLE)
        j.epilogue = y9k_lowp_epilogue_avx512;
#endif
    y9k_team(y9k_bf16_conv_rgb_member, &j);
}

#endif
