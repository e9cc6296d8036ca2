import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))   # gradcheck.py, torch_darknet.py

# Fixtures every clone has (see data/README.md).
DATA = TESTS / "data"
GOLDEN = DATA / "golden"           # darknet's own numbers on the miniature YOLOv2
REFERENCE_CFG = DATA / "cfg"       # darknet's published cfgs
REFERENCE_NAMES = DATA / "names"   # voc/coco names, the 9k WordTree
IMAGES = DATA / "images"           # real photographs

# Only the VOC sample stays outside the repository; tests that need it skip with a reason.
VOC_SAMPLE = TESTS.parents[1] / "shared" / "voc2007-sample"


def run_folder_args(folder):
    """--project/--name options that make a command write into exactly `folder`."""
    folder = Path(folder)
    return ["--project", str(folder.parent), "--name", folder.name]


def scalar_iou(a, b):
    """IoU of two xyxy boxes in plain Python: the independent reference for the array code."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
