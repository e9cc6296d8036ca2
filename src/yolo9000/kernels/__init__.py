"""The compiled core and the Python around it.

`core` is the compiled loops (src/yolo9000/_kernels.pyx and csrc/); `gemm` the threaded matrix
products, `winograd` the F(2x2,3x3) convolution, `workspace` the per-thread scratch buffers,
`threads` the BLAS/OpenMP thread settings. Layers take all of them from here.

Nothing is imported here: `yolo9000.kernels.threads` must load without NumPy, so that the CLI can
set thread counts before BLAS starts.
"""
