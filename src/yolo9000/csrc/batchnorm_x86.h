/* Batch norm's training passes (batchnorm_passes.h) twice: the portable twin, and for
   AVX-512 where the CPU has it (`avx512`: 0 under YOLO9000_PORTABLE_KERNELS), 16 floats a
   step instead of the baseline's 4. These passes run at the speed of their arithmetic while
   their data sit in the cache: on darknet-mini's six layers, one thread, the backward 11.7
   -> 7.4-9.1 ms, the activate pass 4.0 -> 2.6 (see BENCHMARKS.md#batch-norm-passes). */
#ifndef Y9K_BATCHNORM_X86_H
#define Y9K_BATCHNORM_X86_H

#include "y9k.h"

/* values per float block of the sums before the block's sum goes into a double */
#define Y9K_SUM_BLOCK 256

#define Y9K_BN_NAME(f) f##_portable
#define Y9K_BN_TARGET
#include "batchnorm_passes.h"
#undef Y9K_BN_NAME
#undef Y9K_BN_TARGET

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define Y9K_HAVE_BN_AVX512 1
/* AVX-512 brings FMA, which would round a * b + c once: contraction off keeps the bits */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#define Y9K_BN_NAME(f) f##_avx512
#define Y9K_BN_TARGET __attribute__((target("avx512f,prefer-vector-width=512")))
#include "batchnorm_passes.h"
#undef Y9K_BN_NAME
#undef Y9K_BN_TARGET
#pragma GCC pop_options
#else
#define Y9K_HAVE_BN_AVX512 0
#endif

#if Y9K_HAVE_BN_AVX512
#define Y9K_BN_CHOOSE(f, avx512) ((avx512) ? f##_avx512 : f##_portable)
#else
#define Y9K_BN_CHOOSE(f, avx512) f##_portable
#endif

static inline void y9k_shifted_sums(const float *x, long n, float shift, double *sums, int avx512)
{
    Y9K_BN_CHOOSE(y9k_shifted_sums, avx512)(x, n, shift, sums);
}

static inline void y9k_normalize_activate(const float *src, float *dst, long n, float m,
                                          float k, float a, float b, int act, int avx512)
{
    Y9K_BN_CHOOSE(y9k_normalize_activate, avx512)(src, dst, n, m, k, a, b, act);
}

static inline double y9k_bn_grad_sums(const float *d, const float *z, long n, float m, float k,
                                      float a, float b, float slope, double *sum_tx, int avx512)
{
    return Y9K_BN_CHOOSE(y9k_bn_grad_sums, avx512)(d, z, n, m, k, a, b, slope, sum_tx);
}

static inline void y9k_bn_grad_write(const float *d, const float *z, float *out, long n,
                                     float m, float k, float a, float b, float slope,
                                     float mean_term, float cx, int avx512)
{
    Y9K_BN_CHOOSE(y9k_bn_grad_write, avx512)(d, z, out, n, m, k, a, b, slope, mean_term, cx);
}

#endif
