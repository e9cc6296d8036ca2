"""Read darknet `.cfg` files: `[section]` headers and `key=value` options.

Every option remembers its line so that any later complaint (a bad value, a layer that cannot
be built, a key no layer reads) points at file:line. Bundled models are found by name
(`yolov2-voc`) in yolo9000/model/bundled. Which sections name which layers is the layer
registry's business (model/registry.py), not the parser's.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .zoo import bundled_file, bundled_models

# YOLOv2 halves its input five times, so an input side must be a multiple of this.
INPUT_STRIDE = 32


def input_size_problem(size):
    """Why `size` cannot be a network input side (None when it can)."""
    if size <= 0 or size % INPUT_STRIDE:
        return f"must be a positive multiple of {INPUT_STRIDE}, got {size}"
    return None


def check_input_size(size, what="size", path=None):
    """Raise a UserError unless `size` can be a network input side."""
    problem = input_size_problem(size)
    if problem:
        raise UserError(f"{what} {problem}", path=path)
    return size


def format_anchors(anchors, decimals=4):
    """Anchors (w, h pairs in grid cells) as a darknet cfg value: 'w,h,  w,h, ...'."""
    pairs = np.asarray(anchors, dtype=float).reshape(-1, 2)
    return ",  ".join(f"{w:.{decimals}f},{h:.{decimals}f}" for w, h in pairs)


def anchors_line(anchors, decimals=4):
    """The darknet ``anchors = ...`` line, to paste into a cfg's [region] section."""
    return f"anchors = {format_anchors(anchors, decimals)}"


@dataclass
class Section:
    type: str
    line: int                                   # line of the [header]
    options: dict = field(default_factory=dict)  # key -> raw string value
    lines: dict = field(default_factory=dict)    # key -> line number
    used: set = field(default_factory=set)       # keys something has read (or knowingly ignores)
    source: str = None                           # the cfg's file path or label, for messages

    # -- typed getters; a bad value is a UserError at the option's line -------------------
    def error(self, message, key=None):
        """A UserError "[type] message" at `key`'s line, or at the section header."""
        return UserError(f"[{self.type}] {message}", path=self.source,
                         line=self.lines.get(key, self.line))

    def get_str(self, key, default=None):
        self.used.add(key)
        return self.options.get(key, default)

    def get_int(self, key, default=None):
        self.used.add(key)
        if key not in self.options:
            return default
        raw = self.options[key]
        try:
            return int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                raise self.error(f"{key}={raw} is not an integer", key) from None
            if value != int(value):
                raise self.error(f"{key}={raw} is not an integer", key)
            return int(value)

    def get_float(self, key, default=None):
        self.used.add(key)
        if key not in self.options:
            return default
        try:
            return float(self.options[key])
        except ValueError:
            raise self.error(f"{key}={self.options[key]} is not a number", key) from None

    def get_floats(self, key, default=None):
        self.used.add(key)
        if key not in self.options:
            return default
        raw = self.options[key].strip().strip(",")
        if not raw:
            return []
        try:
            return [float(v) for v in raw.split(",") if v.strip() != ""]
        except ValueError:
            raise self.error(f"{key}={self.options[key]} is not a list of numbers", key) from None

    def get_ints(self, key, default=None):
        values = self.get_floats(key, None)
        if values is None:
            return default
        if any(v != int(v) for v in values):
            raise self.error(f"{key}={self.options[key]} is not a list of integers", key)
        return [int(v) for v in values]

    # -- which keys were read --------------------------------------------------------------
    def ignore(self, *keys):
        """Mark darknet options this implementation accepts without acting on them (each
        caller says why), so that they do not count as unread."""
        self.used.update(keys)

    def expect_default(self, key, default):
        """A darknet option this implementation does not support: accepted only at darknet's
        default, where ignoring it builds the same network."""
        value = self.get_float(key, default)
        if value != default:
            raise self.error(f"{key}={self.options[key]} is not supported (only {key}={default:g})",
                             key)

    def check_all_read(self):
        """Every key must have been read by the layer (or knowingly ignored): darknet reads no
        other, so a typo like `filterz=` would silently build another network."""
        unread = sorted((self.lines[k], k) for k in self.options if k not in self.used)
        if unread:
            line, key = unread[0]
            raise self.error(f"key '{key}' is not a darknet option for this layer", key)


@dataclass
class Config:
    sections: list
    source: str      # file path or "bundled:NAME", used in error messages
    text: str

    @property
    def net(self):
        return self.sections[0]

    @property
    def layers(self):
        return self.sections[1:]


def resolve_cfg(cfg):
    """A cfg argument (path or bundled name) -> (text, source label)."""
    cfg = str(cfg)
    path = Path(cfg)
    if path.suffix == ".cfg" or path.exists() or "/" in cfg or "\\" in cfg:
        if not path.exists():
            raise UserError("cfg file not found", path=cfg)
        if path.is_dir():
            raise UserError("is a directory, not a cfg file", path=cfg)
        try:
            return path.read_text(encoding="utf-8", errors="replace"), str(path)
        except OSError as e:
            raise UserError(f"cannot read cfg: {e.strerror}", path=cfg) from None
    bundled = bundled_file(f"{cfg}.cfg")
    if bundled is not None:
        return bundled.read_text(encoding="utf-8"), f"{cfg}.cfg (bundled)"
    raise UserError(f"'{cfg}' is neither a cfg file nor a bundled model "
                    f"(bundled: {', '.join(bundled_models())})")


def parse_cfg_text(text, source="<cfg>"):
    sections = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().replace("\x00", "")
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise UserError(f"malformed section header '{line}'", path=source, line=number)
            sections.append(Section(line[1:-1].strip().lower(), number, source=source))
            continue
        if "=" not in line:
            raise UserError(f"expected 'key=value' or '[section]', got '{line}'", path=source, line=number)
        if not sections:
            raise UserError(f"option '{line}' before any [section]", path=source, line=number)
        key, value = line.split("=", 1)
        key = key.strip()
        value = value.split("#")[0].strip()
        if not key:
            raise UserError(f"option with no name: '{line}'", path=source, line=number)
        section = sections[-1]
        if key in section.options:
            # darknet reads the first of repeated keys; a repeat with another value is a
            # mistake that would build something other than what the later line says
            if value != section.options[key]:
                raise UserError(f"[{section.type}] {key}={value} repeats {key}={section.options[key]} "
                                f"of line {section.lines[key]} with another value (darknet reads "
                                "only the first)", path=source, line=number)
            continue
        section.options[key] = value
        section.lines[key] = number
    if not sections:
        raise UserError("no sections found (is this a darknet cfg?)", path=source)
    if sections[0].type not in ("net", "network"):
        raise UserError(f"the first section must be [net], found [{sections[0].type}]",
                        path=source, line=sections[0].line)
    if len(sections) == 1:
        raise UserError("the cfg has a [net] section but no layers", path=source)
    return Config(sections, source, text)


def load_cfg(cfg):
    text, source = resolve_cfg(cfg)
    return parse_cfg_text(text, source)


def cut_cfg_text(config, layers):
    """The text of [net] and the first `layers` layers, comments kept (darknet's `partial`
    keeps that many layers' weights; this is the cfg that fits them)."""
    last = config.sections[layers]          # sections[0] is [net]
    end = max([last.line, *last.lines.values()])
    return "\n".join(config.text.splitlines()[:end]) + "\n"


def set_net_options(config, **values):
    """The cfg text with these [net] options set, every other line (comments too) unchanged."""
    lines = config.text.splitlines()
    end = config.sections[1].line - 1       # the [net] section's lines: up to the first layer
    missing = dict(values)
    for i in range(config.net.line, end):
        key = lines[i].split("=", 1)[0].strip()
        if "=" in lines[i] and key in values and not lines[i].lstrip().startswith(("#", ";")):
            lines[i] = f"{key}={values[key]}"      # a repeated key too, so the repeat agrees
            missing.pop(key, None)
    lines[config.net.line:config.net.line] = [f"{k}={v}" for k, v in missing.items()]
    return "\n".join(lines) + "\n"


def dump_cfg(config):
    """Config -> cfg text (comments are not kept)."""
    out = []
    for s in config.sections:
        out.append(f"[{s.type}]")
        out.extend(f"{k}={v}" for k, v in s.options.items())
        out.append("")
    return "\n".join(out)


def classifier_section(config):
    """The index of the [softmax] section that ends a classifier cfg (followed by nothing or
    only [cost]), or None."""
    i = len(config.sections) - 1
    while i > 0 and config.sections[i].type == "cost":
        i -= 1
    return i if config.sections[i].type in ("softmax", "soft") else None


def network_kind(config):
    """"detection" (a [region] layer), "classification" (ending in [softmax]) or None: what a
    cfg is, before any layer is built (train picks its task, evaluate its pipeline by it)."""
    if any(s.type == "region" for s in config.sections):
        return "detection"
    return "classification" if classifier_section(config) is not None else None


def _adapt_classifier(config, s, classes, source):
    """A classifier's class count is the filters of its last convolution (darknet19: 1x1
    conv -> [avgpool] -> [softmax]); only layers that keep the channels may come between."""
    convs = [i for i in range(1, s) if config.sections[i].type in ("convolutional", "conv")]
    between = {config.sections[i].type for i in range((convs or [0])[-1] + 1, s)}
    if not convs or not between <= {"avgpool", "avg", "maxpool", "max", "dropout"}:
        raise UserError("a classifier's [softmax] must follow its last [convolutional] layer "
                        "(through [avgpool] or [maxpool] only), whose filters are the classes",
                        path=source, line=config.sections[s].line)
    if int(config.sections[s].options.get("groups", 1)) != 1:
        raise UserError("a classifier's [softmax] must have groups=1", path=source,
                        line=config.sections[s].line)
    conv = config.sections[convs[-1]]
    before = conv.options.get("filters")
    if "tree" in config.sections[s].options:
        return []       # a WordTree classifier's outputs are its tree's nodes, whatever the data
    if classes is not None and before != str(int(classes)):
        conv.options["filters"] = str(int(classes))
        return [f"classes (filters of the last convolution) {before} -> {classes}"]
    return []


def adapt_cfg(text, classes=None, anchors=None, width=None, height=None, source="<cfg>"):
    """Rewrite a cfg for a dataset. A detector: the region's classes and anchors and the
    filters of the convolution feeding it (num·(coords + 1 + classes)); a word-tree (YOLO9000)
    region keeps its classes (the tree's nodes); a classifier: the filters of its last
    convolution. Optionally the input size.

    Returns (new text, list of human-readable changes)."""
    config = parse_cfg_text(text, source)
    kind = network_kind(config)
    if kind == "detection":
        regions = [i for i, s in enumerate(config.sections) if s.type == "region"]
        changes = _adapt_detector(config, regions[-1], classes, anchors, source)
    elif kind == "classification":
        if anchors is not None:
            raise UserError("anchors belong to a detector; this cfg is a classifier", path=source)
        changes = _adapt_classifier(config, classifier_section(config), classes, source)
    else:
        raise UserError("the cfg is neither a detector (a [region] layer) nor a classifier "
                        "(ending in [softmax])", path=source)
    net = config.sections[0]
    old_width = int(net.options.get("width", 416))
    if width is not None and int(width) != old_width:
        # a classifier's crop sizes are sizes at the cfg's resolution: they follow it (64 px
        # crops of 64-80 px become 128-160 px ones at 128)
        for key in ("min_crop", "max_crop"):
            if key in net.options:
                scaled = round(int(net.options[key]) * int(width) / old_width)
                changes.append(f"{key} {net.options[key]} -> {scaled} (follows the input size)")
                net.options[key] = str(scaled)
    if width is not None:
        net.options["width"] = str(int(width))
    if height is not None:
        net.options["height"] = str(int(height))
    return dump_cfg(config), changes


def _adapt_detector(config, r, classes, anchors, source):
    region = config.sections[r]
    convs = [i for i in range(r) if config.sections[i].type in ("convolutional", "conv")]
    if not convs or convs[-1] != r - 1:
        raise UserError("the [region] layer must follow a [convolutional] layer", path=source,
                        line=region.line)
    conv = config.sections[r - 1]
    changes = []
    for key in ("tree", "map"):
        # the adapted cfg is written elsewhere (a run folder, a checkpoint): a file named
        # relative to the original cfg is named by its absolute path there (bundled files
        # are found by name anywhere)
        value = region.options.get(key)
        if value:
            from .zoo import BUNDLED_DIR, find_cfg_file
            found = find_cfg_file(value, source)
            if found is not None and Path(found).resolve().parent != BUNDLED_DIR:
                region.options[key] = str(Path(found).resolve())
    if anchors is not None:
        count = np.asarray(anchors).size // 2
        region.options["anchors"] = format_anchors(anchors)
        region.options["num"] = str(count)
        changes.append(f"{anchors_line(anchors)} ({count} anchors)")
    # a word tree's classes are its nodes: the dataset's classes become nodes, not channels
    if (classes is not None and "tree" not in region.options
            and str(classes) != region.options.get("classes")):
        changes.append(f"classes {region.options.get('classes', '?')} -> {classes}")
        region.options["classes"] = str(int(classes))
    num = int(region.options.get("num", 1))
    coords = int(region.options.get("coords", 4))
    ncls = int(region.options.get("classes", 20))
    filters = str(num * (coords + 1 + ncls))
    if conv.options.get("filters") != filters:
        changes.append(f"filters of the last convolution {conv.options.get('filters')} -> {filters}")
        conv.options["filters"] = filters
    return changes
