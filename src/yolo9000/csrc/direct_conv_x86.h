/* The direct 3x3 convolution for few input channels (conv3x3_direct): one output row in
   blocks of 64 outputs kept in registers over all taps, with AVX2+FMA (and 4 filters at once
   with AVX-512), each chosen at run time; elsewhere layers use im2col instead. */
#ifndef Y9K_DIRECT_CONV_X86_H
#define Y9K_DIRECT_CONV_X86_H

#include "y9k.h"

/* outputs of one row per step: the kernels below hold 64 sums per filter */
#define Y9K_DIRECT_BLOCK 64
/* taps C·9 for the channel counts the kernel is for (C < 8) */
#define Y9K_DIRECT_MAX_TAPS 72

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* out[q] = act(a * sum_t w[t] * tap[t][x0 + q] + b) for q < n (n <= 64); act a Y9K_ACT_*
   code (logistic is left to the caller: it gets the affine value) */
__attribute__((target("avx2,fma")))
static void y9k_direct_block64(const float *const *tap, int taps, const float *w, int x0,
                               float a, float b, int act, float *out, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0,
           s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (int t = 0; t < taps; t++) {
        const float *p = tap[t] + x0;
        __m256 wv = _mm256_broadcast_ss(w + t);
        s0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p), s0);
        s1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 8), s1);
        s2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 16), s2);
        s3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 24), s3);
        s4 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 32), s4);
        s5 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 40), s5);
        s6 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 48), s6);
        s7 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 56), s7);
    }
    __m256 s[8] = {s0, s1, s2, s3, s4, s5, s6, s7};
    __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
    __m256 tenth = _mm256_set1_ps(0.1f), zero = _mm256_setzero_ps();
    float tmp[64];
    float *dst = n == 64 ? out : tmp;
    for (int i = 0; i < 8; i++) {
        __m256 v = _mm256_fmadd_ps(av, s[i], bv);
        if (act == Y9K_ACT_LEAKY)      /* max(v, 0.1 v), max(v, w) = v > w ? v : w */
            v = _mm256_max_ps(v, _mm256_mul_ps(tenth, v));
        else if (act == Y9K_ACT_RELU)
            v = _mm256_max_ps(v, zero);
        _mm256_storeu_ps(dst + 8 * i, v);
    }
    if (n < 64)
        for (int q = 0; q < n; q++) out[q] = tmp[q];
}
/* acc[t] += sum_q g[q] * tap[t][q] for q < n: the weight gradient of one output row,
   8 taps at a time so each load of g feeds 8 FMAs */
__attribute__((target("avx2,fma")))
static void y9k_direct_wgrad_row(const float *const *tap, int taps, const float *g, int n,
                                 double *acc)
{
    int t = 0;
    for (; t + 8 <= taps; t += 8) {
        __m256 s[8];
        for (int i = 0; i < 8; i++) s[i] = _mm256_setzero_ps();
        int q = 0;
        for (; q + 8 <= n; q += 8) {
            __m256 gv = _mm256_loadu_ps(g + q);
            for (int i = 0; i < 8; i++)
                s[i] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(tap[t + i] + q), s[i]);
        }
        for (int i = 0; i < 8; i++) {
            float lanes[8];
            _mm256_storeu_ps(lanes, s[i]);
            float sum = 0;
            for (int k = 0; k < 8; k++) sum += lanes[k];
            for (int r = q; r < n; r++) sum += g[r] * tap[t + i][r];
            acc[t + i] += sum;
        }
    }
    for (; t < taps; t++) {
        __m256 s0 = _mm256_setzero_ps();
        int q = 0;
        for (; q + 8 <= n; q += 8)
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(g + q), _mm256_loadu_ps(tap[t] + q), s0);
        float lanes[8];
        _mm256_storeu_ps(lanes, s0);
        float sum = 0;
        for (int k = 0; k < 8; k++) sum += lanes[k];
        for (int r = q; r < n; r++) sum += g[r] * tap[t][r];
        acc[t] += sum;
    }
}
/* y9k_direct_block64 for nf (4 or 6) filters at once (w: their taps, taps apart; a, b:
   their affine; out: their rows, out_stride apart) with AVX-512: each input vector loaded
   feeds nf FMAs (the one-filter kernel is bound by its loads); every sum adds its taps in
   order, one FMA each, as the one-filter kernel's do */
static inline __attribute__((always_inline, target("avx512f")))
void y9k_directn_block64(const int nf, const float *const *tap, int taps, const float *w,
                         int x0, const float *a, const float *b, int act, float *out,
                         long out_stride, int n)
{
    __m512 s[6][4];
    for (int f = 0; f < nf; f++)
        for (int q = 0; q < 4; q++)
            s[f][q] = _mm512_setzero_ps();
    for (int t = 0; t < taps; t++) {
        const float *p = tap[t] + x0;
        __m512 x[4];
        for (int q = 0; q < 4; q++)
            x[q] = _mm512_loadu_ps(p + 16 * q);
        for (int f = 0; f < nf; f++) {
            __m512 wv = _mm512_set1_ps(w[f * taps + t]);
            for (int q = 0; q < 4; q++)
                s[f][q] = _mm512_fmadd_ps(wv, x[q], s[f][q]);
        }
    }
    __m512 tenth = _mm512_set1_ps(0.1f), zero = _mm512_setzero_ps();
    for (int f = 0; f < nf; f++) {
        __m512 av = _mm512_set1_ps(a[f]), bv = _mm512_set1_ps(b[f]);
        for (int q = 0; q < 4; q++) {
            int left = n - 16 * q;
            if (left <= 0)
                break;
            __mmask16 k = left >= 16 ? 0xFFFF : (__mmask16) ((1u << left) - 1);
            __m512 v = _mm512_fmadd_ps(av, s[f][q], bv);
            if (act == Y9K_ACT_LEAKY)
                v = _mm512_max_ps(v, _mm512_mul_ps(tenth, v));
            else if (act == Y9K_ACT_RELU)
                v = _mm512_max_ps(v, zero);
            _mm512_mask_storeu_ps(out + f * out_stride + 16 * q, k, v);
        }
    }
}
__attribute__((target("avx512f")))
static void y9k_direct4_block64(const float *const *tap, int taps, const float *w, int x0,
                                const float *a, const float *b, int act, float *out,
                                long out_stride, int n)
{
    y9k_directn_block64(4, tap, taps, w, x0, a, b, act, out, out_stride, n);
}
/* six filters: 10 loads (4 of the input, 6 weights) a 24 FMAs against four's 8 a 16 */
__attribute__((target("avx512f")))
static void y9k_direct6_block64(const float *const *tap, int taps, const float *w, int x0,
                                const float *a, const float *b, int act, float *out,
                                long out_stride, int n)
{
    y9k_directn_block64(6, tap, taps, w, x0, a, b, act, out, out_stride, n);
}
/* values of a band of rows per filter that y9k_direct_wgrad_band sums in float (in 16
   lanes) before adding them to acc's doubles */
#define Y9K_WGRAD_BAND_VALUES 1024
/* acc[f*taps + t] += sum over rows r < rows and q < n of g[f*fstride + r*n + q] *
   tap[t][r*ldx + q], for every filter f < F, with AVX-512: 4 filters by 6 taps at a time,
   24 sums of 16 lanes kept in registers over the band's rows (10 loads a 24 FMAs) and
   reduced once a band: the row-by-row kernel's horizontal sums, one per filter, tap and
   row, were most of its time on short rows */
__attribute__((target("avx512f")))
static void y9k_direct_wgrad_band(const float *const *tap, int taps, long ldx, const float *g,
                                  long fstride, int F, int n, int rows, double *acc)
{
    for (int f0 = 0; f0 < F; f0 += 4) {
        int nf = F - f0 < 4 ? F - f0 : 4;
        const float *gf[4];
        /* past the last filter (tap): a repeat of the first, its sums not kept */
        for (int i = 0; i < 4; i++)
            gf[i] = g + (long) (f0 + (i < nf ? i : 0)) * fstride;
        for (int t0 = 0; t0 < taps; t0 += 6) {
            int nt = taps - t0 < 6 ? taps - t0 : 6;
            const float *tp[6];
            for (int j = 0; j < 6; j++)
                tp[j] = tap[t0 + (j < nt ? j : 0)];
            __m512 s[4][6];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 6; j++)
                    s[i][j] = _mm512_setzero_ps();
            for (int r = 0; r < rows; r++) {
                for (int q = 0; q < n; q += 16) {
                    __mmask16 m = n - q >= 16 ? (__mmask16) 0xFFFF
                                              : (__mmask16) ((1u << (n - q)) - 1);
                    __m512 gv[4];
                    for (int i = 0; i < 4; i++)
                        gv[i] = _mm512_maskz_loadu_ps(m, gf[i] + (long) r * n + q);
                    for (int j = 0; j < 6; j++) {
                        __m512 xv = _mm512_maskz_loadu_ps(m, tp[j] + (long) r * ldx + q);
                        for (int i = 0; i < 4; i++)
                            s[i][j] = _mm512_fmadd_ps(gv[i], xv, s[i][j]);
                    }
                }
            }
            for (int i = 0; i < nf; i++)
                for (int j = 0; j < nt; j++)
                    acc[(long) (f0 + i) * taps + t0 + j] += _mm512_reduce_add_ps(s[i][j]);
        }
    }
}
#else
#define Y9K_WGRAD_BAND_VALUES 1024
static void y9k_direct_wgrad_band(const float *const *tap, int taps, long ldx, const float *g,
                                  long fstride, int F, int n, int rows, double *acc)
{ (void)tap; (void)taps; (void)ldx; (void)g; (void)fstride; (void)F; (void)n; (void)rows;
  (void)acc; }
static void y9k_direct_block64(const float *const *tap, int taps, const float *w, int x0,
                               float a, float b, int act, float *out, int n)
{ (void)tap; (void)taps; (void)w; (void)x0; (void)a; (void)b; (void)act; (void)out; (void)n; }
static void y9k_direct_wgrad_row(const float *const *tap, int taps, const float *g, int n,
                                 double *acc)
{ (void)tap; (void)taps; (void)g; (void)n; (void)acc; }
static void y9k_direct4_block64(const float *const *tap, int taps, const float *w, int x0,
                                const float *a, const float *b, int act, float *out,
                                long out_stride, int n)
{ (void)tap; (void)taps; (void)w; (void)x0; (void)a; (void)b; (void)act; (void)out;
  (void)out_stride; (void)n; }
static void y9k_direct6_block64(const float *const *tap, int taps, const float *w, int x0,
                                const float *a, const float *b, int act, float *out,
                                long out_stride, int n)
{ (void)tap; (void)taps; (void)w; (void)x0; (void)a; (void)b; (void)act; (void)out;
  (void)out_stride; (void)n; }
#endif

#endif
