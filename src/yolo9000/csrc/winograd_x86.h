/* The Winograd kernels written for AVX-512, each chosen at run time: the input transform of
   one tile row of a map up to 14 wide (13x13), and the 16 products of F(2x2, 3x3) (or the
   36 of F(4x4, 3x3)) with the filters transformed inside them from blocks of 3x3 weights.
   Their portable twins: the transform's loops in the .pxi and the products through BLAS
   (kernels/winograd.py). */
#ifndef Y9K_WINOGRAD_X86_H
#define Y9K_WINOGRAD_X86_H

#include <stddef.h>

/* the products kernel's blocks of output rows (filters, or channels for the input gradient)
   and the reduction indices it transforms at a time */
#define Y9K_BLOCK_ROWS 32
#define Y9K_CHUNK 64

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* the transformed tiles of tile row ti of one channel x (H x W, W <= 14) into the 16 planes
   out + k*plane, as the loops of _input_tile_row, with a few permutes of 16-lane rows */
__attribute__((target("avx512f")))
static void y9k_input_tile_row16(const float *x, int H, int W, int ti, float *out,
                                 ptrdiff_t plane)
{
    int tw = (W + 1) / 2;
    /* lane p holds padded column p: input column p - 1 */
    __mmask16 inside = (__mmask16) (((1u << W) - 1) << 1);
    __mmask16 tiles = (__mmask16) ((1u << tw) - 1);
    __m512 d[4];
    for (int r = 0; r < 4; r++) {
        int y = 2 * ti - 1 + r;
        d[r] = (y < 0 || y >= H) ? _mm512_setzero_ps()
               : _mm512_maskz_loadu_ps(inside, x + (ptrdiff_t) y * W - 1);
    }
    __m512 a[4];
    a[0] = _mm512_sub_ps(d[0], d[2]);
    a[1] = _mm512_add_ps(d[1], d[2]);
    a[2] = _mm512_sub_ps(d[2], d[1]);
    a[3] = _mm512_sub_ps(d[1], d[3]);
    /* tile t reads padded columns 2t .. 2t+3 */
    const __m512i even = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i even2 = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 15, 14, 12, 10, 8, 6, 4, 2);
    const __m512i odd2 = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 13, 11, 9, 7, 5, 3);
    for (int r = 0; r < 4; r++) {
        __m512 c0 = _mm512_permutexvar_ps(even, a[r]), c1 = _mm512_permutexvar_ps(odd, a[r]);
        __m512 c2 = _mm512_permutexvar_ps(even2, a[r]), c3 = _mm512_permutexvar_ps(odd2, a[r]);
        float *o = out + 4 * r * plane;
        _mm512_mask_storeu_ps(o, tiles, _mm512_sub_ps(c0, c2));
        _mm512_mask_storeu_ps(o + plane, tiles, _mm512_add_ps(c1, c2));
        _mm512_mask_storeu_ps(o + 2 * plane, tiles, _mm512_sub_ps(c2, c1));
        _mm512_mask_storeu_ps(o + 3 * plane, tiles, _mm512_sub_ps(c1, c3));
    }
}

/* the gradient transforms A dY Aᵀ of tile row ti of one channel dz (H x W, W <= 14) into
   the 16 planes out + k*plane, as the loops of _output_grad_tile_row (the same additions and
   negations in the order GCC gives the loops: the same bits), with two permutes of each
   16-lane row */
/* no reassociation here (-ffast-math would regroup the intrinsics' sums as it likes): the
   order below is the one the loops get */
#pragma GCC push_options
#pragma GCC optimize("no-associative-math")
__attribute__((target("avx512f")))
static void y9k_output_grad_tile_row16(const float *dz, int H, int W, int ti, float *out,
                                       ptrdiff_t plane)
{
    int tw = (W + 1) / 2;
    __mmask16 inside = (__mmask16) ((1u << W) - 1);
    __mmask16 tiles = (__mmask16) ((1u << tw) - 1);
    __m512 r[2];
    for (int k = 0; k < 2; k++) {
        int y = 2 * ti + k;
        r[k] = y >= H ? _mm512_setzero_ps()
               : _mm512_maskz_loadu_ps(inside, dz + (ptrdiff_t) y * W);
    }
    /* lane t: tile t's left (even) and right (odd) column */
    const __m512i even = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 a = _mm512_permutexvar_ps(even, r[0]), b = _mm512_permutexvar_ps(odd, r[0]);
    __m512 c = _mm512_permutexvar_ps(even, r[1]), d = _mm512_permutexvar_ps(odd, r[1]);
    /* negation: the sign bit flipped */
    const __m512i sign = _mm512_set1_epi32((int) 0x80000000u);
#define Y9K_NEG(v) _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign))
    /* t = A dY (4x2), then each row of t times Aᵀ */
    __m512 t[4][2] = {{a, b}, {_mm512_add_ps(a, c), _mm512_add_ps(b, d)},
                      {_mm512_sub_ps(a, c), _mm512_sub_ps(b, d)},
                      {Y9K_NEG(c), Y9K_NEG(d)}};
    for (int i = 0; i < 4; i++) {
        float *o = out + 4 * i * plane;
        _mm512_mask_storeu_ps(o, tiles, t[i][0]);
        _mm512_mask_storeu_ps(o + plane, tiles, _mm512_add_ps(t[i][0], t[i][1]));
        _mm512_mask_storeu_ps(o + 2 * plane, tiles, _mm512_sub_ps(t[i][0], t[i][1]));
        _mm512_mask_storeu_ps(o + 3 * plane, tiles, Y9K_NEG(t[i][1]));
    }
    /* plane 9, (a - c) + (b - d), as GCC compiles the loops under -ffast-math: ((a - c) + b)
       - d (found by comparing them with each association; the other planes are as written),
       so that both paths give the same bits and training's roundings do not depend on the
       path (yolo9000 demo's trajectory included) */
    _mm512_mask_storeu_ps(out + 9 * plane, tiles,
                          _mm512_sub_ps(_mm512_add_ps(_mm512_sub_ps(a, c), b), d));
#undef Y9K_NEG
}
#pragma GCC pop_options

/* acc[j][o] (+)= sum_r a[r*W + o] * v[r*ldv + j] for o < W = 16*rowv (rowv 2 or 4: 32 or
   64 rows), j < cols (<= 14 or 6); while at it, the rows pv + r*ldv (the next plane's V)
   and pw_lines lines from pw into the cache */
static inline __attribute__((always_inline, target("avx512f")))
void y9k_products_pass(const int rowv, const float *a, int R, const float *v, long ldv,
                       const int cols, float *acc, int add, const float *pv, const float *pw,
                       int pw_lines)
{
    const int W = 16 * rowv;
    __m512 s[28];
    for (int j = 0; j < cols; j++)
        for (int q = 0; q < rowv; q++)
            s[j * rowv + q] = add ? _mm512_load_ps(acc + j * W + 16 * q) : _mm512_setzero_ps();
    for (int r = 0; r < R; r++) {
        __m512 ar[4];
        for (int q = 0; q < rowv; q++)
            ar[q] = _mm512_load_ps(a + r * W + 16 * q);
        const float *vr = v + (long) r * ldv;
        for (int j = 0; j < cols; j++) {
            __m512 b = _mm512_set1_ps(vr[j]);
            for (int q = 0; q < rowv; q++)
                s[j * rowv + q] = _mm512_fmadd_ps(ar[q], b, s[j * rowv + q]);
        }
        if (pv) {
            const char *c = (const char *) (pv + (long) r * ldv);
            _mm_prefetch(c, _MM_HINT_T1);
            _mm_prefetch(c + 64, _MM_HINT_T1);
            _mm_prefetch(c + 128, _MM_HINT_T1);
            _mm_prefetch(c + 192, _MM_HINT_T1);
        }
        if (2 * r < pw_lines)
            _mm_prefetch((const char *) (pw + 2 * r * 16), _MM_HINT_T1);
        if (2 * r + 1 < pw_lines)
            _mm_prefetch((const char *) (pw + (2 * r + 1) * 16), _MM_HINT_T1);
    }
    for (int j = 0; j < cols; j++)
        for (int q = 0; q < rowv; q++)
            _mm512_store_ps(acc + j * W + 16 * q, s[j * rowv + q]);
}
#define Y9K_PASS(V, C) y9k_products_pass(V, a, R, v + j0, ldv, C, acc + j0 * 16 * V, add, \
                                         p ? NULL : pv, pw, p ? 0 : pw_lines)
/* one plane: 32 or 64 rows (rowv 2 or 4) against all N columns, in passes of equal width
   (<= 14 or 6 columns: 28 or 24 sums and the row vectors in the 32 registers) */
__attribute__((target("avx512f")))
static void y9k_products_plane(int rowv, const float *a, int R, const float *v, long ldv,
                               int N, float *acc, int add, const float *pv, const float *pw,
                               int pw_lines)
{
    int most = rowv == 4 ? 6 : 14, passes = (N + most - 1) / most;
    for (int p = 0; p < passes; p++) {
        int j0 = (int) ((long) N * p / passes), cols = (int) ((long) N * (p + 1) / passes) - j0;
        if (rowv == 4) {
            switch (cols) {
            case 6: Y9K_PASS(4, 6); break;
            case 5: Y9K_PASS(4, 5); break; case 4: Y9K_PASS(4, 4); break;
            case 3: Y9K_PASS(4, 3); break; case 2: Y9K_PASS(4, 2); break;
            default: Y9K_PASS(4, 1); break;
            }
        } else {
            switch (cols) {
            case 14: Y9K_PASS(2, 14); break; case 13: Y9K_PASS(2, 13); break;
            case 12: Y9K_PASS(2, 12); break; case 11: Y9K_PASS(2, 11); break;
            case 10: Y9K_PASS(2, 10); break; case 9: Y9K_PASS(2, 9); break;
            case 8: Y9K_PASS(2, 8); break; case 7: Y9K_PASS(2, 7); break;
            case 6: Y9K_PASS(2, 6); break; case 5: Y9K_PASS(2, 5); break;
            case 4: Y9K_PASS(2, 4); break; case 3: Y9K_PASS(2, 3); break;
            case 2: Y9K_PASS(2, 2); break; default: Y9K_PASS(2, 1); break;
            }
        }
    }
}
/* u = G g Gt for 16 filters at once (g: 9 taps `tap` floats apart, each 16 filters'
   values), into plane dest[k] of the scratch: the same arithmetic as winograd_filter's */
static inline __attribute__((always_inline, target("avx512f")))
void y9k_transform16(const float *g, long tap, const int *dest, float *out, long plane)
{
    __m512 half = _mm512_set1_ps(0.5f), t[4][3];
    for (int i = 0; i < 3; i++) {
        __m512 a = _mm512_loadu_ps(g + i * tap),
               b = _mm512_loadu_ps(g + (3 + i) * tap),
               c = _mm512_loadu_ps(g + (6 + i) * tap);
        t[0][i] = a;
        t[1][i] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(a, b), c));
        t[2][i] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(a, b), c));
        t[3][i] = c;
    }
    for (int i = 0; i < 4; i++) {
        __m512 u1 = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]));
        __m512 u2 = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2]));
        _mm512_storeu_ps(out + dest[4 * i + 0] * plane, t[i][0]);
        _mm512_storeu_ps(out + dest[4 * i + 1] * plane, u1);
        _mm512_storeu_ps(out + dest[4 * i + 2] * plane, u2);
        _mm512_storeu_ps(out + dest[4 * i + 3] * plane, t[i][2]);
    }
}
/* F(4x4, 3x3)'s G (kernels/winograd.py F4_G, points 0, 1, -1, 2, -1/2 and infinity) is
   D G' with G' of small integers, rows (1, 0, 0), (1, 1, 1), (1, -1, 1), (1, 2, 4),
   (-4, 2, -1), (0, 0, 1), and D = diag(Y9K_F4_G_ROW_SCALES): U = D (G' g G'^T) D, so plane
   6i + j of U is d_i d_j times that of U' = G' g G'^T. The products kernel transforms the
   filters with G' alone (additions and exact doublings only) and scales each plane's sums
   once at the end, as it writes them out. */
#define Y9K_F4_G_ROW_SCALES 1.0, -1.0 / 3, 1.0 / 3, 1.0 / 15, 4.0 / 15, 1.0
/* G' applied to one column (a, b, c) of 3 values, 16 filters at once: its 6 rows */
static inline __attribute__((always_inline, target("avx512f")))
void y9k_f4_g(__m512 a, __m512 b, __m512 c, __m512 r[6])
{
    const __m512 two = _mm512_set1_ps(2), four = _mm512_set1_ps(4);
    __m512 s = _mm512_add_ps(a, c);
    r[0] = a;
    r[1] = _mm512_add_ps(s, b);                                            /* a + b + c */
    r[2] = _mm512_sub_ps(s, b);                                            /* a - b + c */
    r[3] = _mm512_fmadd_ps(four, c, _mm512_fmadd_ps(two, b, a));           /* a + 2b + 4c */
    r[4] = _mm512_fmsub_ps(two, b, _mm512_fmadd_ps(four, a, c));           /* -4a + 2b - c */
    r[5] = c;
}
/* F(4x4, 3x3)'s u' = G' g G'^T for 16 filters at once (g: 9 taps `tap` floats apart, each
   16 filters' values), u'[i][j] into plane 6i + j of out: filters4()'s transform but for the
   planes' scales d_i d_j */
static inline __attribute__((always_inline, target("avx512f")))
void y9k_transform16_f4(const float *g, long tap, float *out, long plane)
{
    __m512 t[3][6], u[6];
    for (int j = 0; j < 3; j++)
        y9k_f4_g(_mm512_loadu_ps(g + j * tap), _mm512_loadu_ps(g + (3 + j) * tap),
                 _mm512_loadu_ps(g + (6 + j) * tap), t[j]);
    for (int i = 0; i < 6; i++) {
        y9k_f4_g(t[0][i], t[1][i], t[2][i], u);
        for (int j = 0; j < 6; j++)
            _mm512_storeu_ps(out + (6 * i + j) * plane, u[j]);
    }
}
/* 16 rows of 16 floats (r[i][j]) to 16 columns: out[j * ld + i] = r[i][j] */
static inline __attribute__((always_inline, target("avx512f")))
void y9k_transpose16(__m512 r[16], float *out, long ld)
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[4q + e]: element 4L + e of rows 4q .. 4q+3 in 128-bit lane L */
    for (int q = 0; q < 4; q++) {
        u[4 * q + 0] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        u[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        u[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        u[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    for (int e = 0; e < 4; e++) {
        __m512 even_lo = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88),
               odd_lo = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xDD),
               even_hi = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88),
               odd_hi = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xDD);
        _mm512_storeu_ps(out + (e + 0) * ld, _mm512_shuffle_f32x4(even_lo, even_hi, 0x88));
        _mm512_storeu_ps(out + (e + 8) * ld, _mm512_shuffle_f32x4(even_lo, even_hi, 0xDD));
        _mm512_storeu_ps(out + (e + 4) * ld, _mm512_shuffle_f32x4(odd_lo, odd_hi, 0x88));
        _mm512_storeu_ps(out + (e + 12) * ld, _mm512_shuffle_f32x4(odd_lo, odd_hi, 0xDD));
    }
}

/* floats of the per-job scratch y9k_winograd_rows reads the layer's weights through: 16
   channels' 9 taps of 16 filters */
#define Y9K_REGROUP_FLOATS (16 * 9 * 16)

/* The chunk's transforms from the layer's own weights (F, C, 3, 3): `rows` filters from w
   (row stride ldw = 9C), channels r0 .. r0+rc; 16 filters by 16 channels at a time, their
   144 contiguous taps each turned into tap-major order (9 transposes of 16 x 16, zeros past
   the rows and channels) in `regroup`, then the same transform16 as from weight blocks;
   zeros in the lanes from `rows` to W, as weight blocks have past their last row (a job's
   lanes past its rows are multiplied too, and must hold numbers) */
__attribute__((target("avx512f")))
static void y9k_transform_chunk_in_place(const float *w, long ldw, int rows, int r0, int rc,
                                         int planes, const int *dest, float *out, int W,
                                         long plane, float *regroup)
{
    for (int h = 0; h < W; h += 16) {
        for (int r = 0; r < rc; r += 16) {
            int floats = 9 * (rc - r < 16 ? rc - r : 16);
            for (int q = 0; q < 9; q++) {
                int left = floats - 16 * q;
                __mmask16 mask = left >= 16 ? (__mmask16) 0xFFFF
                                 : left <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << left) - 1);
                __m512 g[16];
                for (int i = 0; i < 16; i++)
                    g[i] = h + i < rows
                           ? _mm512_maskz_loadu_ps(mask, w + (long) (h + i) * ldw
                                                   + (long) (r0 + r) * 9 + 16 * q)
                           : _mm512_setzero_ps();
                y9k_transpose16(g, regroup + 16 * 16 * q, 16);
            }
            for (int i = 0; i < 16; i++)
                if (planes == 36)
                    y9k_transform16_f4(regroup + 9 * 16 * i, 16, out + (long) (r + i) * W + h,
                                       plane);
                else
                    y9k_transform16(regroup + 9 * 16 * i, 16, dest,
                                    out + (long) (r + i) * W + h, plane);
        }
    }
}

/* one job: nblocks (1 or 2) consecutive blocks of weights (R, 9, 32) from w, or with ldw > 0
   the layer's own weights (F, C, 3, 3) from the job's first filter on (rows ldw floats
   apart; one block), for `rows` rows of the products; v plane k at v + k*v_plane (R rows of
   ldv), m plane k at m + k*m_plane (rows of ldm); `planes` 16 (F(2x2, 3x3), transform plane
   k stored as dest[k]) or 36 (F(4x4, 3x3), in order; dest unread); scratch (64-byte
   aligned): the chunk's transformed planes (Y9K_CHUNK x 32·nblocks each), then the sums
   (`planes` planes of N x 32·nblocks), then Y9K_REGROUP_FLOATS */
__attribute__((target("avx512f")))
static void y9k_winograd_rows(const float *w, long ldw, int nblocks, int rows, int R,
                              int planes, const int *dest, const float *v, long v_plane,
                              long ldv, int N, float *m, long m_plane, long ldm, float *scratch)
{
    const int W = Y9K_BLOCK_ROWS * nblocks;
    /* planes an odd number of cache lines apart: the transform writes all 16 at once */
    const long plane = (long) Y9K_CHUNK * W + 16, sums = (long) N * W;
    const long block = (long) R * 9 * Y9K_BLOCK_ROWS;
    float *acc = scratch + planes * plane;
    for (int r0 = 0; r0 < R; r0 += Y9K_CHUNK) {
        int rc = R - r0 < Y9K_CHUNK ? R - r0 : Y9K_CHUNK;
        if (ldw)
            y9k_transform_chunk_in_place(w, ldw, rows, r0, rc, planes, dest, scratch, W,
                                         plane, acc + planes * sums);
        else
            for (int b = 0; b < nblocks; b++)
                for (int r = 0; r < rc; r++)
                    for (int h = 0; h < Y9K_BLOCK_ROWS; h += 16) {
                        const float *g = w + b * block + (long) (r0 + r) * 9 * Y9K_BLOCK_ROWS + h;
                        float *u = scratch + r * W + b * Y9K_BLOCK_ROWS + h;
                        if (planes == 36)
                            y9k_transform16_f4(g, Y9K_BLOCK_ROWS, u, plane);
                        else
                            y9k_transform16(g, Y9K_BLOCK_ROWS, dest, u, plane);
                    }
        /* while plane k multiplies: plane k+1's V rows and 1/16 of the next chunk's
           weights into the cache: from blocks, up to Y9K_CHUNK rows of 9 x 32 floats (18
           lines each) of the first block (the hardware follows the second); in place, the
           next chunk's taps of each filter (9 x 4 lines a 16 channels), filter by filter */
        int next_rc = R - r0 - rc < Y9K_CHUNK ? R - r0 - rc : Y9K_CHUNK;
        long per_filter = ((long) next_rc * 9 + 15) / 16;
        long next_lines = ldw ? per_filter * rows : (long) next_rc * 18;
        const float *next_w = ldw ? w + (long) (r0 + rc) * 9
                                  : w + (long) (r0 + rc) * 9 * Y9K_BLOCK_ROWS;
        /* in place: line `line` of the next chunk is line `in_filter` of filter `filter`,
           counted along (a 64-bit division and remainder per line cost 3% of the kernel) */
        long filter = 0, in_filter = 0;
        for (int k = 0; k < planes; k++) {
            long lo = next_lines * k / planes, hi = next_lines * (k + 1) / planes;
            if (ldw)
                for (long line = lo; line < hi; line++) {
                    _mm_prefetch((const char *) (next_w + filter * ldw + in_filter * 16),
                                 _MM_HINT_T1);
                    if (++in_filter == per_filter) {
                        in_filter = 0;
                        filter++;
                    }
                }
            y9k_products_plane(2 * nblocks, scratch + k * plane, rc,
                               v + k * v_plane + (long) r0 * ldv, ldv, N, acc + k * sums,
                               r0 > 0,
                               k < planes - 1 ? v + (k + 1) * v_plane + (long) r0 * ldv : NULL,
                               next_w + lo * 16, ldw ? 0 : (int) (hi - lo));
        }
    }
    static const double f4_scales[6] = {Y9K_F4_G_ROW_SCALES};
    for (int k = 0; k < planes; k++) {
        /* F(4x4, 3x3): d_i d_j, rounded once */
        float scale = planes == 36 ? (float) (f4_scales[k / 6] * f4_scales[k % 6]) : 1.0f;
        for (int o = 0; o < rows; o++)
            for (int j = 0; j < N; j++)
                m[k * m_plane + (long) o * ldm + j] = acc[k * sums + (long) j * W + o] * scale;
    }
}

/* floats of y9k_plane_rows's scratch for N columns: the chunk's rows (Y9K_CHUNK x 64) and
   the sums (N x 64), 64-byte aligned */
#define Y9K_PLANE_SCRATCH(N) ((long) Y9K_CHUNK * 64 + (long) (((N) + 15) / 16 * 16) * 64)

/* One job of the products of already transformed filters (F(4x4, 3x3)'s U, whose planes
   BLAS packs for every call at 26x26: 49 columns an image): m = u @ v for `rows` (<= 64)
   rows of one plane, u's rows ldu apart (R values each, contiguous), v (R rows of N, ldv
   apart), m (rows of N, ldm apart). Chunk by chunk of Y9K_CHUNK reduction indices the rows
   are turned into reduction-major order in the thread's cache (16 x 16 transposes, zeros past
   `rows` and R), then multiplied as y9k_winograd_rows's planes are: each sum adds its terms in
   the order of r, one fused multiply-add each, whatever the columns and the threads (the
   portable twin, winograd_products.pxi's _plane_rows_portable, adds the same). */
__attribute__((target("avx512f")))
static void y9k_plane_rows(const float *u, long ldu, int rows, int R, const float *v,
                           long ldv, int N, float *m, long ldm, float *scratch,
                           const float *next_u, int next_rows)
{
    const int rowv = rows > 32 ? 4 : 2, W = 16 * rowv;
    float *a = scratch, *acc = scratch + (long) Y9K_CHUNK * 64;
    for (int r0 = 0; r0 < R; r0 += Y9K_CHUNK) {
        int rc = R - r0 < Y9K_CHUNK ? R - r0 : Y9K_CHUNK;
        for (int h = 0; h < W; h += 16)
            for (int r = 0; r < rc; r += 16) {
                int left = rc - r;
                __mmask16 mask = left >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << left) - 1);
                __m512 g[16];
                for (int i = 0; i < 16; i++)
                    g[i] = h + i < rows
                           ? _mm512_maskz_loadu_ps(mask, u + (long) (h + i) * ldu + r0 + r)
                           : _mm512_setzero_ps();
                y9k_transpose16(g, a + (long) r * W + h, W);
            }
        int next = r0 + rc < R;
        /* the next chunk's rows (or the next job's first) into the cache while this one
           multiplies: 64 rows of up to 4 lines, too many streams for the hardware's */
        const float *pu = next ? u + r0 + rc : next_u;
        int prows = next ? rows : next_rows, pc = next ? R - r0 - rc : R;
        int plines = ((pc < Y9K_CHUNK ? pc : Y9K_CHUNK) + 15) / 16;
        for (int o = 0; o < prows; o++)
            for (int l = 0; l < plines; l++)
                _mm_prefetch((const char *) (pu + (long) o * ldu + 16 * l), _MM_HINT_T1);
        y9k_products_plane(rowv, a, rc, v + (long) r0 * ldv, ldv, N, acc, r0 > 0, NULL, NULL,
                           0);
    }
    for (int o = 0; o < rows; o++)
        for (int j = 0; j < N; j++)
            m[(long) o * ldm + j] = acc[(long) j * W + o];
}
#else
static void y9k_input_tile_row16(const float *x, int H, int W, int ti, float *out,
                                 ptrdiff_t plane)
{ (void)x; (void)H; (void)W; (void)ti; (void)out; (void)plane; }
static void y9k_output_grad_tile_row16(const float *dz, int H, int W, int ti, float *out,
                                       ptrdiff_t plane)
{ (void)dz; (void)H; (void)W; (void)ti; (void)out; (void)plane; }
#define Y9K_REGROUP_FLOATS (16 * 9 * 16)
static void y9k_winograd_rows(const float *w, long ldw, int nblocks, int rows, int R,
                              int planes, const int *dest, const float *v, long v_plane,
                              long ldv, int N, float *m, long m_plane, long ldm, float *scratch)
{ (void)w; (void)ldw; (void)nblocks; (void)rows; (void)R; (void)planes; (void)dest; (void)v; (void)v_plane; (void)ldv; (void)N;
  (void)m; (void)m_plane; (void)ldm; (void)scratch; }
#define Y9K_PLANE_SCRATCH(N) ((long) Y9K_CHUNK * 64 + (long) (((N) + 15) / 16 * 16) * 64)
static void y9k_plane_rows(const float *u, long ldu, int rows, int R, const float *v,
                           long ldv, int N, float *m, long ldm, float *scratch,
                           const float *next_u, int next_rows)
{ (void)next_u; (void)next_rows; (void)u; (void)ldu; (void)rows; (void)R; (void)v; (void)ldv; (void)N; (void)m; (void)ldm;
  (void)scratch; }
#endif

#endif
