"""Matching a dataset's class ids to a model's, before scoring the model on the dataset.

The model's classes and the dataset's must be the same list. When both sides have names they
are compared: VOC/COCO datasets (whose ids come from names) are mapped onto the model's names;
for YOLO datasets (whose ids are the truth) differing names only warn.
"""
from dataclasses import replace

import numpy as np

from ..errors import UserError
from ..names import default_names


def _is_generated_names(dataset):
    """True when a YOLO dataset had no names file and load_dataset made class0..classN up."""
    return dataset.format == "yolo" and dataset.names == default_names(len(dataset.names))


def _remap_by_name(dataset, model_names):
    """The dataset with class ids renumbered to the model's list (every name must be in it)."""
    index = {n: i for i, n in enumerate(model_names)}
    table = np.array([index[n] for n in dataset.names], np.int64)
    records = [replace(r, classes=table[r.classes]) for r in dataset.records]
    category_ids = None
    if dataset.category_ids is not None:
        # COCO results keep the file's category ids: the model's classes take them by name
        by_name = dict(zip(dataset.names, dataset.category_ids))
        category_ids = [by_name.get(n) for n in model_names]
    return replace(dataset, records=records, names=list(model_names), category_ids=category_ids)


def _preview(names, limit=4):
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def reconcile_classes(dataset, num_classes, model_names=None, model_source=None, data_path=None):
    """Make the dataset's class ids the model's. Returns (dataset, names, notes).

    model_names: the model's class names, if anything names them (model_source says where
    they came from). Raises UserError when the class counts cannot be reconciled.
    """
    names_d = list(dataset.names)
    count_d = len(names_d)
    if model_names is not None and names_d == list(model_names):
        return dataset, names_d, []
    if (model_names is not None and dataset.format in ("voc", "coco")
            and set(names_d) <= set(model_names)):
        # VOC/COCO class ids only stand for names, so the model's numbering can be used as is.
        return (_remap_by_name(dataset, model_names), list(model_names),
                [f"mapped the dataset's {count_d} class names onto the model's "
                 f"{len(model_names)} ({model_source}) by name"])
    if _is_generated_names(dataset) and count_d <= num_classes:
        # No names file: the dataset's ids are all there is, and they fit the model.
        names = list(model_names) if model_names is not None else default_names(num_classes)
        return dataset, names, []
    if count_d != num_classes:
        origin = f" ({model_source})" if model_source else ""
        hint = ("labels use class ids up to " + str(count_d - 1)) if _is_generated_names(dataset) \
            else f"class names: {_preview(names_d)}"
        raise UserError(f"the model predicts {num_classes} classes{origin} but the dataset has "
                        f"{count_d} ({hint}); evaluate on data labelled with the model's classes "
                        "or give --names", path=data_path)
    notes = []
    if model_names is not None:
        differ = [i for i, (a, b) in enumerate(zip(model_names, names_d)) if a != b]
        i = differ[0]
        notes.append(f"class names differ between the model ({model_source}) and the dataset "
                     f"in {len(differ)} of {count_d} classes (e.g. id {i}: {model_names[i]!r} vs "
                     f"{names_d[i]!r}); scoring by class id with the dataset's names")
    return dataset, names_d, notes


# -- word-tree (YOLO9000) models: dataset classes are tree nodes ---------------------------------
def tree_nodes(names, tree, class_map=None, path=None):
    """The tree node of each dataset class name, as an int64 array.

    With a cfg's `map=` (class_map: dataset class index -> node, e.g. coco9k.map) the dataset's
    classes are taken by position, and their count must be the map's. Otherwise each name is
    looked up as a WordNet id (e.g. a class folder `n02084071`), then as a node name (exact,
    then ignoring case); a name the tree lacks, or that names several nodes, is an error naming
    it (the ids of the candidates say which to use instead)."""
    names = [str(n) for n in names]
    if class_map is not None:
        class_map = np.asarray(class_map, np.int64)
        if len(names) != class_map.size:
            raise UserError(f"the cfg's map= takes a dataset of {class_map.size} classes (by "
                            f"position) but the dataset has {len(names)}", path=path)
        return class_map.copy()
    by_wnid = {w: i for i, w in enumerate(tree.wnids)}
    by_name, by_lower = {}, {}
    for i, n in enumerate(tree.names):
        by_name.setdefault(n, []).append(i)
        by_lower.setdefault(n.lower(), []).append(i)
    nodes = []
    for n in names:
        if n in by_wnid:
            nodes.append(by_wnid[n])
            continue
        found = by_name.get(n) or by_lower.get(n.lower()) or []
        if len(found) == 1:
            nodes.append(found[0])
        elif not found:
            raise UserError(f"class {n!r} is not a node of the word tree {tree.source} (give "
                            "classes by a node's name or WordNet id)", path=path)
        else:
            ids = ", ".join(tree.wnids[i] for i in found[:6])
            raise UserError(f"class {n!r} names {len(found)} nodes of the word tree ({ids}); "
                            "name the class by its WordNet id instead", path=path)
    return np.array(nodes, np.int64)
