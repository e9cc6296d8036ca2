/* The 2x2/2 maxpool backward, one output row at a time (maxpool_2x2_s2_backward), and a
   row of maxima with their windows' winners (batchnorm_activate_pool). */
#ifndef Y9K_MAXPOOL_SSE2_H
#define Y9K_MAXPOOL_SSE2_H

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
    for (; j < out_w; j++) {
        float best = y[j], r = dy[j];
        dtop[2 * j] = top[2 * j] == best ? r : 0.0f;
        r = top[2 * j] == best ? 0.0f : r;
        dtop[2 * j + 1] = top[2 * j + 1] == best ? r : 0.0f;
        r = top[2 * j + 1] == best ? 0.0f : r;
        dbottom[2 * j] = bottom[2 * j] == best ? r : 0.0f;
        r = bottom[2 * j] == best ? 0.0f : r;
        dbottom[2 * j + 1] = bottom[2 * j + 1] == best ? r : 0.0f;
    }
}

/* One row of 2x2/2 windows over the rows top and top + W: out gets the maxima, in
   darknet's order (a later tap wins only if greater: maxps(a, b) is a > b ? a : b, the
   same select), and winners the tap each window's gradient goes to: the first equal to the
   maximum (0 top left, 1 top right, 2 bottom left, 3 bottom right), 4 when none is (NaN).
   With sse2 4 windows at a time; the scalar loop does the rest and gives the same bits. */
static void y9k_maxpool_2x2_winners_row(const float *top, int W, int out_w, float *out,
                                        unsigned char *winners, int sse2)
{
    const float *bottom = top + W;
    int j = 0;
#if defined(__SSE2__)
    const __m128i none = _mm_set1_epi32(4), three = _mm_set1_epi32(3),
                  two = _mm_set1_epi32(2), one = _mm_set1_epi32(1);
    for (; sse2 && j + 4 <= out_w; j += 4) {
        __m128 t0 = _mm_loadu_ps(top + 2 * j), t1 = _mm_loadu_ps(top + 2 * j + 4);
        __m128 b0 = _mm_loadu_ps(bottom + 2 * j), b1 = _mm_loadu_ps(bottom + 2 * j + 4);
        __m128 tl = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128 tr = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
        __m128 bl = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128 br = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
        __m128 best = _mm_max_ps(tr, tl);
        best = _mm_max_ps(bl, best);
        best = _mm_max_ps(br, best);
        _mm_storeu_ps(out + j, best);
        /* the first equal tap: the later ones' numbers overwritten by the earlier ones' */
        __m128i tap = none, e;
        e = _mm_castps_si128(_mm_cmpeq_ps(br, best));
        tap = _mm_or_si128(_mm_and_si128(e, three), _mm_andnot_si128(e, tap));
        e = _mm_castps_si128(_mm_cmpeq_ps(bl, best));
        tap = _mm_or_si128(_mm_and_si128(e, two), _mm_andnot_si128(e, tap));
        e = _mm_castps_si128(_mm_cmpeq_ps(tr, best));
        tap = _mm_or_si128(_mm_and_si128(e, one), _mm_andnot_si128(e, tap));
        e = _mm_castps_si128(_mm_cmpeq_ps(tl, best));
        tap = _mm_andnot_si128(e, tap);
        tap = _mm_packus_epi16(_mm_packs_epi32(tap, tap), tap);
        int packed = _mm_cvtsi128_si32(tap);
        memcpy(winners + j, &packed, 4);
    }
#else
    (void) sse2;
#endif
    for (; j < out_w; j++) {
        float tl = top[2 * j], tr = top[2 * j + 1], bl = bottom[2 * j], br = bottom[2 * j + 1];
        float best = tr > tl ? tr : tl;
        best = bl > best ? bl : best;
        best = br > best ? br : best;
        out[j] = best;
        winners[j] = tl == best ? 0 : tr == best ? 1 : bl == best ? 2 : br == best ? 3 : 4;
    }
}

#endif
