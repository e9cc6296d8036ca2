"""yolo9000: YOLOv2 / YOLO9000 object detection on the CPU, NumPy with a Cython core."""
from ._version import __version__
from .errors import UserError
from .network import Network

__all__ = ["Network", "Detector", "UserError", "__version__"]


def __getattr__(name):
    # Detector pulls in Pillow and the image pipeline; load it only when asked for
    if name == "Detector":
        from .detector import Detector
        return Detector
    raise AttributeError(f"module 'yolo9000' has no attribute {name!r}")
