"""Darknet's YOLOv2 region layer: the output activation and the region loss.

Tensor layout (darknet's): channel = anchor * (coords + 1 + classes) + entry, entries
[x, y, w, h, objectness, class_0 .. class_{C-1}], each an (H, W) plane.  Internally the input
is viewed as (N, num, entries, H, W).

Training: ``forward(x, train=True)`` then ``loss(truths, seen)``.  The returned ``grad_raw`` is
dL/d(region input) — the activation is already folded in — so a trainer passes it straight to
the layer below; ``backward`` is only the adjoint of the activation, for losses defined on the
activated output.

The loss reproduces darknet's ``forward_region_layer`` training signal:
``grad_raw == -delta * sigmoid'(raw)`` on the x, y and objectness channels and ``-delta`` on
w, h and the classes, where ``delta`` is darknet's ``l.delta`` (see the golden README).  Like
darknet, the rescore target (the IoU of the predicted box with its truth), the responsible
anchor and the "best IoU > thresh" ignore mask are treated as constants of the step
(stop-gradient): the returned gradient is exact for L with those held fixed.
"""
from dataclasses import dataclass, field

import numpy as np

from ..boxes import iou_cxcywh, iou_wh
from ..truths import is_classification_only
from .base import Layer, as_f32

#: darknet pulls every prediction towards its anchor prior while net.seen < this many images
WARMUP_SEEN = 12800
WARMUP_SCALE = 0.01


# -- small numeric helpers (dtype preserving, so the loss can be checked in float64) -------------
def sigmoid(x):
    # exp of -|x| never overflows, whichever tail x is in
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def softmax(x, axis):
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def overlaps_above(px, py, pw, ph, truth, thresh):
    """bool (N, A, H, W): does the prediction's IoU with any of its image's truths exceed thresh?

    px..ph: (N, A, H, W) predicted boxes; truth: (N, T, 4) with all-zero padding rows.
    This is the hot spot of the loss (every prediction x every truth), so it works one truth
    slot at a time on cache-sized arrays, in place, and compares inter > thresh * union
    instead of dividing.
    """
    half = px.dtype.type(0.5)
    l1, r1 = px - pw * half, px + pw * half
    t1, b1 = py - ph * half, py + ph * half
    area1 = pw * ph
    covered = np.zeros(px.shape, dtype=bool)
    if thresh < 0:   # darknet's best_iou starts at 0, which already exceeds a negative thresh
        covered[:] = True
        return covered
    iw, ih, tmp = np.empty_like(px), np.empty_like(px), np.empty_like(px)
    for t in range(truth.shape[1]):
        x, y, w, h = (truth[:, t, k].reshape(-1, 1, 1, 1) for k in range(4))
        if not np.any(w > 0):
            continue
        np.minimum(r1, x + w * half, out=iw)
        iw -= np.maximum(l1, x - w * half, out=tmp)
        np.maximum(iw, 0, out=iw)
        np.minimum(b1, y + h * half, out=ih)
        ih -= np.maximum(t1, y - h * half, out=tmp)
        np.maximum(ih, 0, out=ih)
        iw *= ih                                   # intersection
        np.add(area1, w * h, out=tmp)
        tmp -= iw                                  # union
        tmp *= px.dtype.type(thresh)
        covered |= iw > tmp
    return covered


@dataclass
class RegionTargets:
    """What the region loss pulls each prediction towards, and how hard (scale 0 = no term).

    Shapes: (N, num, H, W) except coord_t (N, num, 4, H, W).  x, y targets live in sigmoid
    space (offset within the cell), w, h targets in raw space (log of size over anchor).
    """
    coord_t: np.ndarray
    coord_s: np.ndarray
    obj_t: np.ndarray
    obj_s: np.ndarray
    responsible: np.ndarray      # bool: prediction assigned to a truth (objectness is 'obj')
    cls_t: np.ndarray            # int class index, -1 where no class term
    cls_s: np.ndarray            # flat softmax's class scale (0 with a WordTree)
    stats: dict = field(default_factory=dict)
    # with a WordTree: one cross-entropy term per (prediction, softmax group) on a truth's path,
    # arrays (b, a, row, col, group, node, scale)
    tree_terms: tuple = None
    # per image: the node of its classification-only label, -1 for a detection image
    class_only: np.ndarray = None


class RegionLayer(Layer):
    kind = "region"

    def __init__(self, in_shape, anchors, classes, coords=4, num=5, softmax=True,
                 object_scale=5, noobject_scale=1, class_scale=1, coord_scale=1, thresh=.6,
                 rescore=True, bias_match=True, jitter=.2, random=False, absolute=True,
                 tree=None, map=None):
        super().__init__(in_shape)
        self.classes = int(classes)
        self.coords = int(coords)
        self.num = int(num)
        if self.coords != 4:
            raise ValueError(f"region: coords={self.coords} is not supported (YOLOv2 uses coords=4)")
        anchors = np.asarray(anchors, dtype=np.float32).reshape(-1)
        if anchors.size != 2 * self.num:
            raise ValueError(f"region: {anchors.size} anchor values given, num={self.num} needs "
                             f"{2 * self.num} (w,h pairs in grid units)")
        if not np.all(np.isfinite(anchors)) or np.any(anchors <= 0):
            raise ValueError("region: anchors must be positive numbers")
        self.anchors = anchors.reshape(self.num, 2)
        self.softmax = bool(softmax)
        self.object_scale = float(object_scale)
        self.noobject_scale = float(noobject_scale)
        self.class_scale = float(class_scale)
        self.coord_scale = float(coord_scale)
        self.thresh = float(thresh)
        self.rescore = bool(rescore)
        self.bias_match = bool(bias_match)
        self.jitter = float(jitter)
        self.random = bool(random)
        self.absolute = bool(absolute)
        # tree: a WordTree (model/wordtree.py), read by whoever builds the layer
        self.tree = tree
        if tree is not None and tree.n != self.classes:
            raise ValueError(f"region: tree has {tree.n} nodes but classes={self.classes}")
        self.class_map = None if map is None else self._checked_class_map(map)
        # darknet maps each detection truth's class through map= in the loss; a trainer that
        # gives the truths as tree nodes already (training/tasks.py) turns this off
        self.map_truths = True
        self._raw = None
        self._out = None
        self.resize(in_shape)

    @classmethod
    def from_section(cls, s, in_shape, context):
        tree = context.word_tree(s)
        # map= is YOLO9000's dataset class -> WordTree node (e.g. data/coco9k.map)
        class_map = context.class_map(s)
        s.expect_default("background", 0)     # changes the objectness output
        # darknet reads these without using them in a YOLOv2 region (log, sqrt, classfix),
        # for coords > 4 only (mask_scale), or to size its training truth buffer (max)
        s.ignore("log", "sqrt", "classfix", "mask_scale", "max")
        return cls(
            in_shape, anchors=s.get_floats("anchors", []), classes=s.get_int("classes", 20),
            coords=s.get_int("coords", 4), num=s.get_int("num", 1),
            softmax=bool(s.get_int("softmax", 0)), object_scale=s.get_float("object_scale", 1),
            noobject_scale=s.get_float("noobject_scale", 1),
            class_scale=s.get_float("class_scale", 1), coord_scale=s.get_float("coord_scale", 1),
            thresh=s.get_float("thresh", .5), rescore=bool(s.get_int("rescore", 0)),
            bias_match=bool(s.get_int("bias_match", 0)), jitter=s.get_float("jitter", .2),
            random=bool(s.get_int("random", 0)), absolute=bool(s.get_int("absolute", 0)),
            tree=tree, map=class_map)

    def _checked_class_map(self, class_map):
        """darknet's map= (e.g. coco9k.map): the tree node of each dataset class index."""
        values = np.asarray([int(v) for v in np.asarray(class_map).reshape(-1)], dtype=np.int64)
        if values.size == 0 or np.any(values < 0) or np.any(values >= self.classes):
            raise ValueError(f"region: class map entries must lie in [0, {self.classes})")
        return values

    # -- shape -----------------------------------------------------------------------------
    @property
    def entries(self):
        return self.coords + 1 + self.classes

    def resize(self, in_shape):
        c = int(in_shape[0])
        if c != self.num * self.entries:
            raise ValueError(
                f"region: input has {c} channels but num*(coords+1+classes) = "
                f"{self.num}*({self.coords}+1+{self.classes}) = {self.num * self.entries}; "
                f"the convolution before [region] needs filters={self.num * self.entries}")
        super().resize(in_shape)
        self._raw = self._out = None

    def _view(self, x):
        n = x.shape[0]
        _, h, w = self.in_shape
        return x.reshape(n, self.num, self.entries, h, w)

    def _check_input(self, x):
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"region: expected input (N, {', '.join(map(str, self.in_shape))}), "
                             f"got {tuple(x.shape)}")

    def flops(self):
        c, h, w = self.in_shape
        return 4.0 * c * h * w   # exp, add, divide per element, roughly

    def describe(self):
        return f"{self.num} anchors, {self.classes} classes"

    # -- activation ------------------------------------------------------------------------
    def activate(self, raw):
        """Region activation of raw (N, C, H, W) in raw's own dtype (float32 or float64)."""
        self._check_input(raw)
        v = self._view(raw)
        out = v.copy()
        out[:, :, 0:2] = sigmoid(v[:, :, 0:2])
        out[:, :, 4] = sigmoid(v[:, :, 4])
        cls = v[:, :, 5:]
        if self.tree is not None:
            out[:, :, 5:] = self.tree.grouped_softmax(cls, axis=2)
        elif self.softmax:
            out[:, :, 5:] = softmax(cls, axis=2)
        return out.reshape(raw.shape)

    def to_onnx(self, graph, x):
        """activate's output: x, y and objectness through a sigmoid, w and h as they are, the
        classes through a softmax (per sibling group with a word tree) when softmax=1."""
        _, h, w = self.in_shape
        view = graph.reshape(x, [0, self.num, self.entries, h, w], "view")
        xy = graph.op("Sigmoid", [graph.slice(view, 0, 2, 2, "xy")], "xy_sigmoid")
        wh = graph.slice(view, 2, 4, 2, "wh")
        objectness = graph.op("Sigmoid", [graph.slice(view, 4, 5, 2, "objectness")],
                              "objectness_sigmoid")
        classes = graph.slice(view, 5, self.entries, 2, "classes")
        if self.tree is not None:
            classes = graph.grouped_softmax(classes, 5, 2, self.tree.group_size)
        elif self.softmax:
            classes = graph.op("Softmax", [classes], "class_softmax", axis=2)
        joined = graph.op("Concat", [xy, wh, objectness, classes], "activated", axis=2)
        return graph.reshape(joined, [0, *self.out_shape], "region")

    def forward(self, x, train=False):
        x = as_f32(x)
        out = self.activate(x)
        self._raw, self._out = x, out
        return out

    def backward(self, dy, dy_is_scratch=False):
        """Vector-Jacobian product of the activation at the last forward's input."""
        if self._out is None:
            raise RuntimeError("region: backward called before forward")
        dy = as_f32(dy)
        if dy.shape != self._out.shape:
            raise ValueError(f"region: dy shape {dy.shape} != output shape {self._out.shape}")
        return self._activation_vjp(self._out, dy)

    def _activation_vjp(self, out, dy):
        o, d = self._view(out), self._view(dy)
        dx = d.copy()
        dx[:, :, 0:2] *= o[:, :, 0:2] * (1 - o[:, :, 0:2])
        dx[:, :, 4] *= o[:, :, 4] * (1 - o[:, :, 4])
        p, dp = o[:, :, 5:], d[:, :, 5:]
        if self.tree is not None:
            dx[:, :, 5:] = self.tree.grouped_softmax_vjp(p, dp, axis=2)
        elif self.softmax:
            dx[:, :, 5:] = p * (dp - (p * dp).sum(axis=2, keepdims=True))
        return dx.reshape(dy.shape)

    # -- loss ------------------------------------------------------------------------------
    def loss(self, truths, seen):
        """(loss, grad_raw, stats) of darknet's region loss at the last forward's input.

        truths: list (len N) of (n_i, 5) arrays [cx, cy, w, h, class], normalised to [0, 1]
        (or one (N, T, 5) array); rows with w <= 0 or h <= 0 are padding and skipped. With a
        WordTree, an image holding a ``classification_truth(node)`` row (yolo9000/truths.py) is
        classification-only (``_classification_only_targets``): its other rows are ignored, as
        in darknet.
        seen: images seen so far (darknet's *net->seen), drives the anchor-prior warm-up.
        """
        if self._raw is None:
            raise RuntimeError("region: loss called before forward")
        targets = self.build_targets(self._raw, truths, seen, out=self._out)
        return self.loss_given_targets(self._raw, targets, out=self._out)

    def loss_from_raw(self, raw, truths, seen):
        """Same as forward + loss, in raw's dtype, without touching the layer's caches."""
        out = self.activate(raw)
        targets = self.build_targets(raw, truths, seen, out=out)
        return self.loss_given_targets(raw, targets, out=out)

    def _pad_truths(self, truths, n, dtype):
        """(padded (n, T, 5), valid detection rows, their classes (mapped to nodes), count of
        rows ignored, per-image classification-only node or -1)."""
        if isinstance(truths, np.ndarray) and truths.ndim == 3:
            rows = [truths[i] for i in range(truths.shape[0])]
        elif isinstance(truths, np.ndarray) and truths.ndim == 2 and n == 1:
            rows = [truths]
        else:
            rows = list(truths)
        if len(rows) != n:
            raise ValueError(f"region: {len(rows)} truth sets for a batch of {n}")
        rows = [np.asarray(r, dtype=np.float64).reshape(-1, 5) for r in rows]
        tmax = max([len(r) for r in rows] + [0])
        padded = np.zeros((n, tmax, 5), dtype=np.float64)
        for i, r in enumerate(rows):
            padded[i, :len(r)] = r
        x, y, w, h, c = np.moveaxis(padded, -1, 0)
        finite = np.all(np.isfinite(padded), axis=-1)
        marked = finite & is_classification_only(x, y)
        class_only = np.full(n, -1, dtype=np.int64)
        used = np.zeros(marked.shape, dtype=bool)
        if marked.any():
            if self.tree is None:
                raise ValueError("region: a classification-only truth (x, y > 100000) needs a "
                                 "WordTree region (tree=)")
            nodes = c[marked]
            if np.any((nodes < 0) | (nodes >= self.tree.n) | (nodes != np.round(nodes))):
                bad = nodes[(nodes < 0) | (nodes >= self.tree.n) | (nodes != np.round(nodes))][0]
                raise ValueError(f"region: classification-only truth node {bad:g} outside "
                                 f"[0, {self.tree.n})")
            # darknet takes an image's first such row and skips everything else in it
            images = np.flatnonzero(marked.any(axis=1))
            first = np.argmax(marked[images], axis=1)
            class_only[images] = c[images, first].astype(np.int64)
            used[images, first] = True
        present = finite & (w > 0) & (h > 0)
        inside = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
        valid = present & inside & (class_only < 0)[:, None]
        cls = np.where(valid, c, 0).astype(np.int64)
        mapped = self.class_map is not None and self.map_truths
        limit = len(self.class_map) if mapped else self.classes
        if np.any(valid & ((cls < 0) | (cls >= limit))):
            bad = int(cls[valid & ((cls < 0) | (cls >= limit))][0])
            raise ValueError(f"region: truth class {bad} outside [0, {limit})")
        if mapped:
            cls = self.class_map[cls]
        ignored = int(np.count_nonzero((padded != 0).any(axis=-1) & ~(used | valid)))
        return padded.astype(dtype), valid, cls, ignored, class_only

    def build_targets(self, raw, truths, seen, out=None):
        """Darknet's per-prediction targets and scales for one batch (see RegionTargets)."""
        dt = raw.dtype
        if out is None:
            out = self.activate(raw)
        v, o = self._view(raw), self._view(out)
        n, a, _, h, w = v.shape
        aw = self.anchors[:, 0].astype(dt)
        ah = self.anchors[:, 1].astype(dt)
        truth, valid, cls, ignored, class_only = self._pad_truths(truths, n, dt)
        detection_image = class_only < 0

        # every prediction's box, normalised to the image
        cols = np.arange(w, dtype=dt)[None, None, None, :]
        rows = np.arange(h, dtype=dt)[None, None, :, None]
        px = (cols + o[:, :, 0]) / dt.type(w)
        py = (rows + o[:, :, 1]) / dt.type(h)
        pw = np.exp(v[:, :, 2]) * aw[None, :, None, None] / dt.type(w)
        ph = np.exp(v[:, :, 3]) * ah[None, :, None, None] / dt.type(h)

        # objectness: noobject everywhere, nothing where some truth already overlaps > thresh
        covered = overlaps_above(px, py, pw, ph, np.where(valid[..., None], truth[..., :4], 0),
                                 self.thresh)
        obj_s = np.where(covered, 0, self.noobject_scale).astype(dt)
        obj_t = np.zeros_like(px)

        coord_t = np.zeros((n, a, 4, h, w), dtype=dt)
        coord_s = np.zeros((n, a, h, w), dtype=dt)
        if seen < WARMUP_SEEN:
            # a classification-only image leaves darknet's loop before the warm-up
            coord_s[detection_image] = WARMUP_SCALE
            coord_t[:, :, 0:2] = 0.5   # the cell centre; w,h target 0 = the anchor itself
        cls_t = np.full((n, a, h, w), -1, dtype=np.int64)
        cls_s = np.zeros((n, a, h, w), dtype=dt)
        responsible = np.zeros((n, a, h, w), dtype=bool)
        tree_terms = None

        # truths in darknet's order: image by image, then as listed
        bi, ti = np.nonzero(valid)
        k = len(bi)
        stats = {"count": k, "ignored_truths": ignored,
                 "classification_count": int(np.count_nonzero(~detection_image))}
        if k:
            tx, ty, tw, th = (truth[bi, ti, j] for j in range(4))
            tc = cls[bi, ti]
            # darknet computes the cell in float32: (int)(truth.x * l.w)
            col = np.minimum((tx.astype(np.float32) * np.float32(w)).astype(np.int64), w - 1)
            row = np.minimum((ty.astype(np.float32) * np.float32(h)).astype(np.int64), h - 1)
            if self.bias_match:
                cw = np.broadcast_to(aw / dt.type(w), (k, a))
                ch = np.broadcast_to(ah / dt.type(h), (k, a))
            else:
                cw = pw[bi, :, row, col]
                ch = ph[bi, :, row, col]
            # darknet compares shapes by shifting both boxes to the origin
            shape_iou = iou_wh(cw, ch, tw[:, None], th[:, None])
            best_n = np.argmax(shape_iou, axis=1)   # first best on ties, like darknet's '>'
            at = (bi, best_n, row, col)
            iou = iou_cxcywh(np.stack([px[at], py[at], pw[at], ph[at]], axis=-1),
                             truth[bi, ti, :4])

            # two truths on one prediction: the later one wins, as darknet overwrites
            flat = np.ravel_multi_index(at, (n, a, h, w))
            _, first_in_reversed = np.unique(flat[::-1], return_index=True)
            keep = np.sort(k - 1 - first_in_reversed)
            kb = tuple(idx[keep] for idx in at)
            coord_s[kb] = (self.coord_scale * (2 - tw * th))[keep]
            coord_t[kb[0], kb[1], 0, kb[2], kb[3]] = (tx * w - col)[keep]
            coord_t[kb[0], kb[1], 1, kb[2], kb[3]] = (ty * h - row)[keep]
            coord_t[kb[0], kb[1], 2, kb[2], kb[3]] = np.log(tw * w / aw[best_n])[keep]
            coord_t[kb[0], kb[1], 3, kb[2], kb[3]] = np.log(th * h / ah[best_n])[keep]
            obj_t[kb] = iou[keep] if self.rescore else 1
            obj_s[kb] = self.object_scale
            responsible[kb] = True
            cls_t[kb] = tc[keep]
            if self.tree is None:
                cls_s[kb] = self.class_scale
                p_true = o[at[0], at[1], 5 + tc, at[2], at[3]]
            else:
                tree_terms = self._tree_class_terms(at, tc, dt)
                p_true = np.array([self.tree.hierarchy_probability(o[b_, a_, 5:, r_, c_], node)
                                   for b_, a_, r_, c_, node in zip(*at, tc)], dtype=dt)

            obj_at = o[at[0], at[1], 4, at[2], at[3]]
            stats.update(avg_iou=float(iou.mean(dtype=np.float64)),
                         recall50=float(np.mean(iou > 0.5)),
                         avg_obj=float(obj_at.mean(dtype=np.float64)))
        else:
            p_true = np.zeros(0, dtype=dt)
            stats.update(avg_iou=0.0, recall50=0.0, avg_obj=0.0)
        if not detection_image.all():
            at_cls, p_cls = self._classification_only_targets(o, class_only)
            obj_s[at_cls] = 0
            cls_t[at_cls] = class_only[at_cls[0]]
            more = self._tree_class_terms(at_cls, class_only[at_cls[0]], dt)
            tree_terms = more if tree_terms is None else tuple(
                np.concatenate([x, y]) for x, y in zip(tree_terms, more))
            p_true = np.concatenate([p_true, p_cls])
        stats["avg_cat"] = float(p_true.mean(dtype=np.float64)) if len(p_true) else 0.0
        stats["avg_noobj"] = float(o[:, :, 4].mean(dtype=np.float64))
        return RegionTargets(coord_t, coord_s, obj_t, obj_s, responsible, cls_t, cls_s, stats,
                             tree_terms, class_only)

    def _classification_only_targets(self, o, class_only):
        """darknet's joint-training rule for the images labelled only with a tree node.

        The prediction with the largest objectness x P(node) (first one on ties, predictions in
        darknet's anchor, row, column order) takes the class loss along the node's path; the
        objectness keeps the no-object pull everywhere, except at that prediction, where it is
        zero. The paper says to assume an IoU of at least .3 there; darknet's
        forward_region_layer computes that .3 target and then overwrites it with 0, and the
        published YOLO9000 was trained that way, so this follows darknet.
        Returns the chosen (b, a, row, col) arrays and P(node) there."""
        images = np.flatnonzero(class_only >= 0)
        n_img = len(images)
        _, a, _, h, w = o.shape
        best = np.empty((4, n_img), dtype=np.int64)
        p_node = np.empty(n_img, dtype=o.dtype)
        for i, b in enumerate(images.tolist()):
            path = self.tree.path(class_only[b])
            # darknet's get_hierarchy_probability multiplies from the node up to its root
            p = o[b, :, 5 + path[0]]
            for k in path[1:]:
                p = p * o[b, :, 5 + k]
            flat = int(np.argmax((o[b, :, 4] * p).reshape(-1)))
            best[:, i] = (b, *np.unravel_index(flat, (a, h, w)))
            p_node[i] = p.reshape(-1)[flat]
        return tuple(best), p_node

    def _tree_class_terms(self, at, nodes, dt):
        """darknet's hierarchical delta_region_class, as loss terms.

        Each truth writes a softmax cross-entropy target into every group on its node's path
        to the root; a later truth on the same prediction overwrites only the groups its own
        path shares, the others keep the earlier truth's target (darknet's delta writes).
        """
        terms = {}
        for b, a, r, c, node in zip(*(np.asarray(x).tolist() for x in at), nodes.tolist()):
            for k in self.tree.path(node):
                terms[(b, a, r, c, int(self.tree.group[k]))] = k
        keys = np.array(list(terms), dtype=np.int64).reshape(-1, 5)
        node_arr = np.array(list(terms.values()), dtype=np.int64)
        scale = np.full(len(node_arr), self.class_scale, dtype=dt)
        return (*keys.T, node_arr, scale)

    def loss_given_targets(self, raw, targets, out=None):
        """(L, dL/draw, stats) for fixed targets; raw's dtype throughout."""
        if out is None:
            out = self.activate(raw)
        v, o = self._view(raw), self._view(out)
        t = targets
        f64 = np.float64
        grad = np.zeros_like(v)
        cost = 0.0   # darknet's sum(delta**2)

        s = t.coord_s[:, :, None]
        dxy = o[:, :, 0:2] - t.coord_t[:, :, 0:2]
        dwh = v[:, :, 2:4] - t.coord_t[:, :, 2:4]
        grad[:, :, 0:2] = s * dxy * (o[:, :, 0:2] * (1 - o[:, :, 0:2]))
        grad[:, :, 2:4] = s * dwh
        coord = 0.5 * ((s * dxy * dxy).sum(dtype=f64) + (s * dwh * dwh).sum(dtype=f64))
        cost += np.square(s * dxy).sum(dtype=f64) + np.square(s * dwh).sum(dtype=f64)

        do = o[:, :, 4] - t.obj_t
        grad[:, :, 4] = t.obj_s * do * (o[:, :, 4] * (1 - o[:, :, 4]))
        obj_terms = 0.5 * t.obj_s * do * do
        obj = float(obj_terms[t.responsible].sum(dtype=f64))
        noobj = float(obj_terms[~t.responsible].sum(dtype=f64))
        cost += np.square(t.obj_s * do).sum(dtype=f64)

        cls_loss = 0.0
        b, a, r, c = np.nonzero(t.cls_s > 0)
        if t.tree_terms is not None:
            cls_loss, cls_cost = self._tree_class_loss(v, o, grad, t.tree_terms)
            cost += cls_cost
        elif len(b):
            scale = t.cls_s[b, a, r, c][:, None]
            p = o[b, a, 5:, r, c]                       # (K, classes)
            onehot = np.zeros_like(p)
            onehot[np.arange(len(b)), t.cls_t[b, a, r, c]] = 1
            if self.softmax:
                grad[b, a, 5:, r, c] = scale * (p - onehot)
                logp = log_softmax(v[b, a, 5:, r, c], axis=1)
                cls_loss = float(-(scale * onehot * logp).sum(dtype=f64))
            else:
                # linear class outputs: darknet's delta scale*(onehot - out) is the gradient
                # of a squared error
                grad[b, a, 5:, r, c] = scale * (p - onehot)
                cls_loss = float(0.5 * (scale * np.square(p - onehot)).sum(dtype=f64))
            cost += np.square(scale * (onehot - p)).sum(dtype=f64)

        total = float(coord) + obj + noobj + float(cls_loss)
        stats = dict(t.stats)
        stats.update(loss=total, coord=float(coord), obj=obj, noobj=noobj, **{"class": cls_loss},
                     darknet_cost=float(cost))
        return total, grad.reshape(raw.shape), stats

    def _tree_class_loss(self, v, o, grad, terms):
        """Sum over terms of scale * -log P(node | parent), its gradient added into grad."""
        b, a, r, c, group, node, scale = terms
        f64 = np.float64
        if len(b) == 0:
            return 0.0, 0.0
        # the distinct predictions involved, and each term's row among them
        pred = np.stack([b, a, r, c])
        uniq, row = np.unique(pred, axis=1, return_inverse=True)
        row = row.reshape(-1)
        pb, pa, pr, pc = uniq
        logp = self.tree.grouped_log_softmax(v[pb, pa, 5:, pr, pc], axis=1)   # (P, classes)
        p = o[pb, pa, 5:, pr, pc]
        loss = float(-(scale * logp[row, node]).sum(dtype=f64))
        # every class channel of each term's group: (prediction row, channel) pairs
        offs, sizes = self.tree.group_offset[group], self.tree.group_size[group]
        starts = np.cumsum(sizes) - sizes
        within = np.arange(sizes.sum()) - np.repeat(starts, sizes)
        rows = np.repeat(row, sizes)
        cols = np.repeat(offs, sizes) + within
        s = np.repeat(scale, sizes)
        g = np.zeros_like(p)
        g[rows, cols] = s * p[rows, cols]          # (prediction, group) pairs are unique
        g[row, node] -= scale
        grad[pb, pa, 5:, pr, pc] = g
        cost = float(np.square(g).sum(dtype=f64))   # darknet's delta there is -g
        return loss, cost
