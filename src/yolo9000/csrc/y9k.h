/* What the parts of the compiled core share, one home each: the activation codes, the BLAS
   entry point, the OpenMP shims, the one CPU-feature check and the switch that turns the
   instruction-set-specific kernels off.

   Kernels written for an instruction set beyond the build's baseline are compiled for it
   alone (__attribute__((target(...)))) and chosen at run time, each beside a portable twin:
   the build needs no -march flag and the wheel runs on any x86-64 (or other) CPU. */
#ifndef Y9K_H
#define Y9K_H

#include <stdlib.h>
#include <string.h>
#include "team.h"

/* -- activation codes: layers/activations.py maps darknet's names to them -------------- */
enum {
    Y9K_ACT_LINEAR = 0,
    Y9K_ACT_LEAKY = 1,
    Y9K_ACT_RELU = 2,
    Y9K_ACT_LOGISTIC = 3
};

/* -- BLAS: cblas_sgemm with 64-bit integers (NumPy's ILP64 OpenBLAS), called through the
   address kernels/threads.py finds, and CBLAS's codes ---------------------------------- */
typedef void (*y9k_sgemm_ilp64)(int order, int trans_a, int trans_b, long long m, long long n,
                                long long k, float alpha, const float *a, long long lda,
                                const float *b, long long ldb, float beta, float *c,
                                long long ldc);
enum { Y9K_CBLAS_ROW_MAJOR = 101, Y9K_CBLAS_NO_TRANS = 111, Y9K_CBLAS_TRANS = 112 };

/* -- OpenMP, or one thread without it -------------------------------------------------- */
#ifdef _OPENMP
#include <omp.h>
static int y9k_have_openmp(void) { return 1; }
static void y9k_set_num_threads(int n) { omp_set_num_threads(n); }
static int y9k_max_threads(void) { return omp_get_max_threads(); }
static int y9k_thread_num(void) { return omp_get_thread_num(); }
#else
static int y9k_have_openmp(void) { return 0; }
static void y9k_set_num_threads(int n) { (void) n; }
static int y9k_max_threads(void) { return 1; }
static int y9k_thread_num(void) { return 0; }
#endif

/* the team's threads (team.c): as many as OpenMP's regions would have: the calling thread's count (set_threads sets the
   main thread's), so that scratch sized by get_max_threads has a row for every member */
static inline int y9k_team_members(void) { return y9k_max_threads(); }

/* job on y9k_team_members() threads at most (a member's scratch: y9k_team_members() of them) */
static inline void y9k_team(y9k_team_job job, void *ctx)
{
    y9k_team_run(y9k_team_members(), job, ctx);
}

/* item(ctx, i) for i in [0, n), the team's members taking even contiguous shares (the
   packers' loops over channel planes or rows) */
typedef void (*y9k_team_item)(void *ctx, long i);
typedef struct {
    y9k_team_item item;
    void *ctx;
    long n;
} y9k_team_items;

static void y9k_team_items_member(void *job, int member, int members)
{
    const y9k_team_items *j = (const y9k_team_items *) job;
    long first, end;
    y9k_team_share(j->n, member, members, &first, &end);
    for (long i = first; i < end; i++)
        j->item(j->ctx, i);
}

static inline void y9k_team_for(long n, y9k_team_item item, void *ctx)
{
    y9k_team_items j = {item, ctx, n};
    y9k_team(y9k_team_items_member, &j);
}

/* -- instruction sets ------------------------------------------------------------------ */
/* the instruction-set paths of the kernels, as bits */
enum {
    Y9K_SSE2 = 1,       /* compiled in where the build targets it (x86-64's baseline):
                           the 2x2/2 maxpool backward rows */
    Y9K_AVX2_FMA = 2,   /* the direct 3x3 kernel and its weight gradient */
    Y9K_AVX512F = 4,    /* the 4-filter direct kernel, the 13x13 input transform, the
                           Winograd products from weight blocks, F(4x4, 3x3)'s input and
                           output transforms, batch norm's training passes */
    Y9K_AVX512_BF16 = 8, /* bf16 products with vdpbf16ps (lowp_x86.h) */
    Y9K_AMX_BF16 = 16,  /* bf16 products on AMX tiles (tdpbf16ps), the kernel permitting */
    Y9K_AVX512_VNNI = 32, /* int8 products with vpdpbusd */
    Y9K_AMX_INT8 = 64   /* int8 products on AMX tiles, the kernel permitting */
};

#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Linux gives a process AMX's 8 KB of tile state only on request; 0 once granted (asked once
   per process, for all its threads), -1 when the kernel refuses (too old, or a seccomp or
   signal-stack limit): the AMX paths are then off and the next best kernel runs */
static int y9k_amx_permission(void)
{
    static int state = 1;       /* 1: not asked yet */
#if defined(__linux__) && defined(__x86_64__)
    if (state == 1) {
        const long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
        state = syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0 ? 0 : -1;
    }
#else
    state = -1;
#endif
    return state;
}

/* whether this CPU has AMX and the kernel refused it (set by y9k_cpu_features) */
static int y9k_amx_refused_flag = 0;

/* the paths this CPU (and this build) can take; asks for AMX's permission (once) */
static int y9k_cpu_features(void)
{
    int features = 0;
#if defined(__SSE2__)
    features |= Y9K_SSE2;
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        features |= Y9K_AVX2_FMA;
    if (__builtin_cpu_supports("avx512f"))
        features |= Y9K_AVX512F;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"))
        features |= Y9K_AVX512_BF16;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"))
        features |= Y9K_AVX512_VNNI;
    if (__builtin_cpu_supports("amx-tile")
            && (__builtin_cpu_supports("amx-bf16") || __builtin_cpu_supports("amx-int8"))) {
        if (y9k_amx_permission() == 0) {
            if (__builtin_cpu_supports("amx-bf16"))
                features |= Y9K_AMX_BF16;
            if (__builtin_cpu_supports("amx-int8"))
                features |= Y9K_AMX_INT8;
        } else {
            y9k_amx_refused_flag = 1;
        }
    }
#endif
    return features;
}

/* Set (to anything but "" or "0"), every path above is off and the portable twins run: to
   test them, and the numbers they give, on a machine that has the instruction sets. */
#define Y9K_PORTABLE_VARIABLE "YOLO9000_PORTABLE_KERNELS"

static int y9k_portable_requested(void)
{
    const char *value = getenv(Y9K_PORTABLE_VARIABLE);
    return value != NULL && value[0] != '\0' && strcmp(value, "0") != 0;
}

static int y9k_amx_refused(void) { return y9k_amx_refused_flag; }

#endif
