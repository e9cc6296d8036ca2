"""The compiled loops: im2col/col2im, Winograd transforms, the direct 3x3 kernel, maxpool, the
fused scale+bias+activation epilogue and batch-norm statistics (source: ../_kernels.pyx)."""
from .._kernels import *  # noqa: F401,F403
