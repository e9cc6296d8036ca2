"""Independent PyTorch reference implementation of darknet (YOLOv2-era) networks.

Used only by tests and benchmarks to check and time the project's own NumPy/Cython
implementation, so it deliberately imports nothing from ``yolo9000``.  Semantics
follow pjreddie/darknet (the commit the golden data in ``shared/reference/golden``
was produced with); the points where darknet differs from "textbook" layers are
documented next to the code that reproduces them.

Public API
----------
- ``parse_cfg(path) -> list[Section]``
- ``build_torch_net(cfg_path, width=None, height=None, return_all=True, tree_path=None)``
- ``load_darknet_weights(model, path) -> dict`` (header fields)
- ``write_random_darknet_weights(cfg_path, out_path, seed, width=None, height=None)``
- ``set_train_mode_bn(model, train=True, update_rolling=False)``
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# darknet adds this to the *standard deviation* (normalize_cpu), not to the variance.
BN_STD_EPS = 1e-6
LEAKY_SLOPE = 0.1


# --------------------------------------------------------------------------- cfg


@dataclass
class Section:
    kind: str
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0

    def get_int(self, key: str, default: int | None = None) -> int:
        if key not in self.options:
            if default is None:
                raise ValueError(f"[{self.kind}] at line {self.line}: missing '{key}'")
            return default
        return int(self.options[key])

    def get_float(self, key: str, default: float) -> float:
        return float(self.options[key]) if key in self.options else default

    def get_str(self, key: str, default: str) -> str:
        return self.options.get(key, default)

    def get_ints(self, key: str) -> list[int]:
        return [int(v) for v in self.options[key].split(",") if v != ""]

    def get_floats(self, key: str) -> list[float]:
        return [float(v) for v in self.options[key].split(",") if v != ""]


def parse_cfg(path) -> list[Section]:
    """Parse a darknet .cfg file the way darknet's read_cfg does.

    darknet removes *all* whitespace from a line before looking at it, so
    ``anchors = 1, 2`` and ``anchors=1,2`` are the same; lines starting with '#'
    or ';' are comments.  When a key repeats inside a section darknet's
    option_find returns the first occurrence, so we keep the first one too.
    """
    sections: list[Section] = []
    for lineno, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise ValueError(f"{path}:{lineno}: malformed section header {raw!r}")
            sections.append(Section(line[1:-1].lower(), {}, lineno))
            continue
        if not sections:
            raise ValueError(f"{path}:{lineno}: option outside of any section")
        if "=" not in line:
            raise ValueError(f"{path}:{lineno}: expected key=value, got {raw!r}")
        key, value = line.split("=", 1)
        sections[-1].options.setdefault(key, value)
    if not sections or sections[0].kind not in ("net", "network"):
        raise ValueError(f"{path}: first section must be [net]")
    return sections


# ------------------------------------------------------------------ layer plans


@dataclass
class LayerPlan:
    """One layer with its (C, H, W) input and output shapes, known before running."""

    index: int
    kind: str
    section: Section
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    sources: list[int] = field(default_factory=list)  # absolute indices (route/shortcut)


def _conv_padding(sec: Section) -> int:
    size = sec.get_int("size", 1)
    # darknet: `padding` is read first, then pad=1 overrides it with size/2.
    return size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)


def _maxpool_geometry(sec: Section, h: int, w: int):
    size = sec.get_int("size", 1)
    stride = sec.get_int("stride", 1)
    padding = sec.get_int("padding", size - 1)
    out_h = (h + padding - size) // stride + 1
    out_w = (w + padding - size) // stride + 1
    return size, stride, padding, out_h, out_w


def _resolve_sources(sec: Section, index: int, key: str) -> list[int]:
    sources = []
    for v in sec.get_ints(key):
        src = index + v if v < 0 else v
        if not 0 <= src < index:
            raise ValueError(f"layer {index}: {key} refers to layer {src}")
        sources.append(src)
    return sources


def plan_network(sections: list[Section], width=None, height=None) -> list[LayerPlan]:
    """Compute every layer's shapes without allocating anything big."""
    net = sections[0]
    c = net.get_int("channels", 3)
    h = height if height is not None else net.get_int("height")
    w = width if width is not None else net.get_int("width")
    plans: list[LayerPlan] = []
    for index, sec in enumerate(sections[1:]):
        in_shape = (c, h, w)
        sources: list[int] = []
        kind = sec.kind
        if kind in ("convolutional", "conv"):
            kind = "convolutional"
            size, stride = sec.get_int("size", 1), sec.get_int("stride", 1)
            pad = _conv_padding(sec)
            c = sec.get_int("filters", 1)
            h = (h + 2 * pad - size) // stride + 1
            w = (w + 2 * pad - size) // stride + 1
        elif kind in ("maxpool", "max"):
            kind = "maxpool"
            _, _, _, h, w = _maxpool_geometry(sec, h, w)
        elif kind == "reorg":
            s = sec.get_int("stride", 1)
            if sec.get_int("reverse", 0) or sec.get_int("flatten", 0) or sec.get_int("extra", 0):
                raise ValueError(f"layer {index}: only the plain reorg is supported")
            if h % s or w % s or c % (s * s):
                raise ValueError(f"layer {index}: reorg/{s} needs divisible sizes, got {in_shape}")
            c, h, w = c * s * s, h // s, w // s
        elif kind == "route":
            sources = _resolve_sources(sec, index, "layers")
            shapes = [plans[s].out_shape for s in sources]
            if any(sh[1:] != shapes[0][1:] for sh in shapes):
                raise ValueError(f"layer {index}: route inputs differ in size: {shapes}")
            c = sum(sh[0] for sh in shapes)
            h, w = shapes[0][1:]
        elif kind == "shortcut":
            sources = _resolve_sources(sec, index, "from")
            if plans[sources[0]].out_shape != in_shape:
                raise ValueError(f"layer {index}: shortcut with different shapes unsupported")
        elif kind in ("avgpool", "avg"):
            kind = "avgpool"
            h = w = 1
        elif kind in ("softmax", "soft", "cost", "region"):
            kind = {"soft": "softmax"}.get(kind, kind)
            if kind == "region":
                per_anchor = sec.get_int("coords", 4) + 1 + sec.get_int("classes", 20)
                if c != sec.get_int("num", 1) * per_anchor:
                    raise ValueError(
                        f"layer {index}: region expects {sec.get_int('num', 1) * per_anchor}"
                        f" channels, gets {c}")
        else:
            raise ValueError(f"layer {index}: unsupported section [{sec.kind}]")
        plans.append(LayerPlan(index, kind, sec, in_shape, (c, h, w), sources))
    return plans


# ---------------------------------------------------------------------- layers


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "leaky":
        return F.leaky_relu(x, LEAKY_SLOPE)
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    if name == "logistic":
        return torch.sigmoid(x)
    raise ValueError(f"unsupported activation {name!r}")


class DarknetConv(nn.Module):
    def __init__(self, plan: LayerPlan):
        super().__init__()
        sec = plan.section
        c_in = plan.in_shape[0]
        self.filters = plan.out_shape[0]
        self.size = sec.get_int("size", 1)
        self.stride = sec.get_int("stride", 1)
        self.padding = _conv_padding(sec)
        self.activation = sec.get_str("activation", "logistic")
        self.batch_normalize = bool(sec.get_int("batch_normalize", 0))
        if sec.get_int("groups", 1) != 1 or sec.get_int("dilation", 1) != 1:
            raise ValueError("grouped/dilated convolutions are not supported")
        self.weight = nn.Parameter(torch.zeros(self.filters, c_in, self.size, self.size))
        self.bias = nn.Parameter(torch.zeros(self.filters))
        if self.batch_normalize:
            self.scales = nn.Parameter(torch.ones(self.filters))
            self.register_buffer("rolling_mean", torch.zeros(self.filters))
            self.register_buffer("rolling_var", torch.ones(self.filters))
        # darknet decides BN statistics from net.train, not per layer; see set_train_mode_bn
        self.bn_batch_stats = False
        self.update_rolling = False
        self.idiomatic_bn = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, None, self.stride, self.padding)
        if self.batch_normalize:
            y = self._normalize(y)
            y = y * self.scales.view(1, -1, 1, 1)
        return _activate(y + self.bias.view(1, -1, 1, 1), self.activation)

    def _normalize(self, y: torch.Tensor) -> torch.Tensor:
        if self.bn_batch_stats and self.idiomatic_bn:
            # what nn.BatchNorm2d runs: one fused op (biased variance, eps inside the sqrt), for
            # timing; not darknet's numbers to the last digit
            return F.batch_norm(y, self.rolling_mean, self.rolling_var, training=True,
                                momentum=0.01 if self.update_rolling else 0.0, eps=1e-5)
        if self.bn_batch_stats:
            # darknet forward_batchnorm_layer with net.train: mean_cpu / variance_cpu over
            # (batch, spatial); variance_cpu divides by batch*spatial - 1 (unbiased).
            mean = y.mean(dim=(0, 2, 3))
            var = y.var(dim=(0, 2, 3), unbiased=True)
            if self.update_rolling:
                with torch.no_grad():  # darknet: rolling = .99*rolling + .01*batch
                    self.rolling_mean.mul_(0.99).add_(0.01 * mean.detach())
                    self.rolling_var.mul_(0.99).add_(0.01 * var.detach())
        else:
            mean, var = self.rolling_mean, self.rolling_var
        std = torch.sqrt(var) + BN_STD_EPS
        return (y - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


class DarknetMaxPool(nn.Module):
    """darknet maxpool: window start offset -padding/2, taps outside the map ignored.

    With the default padding = size-1 that is "pad (size-1)//2 before, the rest after";
    e.g. size=2 stride=1 pads one column/row on the right/bottom only and keeps the
    size.  Padding with -inf and then pooling unpadded reproduces 'ignored taps'.
    """

    def __init__(self, plan: LayerPlan):
        super().__init__()
        _, h, w = plan.in_shape
        self.size, self.stride, padding, out_h, out_w = _maxpool_geometry(plan.section, h, w)
        before = padding // 2
        after_h = max(0, (out_h - 1) * self.stride + self.size - h - before)
        after_w = max(0, (out_w - 1) * self.stride + self.size - w - before)
        self.pad = (before, after_w, before, after_h)  # F.pad order: left, right, top, bottom
        self.needs_pad = any(self.pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.needs_pad:
            x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class DarknetReorg(nn.Module):
    """darknet's reorg as its forward pass actually runs it (NOT space-to-depth).

    forward_reorg_layer calls reorg_cpu(input, w=W, h=H, c=C, batch, s, forward=0, out)
    which does out[in_index] = x[out_index] for i<W, j<H, k<C with
        in_index  = ((b*C + k)*H + j)*W + i
        c2 = k % (C/s^2), off = k // (C/s^2)
        out_index = ((b*(C/s^2) + c2)*(H*s) + j*s + off//s)*(W*s) + i*s + off%s
    i.e. the *input* buffer is reinterpreted as (C/s^2, H*s, W*s) and gathered into an
    output buffer read as (C, H, W); that buffer is then reinterpreted (flat) as the
    layer's (C*s^2, H/s, W/s) output.  In tensor terms:
        x.reshape(N, C/s^2, H, s, W, s)            # axes: c2, j, dy, i, dx
         .permute(0, 3, 5, 1, 2, 4)                # axes: dy, dx, c2, j, i
         .reshape(N, C*s^2, H/s, W/s)              # k = (dy*s + dx)*(C/s^2) + c2
    """

    def __init__(self, plan: LayerPlan):
        super().__init__()
        self.stride = plan.section.get_int("stride", 1)
        self.in_shape = plan.in_shape
        self.out_shape = plan.out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        c, h, w = self.in_shape
        s = self.stride
        y = x.reshape(n, c // (s * s), h, s, w, s).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(n, *self.out_shape)


def read_softmax_tree(path) -> tuple[np.ndarray, np.ndarray]:
    """darknet tree.c: each line 'name parent'; a group is a run of consecutive
    lines sharing the same parent.  Returns (parent per class, group id per class)."""
    parents = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts:
            parents.append(int(parts[1]) if len(parts) > 1 else -1)
    parents = np.asarray(parents, dtype=np.int64)
    starts = np.r_[True, parents[1:] != parents[:-1]]
    return parents, np.cumsum(starts) - 1


def grouped_softmax(x: torch.Tensor, group: torch.Tensor, n_groups: int, dim: int) -> torch.Tensor:
    """Softmax inside each group of entries along `dim` (group ids given per entry)."""
    shape = [1] * x.dim()
    shape[dim] = -1
    idx = group.view(shape).expand_as(x)
    out_shape = list(x.shape)
    out_shape[dim] = n_groups
    gmax = torch.full(out_shape, float("-inf"), dtype=x.dtype).scatter_reduce(
        dim, idx, x.detach(), reduce="amax", include_self=True)
    e = torch.exp(x - gmax.gather(dim, idx))
    gsum = torch.zeros(out_shape, dtype=x.dtype).scatter_add(dim, idx, e)
    return e / gsum.gather(dim, idx)


class DarknetRegion(nn.Module):
    """Region activation, channel = anchor*(coords+1+classes) + entry.

    x, y, objectness: logistic; w, h: raw; classes: softmax per anchor and cell
    (or logistic when softmax=0).  With a `tree`, the softmax runs separately in
    each sibling group of the hierarchy (darknet's GPU softmax_tree; pjreddie's CPU
    path at this commit indexes the tree groups with the pre-2017 interleaved layout
    and so scrambles them — we reproduce the intended, GPU, semantics).
    """

    def __init__(self, plan: LayerPlan, tree_path=None):
        super().__init__()
        sec = plan.section
        self.num = sec.get_int("num", 1)
        self.coords = sec.get_int("coords", 4)
        self.classes = sec.get_int("classes", 20)
        self.softmax = bool(sec.get_int("softmax", 0))
        self.anchors = sec.get_floats("anchors") if "anchors" in sec.options else []
        self.tree_groups = None
        if tree_path is not None:
            parents, groups = read_softmax_tree(tree_path)
            if len(parents) != self.classes:
                raise ValueError(f"{tree_path}: {len(parents)} classes, cfg says {self.classes}")
            self.register_buffer("tree_group_ids", torch.from_numpy(groups))
            self.tree_groups = int(groups[-1]) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        p = x.reshape(n, self.num, self.coords + 1 + self.classes, h, w)
        xy = torch.sigmoid(p[:, :, 0:2])
        wh = p[:, :, 2:self.coords]
        obj = torch.sigmoid(p[:, :, self.coords:self.coords + 1])
        cls = p[:, :, self.coords + 1:]
        if self.tree_groups is not None:
            cls = grouped_softmax(cls, self.tree_group_ids, self.tree_groups, dim=2)
        elif self.softmax:
            cls = torch.softmax(cls, dim=2)
        else:
            cls = torch.sigmoid(cls)
        return torch.cat([xy, wh, obj, cls], dim=2).reshape(x.shape)


class DarknetAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=True)


class DarknetSoftmax(nn.Module):
    """darknet softmax layer: groups of inputs/groups consecutive values per image."""

    def __init__(self, plan: LayerPlan):
        super().__init__()
        self.groups = plan.section.get_int("groups", 1)
        if plan.section.get_str("tree", ""):
            raise ValueError("softmax layer with a tree is not supported")

    def forward(self, x):
        n = x.shape[0]
        return torch.softmax(x.reshape(n, self.groups, -1), dim=2).reshape(x.shape)


class Identity(nn.Module):
    def forward(self, x):
        return x


class DarknetNet(nn.Module):
    """forward(x) returns the list of every layer's output (or only the last one)."""

    def __init__(self, plans: list[LayerPlan], layers: list[nn.Module], return_all: bool):
        super().__init__()
        self.plans = plans
        self.layers = nn.ModuleList(layers)
        self.return_all = return_all
        self.kinds = [p.kind for p in plans]
        self.output_shapes = [p.out_shape for p in plans]
        self.input_shape = plans[0].in_shape
        self._needed = {s for p in plans for s in p.sources}

    def conv_layers(self) -> list[DarknetConv]:
        return [m for m in self.layers if isinstance(m, DarknetConv)]

    def forward(self, x: torch.Tensor):
        outputs: list[torch.Tensor | None] = []
        for plan, layer in zip(self.plans, self.layers):
            if plan.kind == "route":
                parts = [outputs[s] for s in plan.sources]
                x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            elif plan.kind == "shortcut":
                sec = plan.section
                x = _activate(x + outputs[plan.sources[0]], sec.get_str("activation", "linear"))
            else:
                x = layer(x)
            keep = self.return_all or plan.index in self._needed
            outputs.append(x if keep else None)
        return outputs if self.return_all else x


def _find_tree(cfg_path: Path, value: str):
    candidates = [cfg_path.parent / value, cfg_path.parent.parent / value,
                  cfg_path.parent.parent / "data" / Path(value).name,
                  cfg_path.parent.parent / "names" / Path(value).name]   # tests/fixtures layout
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"{cfg_path}: tree file {value!r} not found (tried {[str(c) for c in candidates]}); "
        "pass tree_path=... or tree_path=False for a flat softmax")


def build_torch_net(cfg_path, width=None, height=None, return_all=True, tree_path=None) -> DarknetNet:
    """Build the network of a darknet .cfg (weights zero; see load_darknet_weights).

    tree_path: for a region layer with `tree=...` — None looks for the file next to
    the cfg (and in ../data/), a path uses that file, False ignores the tree.
    """
    cfg_path = Path(cfg_path)
    plans = plan_network(parse_cfg(cfg_path), width, height)
    layers: list[nn.Module] = []
    for plan in plans:
        if plan.kind == "convolutional":
            layers.append(DarknetConv(plan))
        elif plan.kind == "maxpool":
            layers.append(DarknetMaxPool(plan))
        elif plan.kind == "reorg":
            layers.append(DarknetReorg(plan))
        elif plan.kind == "region":
            tree = plan.section.get_str("tree", "")
            chosen = None
            if tree and tree_path is not False:
                chosen = tree_path if tree_path is not None else _find_tree(cfg_path, tree)
            layers.append(DarknetRegion(plan, chosen))
        elif plan.kind == "avgpool":
            layers.append(DarknetAvgPool())
        elif plan.kind == "softmax":
            layers.append(DarknetSoftmax(plan))
        else:  # route, shortcut (handled by DarknetNet), cost
            layers.append(Identity())
    return DarknetNet(plans, layers, return_all)


def set_train_mode_bn(model: DarknetNet, train: bool = True, update_rolling: bool = False,
                      idiomatic: bool = False) -> None:
    """Batch norm with batch statistics, as darknet's forward with net.train=1.

    Found in pjreddie blas.c: mean_cpu averages over batch*spatial, variance_cpu
    divides by (batch*spatial - 1) (unbiased), normalize_cpu computes
    (x - mean)/(sqrt(var) + 1e-6).  darknet also updates the rolling statistics
    (rolling = .99*rolling + .01*batch); enable with update_rolling=True.
    Gradients from autograd are the exact gradients of this forward; darknet's own
    backward (variance_delta_cpu/normalize_delta_cpu) uses var + 1e-5 instead, so
    it differs slightly from them.

    idiomatic=True normalises with F.batch_norm (what nn.BatchNorm2d runs in training) instead of
    darknet's formula written out in five autograd nodes: the PyTorch a user would write, for
    benchmarks; the equality tests keep the darknet-exact form.
    """
    for conv in model.conv_layers():
        conv.bn_batch_stats = train
        conv.update_rolling = train and update_rolling
        conv.idiomatic_bn = idiomatic


# --------------------------------------------------------------------- weights


def _conv_param_counts(conv_plan: LayerPlan) -> list[tuple[str, int]]:
    sec = conv_plan.section
    f = conv_plan.out_shape[0]
    size = sec.get_int("size", 1)
    names = [("bias", f)]
    if sec.get_int("batch_normalize", 0):
        names += [("scales", f), ("rolling_mean", f), ("rolling_var", f)]
    names.append(("weight", f * conv_plan.in_shape[0] * size * size))
    return names


def _read_header(buf: bytes) -> tuple[dict, int]:
    """Parse the header from the file's first (up to) 20 bytes; returns (fields, size)."""
    if len(buf) < 12:
        raise ValueError("weights file too short for its header")
    major, minor, revision = np.frombuffer(buf[:12], dtype="<i4")
    # darknet load_weights: size_t seen when major*10+minor >= 2 (and sane versions)
    wide = (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
    end = 20 if wide else 16
    if len(buf) < end:
        raise ValueError("weights file too short for its header")
    seen = int(np.frombuffer(buf[12:end], dtype="<u8" if wide else "<u4")[0])
    return {"major": int(major), "minor": int(minor), "revision": int(revision), "seen": seen}, end


def load_darknet_weights(model: DarknetNet, path) -> dict:
    """Load a darknet .weights file into `model`; returns the header fields.

    Raises ValueError when the file holds fewer or more floats than the cfg needs.
    """
    with open(path, "rb") as fh:
        header, offset = _read_header(fh.read(20))
    payload_bytes = Path(path).stat().st_size - offset
    if payload_bytes % 4:
        raise ValueError(f"{path}: payload is not a whole number of float32")
    floats = np.fromfile(path, dtype="<f4", offset=offset)  # writable, so no extra copy
    convs = [(p, m) for p, m in zip(model.plans, model.layers) if p.kind == "convolutional"]
    needed = sum(n for p, _ in convs for _, n in _conv_param_counts(p))
    if needed != floats.size:
        raise ValueError(
            f"{path}: cfg needs {needed} floats, file has {floats.size} "
            f"({'missing' if floats.size < needed else 'leftover'} {abs(floats.size - needed)})")
    pos = 0
    with torch.no_grad():
        for plan, conv in convs:
            for name, count in _conv_param_counts(plan):
                target = getattr(conv, name)
                target.copy_(torch.from_numpy(floats[pos:pos + count]).view_as(target))
                pos += count
    return header


def _weight_std(sec: Section, fan_in: int) -> float:
    # He init preserves E[x^2] through conv+leaky; BN with scales~U(.5,1.5) and
    # rolling_var~U(.5,1.5) multiplies it by E[s^2]*E[1/var] ~ 1.19 and maxpools add
    # more, so BN layers get a 0.85 gain to keep deep nets O(1).  The final linear
    # (detection) conv gets plain 1/fan_in so raw region values stay near unit scale.
    if sec.get_int("batch_normalize", 0):
        return 0.85 * math.sqrt(2.0 / fan_in)
    gain = 1.0 if sec.get_str("activation", "logistic") == "linear" else 2.0
    return math.sqrt(gain / fan_in)


def write_random_darknet_weights(cfg_path, out_path, seed, width=None, height=None) -> int:
    """Write deterministic random-but-plausible darknet weights; returns #floats.

    Conv weights are He-like normals (see _weight_std) so that activations stay
    O(1) through the 23 convolutions of YOLOv2; BN scales ~ U(.5, 1.5), rolling
    mean ~ N(0, .1), rolling variance ~ U(.5, 1.5), biases ~ N(0, .1).  Header: major=0 minor=2 revision=0, seen=0.
    """
    plans = plan_network(parse_cfg(cfg_path), width, height)
    rng = np.random.default_rng(seed)

    def normal(n, std):  # float32 draws: YOLOv2 has ~5e7 weights
        return rng.standard_normal(n, dtype=np.float32) * np.float32(std)

    def uniform(n, low, high):
        return rng.random(n, dtype=np.float32) * np.float32(high - low) + np.float32(low)

    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    count = 0
    with open(tmp, "wb") as fh:
        fh.write(np.array([0, 2, 0], dtype="<i4").tobytes())
        fh.write(np.array([0], dtype="<u8").tobytes())
        for plan in plans:
            if plan.kind != "convolutional":
                continue
            sec = plan.section
            f, size = plan.out_shape[0], sec.get_int("size", 1)
            fan_in = plan.in_shape[0] * size * size
            chunks = [normal(f, 0.1)]  # biases
            if sec.get_int("batch_normalize", 0):
                chunks += [uniform(f, 0.5, 1.5),  # scales
                           normal(f, 0.1),  # rolling mean
                           uniform(f, 0.5, 1.5)]  # rolling variance
            chunks.append(normal(f * fan_in, _weight_std(sec, fan_in)))
            for chunk in chunks:
                chunk.astype("<f4", copy=False).tofile(fh)
                count += chunk.size
    tmp.replace(out_path)
    return count
