# Threads and instruction sets: OpenMP's thread count, and which instruction-set paths
# the kernels take (the check and the switch: y9k.h).
# (a section of the compiled core: ../_kernels.pyx includes it)

# the instruction-set paths the kernels take, read once at import (csrc/y9k.h): the CPU's,
# or none (the portable twins) when YOLO9000_PORTABLE_KERNELS is set
cdef bint _portable = y9k_portable_requested()
cdef int _paths = 0 if _portable else y9k_cpu_features()
# the AVX-512 kernels' switch (the 4-filter direct kernel, the 13x13 input transform, the
# products from weight blocks, F(4x4, 3x3)'s transforms, batch norm's training passes) and the
# AVX2+FMA one (the direct kernel)
cdef bint _avx512 = (_paths & Y9K_AVX512F) != 0
cdef bint _avx2_fma = (_paths & Y9K_AVX2_FMA) != 0


def openmp_enabled():
    return bool(y9k_have_openmp())


def set_num_threads(int n):
    y9k_set_num_threads(n)


def get_max_threads():
    return y9k_max_threads()


def team_state():
    """The low-precision kernels' team (csrc/team.c): the workers started so far, and how many
    microseconds an idle one looks for work before it sleeps (-1 before the team's first
    job)."""
    return {"workers": y9k_team_workers(), "spin_us": y9k_team_spin_us()}


def cpu_features():
    """Which instruction-set paths the kernels take here: sse2, avx2_fma, avx512f,
    avx512_bf16, amx_bf16, avx512_vnni and amx_int8 each True when the CPU (and the build) has
    it and YOLO9000_PORTABLE_KERNELS did not turn it off (AMX: and Linux granted its tile
    state; amx_refused says it did not); portable_kernels: whether that switch was set when the
    module was imported."""
    return {"sse2": bool(_paths & Y9K_SSE2), "avx2_fma": _avx2_fma, "avx512f": _avx512,
            "avx512_bf16": bool(_paths & Y9K_AVX512_BF16), "amx_bf16": bool(_paths & Y9K_AMX_BF16),
            "avx512_vnni": bool(_paths & Y9K_AVX512_VNNI), "amx_int8": bool(_paths & Y9K_AMX_INT8),
            "amx_refused": bool(y9k_amx_refused()), "portable_kernels": _portable}
