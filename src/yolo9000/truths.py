"""The truth rows a detector trains on, as the data side writes them and the region loss reads
them: one row [cx, cy, w, h, class] per box, normalised to the image (rows with w or h <= 0 are
padding). YOLO9000's joint training adds darknet's classification-only row, which names a
WordTree node for the whole image and no box.
"""
import numpy as np

#: darknet's marker for a classification-only image (YOLO9000 joint training): a truth row whose
#: x and y both exceed 100000 names a tree node for the whole image, with no box
CLASSIFICATION_ONLY = 100001.0
_CLASSIFICATION_MARK = 100000.0


def classification_truth(node):
    """The (1, 5) float32 truth row darknet reads as "this image shows a `node`, box unknown".

    node is a WordTree node index, never a dataset class: like darknet, the region's map= (a
    dataset class -> node table for detection labels) is not applied to these rows. w and h are
    1 so the row is not mistaken for padding."""
    node = int(node)
    if node < 0:
        raise ValueError(f"classification truth: node {node} is negative")
    return np.array([[CLASSIFICATION_ONLY, CLASSIFICATION_ONLY, 1.0, 1.0, node]], dtype=np.float32)


def is_classification_only(x, y):
    """Which truth rows, given their x and y, are classification-only rows (darknet's test)."""
    return (x > _CLASSIFICATION_MARK) & (y > _CLASSIFICATION_MARK)
