"""yolo9000: YOLOv2 / YOLO9000 object detection on the CPU, NumPy with a Cython core."""
from ._version import __version__
from .errors import UserError

__all__ = ["Network", "Detector", "UserError", "set_threads", "__version__"]


def __getattr__(name):
    # Imported on first use, so `yolo9000 --help` and light commands stay fast and the thread
    # settings of `yolo9000 --threads` are in place before NumPy's BLAS starts.
    if name == "Network":
        from .network import Network
        return Network
    if name == "Detector":
        from .detector import Detector
        return Detector
    if name == "set_threads":
        from .threads import set_threads
        return set_threads
    raise AttributeError(f"module 'yolo9000' has no attribute {name!r}")
