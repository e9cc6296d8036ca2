/* int8 inference products: out[M, N] = act(a[m] * ACC[m, n] + b[m]), ACC[m, n] = the sum over
   k of W[m, k] * X[k, n] in int32, exact: W the weights quantized per output channel, X the
   input quantized per tensor by the packers, X = clip(rint(x / s), -127, 127) with rint
   rounding half to even (NumPy's np.rint); a[m] folds batch norm's scale, the weights' scale
   and the input's scale (the caller multiplies them, in one order for every kernel), b[m] the
   bias; the epilogue's arithmetic is bf16's (lowp_x86.h), on ACC rounded once to fp32 (with
   AVX-512 where the switch allows it: the same bits).

   One layout for the three kernels, as bf16's: W packed once in blocks of 16 rows x 64 k (an
   AMX A tile), X per call in panels of 16 columns whose rows are quads of k (X[k..k+3][n] side
   by side: an AMX B tile, and vpdpbusd's groups of four bytes). K is padded with zeros to a
   multiple of 64, M and N to multiples of 32 (32x32 blocks of out; the epilogue writes only
   the rows and columns that exist).

   The kernels: AMX tiles (tdpbssd, s8 x s8), AVX512-VNNI (vpdpbusd multiplies u8 by s8: the
   activations flipped to X + 128 as they are loaded, the excess 128 * sum_k W[m, k] of each
   row, computed when W is packed, subtracted from the sums) and the portable twin (scalar
   int32 sums). The sums are exact integers, so the three give the same bits.

   Weights and activations never take -128 (the range is symmetric): X + 128 lies in [1, 255]
   and the largest |sum|, 255 * 127 * K, stays inside int32 for any K below 66,000 (yolov2's
   largest is 11,520). The padding of a convolution is exactly 0, as zero quantizes to 0. */
#ifndef Y9K_INT8_X86_H
#define Y9K_INT8_X86_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "y9k.h"
#include "lowp_x86.h"

#define Y9K_INT8_DEPTH 64          /* K's padding unit: the bytes of an AMX tile's row */

/* the kernel a product runs on */
enum { Y9K_INT8_PORTABLE = 0, Y9K_INT8_VNNI = 1, Y9K_INT8_AMX = 2 };

static inline long y9k_int8_round_depth(long k) { return (k + 63) / 64 * 64; }

/* Hides a value from the optimiser: under -ffast-math x / s with s the same for a whole loop
   may become x * (1 / s), rounded twice, a last bit off NumPy's x / s, which moves values
   across rint's ties; a divisor the compiler cannot see through stays a division. */
#if defined(__GNUC__) || defined(__clang__)
#define Y9K_OPAQUE(v) __asm__("" : "+g"(v))
#else
#define Y9K_OPAQUE(v) ((void) 0)
#endif

/* clip(rint(x / s), -127, 127), rint to nearest even (the rounding mode's default) */
static inline int8_t y9k_quantize(float x, float s)
{
    Y9K_OPAQUE(s);
    float q = x / s;
    q = q > -127.0f ? q : -127.0f;
    q = q < 127.0f ? q : 127.0f;
    return (int8_t) lrintf(q);
}

/* W int8 (M x K, row stride ldw) -> blocks [M'/16][K'/64][16][64] (M' rounded up to 32, K' to
   64), zeros in the padding */
static void y9k_int8_pack_a(const int8_t *w, long ldw, int M, int K, int8_t *out)
{
    long Kp = y9k_int8_round_depth(K), Mp = y9k_lowp_round_up(M), KB = Kp / 64;
    for (long mb = 0; mb < Mp / 16; mb++)
        for (long kb = 0; kb < KB; kb++) {
            int8_t *block = out + (mb * KB + kb) * 1024;
            for (int r = 0; r < 16; r++) {
                long m = mb * 16 + r;
                for (int c = 0; c < 64; c++) {
                    long k = kb * 64 + c;
                    block[r * 64 + c] = (m < M && k < K) ? w[m * ldw + k] : 0;
                }
            }
        }
}

/* The input of an im2col packing is quantized first, once per value, into an int8 image
   (C, H, W) followed by Y9K_IMAGE_SLACK bytes (the gathers below read 4 bytes at a value's
   address): a 3x3 convolution's column matrix holds each value 9 times, each a division. */
#define Y9K_IMAGE_SLACK 64

static inline long y9k_image_size(int C, int H, int W)
{
    return (long) C * H * W + Y9K_IMAGE_SLACK;
}

static void y9k_int8_quantize_portable(const float *x, float s, long count, int8_t *out)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long i = 0; i < count; i++)
        out[i] = y9k_quantize(x[i], s);
}

/* the im2col matrix of one image for a k x k convolution (stride, pad; output OH x OW), K =
   C*k*k by N = OH*OW, from its quantized image xq (C, H, W), packed in panels [N'/16][K'/64]
   [16 quads of k][16 columns][4]: a panel's 16 columns are 16 output positions */
static void y9k_int8_pack_im2col_portable(const int8_t *xq, int C, int H, int W, int ksize,
                                          int stride, int pad, int OH, int OW, int8_t *out)
{
    long K = (long) C * ksize * ksize, N = (long) OH * OW;
    long KB = y9k_int8_round_depth(K) / 64, panels = y9k_lowp_round_up(N) / 16;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long p = 0; p < panels; p++) {
        int iy0[16], ix0[16];
        y9k_panel_origins(p, N, OW, stride, pad, iy0, ix0);
        for (long kb = 0; kb < KB; kb++) {
            int8_t *panel = out + (p * KB + kb) * 1024;
            for (int r = 0; r < 64; r++) {
                long k = kb * 64 + r;
                int8_t *dst = panel + (r / 4) * 64 + (r % 4);
                if (k >= K) {
                    for (int c = 0; c < 16; c++)
                        dst[4 * c] = 0;
                    continue;
                }
                int ch = (int) (k / (ksize * ksize)), tap = (int) (k % (ksize * ksize));
                int ky = tap / ksize, kx = tap % ksize;
                const int8_t *plane = xq + (long) ch * H * W;
                for (int c = 0; c < 16; c++) {
                    int iy = iy0[c] + ky, ix = ix0[c] + kx;
                    dst[4 * c] = ((unsigned) iy < (unsigned) H && (unsigned) ix < (unsigned) W)
                                     ? plane[(long) iy * W + ix] : 0;
                }
            }
        }
    }
}

#if Y9K_HAVE_LOWP_X86
/* y9k_quantize on 16 lanes: the same division, clip (a NaN to -127 as there) and rounding */
__attribute__((target("avx512f")))
static inline __m512i y9k_quantize16(__m512 x, __m512 s)
{
    __asm__("" : "+v"(s));
    __m512 q = _mm512_div_ps(x, s);
    q = _mm512_min_ps(_mm512_max_ps(q, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    return _mm512_cvt_roundps_epi32(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

/* four vectors of 16 int32 -> 16 quads of their lowest bytes, v[0]'s first */
__attribute__((target("avx512f")))
static inline __m512i y9k_quads16(const __m512i *v)
{
    const __m512i byte = _mm512_set1_epi32(0xff);
    __m512i q = _mm512_and_si512(v[0], byte);
    q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_and_si512(v[1], byte), 8));
    q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_and_si512(v[2], byte), 16));
    return _mm512_or_si512(q, _mm512_slli_epi32(v[3], 24));
}

__attribute__((target("avx512f")))
static void y9k_int8_quantize_avx512(const float *x, float s, long count, int8_t *out)
{
    const __m512 vs = _mm512_set1_ps(s);
    long chunks = (count + 4095) / 4096;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long chunk = 0; chunk < chunks; chunk++) {
        long end = chunk * 4096 + 4096 < count ? chunk * 4096 + 4096 : count;
        for (long i = chunk * 4096; i < end; i += 16) {
            __mmask16 m = end - i >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << (end - i)) - 1);
            __m512i q = y9k_quantize16(_mm512_maskz_loadu_ps(m, x + i), vs);
            _mm512_mask_cvtepi32_storeu_epi8(out + i, m, q);
        }
    }
}

/* the im2col packing with gathers, as bf16's: 16 output positions a panel, their taps'
   validity (the zero padding) as masks */
__attribute__((target("avx512f")))
static void y9k_int8_pack_im2col_avx512(const int8_t *xq, int C, int H, int W, int ksize,
                                        int stride, int pad, int OH, int OW, int8_t *out)
{
    long K = (long) C * ksize * ksize, N = (long) OH * OW;
    long KB = y9k_int8_round_depth(K) / 64, panels = y9k_lowp_round_up(N) / 16;
    long plane = (long) H * W;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long p = 0; p < panels; p++) {
        int iy0[16], ix0[16];
        y9k_panel_origins(p, N, OW, stride, pad, iy0, ix0);
        /* stride 1 and the 16 positions on one output row: each tap's 16 inputs are
           contiguous, one load (bytes off the row's ends zeros) */
        int one_row = stride == 1 && p * 16 + 15 < N && iy0[0] == iy0[15];
        __m512i vy0 = _mm512_loadu_si512(iy0), vx0 = _mm512_loadu_si512(ix0);
        __m512i vh = _mm512_set1_epi32(H), vw = _mm512_set1_epi32(W);
        __m512i base = _mm512_add_epi32(_mm512_mullo_epi32(vy0, vw), vx0);
        for (long kb = 0; kb < KB; kb++) {
            int8_t *panel = out + (p * KB + kb) * 1024;
            for (int r = 0; r < 16; r++) {
                __m512i v[4];
                for (int h = 0; h < 4; h++) {
                    long k = kb * 64 + 4 * r + h;
                    v[h] = _mm512_setzero_si512();
                    if (k >= K)
                        continue;
                    int ch = (int) (k / (ksize * ksize)), tap = (int) (k % (ksize * ksize));
                    int ky = tap / ksize, kx = tap % ksize;
                    if (one_row) {
                        int iy = iy0[0] + ky, ix = ix0[0] + kx;
                        if ((unsigned) iy >= (unsigned) H)
                            continue;
                        const int8_t *src = xq + ch * plane + (long) iy * W + ix;
                        int lo = ix < 0 ? -ix : 0, hi = W - ix < 16 ? W - ix : 16;
                        int8_t row[16] __attribute__((aligned(16))) = {0};
                        if (lo == 0 && hi == 16) {
                            memcpy(row, src, 16);
                        } else {
                            for (int c = lo; c < hi; c++)
                                row[c] = src[c];
                        }
                        v[h] = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *) row));
                        continue;
                    }
                    __m512i iy = _mm512_add_epi32(vy0, _mm512_set1_epi32(ky));
                    __m512i ix = _mm512_add_epi32(vx0, _mm512_set1_epi32(kx));
                    __mmask16 ok = _mm512_cmplt_epu32_mask(iy, vh) & _mm512_cmplt_epu32_mask(ix, vw);
                    __m512i at = _mm512_add_epi32(base, _mm512_set1_epi32(ky * W + kx));
                    /* four bytes from each value's address: the value is the lowest, the
                       only one y9k_quads16 keeps */
                    v[h] = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), ok, at,
                                                       xq + ch * plane, 1);
                }
                _mm512_storeu_si512(panel + r * 64, y9k_quads16(v));
            }
        }
    }
}

#endif

/* the im2col packing of x (C, H, W): quantized by s into `image` (y9k_image_size bytes), then
   packed; with AVX-512 where `avx512` (the same bits either way) */
static void y9k_int8_pack_im2col(const float *x, float s, int C, int H, int W, int ksize,
                                 int stride, int pad, int OH, int OW, int8_t *out,
                                 int8_t *image, int avx512)
{
    long count = (long) C * H * W;
    memset(image + count, 0, Y9K_IMAGE_SLACK);
#if Y9K_HAVE_LOWP_X86
    if (avx512) {
        y9k_int8_quantize_avx512(x, s, count, image);
        y9k_int8_pack_im2col_avx512(image, C, H, W, ksize, stride, pad, OH, OW, out);
        return;
    }
#endif
    (void) avx512;
    y9k_int8_quantize_portable(x, s, count, image);
    y9k_int8_pack_im2col_portable(image, C, H, W, ksize, stride, pad, OH, OW, out);
}

/* -- the direct convolution's input: channels last, with a zero border --------------------
   bf16's flat geometry (lowp_x86.h, y9k_pairs_rows and y9k_pairs_width) with a position's
   channels side by side in place of a pair plane: [H'][W'][P] bytes, the first
   y9k_direct_slots(C) of a position's P (y9k_direct_pitch) its channel slots (C padded with
   zeros to 16, 32 or a multiple of 64), the rest zeros; rows of W' = W + pad positions whose
   first `pad` are zeros (the row's left border and the row before's right one), H' =
   y9k_pairs_rows. Output (oy, ox) is flat position q = oy W' + ox, its tap (ky, kx) the
   position q + ky W' + kx, and a tile row, 64 bytes in place, one position's 64 channels of
   a step: an A tile is 16 consecutive positions, P bytes apart, so that every row the AMX
   tiles read starts on a cache line (with 64 slots or more). With
   fewer than 64 channels a row covers `taps` neighbouring taps of a kernel row, kx, kx + 1,
   ...: the next positions' channels (reads past a row's end take the next row's border or
   first positions, which only taps past the kernel's edge read, with zero weights). A 3x3
   kernel on 32 channels takes 6 steps instead of 9, on 16 channels 3. The buffer ends with
   Y9K_CL_SLACK zero bytes: taps past the kernel's edge read up to 3 positions past it */
#define Y9K_CL_SLACK 1024

static inline int y9k_direct_slots(int C)
{
    return C <= 16 ? 16 : C <= 32 ? 32 : (int) y9k_int8_round_depth(C);
}

static inline int y9k_direct_taps(int C) { return C <= 32 ? 64 / y9k_direct_slots(C) : 1; }

/* the bytes from one position to the next: the slots, and from 128 slots on one more cache
   line where they fill an even number of them, so that an A tile's 16 rows (and a piece's
   taps) fall in different L1 sets instead of 4 (1024 slots: 16 rows 1024 bytes apart share
   4 of the 64 sets, and a 13x13 layer ran 10% slower than with the extra line) */
static inline long y9k_direct_pitch(int C)
{
    long S = y9k_direct_slots(C);
    return S < 128 || (S / 64) % 2 ? S : S + 64;
}

/* the direct kernel's depth: the weights' k of one filter, (channel block, ky, group of taps,
   tap, channel) */
static inline long y9k_direct_depth(int C, int ksize)
{
    int taps = y9k_direct_taps(C);
    return (long) ksize * ((ksize + taps - 1) / taps) * taps * y9k_direct_slots(C);
}

/* the positions of the layout (H' rows of W') */
static inline long y9k_cl_positions(int H, int W, int pad)
{
    return y9k_pairs_rows(H, W, pad) * y9k_pairs_width(W, pad);
}

static inline long y9k_cl_size(int C, int H, int W, int pad)
{
    return y9k_cl_positions(H, W, pad) * y9k_direct_pitch(C) + Y9K_CL_SLACK;
}

/* everything of x's layout (C, H, W, pad) that is not an image position: the `pad` rows
   above, each row's left border, the rows below and the slack; what a kernel writing the
   image positions (all their slots) leaves to be written. Rows y0 .. y1 - 1 of the image's
   borders, and with `ends` the rows above and below and the slack */
static void y9k_int8_cl_frame_rows(int C, int H, int W, int pad, long y0, long y1, int ends,
                                   int8_t *out)
{
    long Wp = y9k_pairs_width(W, pad), S = y9k_direct_pitch(C);
    if (ends) {
        memset(out, 0, (size_t) (pad * Wp * S));
        long tail = (pad + (long) H) * Wp * S;
        memset(out + tail, 0, (size_t) (y9k_cl_size(C, H, W, pad) - tail));
    }
    if (pad)
        for (long y = y0; y < y1; y++)
            memset(out + (y + pad) * Wp * S, 0, (size_t) (pad * S));
}

static void y9k_int8_cl_frame(int C, int H, int W, int pad, int8_t *out)
{
    y9k_int8_cl_frame_rows(C, H, W, pad, 0, H, 1, out);
}

/* one image row's positions: x (C, H, W), row y, quantized by s into the positions (pitch
   P bytes apart) of dst, zeros past C, the portable way */
static void y9k_int8_pack_row_portable(const float *x, float s, int C, int H, int W, long y,
                                       long P, int8_t *dst)
{
    for (long i = 0; i < W; i++)
        for (int c = 0; c < P; c++)
            dst[i * P + c] = c < C ? y9k_quantize(x[((long) c * H + y) * W + i], s) : 0;
}

#if Y9K_HAVE_LOWP_X86
/* v[i] (16 int32 lanes j) -> v[j] (lanes i): the 16 x 16 transpose of 32-bit elements */
__attribute__((target("avx512f")))
static inline void y9k_transpose16_epi32(__m512i *v)
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* v[4g + r] now holds, per 128-bit lane L, rows 4L.. of group g's column quad r */
    for (int i = 0; i < 8; i++) {
        int g = i / 4 * 8 + i % 4;
        t[2 * i] = _mm512_shuffle_i32x4(v[g], v[g + 4], 0x88);
        t[2 * i + 1] = _mm512_shuffle_i32x4(v[g], v[g + 4], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        v[i] = _mm512_shuffle_i32x4(t[2 * i], t[2 * i + 8], 0x88);
        v[i + 8] = _mm512_shuffle_i32x4(t[2 * i], t[2 * i + 8], 0xdd);
        v[i + 4] = _mm512_shuffle_i32x4(t[2 * i + 1], t[2 * i + 9], 0x88);
        v[i + 12] = _mm512_shuffle_i32x4(t[2 * i + 1], t[2 * i + 9], 0xdd);
    }
}

/* the same row with AVX-512: 16 positions by 64 channels at a time, four channels quantized
   into a vector of 16 quads (y9k_quantize16, y9k_quads16), the 16 vectors transposed into
   the positions' 64 bytes */
__attribute__((target("avx512f")))
static void y9k_int8_pack_row_avx512(const float *x, float s, int C, int H, int W, long y,
                                     long P, int8_t *dst)
{
    int S = y9k_direct_slots(C);
    const __m512 vs = _mm512_set1_ps(s);
    int words = S < 64 ? S / 4 : 16;
    __mmask16 store = (__mmask16) ((1u << words) - 1);
    for (int i0 = 0; i0 < W; i0 += 16) {
        int n = W - i0 < 16 ? W - i0 : 16;
        __mmask16 m = (__mmask16) ((1u << n) - 1);
        for (int c0 = 0; c0 < S; c0 += 64) {
            __m512i v[16];
            for (int g = 0; g < 16; g++) {
                __m512i q[4];
                for (int k = 0; k < 4; k++) {
                    int c = c0 + 4 * g + k;
                    q[k] = c < C ? y9k_quantize16(_mm512_maskz_loadu_ps(
                                       m, x + ((long) c * H + y) * W + i0), vs)
                                 : _mm512_setzero_si512();
                }
                v[g] = y9k_quads16(q);
            }
            y9k_transpose16_epi32(v);
            for (int i = 0; i < n; i++)
                _mm512_mask_storeu_epi32(dst + (long) (i0 + i) * P + c0, store, v[i]);
        }
        if (P > S)              /* the pitch's line past the slots: zeros */
            for (int i = 0; i < n; i++)
                _mm512_storeu_si512(dst + (long) (i0 + i) * P + S, _mm512_setzero_si512());
    }
}
#endif

typedef struct {
    const float *x;
    float s;
    int C, H, W, pad, avx512;
    int8_t *out;
} y9k_int8_cl_job;

static void y9k_int8_pack_cl_row(void *job, long y)
{
    const y9k_int8_cl_job *j = (const y9k_int8_cl_job *) job;
    long Wp = y9k_pairs_width(j->W, j->pad), P = y9k_direct_pitch(j->C);
    int8_t *row = j->out + ((y + j->pad) * Wp + j->pad) * P;
    y9k_int8_cl_frame_rows(j->C, j->H, j->W, j->pad, y, y + 1, 0, j->out);
#if Y9K_HAVE_LOWP_X86
    if (j->avx512) {
        y9k_int8_pack_row_avx512(j->x, j->s, j->C, j->H, j->W, y, P, row);
        return;
    }
#endif
    y9k_int8_pack_row_portable(j->x, j->s, j->C, j->H, j->W, y, P, row);
}

/* x (C, H, W) -> the layout above, quantized by s: zero border, zero slots past C, slack */
static void y9k_int8_pack_cl(const float *x, float s, int C, int H, int W, int pad,
                             int8_t *out, int avx512)
{
    y9k_int8_cl_job j = {x, s, C, H, W, pad, avx512, out};
    y9k_int8_cl_frame_rows(C, H, W, pad, 0, 0, 1, out);
    y9k_team_for(H, y9k_int8_pack_cl_row, &j);
}

/* a block's first `rows` rows of int32 sums (32 a row), each rounded once to fp32 */
static inline void y9k_int8_sums_to_float(const int32_t *acc, int rows, float *sums)
{
    for (int i = 0; i < rows * 32; i++)
        sums[i] = (float) acc[i];
}

/* out rows and columns (ldo) = act(a * acc + b) from a block of int32 sums (row stride 32):
   each sum rounded once to fp32, then bf16's epilogue (`sums`: 32x32 floats of scratch) */
static inline void y9k_int8_epilogue_portable(const int32_t *acc, int rows, int cols,
                                              const float *a, const float *b, int act,
                                              float *out, long ldo, float *sums)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            sums[i * 32 + j] = (float) acc[i * 32 + j];
    y9k_lowp_epilogue(sums, rows, cols, a, b, act, out, ldo);
}

#if Y9K_HAVE_LOWP_X86
/* act(a * acc + b) of 16 sums in the portable epilogue's precisions: the product a * sum
   rounded before the bias is added (the barrier keeps the compiler from fusing the two into
   an FMA, which rounds once), leaky's 0.1 * v in double (not the logistic) */
__attribute__((target("avx512f")))
static inline __m512 y9k_int8_affine16(__m512i acc, __m512 va, __m512 vb)
{
    __m512 p = _mm512_mul_ps(va, _mm512_cvtepi32_ps(acc));
    __asm__("" : "+v"(p));
    return _mm512_add_ps(p, vb);
}

__attribute__((target("avx512f")))
static inline __m512 y9k_int8_activate16(__m512i acc, __m512 va, __m512 vb, int act)
{
    return y9k_lowp_act16(y9k_int8_affine16(acc, va, vb), act);
}

/* the same epilogue 16 columns at a time, the same bits; the logistic's expf stays scalar */
__attribute__((target("avx512f")))
static void y9k_int8_epilogue_avx512(const int32_t *acc, int rows, int cols, const float *a,
                                     const float *b, int act, float *out, long ldo,
                                     float *sums)
{
    if (act == Y9K_ACT_LOGISTIC) {
        y9k_int8_epilogue_portable(acc, rows, cols, a, b, act, out, ldo, sums);
        return;
    }
    __mmask16 masks[2];
    masks[0] = cols >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << cols) - 1);
    masks[1] = cols >= 32 ? (__mmask16) 0xffff
                          : cols > 16 ? (__mmask16) ((1u << (cols - 16)) - 1) : 0;
    for (int i = 0; i < rows; i++) {
        __m512 va = _mm512_set1_ps(a[i]), vb = _mm512_set1_ps(b[i]);
        for (int h = 0; h < 2; h++) {
            if (!masks[h])
                continue;
            /* masked: acc may start inside a row (the flat epilogue's runs) */
            __m512i sums16 = _mm512_maskz_loadu_epi32(masks[h], acc + i * 32 + 16 * h);
            __m512 v = y9k_int8_activate16(sums16, va, vb, act);
            _mm512_mask_storeu_ps(out + i * ldo + 16 * h, masks[h], v);
        }
    }
}

/* y9k_lowp_epilogue_pooled on int32 sums, the same bits: per row, the 16 upper and 16 lower
   values activated, split into the windows' left and right columns, and compared in
   maxpool.pxi's order (upper left, upper right, lower left, lower right, a later one winning
   only if greater) */
__attribute__((target("avx512f")))
static void y9k_int8_epilogue_pooled_avx512(const int32_t *acc, int rows, int cols,
                                            const float *a, const float *b, int act,
                                            float *out, long ldo, float *sums)
{
    if (act == Y9K_ACT_LOGISTIC) {
        y9k_int8_sums_to_float(acc, rows, sums);
        y9k_lowp_epilogue_pooled(sums, rows, cols, a, b, act, out, ldo);
        return;
    }
    const __m512i left = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                           16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i right = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15,
                                            17, 19, 21, 23, 25, 27, 29, 31);
    __mmask8 m = (__mmask8) ((1u << (cols / 2)) - 1);
    for (int i = 0; i < rows; i++) {
        __m512 va = _mm512_set1_ps(a[i]), vb = _mm512_set1_ps(b[i]);
        __m512 up = y9k_int8_activate16(_mm512_loadu_si512(acc + i * 32), va, vb, act);
        __m512 low = y9k_int8_activate16(_mm512_loadu_si512(acc + i * 32 + 16), va, vb, act);
        /* lanes 0-7 the upper row's, 8-15 the lower row's */
        __m512 l = _mm512_permutex2var_ps(up, left, low);
        __m512 r = _mm512_permutex2var_ps(up, right, low);
        __m256 best = _mm512_castps512_ps256(l);
        __m256 t = _mm512_castps512_ps256(r);
        best = _mm256_blendv_ps(best, t, _mm256_cmp_ps(t, best, _CMP_GT_OQ));
        t = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(l), 1));
        best = _mm256_blendv_ps(best, t, _mm256_cmp_ps(t, best, _CMP_GT_OQ));
        t = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1));
        best = _mm256_blendv_ps(best, t, _mm256_cmp_ps(t, best, _CMP_GT_OQ));
        _mm512_mask_storeu_ps(out + i * ldo, (__mmask16) m, _mm512_castps256_ps512(best));
    }
}
#endif

/* -- the hand-off: an epilogue writing the next int8 layer's input --------------------------
   With the direct kernel's sums as positions x filters (acc[p][f], row stride 32), each
   output position's 32 filters are one row: activated and quantized 16 filters a vector, and
   stored as the 32 bytes of that position's slots mb*32 .. (the layout's channels are the
   filters). Filters past `rows` get zeros. */

/* the scalar twin: the values v (filters x positions, row stride 32) of n positions
   quantized by s into the slots of positions dst, dst + P, ... (filters past rows zeros),
   then `tail` zero bytes (the last filter block's: the slots and the pitch past it) */
static void y9k_int8_requantize_positions(const float *v, int rows, int n, float s, int8_t *dst,
                                          long P, long tail)
{
    int slots = P < 32 ? (int) P : 32;      /* 16 slots a position: 16 filters at most */
    for (int j = 0; j < n; j++) {
        for (int f = 0; f < slots; f++)
            dst[j * P + f] = f < rows ? y9k_quantize(v[f * 32 + j], s) : 0;
        memset(dst + j * P + slots, 0, (size_t) tail);
    }
}

#if Y9K_HAVE_LOWP_X86
/* 32 activated values (two vectors, filters 0-15 and 16-31) quantized by s into 32 bytes */
__attribute__((target("avx512f")))
static inline void y9k_int8_store_position(__m512 v0, __m512 v1, __m512 vs, __mmask16 m0,
                                            __mmask16 m1, long P, long tail, int8_t *dst)
{
    __m128i q0 = _mm512_cvtepi32_epi8(_mm512_maskz_mov_epi32(m0, y9k_quantize16(v0, vs)));
    if (P < 32) {               /* 16 slots a position: the filters' 16 bytes only */
        _mm_storeu_si128((__m128i *) dst, q0);
        return;
    }
    __m128i q1 = _mm512_cvtepi32_epi8(_mm512_maskz_mov_epi32(m1, y9k_quantize16(v1, vs)));
    _mm256_storeu_si256((__m256i *) dst, _mm256_inserti128_si256(_mm256_castsi128_si256(q0),
                                                                  q1, 1));
    for (long t = 0; t < tail; t += 64)        /* tail: a multiple of 32 bytes */
        _mm512_mask_storeu_epi32(dst + 32 + t, tail - t >= 64 ? (__mmask16) 0xffff
                                                              : (__mmask16) 0x00ff,
                                 _mm512_setzero_si512());
}

/* act(a * acc + b) of acc's rows j0 .. j0 + n - 1 (positions; 32 filters each, those past
   `rows` zero: a and b read masked) quantized by s into positions dst, dst + S, ... */
__attribute__((target("avx512f")))
static void y9k_int8_epilogue_positions_avx512(const int32_t *acc, int rows, int j0, int n,
                                               const float *a, const float *b, int act,
                                               float s, int8_t *dst, long P,
                                               long tail)
{
    __mmask16 m0 = rows >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << rows) - 1);
    __mmask16 m1 = rows >= 32 ? (__mmask16) 0xffff
                              : rows > 16 ? (__mmask16) ((1u << (rows - 16)) - 1) : 0;
    __m512 a0 = _mm512_maskz_loadu_ps(m0, a), a1 = _mm512_maskz_loadu_ps(m1, a + 16);
    __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
    const __m512 vs = _mm512_set1_ps(s);
    for (int j = j0; j < j0 + n; j++) {
        __m512 v0 = y9k_int8_activate16(_mm512_load_si512(acc + j * 32), a0, b0, act);
        __m512 v1 = y9k_int8_activate16(_mm512_load_si512(acc + j * 32 + 16), a1, b1, act);
        y9k_int8_store_position(v0, v1, vs, m0, m1, P, tail, dst + (long) (j - j0) * P);
    }
}

/* the pooled hand-off for the activations that never decrease (linear, leaky, relu): acc's
   rows 0-15 a window row's 16 positions, 16-31 the row below; window w (< cols / 2) the
   maximum of the affine values of rows 2w, 2w + 1, 16 + 2w, 17 + 2w in that order (a later
   one winning only if greater), activated once (act(max) is numerically the maximum of the
   activated values: it is one of them and none is greater; only a zero's sign may differ,
   and both zeros quantize to 0), quantized into positions dst, dst + S, ... The affine of
   int32 sums (y9k_int8_affine16) or fp32 ones (the rgb kernel's: y9k_lowp_affine16) */
#define Y9K_POOLED_POSITIONS_BODY(AFFINE)                                                     \
    __mmask16 m0 = rows >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << rows) - 1);          \
    __mmask16 m1 = rows >= 32 ? (__mmask16) 0xffff                                            \
                              : rows > 16 ? (__mmask16) ((1u << (rows - 16)) - 1) : 0;        \
    __m512 a0 = _mm512_maskz_loadu_ps(m0, a), a1 = _mm512_maskz_loadu_ps(m1, a + 16);         \
    __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);         \
    const __m512 vs = _mm512_set1_ps(s);                                                      \
    for (int w = 0; w < cols / 2; w++) {                                                      \
        __m512 v[2];                                                                          \
        for (int h = 0; h < 2; h++) {                                                         \
            __m512 ah = h ? a1 : a0, bh = h ? b1 : b0;                                        \
            const int rows4[4] = {2 * w, 2 * w + 1, 16 + 2 * w, 17 + 2 * w};                  \
            __m512 best = AFFINE(acc + rows4[0] * 32 + 16 * h, ah, bh);                       \
            for (int k = 1; k < 4; k++)                                                       \
                best = y9k_later_if_greater16(best, AFFINE(acc + rows4[k] * 32 + 16 * h, ah,  \
                                                           bh));                              \
            v[h] = y9k_lowp_act16(best, act);                                                 \
        }                                                                                     \
        y9k_int8_store_position(v[0], v[1], vs, m0, m1, P, tail, dst + (long) w * P);        \
    }

__attribute__((target("avx512f")))
static inline __m512 y9k_int8_affine16_at(const int32_t *s, __m512 a, __m512 b)
{
    return y9k_int8_affine16(_mm512_load_si512(s), a, b);
}

__attribute__((target("avx512f")))
static void y9k_int8_epilogue_pooled_positions_avx512(const int32_t *acc, int rows, int cols,
                                                      const float *a, const float *b, int act,
                                                      float s, int8_t *dst, long P,
                                                      long tail)
{
    Y9K_POOLED_POSITIONS_BODY(y9k_int8_affine16_at)
}

__attribute__((target("avx512f")))
static void y9k_lowp_epilogue_pooled_positions_avx512(const float *acc, int rows, int cols,
                                                      const float *a, const float *b, int act,
                                                      float s, int8_t *dst, long P,
                                                      long tail)
{
    Y9K_POOLED_POSITIONS_BODY(y9k_lowp_affine16)
}

/* a 32x32 block of 4-byte values transposed (rows <-> columns) from src to dst */
__attribute__((target("avx512f")))
static void y9k_transpose32_epi32(const int32_t *src, int32_t *dst)
{
    for (int bi = 0; bi < 2; bi++)
        for (int bj = 0; bj < 2; bj++) {
            __m512i v[16];
            for (int i = 0; i < 16; i++)
                v[i] = _mm512_load_si512(src + (bi * 16 + i) * 32 + bj * 16);
            y9k_transpose16_epi32(v);
            for (int i = 0; i < 16; i++)
                _mm512_store_si512(dst + (bj * 16 + i) * 32 + bi * 16, v[i]);
        }
}
#endif

/* the epilogue, 16 columns at a time where `avx512` (the same bits either way) */
static inline void y9k_int8_epilogue(const int32_t *acc, int rows, int cols, const float *a,
                                     const float *b, int act, float *out, long ldo,
                                     float *sums, int avx512)
{
#if Y9K_HAVE_LOWP_X86
    if (avx512) {
        y9k_int8_epilogue_avx512(acc, rows, cols, a, b, act, out, ldo, sums);
        return;
    }
#endif
    (void) avx512;
    y9k_int8_epilogue_portable(acc, rows, cols, a, b, act, out, ldo, sums);
}

/* acc (32x32) = the W rows of blocks a0, a0 + KB*1024 times the B panels b0, b0 + KB*1024;
   the portable twin: int32 sums */
static void y9k_int8_block_portable(const int8_t *a0, const int8_t *b0, long KB, int32_t *acc)
{
    for (int i = 0; i < 32; i++)
        for (int j = 0; j < 32; j++) {
            const int8_t *ab = a0 + (i / 16) * KB * 1024 + (i % 16) * 64;
            const int8_t *bb = b0 + (j / 16) * KB * 1024 + (j % 16) * 4;
            int32_t sum = 0;
            for (long kb = 0; kb < KB; kb++)
                for (int r = 0; r < 16; r++)
                    for (int e = 0; e < 4; e++)
                        sum += (int32_t) ab[kb * 1024 + 4 * r + e] * bb[kb * 1024 + r * 64 + e];
            acc[i * 32 + j] = sum;
        }
}

/* where a kernel's epilogue writes: fp32 rows (out, row stride ldo), or with `cl` the next
   layer's input quantized by `scale` into its channels-last layout with border `pad` (the
   hand-off: y9k_int8_pack_cl's layout of the output, whose frame the caller writes) */
typedef struct {
    float *out;
    long ldo;
    int8_t *cl;
    float scale;
    int pad;
    long width, pitch;             /* of the layout: W + pad positions a row, pitch bytes apart */
    long blocks;                   /* filter blocks of 32 the epilogues write */
    const y9k_pairs_out *pairs;    /* or bf16 pairs for a bf16 direct layer (cl NULL) */
} y9k_int8_sink;

/* where the layout holds filter block mb (32 filters) of output (oy, ox) */
static inline int8_t *y9k_int8_sink_at(const y9k_int8_sink *sink, long mb, long oy, long ox)
{
    return sink->cl + ((oy + sink->pad) * sink->width + sink->pad + ox) * sink->pitch
           + mb * 32;
}

/* the zero bytes a position's block mb is followed by: after the last block, the slots and
   the pitch no filter block covers (none for 16 slots) */
static inline long y9k_int8_sink_tail(const y9k_int8_sink *sink, long mb)
{
    long covered = sink->blocks * 32;
    return mb == sink->blocks - 1 && sink->pitch > covered ? sink->pitch - covered : 0;
}

#if Y9K_HAVE_LOWP_X86
/* the same block with vpdpbusd, 8 rows x 32 columns (16 accumulators) at a time: B's bytes
   flipped to u8 (X + 128), the rows' excess (offsets: 128 * sum_k W[m, k]) subtracted */
__attribute__((target("avx512f,avx512vnni")))
static void y9k_int8_block_vnni(const int8_t *a0, const int8_t *b0, long KB,
                                const int32_t *offsets, int32_t *acc)
{
    const int8_t *b1 = b0 + KB * 1024;
    const __m512i flip = _mm512_set1_epi8((char) 0x80);
    for (int g = 0; g < 4; g++) {
        const int8_t *ag = a0 + (g / 2) * KB * 1024 + (g % 2) * 8 * 64;
        __m512i s[8][2];
        for (int i = 0; i < 8; i++)
            s[i][0] = s[i][1] = _mm512_setzero_si512();
        for (long kb = 0; kb < KB; kb++) {
            const int8_t *ak = ag + kb * 1024;
            const int8_t *p0 = b0 + kb * 1024, *p1 = b1 + kb * 1024;
            for (int r = 0; r < 16; r++) {
                __m512i v0 = _mm512_xor_si512(_mm512_loadu_si512(p0 + r * 64), flip);
                __m512i v1 = _mm512_xor_si512(_mm512_loadu_si512(p1 + r * 64), flip);
                for (int i = 0; i < 8; i++) {
                    int32_t quad;
                    memcpy(&quad, ak + i * 64 + 4 * r, 4);
                    __m512i av = _mm512_set1_epi32(quad);
                    s[i][0] = _mm512_dpbusd_epi32(s[i][0], v0, av);
                    s[i][1] = _mm512_dpbusd_epi32(s[i][1], v1, av);
                }
            }
        }
        for (int i = 0; i < 8; i++) {
            __m512i excess = _mm512_set1_epi32(offsets[g * 8 + i]);
            _mm512_storeu_si512(acc + (g * 8 + i) * 32, _mm512_sub_epi32(s[i][0], excess));
            _mm512_storeu_si512(acc + (g * 8 + i) * 32 + 16, _mm512_sub_epi32(s[i][1], excess));
        }
    }
}

/* the same block with tdpbssd (the tiles configured by the calling thread, as bf16's: all
   eight 16 rows of 64 bytes) */
__attribute__((target("amx-tile,amx-int8")))
static void y9k_int8_block_amx(const int8_t *a0, const int8_t *b0, long KB, int32_t *acc)
{
    const int8_t *a1 = a0 + KB * 1024, *b1 = b0 + KB * 1024;
    y9k_amx_acc_start(acc, 0);
    for (long kb = 0; kb < KB; kb++) {
        _tile_loadd(4, a0 + kb * 1024, 64);
        _tile_loadd(6, b0 + kb * 1024, 64);
        _tile_dpbssd(0, 4, 6);
        _tile_loadd(7, b1 + kb * 1024, 64);
        _tile_dpbssd(1, 4, 7);
        _tile_loadd(5, a1 + kb * 1024, 64);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    y9k_amx_acc_store(acc);
}

/* the direct kernel's weights: W int8 (M x K, row stride ldw; K in the steps' order,
   y9k_direct_depth) -> for each block of 32 filters, for each 64-deep step kb, two B tiles
   (filters 0-15, then 16-31) of [16 quads of k][16 filters][4]: the layout tdpbssd's second
   operand takes, a block's steps one after the other (M rounded up to 32, K to 64, zeros in
   the padding; the size of y9k_int8_pack_a's) */
static void y9k_int8_pack_direct(const int8_t *w, long ldw, int M, int K, int8_t *out)
{
    long KB = y9k_int8_round_depth(K) / 64, MB = y9k_lowp_round_up(M) / 32;
    for (long mb = 0; mb < MB; mb++)
        for (long kb = 0; kb < KB; kb++)
            for (int h = 0; h < 2; h++) {
                int8_t *tile = out + ((mb * KB + kb) * 2 + h) * 1024;
                for (int r = 0; r < 16; r++)
                    for (int n = 0; n < 16; n++)
                        for (int e = 0; e < 4; e++) {
                            long m = mb * 32 + h * 16 + n, k = kb * 64 + 4 * r + e;
                            tile[r * 64 + n * 4 + e] = (m < M && k < K) ? w[m * ldw + k] : 0;
                        }
            }
}

/* acc (32x32, positions x filters) = two tiles of 16 positions (from positions p0, p1 of
   the channels-last input xq, P bytes a position: y9k_direct_pitch) x 32 filters (the
   filter block's packed weights w0: y9k_int8_pack_direct), summed over the steps of channel
   blocks cb0 .. cb1 - 1 (a step is a tap and 64 channels, or `taps` taps of a row, `groups`
   steps a row): a step's A tile is 16 positions P bytes apart, each row 64 bytes. With
   `resume` added to the sums acc holds (exact integers: the same bits as one call over all
   the channel blocks). The `prefetch_lines` cache lines from `prefetch` on are asked into
   L2 along the way */
__attribute__((target("amx-tile,amx-int8")))
static void y9k_int8_conv_block_amx(const int8_t *w0, const int8_t *xq, long p0, long p1,
                                    int ksize, int taps, int groups, long Wp, int cb0, int cb1,
                                    long P, int32_t *acc, int resume, const int8_t *prefetch,
                                    long prefetch_lines)
{
    long steps = (long) (cb1 - cb0) * ksize * groups, step = 0;
    y9k_amx_acc_start(acc, resume);
    /* channel blocks outermost, as bf16's: a block's taps read overlapping windows of the
       same positions' 64 channels, from L1 after the first */
    for (int cb = cb0; cb < cb1; cb++)
        for (int ky = 0; ky < ksize; ky++)
            for (int g = 0; g < groups; g++) {
                long kb = ((long) cb * ksize + ky) * groups + g;
                const int8_t *src = xq + (ky * Wp + g * taps) * P + cb * 64;
                const int8_t *w = w0 + kb * 2048;
                _tile_loadd(4, src + p0 * P, P);
                _tile_loadd(6, w, 64);
                _tile_dpbssd(0, 4, 6);
                _tile_loadd(7, w + 1024, 64);
                _tile_dpbssd(1, 4, 7);
                _tile_loadd(5, src + p1 * P, P);
                _tile_dpbssd(2, 5, 6);
                _tile_dpbssd(3, 5, 7);
                /* a few lines a step, not a burst: a burst fills the line fill buffers and
                   holds the tiles' own loads back until memory answers */
                long l0 = prefetch_lines * step / steps, l1 = prefetch_lines * (step + 1) / steps;
                for (long l = l0; l < l1; l++)
                    _mm_prefetch((const char *) prefetch + l * 64, _MM_HINT_T2);
                step++;
            }
    y9k_amx_acc_store(acc);
}

/* the activated values v (filters x positions, row stride 32) of filter block mb's first
   `rows` filters at n output positions from (oy, ox) on, requantized into the sink's
   layout */
static inline void y9k_int8_sink_put(const y9k_int8_sink *sink, long mb, long oy, long ox,
                                     int rows, int n, const float *v)
{
    y9k_int8_requantize_positions(v, rows, n, sink->scale, y9k_int8_sink_at(sink, mb, oy, ox),
                                  sink->pitch, y9k_int8_sink_tail(sink, mb));
}

/* the epilogue of flat positions q0 .. q0 + 31 (acc's 32 rows, positions x filters; rows W'
   apart) of filter block mb: the positions that are outputs (ox < OW, oy < OH) written, run
   by run of a row: requantized into the sink's layout from the position-major sums, or
   (fp32 rows, bf16 pairs, the logistic) from the sums transposed to filters x positions
   (accT) by y9k_lowp_epilogue_flat's route on int32 sums (`vals`: 32x32 floats of scratch) */
static inline void y9k_int8_epilogue_flat(const int32_t *acc, const int32_t *accT, int rows,
                                          long q0, long Wp, int OW, int OH, const float *a,
                                          const float *b, int act, const y9k_int8_sink *sink,
                                          long mb, float *sums, float *vals)
{
    for (int j = 0; j < 32;) {
        long q = q0 + j, oy = q / Wp, ox = q % Wp;
        int run = Wp - ox < 32 - j ? (int) (Wp - ox) : 32 - j;
        if (oy >= OH)
            break;
        if (ox < OW) {
            int n = OW - ox < run ? (int) (OW - ox) : run;
            if (sink->pairs) {
                y9k_int8_epilogue(accT + j, rows, n, a, b, act, vals, 32, sums, 1);
                y9k_bf16_store_pairs(vals, rows, n, 32, sink->pairs, mb * 32, oy, ox);
            } else if (!sink->cl) {
                y9k_int8_epilogue(accT + j, rows, n, a, b, act,
                                  sink->out + mb * 32 * sink->ldo + oy * OW + ox, sink->ldo,
                                  sums, 1);
            } else if (act != Y9K_ACT_LOGISTIC) {
                y9k_int8_epilogue_positions_avx512(acc, rows, j, n, a, b, act, sink->scale,
                                                   y9k_int8_sink_at(sink, mb, oy, ox),
                                                   sink->pitch, y9k_int8_sink_tail(sink, mb));
            } else {
                y9k_int8_epilogue(accT + j, rows, n, a, b, act, vals, 32, sums, 1);
                y9k_int8_sink_put(sink, mb, oy, ox, rows, n, vals);
            }
        }
        j += run;
    }
}

/* y9k_int8_conv_amx's sizes and operands, shared by its team */
typedef struct {
    int M, ksize, OH, OW, NH, NW, per_row, taps, CB, groups, act, pool, span, chunk,
        piece_major;
    long Wp, pitch, pieces, KB, MB, ldo, group, tasks_per_mb;
    const int8_t *wp, *xq;
    const float *a, *b;
    const y9k_int8_sink *sink;
    long next;              /* the next task not yet taken */
} y9k_int8_conv_job;

/* dynamic, as bf16's: a thread that loses its core on a shared machine leaves its blocks to
   the others; every block's sums are the same whichever thread computes them */
static void y9k_int8_conv_amx_member(void *job, int member, int members)
{
    y9k_int8_conv_job *j = (y9k_int8_conv_job *) job;
    static __thread int32_t accs[Y9K_LOWP_RESIDENT_PIECES][32 * 32] __attribute__((aligned(64)));
    int32_t accT[32 * 32] __attribute__((aligned(64)));
    float sums[32 * 32] __attribute__((aligned(64)));
    float vals[32 * 32] __attribute__((aligned(64)));
    int M = j->M, OW = j->OW, per_row = j->per_row, CB = j->CB, act = j->act;
    int pool = j->pool, span = j->span, ksize = j->ksize;
    long Wp = j->Wp, P = j->pitch, pieces = j->pieces, KB = j->KB, MB = j->MB, ldo = j->ldo;
    long group = j->group, tasks_per_mb = j->tasks_per_mb;
    const float *a = j->a, *b = j->b;
    const y9k_int8_sink *sink = j->sink;
    const y9k_pairs_out *pairs = sink->pairs;
    /* the sums as filters x positions for the sinks that take them so */
    int transposed = !sink->cl || act == Y9K_ACT_LOGISTIC;
    if (pairs)
        y9k_pairs_clear_outside(pairs, M, MB, j->NH, j->NW, member, members);
    y9k_amx_configure();
    for (long t0; (t0 = y9k_team_take(&j->next, j->chunk)) < MB * tasks_per_mb;)
        for (long task = t0; task < t0 + j->chunk && task < MB * tasks_per_mb; task++) {
            long mb = j->piece_major ? task % MB : task / tasks_per_mb;
            long first = (j->piece_major ? task / MB : task % tasks_per_mb) * group;
            long end = first + group < pieces ? first + group : pieces;
            int rows = M - mb * 32 < 32 ? (int) (M - mb * 32) : 32;
            const int8_t *w0 = j->wp + mb * KB * 2048;
            long span_bytes = (long) ksize * j->groups * span * 2048;
            for (int cb = 0; cb < CB; cb += span) {
                /* where weights are reused over a group of pieces (the resident spans), the
                   next span's while this one's pieces compute, a share a piece: the spans of
                   a block lie one after the other; after the last, the first span of the
                   block the next task takes (another thread's, if it takes it first) */
                const int8_t *next = NULL;
                if (j->group > 1 && cb + span < CB)
                    next = w0 + (long) (cb + span) * ksize * j->groups * 2048;
                else if (j->group > 1 && !j->piece_major) {
                    long t = __atomic_load_n(&j->next, __ATOMIC_RELAXED);
                    if (t < MB * tasks_per_mb)
                        next = j->wp + t / tasks_per_mb * KB * 2048;
                }
                for (long piece = first; piece < end; piece++) {
                    long p0, p1, lines = next ? span_bytes / 64 : 0, n = end - first;
                    long l0 = lines * (piece - first) / n, l1 = lines * (piece - first + 1) / n;
                    y9k_lowp_piece_offsets(piece, pool, per_row, OW, Wp, 1, &p0, &p1);
                    y9k_int8_conv_block_amx(w0, j->xq, p0, p1, ksize, j->taps, j->groups, Wp,
                                            cb, cb + span < CB ? cb + span : CB, P,
                                            accs[piece - first], cb > 0,
                                            next ? next + l0 * 64 : NULL, l1 - l0);
                }
            }
            for (long piece = first; piece < end; piece++) {
                const int32_t *acc = accs[piece - first];
                if (transposed)
                    y9k_transpose32_epi32(acc, accT);
                if (!pool) {
                    y9k_int8_epilogue_flat(acc, accT, rows, piece * 32, Wp, OW, j->OH,
                                           a + mb * 32, b + mb * 32, act, sink, mb, sums, vals);
                    continue;
                }
                /* ox even (OW even: the overlapping last segment starts at OW - 16) */
                long oy = 2 * (piece / per_row);
                int ox = y9k_segment_x((int) (piece % per_row), per_row, OW);
                int cols = OW - ox < 16 ? OW - ox : 16;
                if (sink->cl && act != Y9K_ACT_LOGISTIC) {
                    y9k_int8_epilogue_pooled_positions_avx512(
                        acc, rows, cols, a + mb * 32, b + mb * 32, act, sink->scale,
                        y9k_int8_sink_at(sink, mb, oy / 2, ox / 2), sink->pitch,
                        y9k_int8_sink_tail(sink, mb));
                    continue;
                }
                if (pairs) {
                    y9k_int8_epilogue_pooled_avx512(accT, rows, cols, a + mb * 32, b + mb * 32,
                                                    act, vals, 32, sums);
                    y9k_bf16_store_pairs(vals, rows, cols / 2, 32, pairs, mb * 32, oy / 2,
                                         ox / 2);
                    continue;
                }
                if (!sink->cl) {
                    y9k_int8_epilogue_pooled_avx512(accT, rows, cols, a + mb * 32, b + mb * 32,
                                                    act, sink->out + mb * 32 * ldo
                                                        + (oy / 2) * (OW / 2) + ox / 2,
                                                    ldo, sums);
                    continue;
                }
                y9k_int8_epilogue_pooled_avx512(accT, rows, cols, a + mb * 32, b + mb * 32, act,
                                                vals, 32, sums);
                y9k_int8_sink_put(sink, mb, oy / 2, ox / 2, rows, cols / 2, vals);
            }
        }
    y9k_amx_release();
}

/* out (M, OH*OW) = act(a * conv(x) + b) for a k x k stride-1 convolution (pad) on AMX without
   a column matrix, x (C channels) given as y9k_int8_pack_cl lays it out (channels last),
   W packed by y9k_int8_pack_direct in the steps' order (y9k_direct_depth: ky, group of taps,
   tap, channel slot); bf16's loop structure (y9k_bf16_conv_amx) with the operands' roles
   swapped: a block is 32 flat positions (the A tiles: the map's rows run into each other,
   only the border positions computed for nothing) by 32 filters (the B tiles), a task a
   block of filters over a group of such pieces with the W blocks of a span of channel blocks
   kept in L1 across the group, on the team. With `pool` (OH and OW even) out (M, OH/2 *
   OW/2) is its 2x2/2 maxpool instead, the full output never written: a piece's two tiles are
   then the same 16 columns of the two rows a window spans, the maxima taken on the sums
   activated (the same bits as the unfused maxpool's). With `qout` the output (pooled or
   not) goes to the next layer's channels-last input instead (border qpad, quantized by
   qscale as y9k_int8_pack_cl would quantize out: the same bytes), out unused; with
   `pairs` to a bf16 direct layer's channel pairs (the bits y9k_bf16_pack_pairs makes of out:
   an int8 network's last layer, kept unquantized, runs bf16) */
static void y9k_int8_conv_amx(int M, int C, int H, int W, int ksize, int pad, const int8_t *wp,
                              const int8_t *xq, const float *a, const float *b, int act,
                              int pool, float *out, int8_t *qout, float qscale, int qpad,
                              const y9k_pairs_out *pairs)
{
    y9k_int8_conv_job j = {0};
    j.M = M; j.ksize = ksize; j.act = act; j.pool = pool;
    j.wp = wp; j.xq = xq; j.a = a; j.b = b;
    j.OH = H + 2 * pad - ksize + 1;
    j.OW = W + 2 * pad - ksize + 1;
    j.Wp = y9k_pairs_width(W, pad);
    j.pitch = y9k_direct_pitch(C);
    j.per_row = j.OW <= 16 ? 1 : (j.OW + 15) / 16;
    /* flat positions up to the last output's, 32 a block */
    long flat = (long) (j.OH - 1) * j.Wp + j.OW;
    j.pieces = pool ? (long) (j.OH / 2) * j.per_row : (flat + 31) / 32;
    j.taps = y9k_direct_taps(C);
    j.CB = j.taps > 1 ? 1 : y9k_direct_slots(C) / 64;
    j.groups = (ksize + j.taps - 1) / j.taps;
    j.KB = y9k_direct_depth(C, ksize) / 64;
    j.MB = y9k_lowp_round_up(M) / 32;
    j.ldo = pool ? (long) (j.OH / 2) * (j.OW / 2) : (long) j.OH * j.OW;
    int NH = pool ? j.OH / 2 : j.OH, NW = pool ? j.OW / 2 : j.OW;      /* the output's map */
    y9k_int8_sink sink = {out, j.ldo, qout, qscale, qpad, y9k_pairs_width(NW, qpad),
                          y9k_direct_pitch(M), j.MB, pairs};
    j.sink = &sink;
    j.NH = NH; j.NW = NW;
    if (qout)
        y9k_int8_cl_frame(M, NH, NW, qpad, qout);
    /* bf16's spans: a W block of 32 filters x 64 channels is 2 KB, at least 8 of them a span
       (one channel block for 3x3, eight for 1x1) */
    int steps = ksize * j.groups;
    j.span = (8 + steps - 1) / steps;
    int resident = j.CB > j.span && (ksize > 1 || j.pieces <= Y9K_LOWP_RESIDENT_PIECES);
    j.group = resident ? Y9K_LOWP_RESIDENT_PIECES : 1;
    j.tasks_per_mb = (j.pieces + j.group - 1) / j.group;
    j.chunk = resident ? 1 : 4;
    /* the order of the tasks: all pieces of a filter block before the next block's where the
       weights are the larger operand (13x13 maps: each block's weights read once), else the
       filter blocks of a group of pieces one after the other (the first layers: the input,
       2.8 MB on 208x208 at 32 channels, read once from memory instead of once a filter
       block) */
    j.piece_major = y9k_cl_positions(H, W, pad) * j.pitch > j.MB * 2 * j.KB * 1024;
    if (!resident)
        j.span = j.CB;
    y9k_team(y9k_int8_conv_amx_member, &j);
}
#else
/* no AMX on this architecture: never called (int8_kernels() does not list it) */
static void y9k_int8_conv_amx(int M, int C, int H, int W, int ksize, int pad, const int8_t *wp,
                              const int8_t *xq, const float *a, const float *b, int act,
                              int pool, float *out, int8_t *qout, float qscale, int qpad,
                              const y9k_pairs_out *pairs)
{
    (void) pairs;
    (void) M; (void) C; (void) H; (void) W; (void) ksize; (void) pad; (void) wp; (void) xq;
    (void) a; (void) b; (void) act; (void) pool; (void) out; (void) qout; (void) qscale;
    (void) qpad;
}
#endif

/* the rgb kernel's pooled blocks (y9k_pooled_sink: filters x columns) requantized into the
   channels-last layout of an int8 sink (its `out` unused): where the rgb kernel would take
   y9k_lowp_epilogue_pooled_avx512 and `avx512` allows, in registers from the block
   transposed to positions x filters (y9k_lowp_epilogue_pooled_positions_avx512); else the
   kernel's fp32 pooled epilogue into scratch, then the scalar requantization (the same
   bytes) */
typedef struct {
    y9k_int8_sink cl;
    int avx512;
} y9k_int8_rgb_sink;

static void y9k_int8_rgb_put(const y9k_pooled_sink *sink, int kernel, const float *acc,
                             int rows, int cols, const float *a, const float *b, int act,
                             long filter, long y, long x)
{
    const y9k_int8_rgb_sink *to = (const y9k_int8_rgb_sink *) sink->data;
    const y9k_int8_sink *q = &to->cl;
    int8_t *dst = y9k_int8_sink_at(q, filter / 32, y, x);   /* filter: a block's first */
    float v[32 * 32] __attribute__((aligned(64)));
#if Y9K_HAVE_LOWP_X86
    if (kernel != Y9K_BF16_PORTABLE && act != Y9K_ACT_LOGISTIC && to->avx512) {
        y9k_transpose32_epi32((const int32_t *) acc, (int32_t *) v);
        y9k_lowp_epilogue_pooled_positions_avx512(v, rows, cols, a, b, act, q->scale, dst,
                                                  q->pitch, y9k_int8_sink_tail(q, filter / 32));
        return;
    }
    if (kernel != Y9K_BF16_PORTABLE && act != Y9K_ACT_LOGISTIC)
        y9k_lowp_epilogue_pooled_avx512(acc, rows, cols, a, b, act, v, 32);
    else
#endif
    {
        y9k_lowp_epilogue_fn epilogue = y9k_lowp_epilogue;
#if Y9K_HAVE_LOWP_X86
        if (kernel != Y9K_BF16_PORTABLE)
            epilogue = y9k_lowp_epilogue_avx512;
#endif
        y9k_lowp_epilogue_pooled_by(epilogue, acc, rows, cols, a, b, act, v, 32);
    }
    y9k_int8_requantize_positions(v, rows, cols / 2, q->scale, dst, q->pitch,
                                  y9k_int8_sink_tail(q, filter / 32));
}

/* y9k_bf16_conv_rgb's pooled output (M filters; OH and OW even) handed to the next int8
   direct convolution: quantized by qscale into its channels-last layout with border qpad,
   the bytes y9k_int8_pack_cl writes from the fp32 output, which is never written (the RGB
   layer an int8 network keeps unquantized feeding the first int8 layer) */
static void y9k_bf16_conv_rgb_cl(int kernel, int M, int C, int H, int W, int ksize, int pad,
                                 const uint16_t *wp, const uint16_t *img, const float *a,
                                 const float *b, int act, int8_t *qout, float qscale,
                                 int qpad, int avx512)
{
    int NH = (H + 2 * pad - ksize + 1) / 2, NW = (W + 2 * pad - ksize + 1) / 2;
    y9k_int8_rgb_sink to = {{NULL, 0, qout, qscale, qpad, y9k_pairs_width(NW, qpad),
                             y9k_direct_pitch(M), y9k_lowp_round_up(M) / 32}, avx512};
    y9k_pooled_sink sink = {y9k_int8_rgb_put, &to};
    y9k_int8_cl_frame(M, NH, NW, qpad, qout);
    y9k_bf16_conv_rgb(kernel, M, C, H, W, ksize, pad, wp, img, a, b, act, 1, NULL, NULL, &sink);
}

/* out (M x N, row stride ldo) = act(a[m] * (W x B)[m, n] + b[m]) from packed W and B (K' = K
   rounded up to 64; offsets: the rows' 128 * sum_k W[m, k], M' of them, which only the VNNI
   kernel reads), on the OpenMP threads in 32x32 blocks, on `kernel` (Y9K_INT8_*: the caller
   checked the CPU has it), the epilogue with AVX-512 where `avx512` */
static void y9k_int8_gemm(int kernel, int M, int N, int K, const int8_t *wp, const int8_t *bp,
                          const int32_t *offsets, const float *a, const float *b, int act,
                          float *out, long ldo, int avx512)
{
    long KB = y9k_int8_round_depth(K) / 64;
    long MB = y9k_lowp_round_up(M) / 32, NB = y9k_lowp_round_up(N) / 32;
    (void) offsets;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        int32_t acc[32 * 32] __attribute__((aligned(64)));
        float sums[32 * 32] __attribute__((aligned(64)));
#if Y9K_HAVE_LOWP_X86
        if (kernel == Y9K_INT8_AMX)
            y9k_amx_configure();
#endif
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
        for (long blk = 0; blk < MB * NB; blk++) {
            long mb = blk / NB, nb = blk % NB;
            const int8_t *a0 = wp + mb * 2 * KB * 1024, *b0 = bp + nb * 2 * KB * 1024;
#if Y9K_HAVE_LOWP_X86
            if (kernel == Y9K_INT8_AMX)
                y9k_int8_block_amx(a0, b0, KB, acc);
            else if (kernel == Y9K_INT8_VNNI)
                y9k_int8_block_vnni(a0, b0, KB, offsets + mb * 32, acc);
            else
#endif
                y9k_int8_block_portable(a0, b0, KB, acc);
            int rows = M - mb * 32 < 32 ? (int) (M - mb * 32) : 32;
            int cols = N - nb * 32 < 32 ? (int) (N - nb * 32) : 32;
            y9k_int8_epilogue(acc, rows, cols, a + mb * 32, b + mb * 32, act,
                              out + mb * 32 * ldo + nb * 32, ldo, sums, avx512);
        }
#if Y9K_HAVE_LOWP_X86
        if (kernel == Y9K_INT8_AMX)
            y9k_amx_release();
#endif
    }
}

#endif
