# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython core: the loops NumPy cannot express without extra passes or temporaries.

Every kernel works on float32 C-contiguous arrays supplied by the caller (so buffers can be
reused between calls) and releases the GIL; the outer loop runs in parallel with OpenMP when
the package was built with it. Matrix products stay with BLAS (NumPy's, or its sgemm called
from the kernels).

One extension module: its sections are the csrc/*.pxi files included below, their C the
headers in csrc/ (declared once in _kernels.pxd); kernels/core.py lists what it exports.
"""
import numpy as np
cimport cython
from cython.parallel cimport prange
from libc.math cimport expf, fmaxf, sqrtf
from libc.float cimport FLT_MAX
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

include "csrc/platform.pxi"
include "csrc/activation.pxi"
include "csrc/im2col.pxi"
include "csrc/maxpool.pxi"
include "csrc/batchnorm.pxi"
include "csrc/winograd.pxi"
include "csrc/winograd4.pxi"
include "csrc/winograd_banded.pxi"
include "csrc/winograd_products.pxi"
include "csrc/direct.pxi"
include "csrc/gemm.pxi"
include "csrc/lowp.pxi"
include "csrc/int8.pxi"
include "csrc/optim.pxi"
include "csrc/memory.pxi"
