"""The compiled core's API, section by section: what layers and the Python kernels may take
from it (built from ../_kernels.pyx, whose sections are ../csrc/*.pxi)."""
from .._kernels import (  # noqa: F401
    # threads and instruction sets (platform.pxi)
    openmp_enabled, set_num_threads, get_max_threads, cpu_features, team_state,
    # activation codes and the fused scale + bias + activation (activation.pxi)
    ACT_LINEAR, ACT_LEAKY, ACT_RELU, ACT_LOGISTIC, scale_bias_activate,
    # im2col.pxi
    im2col, col2im, im2col_images, col2im_images,
    SMALL_MAP_MAX_POSITIONS, small_map_weights, small_map_weight_grad,
    # maxpool.pxi
    maxpool_forward, maxpool_backward, maxpool_tiles, maxpool_2x2_s2_backward,
    maxpool_same_2x2, maxpool_2x2_s1_backward,
    # batch norm in training (batchnorm.pxi)
    batchnorm_statistics, batchnorm_activate, batchnorm_activate_backward,
    batchnorm_activate_pooled, batchnorm_unpool, batchnorm_pooled_scratch_floats,
    # Winograd's transforms (winograd.pxi)
    winograd_filter, winograd_input, winograd_output, winograd_output_grad,
    winograd_filter_grad,
    # Winograd F(4x4, 3x3)'s transforms, their matrices given (winograd4.pxi)
    winograd4_filter, winograd4_input, winograd4_output, winograd4_output_grad,
    winograd4_filter_grad,
    # Winograd by bands of tile rows, few channels (winograd_banded.pxi)
    winograd_convolve_banded, winograd_weight_grad_banded, winograd4_convolve_banded,
    winograd4_weight_grad_banded,
    # Winograd's products from weight blocks, few tiles (winograd_products.pxi)
    WINOGRAD_BLOCK_ROWS, winograd_products_available, winograd_weight_blocks,
    winograd_products_from_weights, winograd_products_in_place, winograd_scratch_floats,
    winograd_products_planes, winograd_planes_scratch_floats,
    # the direct 3x3 convolution, few channels (direct.pxi)
    DIRECT_BLOCK, DIRECT_MAX_TAPS, direct_conv_available, conv3x3_direct,
    conv3x3_direct_pooled, conv3x3_direct_weight_grad,
    # one product in bands on the OpenMP threads (gemm.pxi)
    sgemm_pieces,
    # bf16 inference products: packing, the product with its epilogue (lowp.pxi)
    BF16_PORTABLE, BF16_AVX512, BF16_AMX, LOWP_BLOCK, bf16_kernels, bf16_padded,
    bf16_pack_weights, bf16_pack_columns, bf16_pack_im2col, bf16_matmul,
    bf16_pairs_size, bf16_pack_pairs, bf16_conv_amx, bf16_conv_amx_pairs,
    bf16_rgb_applies, bf16_image_size, bf16_pack_image, bf16_conv_rgb, bf16_conv_rgb_pairs,
    # int8 inference products: quantizing packings, the exact product with its epilogue
    # (int8.pxi)
    INT8_PORTABLE, INT8_VNNI, INT8_AMX, INT8_DEPTH, int8_kernels, int8_padded_depth,
    int8_weights_size, int8_columns_size, int8_image_size, int8_pack_weights,
    int8_pack_direct_weights, int8_pack_im2col, int8_matmul,
    int8_direct_slots, int8_direct_depth, int8_cl_size, int8_pack_cl, int8_conv_amx,
    int8_conv_amx_cl, int8_conv_amx_pairs, bf16_conv_rgb_cl,
    # optimiser updates (optim.pxi)
    UPDATE_CHUNK, UPDATE_SUMS, sgd_update, adam_update, copy_arrays, add_arrays,
    # the block pool for NumPy's large arrays (memory.pxi)
    use_block_pool, block_pool_bytes,
)
