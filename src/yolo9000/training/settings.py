"""A training run's settings (TrainSettings: the `yolo9000 train` options, None where the cfg
decides) and their round trip through the run folder's args.json."""
import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from ..errors import UserError


@dataclass
class TrainSettings:
    cfg: str                         # cfg path, bundled name or .h5 checkpoint (its cfg)
    data: str                        # training dataset path
    val: str = None                  # validation dataset path
    classification_data: str = None  # YOLO9000 joint training: classification images
    classification_ratio: float = None   # their share of each mini-batch
    names: str = None                # names file overriding the dataset's
    weights: str = None              # initial weights (.weights, with cutoff, or .h5)
    cutoff: int = None
    out: str = None                  # run folder
    max_batches: int = None
    epochs: float = None             # instead of max_batches: passes over the training set
    val_fraction: float = None       # classification: share of --data held out for validation
    batch: int = None
    subdivisions: int = None
    learning_rate: float = None
    momentum: float = None
    decay: float = None
    burn_in: int = None
    policy: str = None
    steps: list = None
    scales: list = None
    size: int = None                 # base input size (multiple of 32)
    multiscale: bool = True
    augment: bool = True
    anchors: list = None             # flat list of anchors in grid units (else the cfg's)
    optimizer: str = "sgd"           # darknet's SGD; "adam" for short runs from scratch
    workers: int = 2
    parallel: int = 1                # mini-batches (subdivisions) computed at once (replicas.py)
    seed: int = 0
    eval_every: int = 0              # 0: only at the end
    save_every: int = 100
    eval_thresh: float = 0.005
    nms: float = 0.45
    eval_batch: int = 8
    max_boxes: int = 30
    log: bool = True
    max_bad_steps: int = 0           # non-finite batches skipped before training stops


def _setting_problem(value, kind):
    """Why `value` cannot be a setting of type `kind` (None is every optional setting's
    'not given'), or None."""
    def number(v, integer=False):
        return (isinstance(v, int) or (isinstance(v, float) and not integer)) and \
            not isinstance(v, bool)
    if kind is bool:
        return None if isinstance(value, bool) else "should be true or false"
    if kind is int:
        return None if number(value, integer=True) else "should be a whole number"
    if kind is float:
        return None if number(value) else "should be a number"
    if kind is list:
        ok = isinstance(value, list) and all(number(v) for v in value)
        return None if ok else "should be a list of numbers"
    return None if isinstance(value, kind) else "should be text"


def load_settings(path):
    """The TrainSettings a run stored in its args.json, checked key by key: a hand-edited or
    damaged file is a UserError naming the setting, not a TypeError deep in training."""
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserError("args.json is not valid JSON", path=path) from None
    except OSError as e:
        raise UserError(f"cannot read args.json: {e.strerror}", path=path) from None
    if not isinstance(stored, dict):
        raise UserError("args.json should hold a JSON object of settings", path=path)
    stored.pop("extra", None)   # written (always empty) by 0.1.0 runs; no longer a setting
    known = {f.name: f for f in fields(TrainSettings)}
    unknown = sorted(set(stored) - set(known))
    if unknown:
        raise UserError(f"unknown training settings: {', '.join(unknown)}", path=path)
    for name, f in known.items():
        required = f.default is MISSING
        if name not in stored:
            if required:
                raise UserError(f"setting '{name}' is missing", path=path)
            continue
        value = stored[name]
        if value is None and not required:
            continue
        problem = _setting_problem(value, f.type)
        if problem:
            raise UserError(f"setting '{name}' {problem}, not {json.dumps(value)}", path=path)
    return TrainSettings(**stored)
