/* The 2x2/2 maxpool, one output row at a time: its forward's comparisons (inference, and the
   training forward a batch-normalised convolution pools in, batchnorm_activate_pooled) and
   its backward (maxpool_2x2_s2_backward, and batchnorm_pooled_backward's unpooling). */
#ifndef Y9K_MAXPOOL_SSE2_H
#define Y9K_MAXPOOL_SSE2_H

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* v where keep (0 or 1), else +0.0f: the bits masked, no branch */
static inline float y9k_kept_if(float v, int keep)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= (uint32_t) -keep;
    memcpy(&v, &bits, sizeof bits);
    return v;
}

/* out[j] = the maximum of the window top[2j..2j+1], top[W + 2j..2j+1], in darknet's order
   (a later tap wins only if greater), as selects that vectorise instead of branches that
   mispredict; the backward finds the winner again by these comparisons */
static inline void y9k_maxpool_2x2_s2_row(const float *top, float *out, int W, int out_w)
{
    const float *bottom = top + W;
    for (int j = 0; j < out_w; j++) {
        float best = top[2 * j], v = top[2 * j + 1];
        best = v > best ? v : best;
        v = bottom[2 * j];
        best = v > best ? v : best;
        v = bottom[2 * j + 1];
        out[j] = v > best ? v : best;
    }
}

/* One output row: r is the gradient not yet given to an earlier input of the window. With
   sse2 (x86-64's baseline; 0 under YOLO9000_PORTABLE_KERNELS) 4 windows at a time: the
   compiler does not vectorise the stride-2 pattern itself; the scalar loop does the rest
   and gives the same bits. */
static void y9k_maxpool_2x2_s2_backward_row(const float *top, const float *y,
                                            const float *dy, float *dtop, int W, int out_w,
                                            int sse2)
{
    const float *bottom = top + W;
    float *dbottom = dtop + W;
    int j = 0;
#if defined(__SSE2__)
    for (; sse2 && j + 4 <= out_w; j += 4) {
        __m128 t0 = _mm_loadu_ps(top + 2 * j), t1 = _mm_loadu_ps(top + 2 * j + 4);
        __m128 b0 = _mm_loadu_ps(bottom + 2 * j), b1 = _mm_loadu_ps(bottom + 2 * j + 4);
        __m128 best = _mm_loadu_ps(y + j), r = _mm_loadu_ps(dy + j), e;
        __m128 tl = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));   /* top left */
        __m128 tr = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));   /* top right */
        __m128 bl = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128 br = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
        e = _mm_cmpeq_ps(tl, best);
        __m128 g0 = _mm_and_ps(e, r);
        r = _mm_andnot_ps(e, r);
        e = _mm_cmpeq_ps(tr, best);
        __m128 g1 = _mm_and_ps(e, r);
        r = _mm_andnot_ps(e, r);
        e = _mm_cmpeq_ps(bl, best);
        __m128 g2 = _mm_and_ps(e, r);
        r = _mm_andnot_ps(e, r);
        __m128 g3 = _mm_and_ps(_mm_cmpeq_ps(br, best), r);
        _mm_storeu_ps(dtop + 2 * j, _mm_unpacklo_ps(g0, g1));
        _mm_storeu_ps(dtop + 2 * j + 4, _mm_unpackhi_ps(g0, g1));
        _mm_storeu_ps(dbottom + 2 * j, _mm_unpacklo_ps(g2, g3));
        _mm_storeu_ps(dbottom + 2 * j + 4, _mm_unpackhi_ps(g2, g3));
    }
#else
    (void) sse2;
#endif
    /* the first tap equal to the maximum takes r, by masks (the winners are random: branches
       on them mispredict, and small maps, 2 windows a row on 4x4, are all tail) */
    for (; j < out_w; j++) {
        float best = y[j], r = dy[j];
        int e0 = top[2 * j] == best;
        int e1 = !e0 & (top[2 * j + 1] == best);
        int e2 = !(e0 | e1) & (bottom[2 * j] == best);
        int e3 = !(e0 | e1 | e2) & (bottom[2 * j + 1] == best);
        dtop[2 * j] = y9k_kept_if(r, e0);
        dtop[2 * j + 1] = y9k_kept_if(r, e1);
        dbottom[2 * j] = y9k_kept_if(r, e2);
        dbottom[2 * j + 1] = y9k_kept_if(r, e3);
    }
}

#endif
