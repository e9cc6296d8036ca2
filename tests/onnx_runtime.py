"""Running exported ONNX files in the tests, and reading their detections back into image
pixels the way a user of the file alone would: by the letterbox rule its metadata states,
written here again in plain Python (not through yolo9000.boxes)."""
import json

import numpy as np


def onnxruntime_session(model, threads=1):
    """An ONNX Runtime CPU session of a ModelProto, serialized bytes or a path."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif not isinstance(model, bytes):
        model = str(model)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def metadata(session):
    """The file's metadata_props, their JSON values decoded."""
    return {key: json.loads(value)
            for key, value in session.get_modelmeta().custom_metadata_map.items()}


def letterbox_placement(image_w, image_h, net_w, net_h):
    """(new_w, new_h, dx, dy) of an image letterboxed into the network input: the rule the
    exported file's metadata states."""
    if net_w / image_w < net_h / image_h:
        new_w, new_h = net_w, image_h * net_w // image_w
    else:
        new_w, new_h = image_w * net_h // image_h, net_h
    return new_w, new_h, (net_w - new_w) // 2, (net_h - new_h) // 2


def detections_in_image(boxes, scores, classes, image_w, image_h, net_w, net_h):
    """Decoded outputs of one image (boxes in input pixels) -> [(class, score, (x1, y1, x2, y2))]
    in the image's pixels: mapped back through the letterbox, clipped to the image, boxes left
    without area dropped; by decreasing score."""
    new_w, new_h, dx, dy = letterbox_placement(image_w, image_h, net_w, net_h)
    found = []
    for (x1, y1, x2, y2), score, cls in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
        corners = [(x1 - dx) * image_w / new_w, (y1 - dy) * image_h / new_h,
                   (x2 - dx) * image_w / new_w, (y2 - dy) * image_h / new_h]
        x1, x2 = (min(max(v, 0.0), image_w) for v in corners[0::2])
        y1, y2 = (min(max(v, 0.0), image_h) for v in corners[1::2])
        if x2 > x1 and y2 > y1:
            found.append((int(cls), float(score), (x1, y1, x2, y2)))
    return sorted(found, key=lambda d: -d[1])


def assert_same_detections(ours, theirs, box_tol=0.5, score_tol=1e-4):
    """Two lists of (class, score, (x1, y1, x2, y2)) hold the same detections: each of ours
    pairs with one of theirs of its class, score within score_tol and corners within box_tol
    pixels (paired greedily: near-equal scores may come in either order)."""
    assert len(ours) == len(theirs), (ours, theirs)
    unpaired = list(theirs)
    for cls, score, box in ours:
        match = next((d for d in unpaired if d[0] == cls and abs(d[1] - score) <= score_tol
                      and np.max(np.abs(np.subtract(d[2], box))) <= box_tol), None)
        assert match is not None, ((cls, score, box), unpaired)
        unpaired.remove(match)
