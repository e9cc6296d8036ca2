/* F(4x4, 3x3)'s input, output and output-gradient transforms with Bᵀ and Aᵀ written into the
   code: the
   points 0, 1, -1, 2, -1/2 give small fixed coefficients, applied as explicit sequences of
   additions and multiplications on whole 6x6 tiles held in registers (16 tiles a vector on
   AVX-512). The matrices themselves have one home, kernels/winograd.py (F4_BT, F4_AT); the
   general loops over them in winograd4.pxi are the reference these are tested against
   (tests/kernels/test_winograd4.py). Each kernel has an AVX-512 version, chosen at run time
   through y9k.h's CPU check, beside its portable twin; both share the formulas below. */
#ifndef Y9K_WINOGRAD4_TRANSFORMS_H
#define Y9K_WINOGRAD4_TRANSFORMS_H

#include <stddef.h>

/* tiles of one output-transform call (the Cython loop around it blocks by as many) */
#define Y9K_W4_BLOCK 64

/* y = Bᵀ x for six values (floats, or vectors of them: GCC's and clang's vector types take
   the same operators): Bᵀ's rows
     [1, 3/2, -2, -3/2, 1, 0], [0, -1, -5/2, -1/2, 1, 0], [0, 1, 1/2, -5/2, 1, 0],
     [0, -1/2, -1, 1/2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 1, 3/2, -2, -3/2, 1]
   with x1 - x3, x2 - x4 and x4 - x2 shared */
#define Y9K_W4_BT(T, x0, x1, x2, x3, x4, x5, y0, y1, y2, y3, y4, y5)                      \
    do {                                                                                \
        T d13_ = (x1) - (x3), d24_ = (x2) - (x4), e42_ = (x4) - (x2);                   \
        y0 = ((x0) - 2.0f * (x2) + (x4)) + 1.5f * d13_;                                 \
        y1 = ((x4) - (x1)) - (2.5f * (x2) + 0.5f * (x3));                               \
        y2 = ((x4) + (x1)) + (0.5f * (x2) - 2.5f * (x3));                               \
        y3 = e42_ - 0.5f * d13_;                                                        \
        y4 = e42_ + 2.0f * d13_;                                                        \
        y5 = ((x1) - 2.0f * (x3) + (x5)) + 1.5f * d24_;                                 \
    } while (0)

/* y = Aᵀ m for six values: Aᵀ's rows [1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -1/2, 0],
   [0, 1, 1, 4, 1/4, 0], [0, 1, -1, 8, -1/8, 1], with m1 + m2 and m1 - m2 shared */
#define Y9K_W4_AT(T, m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                              \
    do {                                                                                \
        T p_ = (m1) + (m2), q_ = (m1) - (m2);                                           \
        y0 = ((m0) + p_) + ((m3) + (m4));                                               \
        y1 = q_ + (2.0f * (m3) - 0.5f * (m4));                                          \
        y2 = p_ + (4.0f * (m3) + 0.25f * (m4));                                         \
        y3 = (q_ + (m5)) + (8.0f * (m3) - 0.125f * (m4));                               \
    } while (0)

/* y = A x for four values (A = Aᵀ's transpose, the output gradient's transform): A's rows
   [1, 0, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1], [1, 2, 4, 8], [1, -1/2, 1/4, -1/8],
   [0, 0, 0, 1], with x0 + x2 and x1 + x3 shared */
#define Y9K_W4_A(T, x0, x1, x2, x3, y0, y1, y2, y3, y4, y5)                              \
    do {                                                                                \
        T p_ = (x0) + (x2), q_ = (x1) + (x3);                                           \
        y0 = (x0);                                                                      \
        y1 = p_ + q_;                                                                   \
        y2 = p_ - q_;                                                                   \
        y3 = ((x0) + 4.0f * (x2)) + 2.0f * ((x1) + 4.0f * (x3));                        \
        y4 = ((x0) + 0.25f * (x2)) - 0.5f * ((x1) + 0.25f * (x3));                      \
        y5 = (x3);                                                                      \
    } while (0)

/* The input transform of tile row ti of one channel x (H x W) into the 36 planes out +
   k*plane (tw tiles each): the tile row's six input rows copied into buf with the zero
   padding (one column left, the rest of 4*tw + 2 right), Bᵀ d at every column (rows 6..11
   of buf), then each tile's (Bᵀ d) B. buf holds 12 rows of 4*tw + 2 floats. */
static inline __attribute__((always_inline))
void y9k_input4_rows(const float *x, int H, int W, int ti, float *buf, int padded)
{
    float *row[6];
    for (int r = 0; r < 6; r++) {
        float *dst = buf + (ptrdiff_t) r * padded;
        row[r] = dst;
        int y = 4 * ti - 1 + r;
        if (y < 0 || y >= H) {
            for (int p = 0; p < padded; p++)
                dst[p] = 0;
        } else {
            const float *src = x + (ptrdiff_t) y * W;
            dst[0] = 0;
            for (int p = 0; p < W; p++)
                dst[p + 1] = src[p];
            for (int p = W + 1; p < padded; p++)
                dst[p] = 0;
        }
    }
    float *a0 = buf + 6 * (ptrdiff_t) padded, *a1 = a0 + padded, *a2 = a1 + padded,
          *a3 = a2 + padded, *a4 = a3 + padded, *a5 = a4 + padded;
    const float *r0 = row[0], *r1 = row[1], *r2 = row[2], *r3 = row[3], *r4 = row[4],
                *r5 = row[5];
    for (int p = 0; p < padded; p++)
        Y9K_W4_BT(float, r0[p], r1[p], r2[p], r3[p], r4[p], r5[p], a0[p], a1[p], a2[p], a3[p],
                  a4[p], a5[p]);
}

/* (Bᵀ d) B for tiles tj0 .. tw-1 of row i of Bᵀ d (q: 4*tw + 2 floats) into planes 6i .. 6i+5 */
static inline __attribute__((always_inline))
void y9k_input4_columns(const float *q, int tj0, int tw, float *o, ptrdiff_t plane)
{
    for (int tj = tj0; tj < tw; tj++) {
        const float *c = q + 4 * tj;
        Y9K_W4_BT(float, c[0], c[1], c[2], c[3], c[4], c[5], o[tj], o[plane + tj],
                  o[2 * plane + tj], o[3 * plane + tj], o[4 * plane + tj], o[5 * plane + tj]);
    }
}

static void y9k_input4_tile_row(const float *x, int H, int W, int ti, float *buf, float *out,
                                int tw, ptrdiff_t plane)
{
    int padded = 4 * tw + 2;
    y9k_input4_rows(x, H, W, ti, buf, padded);
    for (int i = 0; i < 6; i++)
        y9k_input4_columns(buf + (6 + i) * (ptrdiff_t) padded, 0, tw, out + 6 * i * plane,
                           plane);
}

/* yv[4i + l][t] = (Aᵀ m A)[i][l] of tiles t < nb, tile t's m[k][j] at src[(6k + j)*plane + t];
   s: scratch of 24 rows of Y9K_W4_BLOCK (Aᵀ m) */
static inline __attribute__((always_inline))
void y9k_output4_body(const float *src, ptrdiff_t plane, int nb, float (*s)[Y9K_W4_BLOCK],
                      float (*yv)[Y9K_W4_BLOCK])
{
    for (int j = 0; j < 6; j++) {
        const float *m0 = src + j * plane, *m1 = m0 + 6 * plane, *m2 = m1 + 6 * plane,
                    *m3 = m2 + 6 * plane, *m4 = m3 + 6 * plane, *m5 = m4 + 6 * plane;
        float *s0 = s[j], *s1 = s[6 + j], *s2 = s[12 + j], *s3 = s[18 + j];
        for (int t = 0; t < nb; t++)
            Y9K_W4_AT(float, m0[t], m1[t], m2[t], m3[t], m4[t], m5[t], s0[t], s1[t], s2[t],
                      s3[t]);
    }
    for (int i = 0; i < 4; i++) {
        const float *s0 = s[6 * i], *s1 = s[6 * i + 1], *s2 = s[6 * i + 2], *s3 = s[6 * i + 3],
                    *s4 = s[6 * i + 4], *s5 = s[6 * i + 5];
        float *y0 = yv[4 * i], *y1 = yv[4 * i + 1], *y2 = yv[4 * i + 2], *y3 = yv[4 * i + 3];
        for (int t = 0; t < nb; t++)
            Y9K_W4_AT(float, s0[t], s1[t], s2[t], s3[t], s4[t], s5[t], y0[t], y1[t], y2[t],
                      y3[t]);
    }
}

static void y9k_output4_block(const float *src, ptrdiff_t plane, int nb, float *yv)
{
    float s[24][Y9K_W4_BLOCK];
    y9k_output4_body(src, plane, nb, s, (float (*)[Y9K_W4_BLOCK]) yv);
}

/* The output gradient's transform A dY Aᵀ of tile row ti of one channel dz (H x W) into the
   36 planes out + k*plane (tw tiles each): the tile row's four gradient rows copied into buf
   zero-extended to whole tiles (4*tw floats), A dY at every column (rows 4..9 of buf), then
   each tile's (A dY) Aᵀ. buf holds 10 rows of 4*tw floats. */
static inline __attribute__((always_inline))
void y9k_output_grad4_rows(const float *dz, int H, int W, int ti, float *buf, int width)
{
    float *row[4];
    for (int r = 0; r < 4; r++) {
        float *dst = buf + (ptrdiff_t) r * width;
        row[r] = dst;
        int y = 4 * ti + r;
        if (y >= H) {
            for (int p = 0; p < width; p++)
                dst[p] = 0;
        } else {
            const float *src = dz + (ptrdiff_t) y * W;
            for (int p = 0; p < W; p++)
                dst[p] = src[p];
            for (int p = W; p < width; p++)
                dst[p] = 0;
        }
    }
    float *a0 = buf + 4 * (ptrdiff_t) width, *a1 = a0 + width, *a2 = a1 + width,
          *a3 = a2 + width, *a4 = a3 + width, *a5 = a4 + width;
    const float *r0 = row[0], *r1 = row[1], *r2 = row[2], *r3 = row[3];
    for (int p = 0; p < width; p++)
        Y9K_W4_A(float, r0[p], r1[p], r2[p], r3[p], a0[p], a1[p], a2[p], a3[p], a4[p], a5[p]);
}

static void y9k_output_grad4_tile_row(const float *dz, int H, int W, int ti, float *buf,
                                      float *out, int tw, ptrdiff_t plane)
{
    int width = 4 * tw;
    y9k_output_grad4_rows(dz, H, W, ti, buf, width);
    for (int k = 0; k < 6; k++) {
        const float *q = buf + (4 + k) * (ptrdiff_t) width;
        float *o = out + 6 * k * plane;
        for (int tj = 0; tj < tw; tj++) {
            const float *c = q + 4 * tj;
            Y9K_W4_A(float, c[0], c[1], c[2], c[3], o[tj], o[plane + tj], o[2 * plane + tj],
                     o[3 * plane + tj], o[4 * plane + tj], o[5 * plane + tj]);
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* y9k_output_grad4_tile_row with 16 tiles a vector: each tile's four columns deinterleaved
   from four 16-lane loads by two rounds of permutes (as the input transform's), the edge
   block's lanes masked */
__attribute__((target("avx512f")))
static void y9k_output_grad4_tile_row_avx512(const float *dz, int H, int W, int ti, float *buf,
                                             float *out, int tw, ptrdiff_t plane)
{
    int width = 4 * tw;
    y9k_output_grad4_rows(dz, H, W, ti, buf, width);
    const __m512i cols01 = _mm512_set_epi32(29, 25, 21, 17, 13, 9, 5, 1,
                                            28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i cols23 = _mm512_set_epi32(31, 27, 23, 19, 15, 11, 7, 3,
                                            30, 26, 22, 18, 14, 10, 6, 2);
    const __m512i low = _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i high = _mm512_set_epi32(31, 30, 29, 28, 27, 26, 25, 24,
                                          15, 14, 13, 12, 11, 10, 9, 8);
    for (int k = 0; k < 6; k++) {
        const float *q = buf + (4 + k) * (ptrdiff_t) width;
        float *o = out + 6 * k * plane;
        for (int tj = 0; tj < tw; tj += 16) {
            int nt = tw - tj < 16 ? tw - tj : 16;
            const float *c = q + 4 * tj;
            __m512 a[4];
            for (int v = 0; v < 4; v++) {
                int n = 4 * nt - 16 * v;
                __mmask16 m = n >= 16 ? (__mmask16) 0xffff
                              : n <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << n) - 1);
                a[v] = _mm512_maskz_loadu_ps(m, c + 16 * v);
            }
            __m512 x01 = _mm512_permutex2var_ps(a[0], cols01, a[1]);
            __m512 x23 = _mm512_permutex2var_ps(a[0], cols23, a[1]);
            __m512 y01 = _mm512_permutex2var_ps(a[2], cols01, a[3]);
            __m512 y23 = _mm512_permutex2var_ps(a[2], cols23, a[3]);
            __m512 c0 = _mm512_permutex2var_ps(x01, low, y01);
            __m512 c1 = _mm512_permutex2var_ps(x01, high, y01);
            __m512 c2 = _mm512_permutex2var_ps(x23, low, y23);
            __m512 c3 = _mm512_permutex2var_ps(x23, high, y23);
            __m512 v0, v1, v2, v3, v4, v5;
            Y9K_W4_A(__m512, c0, c1, c2, c3, v0, v1, v2, v3, v4, v5);
            __mmask16 store = (__mmask16) ((1u << nt) - 1);
            _mm512_mask_storeu_ps(o + tj, store, v0);
            _mm512_mask_storeu_ps(o + plane + tj, store, v1);
            _mm512_mask_storeu_ps(o + 2 * plane + tj, store, v2);
            _mm512_mask_storeu_ps(o + 3 * plane + tj, store, v3);
            _mm512_mask_storeu_ps(o + 4 * plane + tj, store, v4);
            _mm512_mask_storeu_ps(o + 5 * plane + tj, store, v5);
        }
    }
}

/* y9k_input4_tile_row with 16 tiles a vector: the tiles' six columns deinterleaved from
   four 16-lane loads by two rounds of permutes (columns 4 and 5 are the next tile's 0 and
   1), the edge block's lanes masked */
__attribute__((target("avx512f")))
static void y9k_input4_tile_row_avx512(const float *x, int H, int W, int ti, float *buf,
                                       float *out, int tw, ptrdiff_t plane)
{
    int padded = 4 * tw + 2;
    y9k_input4_rows(x, H, W, ti, buf, padded);
    /* round 1: of 32 floats (8 tiles), columns 0 and 1 (lo) or 2 and 3 (hi) of each tile */
    const __m512i cols01 = _mm512_set_epi32(29, 25, 21, 17, 13, 9, 5, 1,
                                            28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i cols23 = _mm512_set_epi32(31, 27, 23, 19, 15, 11, 7, 3,
                                            30, 26, 22, 18, 14, 10, 6, 2);
    /* round 2: the low (high) halves of two such vectors side by side */
    const __m512i low = _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i high = _mm512_set_epi32(31, 30, 29, 28, 27, 26, 25, 24,
                                          15, 14, 13, 12, 11, 10, 9, 8);
    for (int i = 0; i < 6; i++) {
        const float *q = buf + (6 + i) * (ptrdiff_t) padded;
        float *o = out + 6 * i * plane;
        for (int tj = 0; tj < tw; tj += 16) {
            int nt = tw - tj < 16 ? tw - tj : 16;
            int valid = 4 * nt + 2;         /* floats of q from 4*tj on that the block reads */
            const float *c = q + 4 * tj;
            __m512 a[4];
            for (int v = 0; v < 4; v++) {
                int n = valid - 16 * v;
                __mmask16 m = n >= 16 ? (__mmask16) 0xffff
                              : n <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << n) - 1);
                a[v] = _mm512_maskz_loadu_ps(m, c + 16 * v);
            }
            __m512 x01 = _mm512_permutex2var_ps(a[0], cols01, a[1]);
            __m512 x23 = _mm512_permutex2var_ps(a[0], cols23, a[1]);
            __m512 y01 = _mm512_permutex2var_ps(a[2], cols01, a[3]);
            __m512 y23 = _mm512_permutex2var_ps(a[2], cols23, a[3]);
            __m512 c0 = _mm512_permutex2var_ps(x01, low, y01);
            __m512 c1 = _mm512_permutex2var_ps(x01, high, y01);
            __m512 c2 = _mm512_permutex2var_ps(x23, low, y23);
            __m512 c3 = _mm512_permutex2var_ps(x23, high, y23);
            /* a full block's last tile reads q[4*tj + 64] and [65] (inside the padding) */
            __m512 tail4 = nt == 16 ? _mm512_set1_ps(c[64]) : _mm512_setzero_ps();
            __m512 tail5 = nt == 16 ? _mm512_set1_ps(c[65]) : _mm512_setzero_ps();
            __m512 c4 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                _mm512_castps_si512(tail4), _mm512_castps_si512(c0), 1));
            __m512 c5 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                _mm512_castps_si512(tail5), _mm512_castps_si512(c1), 1));
            __m512 v0, v1, v2, v3, v4, v5;
            Y9K_W4_BT(__m512, c0, c1, c2, c3, c4, c5, v0, v1, v2, v3, v4, v5);
            __mmask16 store = (__mmask16) ((1u << nt) - 1);
            _mm512_mask_storeu_ps(o + tj, store, v0);
            _mm512_mask_storeu_ps(o + plane + tj, store, v1);
            _mm512_mask_storeu_ps(o + 2 * plane + tj, store, v2);
            _mm512_mask_storeu_ps(o + 3 * plane + tj, store, v3);
            _mm512_mask_storeu_ps(o + 4 * plane + tj, store, v4);
            _mm512_mask_storeu_ps(o + 5 * plane + tj, store, v5);
        }
    }
}

/* Narrow maps (13x13: 4 tiles a row, padded to 18 columns) spend y9k_input4_tile_row_avx512's
   time copying rows into buf: for widths up to 15 the six rows are loaded straight into
   16-lane vectors (lane p: padded column p; columns 16 and 17 are padding), Bᵀ applied across
   them, then each tile's columns gathered with one permute each (the last tile's fifth and
   sixth columns, past lane 15, zero) */
__attribute__((target("avx512f")))
static void y9k_input4_tile_row16(const float *x, int H, int W, int ti, float *out,
                                  ptrdiff_t plane)
{
    int tw = (W + 3) / 4;
    __mmask16 inside = (__mmask16) (((1u << W) - 1) << 1);
    __mmask16 tiles = (__mmask16) ((1u << tw) - 1);
    __m512 d[6], a[6];
    for (int r = 0; r < 6; r++) {
        int y = 4 * ti - 1 + r;
        d[r] = (y < 0 || y >= H) ? _mm512_setzero_ps()
               : _mm512_maskz_loadu_ps(inside, x + (ptrdiff_t) y * W - 1);
    }
    Y9K_W4_BT(__m512, d[0], d[1], d[2], d[3], d[4], d[5], a[0], a[1], a[2], a[3], a[4], a[5]);
    /* column j of tile t: lane 4t + j */
    const __m512i step = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    for (int i = 0; i < 6; i++) {
        __m512 c[6];
        for (int j = 0; j < 6; j++) {
            __m512i index = _mm512_add_epi32(step, _mm512_set1_epi32(j));
            c[j] = j < 4 ? _mm512_permutexvar_ps(index, a[i])
                         : _mm512_maskz_permutexvar_ps((__mmask16) 0x7, index, a[i]);
        }
        __m512 v0, v1, v2, v3, v4, v5;
        Y9K_W4_BT(__m512, c[0], c[1], c[2], c[3], c[4], c[5], v0, v1, v2, v3, v4, v5);
        float *o = out + 6 * i * plane;
        _mm512_mask_storeu_ps(o, tiles, v0);
        _mm512_mask_storeu_ps(o + plane, tiles, v1);
        _mm512_mask_storeu_ps(o + 2 * plane, tiles, v2);
        _mm512_mask_storeu_ps(o + 3 * plane, tiles, v3);
        _mm512_mask_storeu_ps(o + 4 * plane, tiles, v4);
        _mm512_mask_storeu_ps(o + 5 * plane, tiles, v5);
    }
}

/* y9k_output4_block's loops vectorised for AVX-512 (the compiler's: plain loops over the
   block's tiles) */
__attribute__((target("avx512f")))
static void y9k_output4_block_avx512(const float *src, ptrdiff_t plane, int nb, float *yv)
{
    float s[24][Y9K_W4_BLOCK];
    y9k_output4_body(src, plane, nb, s, (float (*)[Y9K_W4_BLOCK]) yv);
}
#else
static void y9k_output_grad4_tile_row_avx512(const float *dz, int H, int W, int ti, float *buf,
                                             float *out, int tw, ptrdiff_t plane)
{ y9k_output_grad4_tile_row(dz, H, W, ti, buf, out, tw, plane); }
static void y9k_input4_tile_row_avx512(const float *x, int H, int W, int ti, float *buf,
                                       float *out, int tw, ptrdiff_t plane)
{ y9k_input4_tile_row(x, H, W, ti, buf, out, tw, plane); }
static void y9k_input4_tile_row16(const float *x, int H, int W, int ti, float *out,
                                  ptrdiff_t plane)
{ (void)x; (void)H; (void)W; (void)ti; (void)out; (void)plane; }
static void y9k_output4_block_avx512(const float *src, ptrdiff_t plane, int nb, float *yv)
{ y9k_output4_block(src, plane, nb, yv); }
#endif

#endif
