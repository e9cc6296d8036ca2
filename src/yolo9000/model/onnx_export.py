"""ONNX export: a Network as an ONNX graph that ONNX Runtime, OpenVINO and the like run.

    from yolo9000 import Network, export_onnx
    net = Network.load("best.h5")
    export_onnx(net, "best.onnx")                   # the network's own output (detect decodes it)
    export_onnx(net, "best.onnx", decode=True)      # + the region decode and NMS: boxes

The export walks the network's layers in order; each layer type adds its own nodes through its
``to_onnx(graph, x) -> output name`` method (layers/<type>.py), where ``graph`` is the
``OnnxGraph`` below: it names tensors and makes the nodes and initializers, so no layer imports
onnx. A layer that cannot be exported says why through ``graph.cannot_export``, a UserError at
its cfg section's file:line.

The input is ``images``: float32 (N, 3, H, W), RGB in [0, 1], letterboxed as `detect` does
(see the metadata). Outputs:

* without decode, ``output``: what ``Network.forward`` returns (a detector's activated region
  output, a classifier's probabilities);
* with decode (a detector), the region decode and non-maximum suppression of
  inference/postprocess.py: ``boxes`` (K, 4) x1, y1, x2, y2 in pixels of the network input,
  ``scores`` (K,), ``classes`` (K,) int64 and ``batch_index`` (K,) int64, the image of each
  detection, grouped by image and then class, each class by decreasing score (ONNX
  NonMaxSuppression's order). A word-tree (YOLO9000) model's classes are tree nodes, named by
  the same tree walk as `detect`, its score the objectness.

What a user of the file alone needs is in its metadata_props, each value JSON: "input" (size,
layout, range), "letterbox" (how `detect` places an image in the input, and how to map boxes
back; a classifier's "input" has its centre crop instead), "names", "region" (anchors, grid,
layout), "tree" (a word tree's parents, ids and names), "class_map" (a cfg's map=), "decode"
(the thresholds), "outputs", "task", "source" and "yolo9000_version".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._version import __version__
from ..data.images import PAD_VALUE
from ..errors import UserError
from ..layers.route import RouteLayer

# Opset 17: Softmax over one axis (13), Split sizes as an input (13) and NonMaxSuppression (11),
# which every runtime of the last years reads.
OPSET = 17
INSTALL_HINT = 'pip install "yolo9000[onnx]"'
INPUT_NAME = "images"
RAW_OUTPUT = "output"
DECODED_OUTPUTS = ("boxes", "scores", "classes", "batch_index")
DYNAMIC_BATCH = "batch"
LETTERBOX_RULE = (
    "an image of w x h pixels is resized (bilinear, keeping its aspect ratio) to new_w x new_h: "
    "new_w = W, new_h = h * W // w when W / w < H / h, else new_w = w * H // h, new_h = H; and "
    "placed at dx = (W - new_w) // 2, dy = (H - new_h) // 2 of a W x H input filled with "
    "pad_value. A box's x in input pixels is (x - dx) * w / new_w in the image (y likewise "
    "with dy, h, new_h); then clip to the image and drop boxes left without area")


def require_onnx():
    """The onnx module, or a UserError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise UserError(f"exporting to ONNX needs the onnx package: {INSTALL_HINT}") from None
    return onnx


class OnnxGraph:
    """What a layer's to_onnx builds with: named tensors, nodes and constant initializers.

    Nodes are kept as plain data (op type, inputs, outputs, attributes) and become onnx's
    protobufs only in ``to_model``."""

    def __init__(self):
        self.nodes = []             # (op_type, inputs, outputs, attributes, node name)
        self.initializers = {}      # name -> np.ndarray
        self._taken = set()
        self.prefix = ""            # the layer being exported ("12_conv"): names its tensors
        self.section = None         # its cfg section (file:line for cannot_export)
        self.layer_index = None

    def enter(self, index, layer, section):
        """The nodes that follow are layer `index`'s (None: the network's, after the layers)."""
        self.layer_index = index
        self.prefix = "" if layer is None else f"{index}_{layer.kind}"
        self.section = section

    def name(self, hint):
        """A tensor name not used before, from the current layer and `hint`."""
        base = f"{self.prefix}_{hint}" if self.prefix else hint
        name, k = base, 1
        while name in self._taken:
            k += 1
            name = f"{base}_{k}"
        self._taken.add(name)
        return name

    def constant(self, value, hint="const"):
        """An initializer holding `value`: int64 if it is integer, bool if bool, else float32."""
        array = np.asarray(value)
        dtype = (np.int64 if np.issubdtype(array.dtype, np.integer) else
                 np.bool_ if array.dtype == np.bool_ else np.float32)
        name = self.name(hint)
        self.initializers[name] = np.ascontiguousarray(array, dtype=dtype)
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, output_names=None, **attributes):
        """Add one node; returns its output name (a list of names when outputs > 1)."""
        if output_names is None:
            hint = hint or op_type.lower()
            output_names = [self.name(hint if outputs == 1 else f"{hint}{k}")
                            for k in range(outputs)]
        else:
            self._taken.update(output_names)
        self.nodes.append((op_type, list(inputs), list(output_names), attributes,
                           self.name(op_type)))
        return output_names[0] if len(output_names) == 1 and outputs == 1 else list(output_names)

    def cannot_export(self, reason):
        """The UserError a layer raises for what ONNX cannot express: at its cfg section."""
        where = f"layer {self.layer_index} " if self.layer_index is not None else ""
        message = f"{where}cannot be exported to ONNX: {reason}"
        return UserError(message) if self.section is None else self.section.error(message)

    # -- compositions several layers use ---------------------------------------------------
    def reshape(self, x, shape, hint="reshape"):
        """Reshape x to `shape` (0 keeps that dimension of x: the batch, which may be dynamic)."""
        return self.op("Reshape", [x, self.constant(np.asarray(shape, np.int64), "shape")], hint)

    def slice(self, x, start, stop, axis, hint="slice"):
        c = self.constant
        return self.op("Slice", [x, c([start], "start"), c([stop], "stop"), c([axis], "axis")],
                       hint)

    def grouped_softmax(self, x, rank, axis, sizes, hint="softmax"):
        """A separate softmax over each run of `sizes` consecutive entries along `axis` of x (of
        `rank` dimensions; a word tree's sibling groups): one Split, one Softmax per group, one
        Concat. The groups are softmaxed along the last axis (a runtime's fast case), moved
        there and back by Transposes."""
        sizes = [int(s) for s in sizes]
        axis %= rank
        if len(sizes) == 1:
            return self.op("Softmax", [x], hint, axis=axis)
        perm = [k for k in range(rank) if k != axis] + [axis]
        moved = self.op("Transpose", [x], "to_last", perm=perm) if axis != rank - 1 else x
        parts = self.op("Split", [moved, self.constant(np.asarray(sizes, np.int64), "groups")],
                        "group", outputs=len(sizes), axis=-1)
        parts = [parts] if isinstance(parts, str) else parts
        soft = [self.op("Softmax", [p], f"{hint}_group", axis=-1) for p in parts]
        joined = self.op("Concat", soft, hint, axis=-1)
        if axis == rank - 1:
            return joined
        back = [perm.index(k) for k in range(rank)]
        return self.op("Transpose", [joined], "from_last", perm=back)

    def to_model(self, inputs, outputs, metadata, doc):
        """The onnx ModelProto, checked: inputs/outputs are (name, numpy dtype, shape) with
        shape entries an int or a symbolic name."""
        onnx = require_onnx()
        from onnx import helper, numpy_helper

        def value_info(name, dtype, shape):
            return helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape))

        def attribute(value):        # an array attribute (ConstantOfShape's value) is a tensor
            return numpy_helper.from_array(value) if isinstance(value, np.ndarray) else value

        graph = helper.make_graph(
            [helper.make_node(op, ins, outs, name=name,
                              **{k: attribute(v) for k, v in attrs.items()})
             for op, ins, outs, attrs, name in self.nodes],
            "yolo9000",
            [value_info(*spec) for spec in inputs],
            [value_info(*spec) for spec in outputs],
            initializer=[numpy_helper.from_array(a, name) for name, a in self.initializers.items()])
        opset = [helper.make_opsetid("", OPSET)]
        model = helper.make_model(graph, opset_imports=opset, producer_name="yolo9000",
                                  producer_version=__version__, doc_string=doc)
        # the oldest IR version that holds this opset: runtimes older than the onnx package
        # that writes the file still read it
        model.ir_version = helper.find_min_ir_version_for(opset)
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model)
        return model


# -- the network -----------------------------------------------------------------------------
class DecodeSettings:
    """The thresholds of --decode, with `detect`'s meanings and defaults."""

    def __init__(self, thresh=0.5, nms=0.45, hier_thresh=0.5, tree_walk="paper"):
        from .wordtree import WordTree
        if not 0.0 < float(thresh) <= 1.0:
            raise UserError(f"thresh must be in (0, 1], got {thresh}")
        if not 0.0 <= float(nms) <= 1.0:
            raise UserError(f"nms must be in [0, 1], got {nms}")
        if not 0.0 <= float(hier_thresh) <= 1.0:
            raise UserError(f"hier_thresh must be in [0, 1], got {hier_thresh}")
        if tree_walk not in WordTree.WALKS:
            raise UserError(f"tree walk must be one of {', '.join(WordTree.WALKS)}, "
                            f"got {tree_walk!r}")
        self.thresh, self.nms = float(thresh), float(nms)
        self.hier_thresh, self.tree_walk = float(hier_thresh), tree_walk


def onnx_model(network, names=None, batch=1, dynamic_batch=False, decode=None):
    """The ONNX model (an onnx.ModelProto, checked) of `network` with its current weights and
    input size.

    names: the class names to store (default: the network's own, a checkpoint's or its word
    tree's); batch: the input's batch size, or with dynamic_batch any; decode: None for the
    network's own output, or a DecodeSettings for boxes after decode and NMS (a detector)."""
    require_onnx()
    if decode is not None and network.region is None:
        raise UserError("decoding boxes needs a detector (a network ending in [region]): "
                        "export this one without decode", path=network.source)
    batch_dim = DYNAMIC_BATCH if dynamic_batch else int(batch)
    if not dynamic_batch and batch_dim < 1:
        raise UserError(f"batch must be at least 1, got {batch}")
    graph = OnnxGraph()
    out = _add_layers(network, graph)
    graph.enter(None, None, None)
    if decode is None:
        graph.op("Identity", [out], output_names=[RAW_OUTPUT])
        outputs = [(RAW_OUTPUT, np.float32, (batch_dim,) + tuple(network.output_shape))]
    else:
        outputs = _add_decode(graph, network, out, decode)
    names = _class_names(network, names)
    metadata = _metadata(network, names, decode, batch_dim)
    doc = (f"{Path(str(network.source)).name} ({network.width}x{network.height}) exported by "
           f"yolo9000 {__version__}")
    return graph.to_model([(INPUT_NAME, np.float32, (batch_dim,) + tuple(network.input_shape))],
                          outputs, metadata, doc)


def export_onnx(network, output, names=None, batch=1, dynamic_batch=False, decode=False,
                thresh=0.5, nms=0.45, hier_thresh=0.5, tree_walk="paper"):
    """Write `network` as an ONNX model to `output` (atomically); returns its path.

    decode: output boxes (decode and NMS with thresh, nms, and for a word tree hier_thresh and
    tree_walk, as `detect` takes them) instead of the network's own output. See onnx_model for
    the rest."""
    from ..fileio import atomic_write_bytes
    settings = DecodeSettings(thresh, nms, hier_thresh, tree_walk) if decode else None
    model = onnx_model(network, names, batch, dynamic_batch, settings)
    output = Path(output)
    try:
        atomic_write_bytes(output, model.SerializeToString())
    except OSError as e:
        raise UserError(f"cannot write the ONNX model: {e.strerror or e}", path=output) from None
    return output


def _add_layers(network, graph):
    """Every layer's nodes, in order; returns the name of the last layer's output."""
    outputs = []
    for i, (layer, section) in enumerate(zip(network.layers, network.sections)):
        graph.enter(i, layer, section)
        if isinstance(layer, RouteLayer):
            x = [outputs[j] for j in layer.sources]
        else:
            x = outputs[i - 1] if i else INPUT_NAME
        outputs.append(layer.to_onnx(graph, x))
    return outputs[-1]


# -- decode and NMS (inference/postprocess.py's semantics) -----------------------------------
def _add_decode(graph, network, region_output, settings):
    """The nodes from the region output to the boxes after NMS; returns the output specs."""
    region = network.region
    g = graph
    g.prefix = "decode"
    num, entries = int(region.num), int(region.entries)
    _, grid_h, grid_w = region.out_shape
    predictions = num * grid_h * grid_w
    # (N, anchor, entry, row, col): the region layout, one prediction per (anchor, row, col)
    view = g.reshape(region_output, [0, num, entries, grid_h, grid_w], "view")
    tx, ty, tw, th = (g.slice(view, k, k + 1, 2, hint) for k, hint in enumerate("xywh"))
    objectness = g.slice(view, 4, 5, 2, "objectness")
    probabilities = g.slice(view, 5, entries, 2, "probabilities")

    # postprocess._region_boxes in the same float32 steps: (col + x) / W, exp(w) * anchor / W
    col = g.constant(np.arange(grid_w, dtype=np.float32).reshape(1, 1, 1, 1, grid_w), "col")
    row = g.constant(np.arange(grid_h, dtype=np.float32).reshape(1, 1, 1, grid_h, 1), "row")
    anchors = np.asarray(region.anchors, np.float32)
    width = g.constant(np.float32(grid_w), "grid_w")
    height = g.constant(np.float32(grid_h), "grid_h")
    cx = g.op("Div", [g.op("Add", [col, tx]), width], "cx")
    cy = g.op("Div", [g.op("Add", [row, ty]), height], "cy")
    anchor_w = g.constant(anchors[:, 0].reshape(1, num, 1, 1, 1), "anchor_w")
    anchor_h = g.constant(anchors[:, 1].reshape(1, num, 1, 1, 1), "anchor_h")
    bw = g.op("Div", [g.op("Mul", [g.op("Exp", [tw]), anchor_w]), width], "bw")
    bh = g.op("Div", [g.op("Mul", [g.op("Exp", [th]), anchor_h]), height], "bh")
    # corners as boxes.cxcywh_to_xyxy, normalised to the input, where postprocess runs NMS
    half = g.constant(np.float32(0.5), "half")
    half_w, half_h = g.op("Mul", [bw, half]), g.op("Mul", [bh, half])
    corners = g.op("Concat", [g.op("Sub", [cx, half_w]), g.op("Sub", [cy, half_h]),
                              g.op("Add", [cx, half_w]), g.op("Add", [cy, half_h])], "corners",
                   axis=2)
    boxes = g.reshape(g.op("Transpose", [corners], perm=[0, 1, 3, 4, 2]),
                      [0, predictions, 4], "boxes")

    if region.tree is None:
        # objectness x class probability for every (class, prediction): decode_region's scores
        products = g.op("Mul", [probabilities, objectness], "class_scores")
        scores = g.reshape(g.op("Transpose", [products], perm=[0, 2, 1, 3, 4]),
                           [0, int(region.classes), predictions], "scores")
    else:
        scores = _tree_scores(g, region.tree, probabilities, objectness, predictions, settings)

    # NonMaxSuppression keeps scores > its threshold, postprocess scores >= thresh: the
    # float32 just below thresh makes the two the same test
    below = np.nextafter(np.float32(settings.thresh), np.float32(-np.inf), dtype=np.float32)
    selected = g.op("NonMaxSuppression",
                    [boxes, scores, g.constant(np.array([predictions], np.int64), "max_boxes"),
                     g.constant(np.array([settings.nms], np.float32), "iou_threshold"),
                     g.constant(np.array([below], np.float32), "score_threshold")], "selected")
    image, cls, box = g.op("Split", [selected, g.constant(np.array([1, 1, 1], np.int64), "split")],
                           "selected", outputs=3, axis=1)
    picked = g.op("GatherND", [boxes, g.op("Concat", [image, box], axis=1)], "picked")
    pixels = g.constant(np.array([network.width, network.height] * 2, np.float32), "input_size")
    axis1 = g.constant(np.array([1], np.int64), "axis1")
    boxes_out, scores_out, classes_out, images_out = DECODED_OUTPUTS
    g.op("Mul", [picked, pixels], output_names=[boxes_out])
    g.op("GatherND", [scores, selected], output_names=[scores_out])
    g.op("Squeeze", [cls, axis1], output_names=[classes_out])
    g.op("Squeeze", [image, axis1], output_names=[images_out])
    found = "detections"
    return [(boxes_out, np.float32, (found, 4)), (scores_out, np.float32, (found,)),
            (classes_out, np.int64, (found,)), (images_out, np.int64, (found,))]


def _tree_scores(g, tree, probabilities, objectness, predictions, settings):
    """(N, nodes, predictions) scores of a word-tree region, as decode_region_tree: each
    prediction's objectness at the node the tree walk names, 0 at every other node."""
    n = int(tree.n)
    # one row of conditional probabilities per prediction, in (image, anchor, row, col) order
    values = g.reshape(g.op("Transpose", [probabilities], perm=[0, 1, 3, 4, 2]), [-1, n],
                       "conditional")
    if settings.tree_walk == "darknet":
        values = _absolute_probabilities(g, tree, values)
    node = _tree_walk(g, tree, values, settings.hier_thresh)
    is_node = g.op("Equal", [g.op("Unsqueeze", [node, g.constant(np.array([1], np.int64))]),
                             g.constant(np.arange(n, dtype=np.int64).reshape(1, n), "nodes")])
    per_node = g.op("Mul", [g.op("Cast", [is_node], to=1),      # 1 = float
                            g.reshape(objectness, [-1, 1], "objectness_rows")], "node_scores")
    return g.op("Transpose", [g.reshape(per_node, [-1, predictions, n])], "scores",
                perm=[0, 2, 1])


def _absolute_probabilities(g, tree, values):
    """WordTree.hierarchy_predictions: each level's nodes times their parents', root down."""
    parent = np.maximum(tree.parent, 0).astype(np.int64)
    parents = g.constant(parent, "parent")
    for level in range(1, int(tree.depth.max()) + 1):
        at_level = g.constant((tree.depth == level).reshape(1, -1), f"level{level}")
        product = g.op("Mul", [values, g.op("Gather", [values, parents], axis=1)])
        values = g.op("Where", [at_level, product, values], f"absolute{level}")
    return values


def _tree_walk(g, tree, values, thresh):
    """WordTree.hierarchy_top_prediction on every row of `values` (M, nodes) at once: the
    descent unrolled to the tree's depth + 1 steps (each step goes one level down or stops),
    with the float32 products and comparisons of the loop. Returns the nodes (M,) int64."""
    sizes, offsets = tree.group_size.astype(np.int64), tree.group_offset.astype(np.int64)
    # each group's nodes, padded with its first node: a repeat never wins the first maximum
    members = np.repeat(offsets[:, None], int(sizes.max()), axis=1)
    for k, (start, size) in enumerate(zip(offsets, sizes)):
        members[k, :size] = np.arange(start, start + size)
    members = g.constant(members, "group_members")
    child = g.constant(tree.child.astype(np.int64), "child")
    group_parent = g.constant(tree.parent[offsets].astype(np.int64), "group_parent")
    threshold = g.constant(np.float32(thresh), "hier_thresh")
    zero = g.constant(np.array(0, np.int64), "zero")

    rows = g.op("Shape", [values], "rows", start=0, end=1)

    def per_row(value, hint):        # a value for every row, the batch size being free
        return g.op("ConstantOfShape", [rows], hint, value=np.array([value]))

    group, p = per_row(np.int64(0), "group"), per_row(np.float32(1), "p")
    done, node = per_row(False, "done"), per_row(np.int64(-1), "node")
    axis1 = g.constant(np.array([1], np.int64), "axis1")
    for _ in range(int(tree.depth.max()) + 1):
        candidates = g.op("Gather", [members, group], "candidates", axis=0)
        candidate_values = g.op("GatherElements", [values, candidates], axis=1)
        position = g.op("ArgMax", [candidate_values], axis=1, keepdims=1)
        best = g.op("Squeeze", [g.op("GatherElements", [candidates, position], axis=1), axis1],
                    "best")
        top = g.op("Squeeze", [g.op("GatherElements", [candidate_values, position], axis=1),
                               axis1], "top")
        product = g.op("Mul", [p, top], "product")
        deeper = g.op("Greater", [product, threshold], "deeper")
        best_child = g.op("Gather", [child, best], "best_child", axis=0)
        leaf = g.op("Less", [best_child, zero], "leaf")
        descends = g.op("And", [deeper, g.op("Not", [leaf])], "descends")
        # stopping here names the best node (a leaf reached, or the root group) or else the
        # parent of the group the descent stopped in
        name_best = g.op("Or", [deeper, g.op("Equal", [group, zero])], "name_best")
        named = g.op("Where", [name_best, best, g.op("Gather", [group_parent, group], axis=0)])
        stops = g.op("And", [g.op("Not", [done]), g.op("Not", [descends])], "stops")
        node = g.op("Where", [stops, named, node], "node")
        moves = g.op("And", [g.op("Not", [done]), descends], "moves")
        p = g.op("Where", [moves, product, p], "p")
        group = g.op("Where", [moves, best_child, group], "group")
        done = g.op("Or", [done, stops], "done")
    return node


# -- names and metadata ------------------------------------------------------------------------
def output_classes(network):
    """How many classes the network's output names (None when it names none)."""
    if network.region is not None:
        return int(network.region.classes)
    if network.classifier is not None:
        return int(np.prod(network.layers[network.classifier].out_shape))
    return None


def _tree(network):
    if network.region is not None:
        return network.region.tree
    if network.classifier is not None:
        return network.layers[network.classifier].tree
    return None


def _class_names(network, names):
    """The names to store: those given, else the checkpoint's, else the word tree's."""
    count = output_classes(network)
    if names is not None:
        names = [str(n) for n in names]
        if count is not None and len(names) != count:
            raise UserError(f"{len(names)} class names but the network predicts {count} classes")
        return names
    own = getattr(network, "names", None)
    if own and count is not None and len(own) == count:
        return [str(n) for n in own]
    tree = _tree(network)
    return [str(n) for n in tree.names] if tree is not None else None


def _metadata(network, names, decode, batch_dim):
    region, tree = network.region, _tree(network)
    task = ("detect" if region is not None else
            "classify" if network.classifier is not None else "features")
    if task == "detect":
        preprocessing = {"letterbox": LETTERBOX_RULE, "pad_value": PAD_VALUE}
    elif task == "classify":
        preprocessing = {"center_crop": "the image resized (bilinear, keeping its aspect ratio) "
                                        "to just cover W x H, and its centred W x H window"}
    else:
        preprocessing = {}
    meta = {
        "yolo9000_version": __version__,
        "source": Path(str(network.source)).name,
        "task": task,
        "input": {"name": INPUT_NAME, "layout": "NCHW", "channels": "RGB", "range": [0, 1],
                  "dtype": "float32", "batch": batch_dim, "width": network.width,
                  "height": network.height},
        "letterbox": preprocessing.get("letterbox") and preprocessing,
        "names": names,
        "outputs": _outputs_description(network, decode),
    }
    if task == "classify":
        meta["input"]["preprocessing"] = preprocessing
    if region is not None:
        meta["region"] = {
            "num": int(region.num), "classes": int(region.classes), "coords": int(region.coords),
            "grid": list(region.out_shape[1:]),
            "anchors": np.asarray(region.anchors, float).round(6).tolist(),
            "anchors_unit": "grid cells (a box's w = exp(t_w) * anchor_w / grid_w of the input)",
            "softmax": bool(region.softmax)}
        if region.class_map is not None:
            meta["class_map"] = [int(v) for v in region.class_map]
    if tree is not None:
        meta["tree"] = {"parent": [int(v) for v in tree.parent], "wnids": list(tree.wnids),
                        "names": [str(n) for n in tree.names],
                        "groups": "consecutive nodes with the same parent; each has its own "
                                  "softmax (P(node | parent))"}
    if decode is not None:
        meta["decode"] = {"thresh": decode.thresh, "nms": decode.nms}
        if tree is not None:
            meta["decode"].update(hier_thresh=decode.hier_thresh, tree_walk=decode.tree_walk)
    return {k: json.dumps(v) for k, v in meta.items() if v is not None}


def _outputs_description(network, decode):
    region = network.region
    if decode is not None:
        naming = ("the word-tree node the tree walk names (score: the objectness)"
                  if region.tree is not None else "class index (score: objectness x class "
                                                  "probability)")
        return {"boxes": "(K, 4) x1, y1, x2, y2 in pixels of the network input",
                "scores": "(K,)", "classes": f"(K,) {naming}",
                "batch_index": "(K,) the image of each detection",
                "order": "by image, then class, each class by decreasing score"}
    if region is not None:
        return {RAW_OUTPUT: "(N, num * (coords + 1 + classes), grid_h, grid_w): channel = "
                            "anchor * (coords + 1 + classes) + entry, entries x, y, w, h, "
                            "objectness, classes; x, y and objectness sigmoided, w and h raw, "
                            "the classes softmaxed (per sibling group with a word tree)"}
    if network.classifier is not None:
        return {RAW_OUTPUT: "(N, classes, 1, 1) class probabilities"
                + (" P(node | parent) per sibling group" if _tree(network) is not None else "")}
    return {RAW_OUTPUT: f"(N, {', '.join(map(str, network.output_shape))}) the last layer's "
                        "output"}
