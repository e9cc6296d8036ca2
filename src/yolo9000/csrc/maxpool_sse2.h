/* The 2x2/2 maxpool, one output row at a time: its forward's comparisons (inference, and the
   training forward a batch-normalised convolution pools in, batchnorm_activate_pooled) and
   its backward (maxpool_2x2_s2_backward, and batchnorm_unpool); the backward of the 2x2/1
   one that keeps the size, a plane at a time (maxpool_2x2_s1_backward). */
#ifndef Y9K_MAXPOOL_SSE2_H
#define Y9K_MAXPOOL_SSE2_H

#include <stddef.h>
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

/* dx (H x W, written whole) for the 2x2/1 windows that keep the size (maxpool_2x2_s1_backward):
   each window's gradient added to the first of its taps inside the plane (row by row) equal
   to the window's maximum, windows in row-major order (the argmax routing's order of the
   additions). Inside the plane the winner's offset comes from comparisons combined without
   branches (random winners: branches on them mispredict); the last row and column, whose
   windows have fewer taps, as the plain tests. A window whose maximum no tap equals (NaN)
   gives no gradient. */
static void y9k_maxpool_2x2_s1_backward_plane(const float *x, const float *y, const float *dy,
                                              float *dx, int H, int W)
{
    memset(dx, 0, sizeof(float) * (size_t) H * (size_t) W);
    for (int i = 0; i < H; i++) {
        const float *top = x + (ptrdiff_t) i * W;
        int inner = i + 1 < H ? W - 1 : 0;          /* windows with all four taps */
        for (int j = 0; j < inner; j++) {
            float best = y[(ptrdiff_t) i * W + j];
            int e0 = top[j] == best;
            int e1 = !e0 & (top[j + 1] == best);
            int e2 = !(e0 | e1) & (top[j + W] == best);
            int e3 = !(e0 | e1 | e2) & (top[j + W + 1] == best);
            ptrdiff_t k = (ptrdiff_t) i * W + j + e1 + (ptrdiff_t) e2 * W
                          + (ptrdiff_t) e3 * (W + 1);
            dx[k] += y9k_kept_if(dy[(ptrdiff_t) i * W + j], e0 | e1 | e2 | e3);
        }
        for (int j = inner; j < W; j++) {
            float best = y[(ptrdiff_t) i * W + j];
            ptrdiff_t k = (ptrdiff_t) i * W + j;
            if (x[k] == best)
                ;
            else if (j + 1 < W && x[k + 1] == best)
                k += 1;
            else if (i + 1 < H && x[k + W] == best)
                k += W;
            else if (i + 1 < H && j + 1 < W && x[k + W + 1] == best)
                k += W + 1;
            else
                continue;
            dx[k] += dy[(ptrdiff_t) i * W + j];
        }
    }
}

#endif
