"""The inference precisions' names, without NumPy (the CLI's options are built before
--threads is applied; kernels/lowp.py runs them)."""
FP32, BF16, INT8 = "fp32", "bf16", "int8"
PRECISIONS = (FP32, BF16, INT8)
AUTO = "auto"
# what --precision and the Python API accept
PRECISION_CHOICES = PRECISIONS + (AUTO,)
