# The C of the compiled core (the headers in csrc/), declared once for every section of
# _kernels.pyx.

cdef extern from "team.h":
    # the team of threads (team.c) and its jobs (y9k.h's y9k_team and y9k_team_for)
    int y9k_team_workers() noexcept nogil
    long y9k_team_spin_us() noexcept nogil
    ctypedef void (*y9k_team_job)(void* ctx, int member, int members) noexcept nogil
    ctypedef void (*y9k_team_item)(void* ctx, long i) noexcept nogil
    long y9k_team_take(long* next, long chunk) noexcept nogil
    void y9k_team_share(long n, int member, int members, long* begin, long* end) noexcept nogil

cdef extern from "y9k.h":
    # activation codes (exported as ACT_* for layers/activations.py)
    enum:
        Y9K_ACT_LINEAR
        Y9K_ACT_LEAKY
        Y9K_ACT_RELU
        Y9K_ACT_LOGISTIC

    # cblas_sgemm (ILP64) by address, and its codes
    ctypedef void (*y9k_sgemm_ilp64)(int order, int trans_a, int trans_b, long long m,
                                     long long n, long long k, float alpha, const float* a,
                                     long long lda, const float* b, long long ldb, float beta,
                                     float* c, long long ldc) noexcept nogil
    enum:
        Y9K_CBLAS_ROW_MAJOR
        Y9K_CBLAS_NO_TRANS
        Y9K_CBLAS_TRANS

    # OpenMP, or one thread without it
    int y9k_have_openmp() noexcept nogil
    void y9k_set_num_threads(int n) noexcept nogil
    int y9k_max_threads() noexcept nogil
    int y9k_thread_num() noexcept nogil
    void y9k_team(y9k_team_job job, void* ctx) noexcept nogil
    int y9k_team_members() noexcept nogil
    void y9k_team_for(long n, y9k_team_item item, void* ctx) noexcept nogil

cdef extern from "y9k.h":
    # the instruction-set paths (bits of y9k_cpu_features) and the switch that turns them off
    enum:
        Y9K_SSE2
        Y9K_AVX2_FMA
        Y9K_AVX512F
        Y9K_AVX512_BF16
        Y9K_AMX_BF16
        Y9K_AVX512_VNNI
        Y9K_AMX_INT8
    int y9k_cpu_features() noexcept nogil
    int y9k_portable_requested() noexcept nogil
    int y9k_amx_refused() noexcept nogil

cdef extern from "batchnorm_x86.h":
    void y9k_shifted_sums(const float* x, long n, float shift, double* sums,
                          int avx512) noexcept nogil
    void y9k_normalize_activate(const float* src, float* dst, long n, float m, float k,
                                float a, float b, int act, int avx512) noexcept nogil
    double y9k_bn_grad_sums(const float* d, const float* z, long n, float m, float k, float a,
                            float b, float slope, double* sum_tx, int avx512) noexcept nogil
    void y9k_bn_grad_write(const float* d, const float* z, float* out, long n, float m,
                           float k, float a, float b, float slope, float mean_term, float cx,
                           int avx512) noexcept nogil

cdef extern from "maxpool_sse2.h":
    void y9k_maxpool_2x2_s2_row(const float* top, float* out, int W, int out_w) noexcept nogil
    void y9k_maxpool_2x2_s1_backward_plane(const float* x, const float* y, const float* dy,
                                           float* dx, int H, int W) noexcept nogil
    void y9k_maxpool_2x2_s2_backward_row(const float* top, const float* y, const float* dy,
                                         float* dtop, int W, int out_w,
                                         int sse2) noexcept nogil

cdef extern from "direct_conv_x86.h":
    enum:
        Y9K_DIRECT_BLOCK
        Y9K_DIRECT_MAX_TAPS
    void y9k_direct_block64(const float* const* tap, int taps, const float* w, int x0,
                            float a, float b, int act, float* out, int n) noexcept nogil
    void y9k_direct_wgrad_row(const float* const* tap, int taps, const float* g, int n,
                              double* acc) noexcept nogil
    enum:
        Y9K_WGRAD_BAND_VALUES
    void y9k_direct_wgrad_band(const float* const* tap, int taps, long ldx, const float* g,
                               long fstride, int F, int n, int rows, double* acc) noexcept nogil
    void y9k_direct4_block64(const float* const* tap, int taps, const float* w, int x0,
                             const float* a, const float* b, int act, float* out,
                             long out_stride, int n) noexcept nogil
    void y9k_direct6_block64(const float* const* tap, int taps, const float* w, int x0,
                             const float* a, const float* b, int act, float* out,
                             long out_stride, int n) noexcept nogil

cdef extern from "winograd_x86.h":
    void y9k_input_tile_row16(const float* x, int H, int W, int ti, float* out,
                              Py_ssize_t plane) noexcept nogil
    void y9k_output_grad_tile_row16(const float* dz, int H, int W, int ti, float* out,
                                    Py_ssize_t plane) noexcept nogil
    enum:
        Y9K_BLOCK_ROWS
        Y9K_CHUNK
        Y9K_REGROUP_FLOATS
    void y9k_winograd_rows(const float* w, long ldw, int nblocks, int rows, int R,
                           int planes, const int* dest, const float* v, long v_plane, long ldv, int N,
                           float* m, long m_plane, long ldm, float* scratch) noexcept nogil
    long Y9K_PLANE_SCRATCH(int N) noexcept nogil
    void y9k_plane_rows(const float* u, long ldu, int rows, int R, const float* v, long ldv,
                        int N, float* m, long ldm, float* scratch, const float* next_u,
                        int next_rows) noexcept nogil

cdef extern from "winograd4_transforms.h":
    void y9k_input4_tile_row(const float* x, int H, int W, int ti, float* buf, float* out,
                             int tw, Py_ssize_t plane) noexcept nogil
    void y9k_input4_tile_row16(const float* x, int H, int W, int ti, float* out,
                               Py_ssize_t plane) noexcept nogil
    void y9k_input4_tile_row_avx512(const float* x, int H, int W, int ti, float* buf,
                                    float* out, int tw, Py_ssize_t plane) noexcept nogil
    void y9k_output4_block(const float* src, Py_ssize_t plane, int nb,
                           float* yv) noexcept nogil
    void y9k_output_grad4_tile_row(const float* dz, int H, int W, int ti, float* buf,
                                   float* out, int tw, Py_ssize_t plane) noexcept nogil
    void y9k_output_grad4_tile_row_avx512(const float* dz, int H, int W, int ti, float* buf,
                                          float* out, int tw, Py_ssize_t plane) noexcept nogil
    void y9k_output4_block_avx512(const float* src, Py_ssize_t plane, int nb,
                                  float* yv) noexcept nogil

cdef extern from "block_pool.h":
    int y9k_use_block_pool(size_t limit) except -1
    size_t y9k_pool_held()

cdef extern from "lowp_x86.h":
    ctypedef unsigned short uint16_t
    enum:
        Y9K_LOWP_BLOCK
        Y9K_BF16_PORTABLE
        Y9K_BF16_AVX512
        Y9K_BF16_AMX
    long y9k_lowp_round_up(long v) noexcept nogil
    void y9k_bf16_pack_a(const float* w, long ldw, int M, int K, uint16_t* out) noexcept nogil
    void y9k_bf16_pack_b(const float* b, long ldb, int K, int N, uint16_t* out,
                         int avx512) noexcept nogil
    void y9k_bf16_pack_im2col(const float* x, int C, int H, int W, int ksize, int stride,
                              int pad, int OH, int OW, uint16_t* out, int avx512) noexcept nogil
    long y9k_pairs_rows(int H, int W, int pad) noexcept nogil
    long y9k_pairs_plane(int H, int W, int pad) noexcept nogil
    long y9k_pairs_width(int W, int pad) noexcept nogil
    void y9k_bf16_pack_pairs(const float* x, int C, int H, int W, int pad, int Cp,
                             uint16_t* out, int avx512) noexcept nogil
    ctypedef struct y9k_pairs_out:
        uint16_t* data
        long plane
        long width
        int pad
        int avx512
    void y9k_bf16_conv_amx(int M, int C, int H, int W, int ksize, int pad, const uint16_t* wp,
                           const uint16_t* xb, const float* a, const float* b, int act,
                           int pool, float* out, const y9k_pairs_out* pairs) noexcept nogil
    void y9k_bf16_gemm(int kernel, int M, int N, int K, const uint16_t* wp, const uint16_t* bp,
                       const float* a, const float* b, int act, float* out,
                       long ldo) noexcept nogil
    long y9k_rgb_plane(int H, int W, int pad) noexcept nogil
    void y9k_bf16_pack_image(const float* x, int C, int H, int W, int pad, uint16_t* out,
                             int avx512) noexcept nogil
    ctypedef struct y9k_pooled_sink:
        pass
    void y9k_bf16_conv_rgb(int kernel, int M, int C, int H, int W, int ksize, int pad,
                           const uint16_t* wp, const uint16_t* img, const float* a,
                           const float* b, int act, int pool, float* out,
                           const y9k_pairs_out* pairs,
                           const y9k_pooled_sink* sink) noexcept nogil

cdef extern from "int8_x86.h":
    ctypedef signed char int8_t
    ctypedef int int32_t
    enum:
        Y9K_INT8_DEPTH
        Y9K_INT8_PORTABLE
        Y9K_INT8_VNNI
        Y9K_INT8_AMX
    long y9k_int8_round_depth(long k) noexcept nogil
    void y9k_int8_pack_a(const int8_t* w, long ldw, int M, int K, int8_t* out) noexcept nogil
    void y9k_int8_pack_direct(const int8_t* w, long ldw, int M, int K, int8_t* out) noexcept nogil
    long y9k_image_size(int C, int H, int W) noexcept nogil
    void y9k_int8_pack_im2col(const float* x, float s, int C, int H, int W, int ksize,
                              int stride, int pad, int OH, int OW, int8_t* out, int8_t* image,
                              int avx512) noexcept nogil
    int y9k_direct_slots(int C) noexcept nogil
    int y9k_direct_taps(int C) noexcept nogil
    long y9k_direct_depth(int C, int ksize) noexcept nogil
    long y9k_cl_size(int C, int H, int W, int pad) noexcept nogil
    void y9k_int8_pack_cl(const float* x, float s, int C, int H, int W, int pad,
                          int8_t* out, int avx512) noexcept nogil
    void y9k_int8_conv_amx(int M, int C, int H, int W, int ksize, int pad, const int8_t* wp,
                           const int8_t* xq, const float* a, const float* b, int act,
                           int pool, float* out, int8_t* qout, float qscale,
                           int qpad, const y9k_pairs_out* pairs) noexcept nogil
    void y9k_bf16_conv_rgb_cl(int kernel, int M, int C, int H, int W, int ksize, int pad,
                              const uint16_t* wp, const uint16_t* img, const float* a,
                              const float* b, int act, int8_t* qout, float qscale,
                              int qpad, int avx512) noexcept nogil
    void y9k_int8_gemm(int kernel, int M, int N, int K, const int8_t* wp, const int8_t* bp,
                       const int32_t* offsets, const float* a, const float* b, int act,
                       float* out, long ldo, int avx512) noexcept nogil
