/* Batch norm's training passes over one run of floats (batchnorm.pxi), written once and
   compiled twice by batchnorm_x86.h: Y9K_BN_NAME(f) names this copy's functions and
   Y9K_BN_TARGET is its instruction set (none: the build's baseline, the portable twin).
   No include guard: included once per copy. The elementwise passes give the same bits in
   either copy (the same operations on each value, none fused into an FMA); the sums are the
   same sums, their float blocks vectorised at each copy's width. */

/* sums[0] += sum (x - shift), sums[1] += sum (x - shift)^2: float sums per block of
   Y9K_SUM_BLOCK values (vectorised), each block's added in double */
Y9K_BN_TARGET
static void Y9K_BN_NAME(y9k_shifted_sums)(const float *x, long n, float shift, double *sums)
{
    for (long j = 0; j < n; j += Y9K_SUM_BLOCK) {
        long end = j + Y9K_SUM_BLOCK < n ? j + Y9K_SUM_BLOCK : n;
        float bs = 0, bq = 0;
        for (long i = j; i < end; i++) {
            float d = x[i] - shift;
            bs += d;
            bq += d * d;
        }
        sums[0] += bs;
        sums[1] += bq;
    }
}

/* dst = act(a * ((src - m) * k) + b) for the piecewise-linear activations (leaky's 0.1 * v
   in double, as darknet's .1*x; max as a select that vectorises). Never inlined: the pooled
   training pair's backward finds each window's winner by recomputing these values and
   comparing them with the forward's maxima for equality, so every caller must run the one
   compiled body (-ffast-math may compile an inlined copy's arithmetic differently) */
Y9K_BN_TARGET __attribute__((noinline))
static void Y9K_BN_NAME(y9k_normalize_activate)(const float *src, float *dst, long n, float m,
                                                float k, float a, float b, int act)
{
    if (act == Y9K_ACT_LEAKY) {
        for (long i = 0; i < n; i++) {
            float v = a * ((src[i] - m) * k) + b;
            float w = (float) (0.1 * v);
            dst[i] = v > w ? v : w;
        }
    } else if (act == Y9K_ACT_RELU) {
        for (long i = 0; i < n; i++) {
            float v = a * ((src[i] - m) * k) + b;
            dst[i] = v > 0 ? v : 0;
        }
    } else {
        for (long i = 0; i < n; i++)
            dst[i] = a * ((src[i] - m) * k) + b;
    }
}

/* returns sum t and adds sum t * xh to *sum_tx, xh = (z - m) * k, t = d where
   a * xh + b > 0, else slope * d; float block sums as y9k_shifted_sums */
Y9K_BN_TARGET
static double Y9K_BN_NAME(y9k_bn_grad_sums)(const float *d, const float *z, long n, float m,
                                            float k, float a, float b, float slope,
                                            double *sum_tx)
{
    double total = 0;
    for (long j = 0; j < n; j += Y9K_SUM_BLOCK) {
        long end = j + Y9K_SUM_BLOCK < n ? j + Y9K_SUM_BLOCK : n;
        float bs = 0, bx = 0;
        for (long i = j; i < end; i++) {
            float xh = (z[i] - m) * k;
            float t = a * xh + b > 0 ? d[i] : slope * d[i];
            bs += t;
            bx += t * xh;
        }
        total += bs;
        *sum_tx += bx;
    }
    return total;
}

/* out = (a * t - mean_term) * k - cx * xh, t and xh as in y9k_bn_grad_sums (out may be d) */
Y9K_BN_TARGET
static void Y9K_BN_NAME(y9k_bn_grad_write)(const float *d, const float *z, float *out, long n,
                                           float m, float k, float a, float b, float slope,
                                           float mean_term, float cx)
{
    for (long i = 0; i < n; i++) {
        float xh = (z[i] - m) * k;
        float t = a * xh + b > 0 ? d[i] : slope * d[i];
        out[i] = (a * t - mean_term) * k - cx * xh;
    }
}
