"""yolo9000: YOLOv2 / YOLO9000 object detection on the CPU, NumPy with a Cython core."""
import os as _os

# Two thread pools share the cores: OpenBLAS's (matrix products) and OpenMP's (the Cython
# kernels), called alternately many times per layer. Left spinning after their work, each
# pool's idle threads steal the cores the other one needs, which makes two threads slower than
# one. Both must be told before the libraries load (so before NumPy is imported, which the CLI
# guarantees); an explicit setting in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from ._version import __version__  # noqa: E402
from .errors import UserError  # noqa: E402

__all__ = ["Network", "Detector", "UserError", "export_onnx", "set_threads", "__version__"]


def __getattr__(name):
    # Imported on first use, so `yolo9000 --help` and light commands stay fast and the thread
    # settings of `yolo9000 --threads` are in place before NumPy's BLAS starts.
    if name == "Network":
        from .model.network import Network
        return Network
    if name == "Detector":
        from .inference.detector import Detector
        return Detector
    if name == "export_onnx":
        from .model.onnx_export import export_onnx
        return export_onnx
    if name == "set_threads":
        from .kernels.threads import set_threads
        return set_threads
    raise AttributeError(f"module 'yolo9000' has no attribute {name!r}")
