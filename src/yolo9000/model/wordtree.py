"""WordTree: YOLO9000's class hierarchy (darknet's tree.c semantics).

A tree file has one node per line, ``wnid parent_index`` (parent -1 for a root).  A *group* is a
consecutive run of nodes with the same parent — darknet's ``read_tree`` builds
``group_offset``/``group_size`` that way — and the region layer applies a separate softmax to
each group, so every class channel holds P(node | parent).  Absolute probabilities are products
up the parents.

The layers that use a tree (region, softmax) are handed the WordTree when the network is built
(cfg_word_tree, cfg_class_map): reading tree and map files is the model's business, not theirs.
"""
from pathlib import Path

import numpy as np

from ..errors import UserError
from .zoo import bundled_file, cfg_file


# the bytes of input grouped_softmax gathers at a time: its temporaries stay in L2
GROUPED_SOFTMAX_BYTES = 128 * 1024


class WordTree:
    def __init__(self, parent, wnids=None, names=None, source=None):
        parent = np.asarray(parent, dtype=np.int64).reshape(-1)
        n = parent.size
        index = np.arange(n)
        if n == 0:
            raise ValueError("word tree: no nodes")
        if np.any(parent < -1) or np.any(parent >= index):
            bad = int(np.flatnonzero((parent < -1) | (parent >= index))[0])
            raise ValueError(f"word tree: node {bad} has parent {int(parent[bad])}; parents must "
                             "come before their children (-1 for a root)")
        self.parent = parent.astype(np.int32)
        self.n = n
        self.wnids = list(wnids) if wnids is not None else [str(i) for i in range(n)]
        self.names = list(names) if names is not None else list(self.wnids)
        if len(self.wnids) != n or len(self.names) != n:
            raise ValueError(f"word tree: {n} nodes but {len(self.wnids)} ids / {len(self.names)} names")
        self.source = source

        starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
        self.group_offset = starts.astype(np.int64)
        self.group_size = np.diff(np.r_[starts, n]).astype(np.int64)
        self.group = (np.repeat(np.arange(starts.size), self.group_size)).astype(np.int32)
        # child[i]: the group holding i's children (-1 for a leaf), as darknet's tree->child
        self.child = np.full(n, -1, dtype=np.int32)
        first_parents = parent[starts]
        has_parent = first_parents >= 0
        self.child[first_parents[has_parent]] = np.flatnonzero(has_parent)
        self.leaf = self.child < 0
        self.depth = np.zeros(n, dtype=np.int32)
        for i in range(n):   # parents precede children, so one pass suffices
            if parent[i] >= 0:
                self.depth[i] = self.depth[parent[i]] + 1

    # -- construction ----------------------------------------------------------------------
    @property
    def groups(self):
        """(offsets, sizes) of the softmax groups."""
        return self.group_offset, self.group_size

    @classmethod
    def load(cls, path, names=None):
        """Read a darknet tree file; names: a names file (one per line) or list, optional."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise UserError(f"cannot read word tree: {exc.strerror or exc}", path=path) from None
        wnids, parent = [], []
        for lineno, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise UserError(f"expected 'id parent_index', got {line.strip()!r}", path=path, line=lineno)
            try:
                p = int(fields[1])
            except ValueError:
                raise UserError(f"parent index {fields[1]!r} is not an integer", path=path, line=lineno) from None
            if p < -1 or p >= len(parent):
                raise UserError(f"parent index {p} must be -1 or an earlier node (0..{len(parent) - 1})",
                                path=path, line=lineno)
            wnids.append(fields[0])
            parent.append(p)
        if not parent:
            raise UserError("word tree is empty", path=path)
        if isinstance(names, (str, Path)):
            names_path = Path(names)
            try:
                names = [s.strip() for s in names_path.read_text().splitlines() if s.strip()]
            except OSError as exc:
                raise UserError(f"cannot read names: {exc.strerror or exc}", path=names_path) from None
            if len(names) != len(parent):
                raise UserError(f"{len(names)} names for a tree of {len(parent)} nodes", path=names_path)
        return cls(parent, wnids=wnids, names=names, source=str(path))

    @classmethod
    def bundled(cls, name="9k"):
        """A tree shipped with the package (model/bundled/<name>.tree, with <name>.names)."""
        tree_file = bundled_file(f"{name}.tree")
        if tree_file is None:
            raise UserError(f"no bundled word tree named {name!r}")
        names_file = bundled_file(f"{name}.names")
        tree = cls.load(tree_file)
        if names_file is not None:
            names = [s.strip() for s in names_file.read_text().splitlines() if s.strip()]
            if len(names) == tree.n:
                tree.names = names
        tree.source = f"bundled:{name}"
        return tree

    @classmethod
    def resolve(cls, spec):
        """A WordTree from a WordTree, a path, or a cfg value like 'data/9k.tree'.

        A cfg's darknet-relative path that does not exist falls back to the bundled tree of the
        same name, so the stock yolo9000.cfg works from any directory.
        """
        if isinstance(spec, WordTree):
            return spec
        path = Path(str(spec))
        if path.is_file():
            if bundled_file(path.name) is not None and \
                    path.resolve() == bundled_file(path.name).resolve():
                return cls.bundled(path.stem)       # with its names file (9k.names)
            return cls.load(path)
        if path.suffix == ".tree" and bundled_file(path.name) is not None:
            return cls.bundled(path.stem)
        raise UserError("word tree file not found", path=path)

    # -- the grouped (hierarchical) softmax ----------------------------------------------------
    def _check_axis(self, x, axis):
        if x.shape[axis] != self.n:
            raise ValueError(f"word tree: axis {axis} has {x.shape[axis]} entries, tree has {self.n} nodes")

    # numpy's reduceat along a non-last axis is very slow for the 9k tree (1846 groups over
    # 9418 channels), so the adjoint and the log-softmax walk the groups as slices (the
    # softmax by sizes: _groups_by_size); singleton groups, a constant 1, are handled together
    def _group_slices(self, ndim, axis):
        cache = self.__dict__.setdefault("_slice_cache", {})
        key = (ndim, axis)
        if key not in cache:
            idx = [slice(None)] * ndim
            spans = []
            for off, size in zip(self.group_offset.tolist(), self.group_size.tolist()):
                if size > 1:
                    idx[axis] = slice(off, off + size)
                    spans.append(tuple(idx))
            singles = self.group_offset[self.group_size == 1]
            idx[axis] = singles
            cache[key] = (spans, tuple(idx) if singles.size else None)
        return cache[key]

    def _groups_by_size(self):
        """[(size, nodes)] for the groups of two nodes or more, nodes (groups, size) the
        node indices of every group of that size, one group a row."""
        cached = self.__dict__.get("_by_size_cache")
        if cached is None:
            cached = self.__dict__["_by_size_cache"] = [
                (size, self.group_offset[self.group_size == size][:, None] + np.arange(size))
                for size in np.unique(self.group_size[self.group_size > 1]).tolist()]
        return cached

    def grouped_softmax(self, x, axis=-1):
        """Softmax over each group's span along axis: P(node | parent).

        Groups of one size go through NumPy together, gathered by GROUPED_SOFTMAX_BYTES
        (the 9k tree: 1800 groups of 40 sizes); each group's maximum, exponentials, sum and
        quotient are those of a pass of its own, element for element and in the same order
        (the sum along the same axis, before the same trailing axes), so the bits are the
        same."""
        self._check_axis(x, axis)
        axis %= x.ndim
        _, singles = self._group_slices(x.ndim, axis)
        out = np.empty_like(x)
        before = (slice(None),) * axis
        node_bytes = max(1, x.itemsize * x.size // self.n)
        for size, table in self._groups_by_size():
            step = max(1, GROUPED_SOFTMAX_BYTES // (node_bytes * size))
            for first in range(0, table.shape[0], step):
                nodes = table[first:first + step]
                # np.take's result is C-ordered, as a group's slice of a C-ordered x minus
                # its maximum is (x[:, nodes] may put the nodes' axis outermost in memory,
                # and a sum whose axis is then the innermost is NumPy's pairwise sum: other
                # bits)
                part = np.take(x, nodes.reshape(-1), axis=axis)
                shape = part.shape
                part = part.reshape(shape[:axis] + nodes.shape + shape[axis + 1:])
                e = np.exp(part - part.max(axis=axis + 1, keepdims=True))
                out[before + (nodes.reshape(-1),)] = (
                    e / e.sum(axis=axis + 1, keepdims=True)).reshape(shape)
        if singles is not None:
            out[singles] = 1
        return out

    def grouped_softmax_vjp(self, p, dy, axis=-1):
        """Adjoint of grouped_softmax at output p: p * (dy - sum over the group of p*dy)."""
        self._check_axis(p, axis)
        axis %= p.ndim
        spans, singles = self._group_slices(p.ndim, axis)
        dx = np.empty_like(dy)
        for span in spans:
            ps, ds = p[span], dy[span]
            dx[span] = ps * (ds - (ps * ds).sum(axis=axis, keepdims=True))
        if singles is not None:
            dx[singles] = 0
        return dx

    def grouped_log_softmax(self, x, axis=-1):
        self._check_axis(x, axis)
        axis %= x.ndim
        spans, singles = self._group_slices(x.ndim, axis)
        out = np.empty_like(x)
        for span in spans:
            z = x[span] - x[span].max(axis=axis, keepdims=True)
            out[span] = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        if singles is not None:
            out[singles] = 0
        return out

    # -- probabilities over the hierarchy ------------------------------------------------------
    def path(self, node):
        """node, its parent, ..., its root."""
        out = []
        node = int(node)
        if not 0 <= node < self.n:
            raise ValueError(f"word tree: node {node} outside [0, {self.n})")
        while node >= 0:
            out.append(node)
            node = int(self.parent[node])
        return out

    def hierarchy_probability(self, probs, node, axis=-1):
        """Absolute probability of node: product of conditional probabilities up the parents."""
        return np.take(probs, self.path(node), axis=axis).prod(axis=axis)

    def hierarchy_predictions(self, probs, axis=-1):
        """Every node's absolute probability (darknet's hierarchy_predictions, only_leaves=0)."""
        self._check_axis(probs, axis)
        out = np.moveaxis(np.array(probs, copy=True), axis, -1)
        for level in range(1, int(self.depth.max()) + 1):
            nodes = np.flatnonzero(self.depth == level)
            out[..., nodes] *= out[..., self.parent[nodes]]
        return np.moveaxis(out, -1, axis)

    #: the two ways of naming a box's class (``top_prediction``'s ``walk``)
    WALKS = ("paper", "darknet")

    def top_prediction(self, probs, thresh, walk="paper"):
        """The deepest node one 1-D vector of conditional probabilities (a group softmax's
        output) is confident about.

        walk="paper": descend from the root group through the most likely child while the
        product of the conditional probabilities along the path stays above thresh (the
        paper's rule). walk="darknet": darknet's detector, which first turns the vector into
        absolute probabilities (``hierarchy_predictions``) and then runs the same descent on
        them (``hierarchy_top_prediction``), so it multiplies already-multiplied numbers and
        stops earlier; published yolo9000.weights name their boxes this way."""
        self.check_walk(walk)
        if walk == "darknet":
            probs = self.hierarchy_predictions(np.asarray(probs).reshape(-1))
        return self.hierarchy_top_prediction(probs, thresh)

    @classmethod
    def check_walk(cls, walk):
        if walk not in cls.WALKS:
            raise ValueError(f"tree walk must be one of {', '.join(cls.WALKS)}, not {walk!r}")

    def hierarchy_top_prediction(self, values, thresh):
        """darknet's hierarchy_top_prediction on one 1-D vector, whatever it holds: descend from
        the root group through each group's largest value while the running product of those
        values stays above thresh; return the deepest node reached (the root group's best node
        even below thresh; else the parent of the group where the descent stopped)."""
        values = np.asarray(values).reshape(-1)
        if not np.issubdtype(values.dtype, np.floating):
            values = values.astype(np.float64)
        # in the values' own precision, as darknet's float arithmetic, so a product on the
        # threshold falls the same side
        real = values.dtype.type
        p, group, thresh = real(1), 0, real(thresh)
        while True:
            start, size = int(self.group_offset[group]), int(self.group_size[group])
            best = start + int(np.argmax(values[start:start + size]))
            top = values[best]
            if p * top > thresh:
                p *= top
                group = int(self.child[best])
                if group < 0:
                    return best
            elif group == 0:
                return best
            else:
                return int(self.parent[start])

    def path_probabilities(self, probs, node):
        """[(node, P(node | parent), P(node)), ...] from node's root down to node, for one 1-D
        vector of conditional probabilities: each node of the path with its conditional and
        its absolute probability (the running product from the root)."""
        probs = np.asarray(probs).reshape(-1)
        out, absolute = [], 1.0
        for k in reversed(self.path(node)):
            conditional = float(probs[k])
            absolute *= conditional
            out.append((k, conditional, absolute))
        return out

    def __repr__(self):
        return f"WordTree({self.n} nodes, {len(self.group_offset)} groups, source={self.source!r})"


def read_class_map(path):
    """darknet's map= file (e.g. coco9k.map): line k holds the tree node of dataset class k. A
    darknet-relative path that does not exist falls back to the bundled file of that name."""
    path = Path(path)
    if not path.is_file() and bundled_file(path.name) is not None:
        path = bundled_file(path.name)
    try:
        lines = path.read_text().split()
    except OSError as exc:
        raise UserError(f"cannot read class map: {exc.strerror or exc}", path=path) from None
    try:
        return [int(v) for v in lines]
    except ValueError:
        raise UserError("class map must hold one integer per line", path=path) from None


def cfg_word_tree(value, cfg_source=None, files=None):
    """The WordTree a cfg's tree= value names (found as zoo.cfg_file finds it)."""
    return WordTree.resolve(cfg_file(value, "tree", cfg_source, files))


def cfg_class_map(value, cfg_source=None, files=None):
    """The dataset class -> tree node list a cfg's map= value names (found as zoo.cfg_file
    finds it)."""
    return read_class_map(cfg_file(value, "class map", cfg_source, files))
