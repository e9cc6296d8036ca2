"""An independent reading of the detection pipeline (letterbox, decode, NMS, map back) written
with plain loops, for tests to compare the package's vectorised pipeline against."""
import math

import numpy as np


def _ref_iou(a, b):
    """box.c box_iou on (x, y, w, h) centre boxes."""
    def overlap(x1, w1, x2, w2):
        return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)
    w = overlap(a[0], a[2], b[0], b[2])
    h = overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if w < 0 or h < 0 else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0

def reference_detections(output, anchors, classes, img_w, img_h, net_w, net_h, thresh, nms):
    """get_region_detections + correct_region_boxes + do_nms_sort, loop by loop.

    Conventions of this project that differ from darknet are spelled out: scores >= thresh are
    kept, the letterbox offset is the integer one the image was placed at, boxes are clipped
    to the image and boxes clipped to nothing are dropped.
    """
    num = len(anchors)
    C, H, W = output.shape
    out = output.reshape(num, C // num, H, W).astype(np.float64)
    dets = []                                              # [box (x, y, w, h) relative, probs]
    for i in range(H):
        for j in range(W):
            for n in range(num):
                obj = out[n, 4, i, j]
                box = [(j + out[n, 0, i, j]) / W, (i + out[n, 1, i, j]) / H,
                       math.exp(out[n, 2, i, j]) * anchors[n][0] / W,
                       math.exp(out[n, 3, i, j]) * anchors[n][1] / H]
                probs = [obj * out[n, 5 + k, i, j] for k in range(classes)]
                dets.append([box, [p if p >= thresh else 0.0 for p in probs]])
    if net_w / img_w < net_h / img_h:
        new_w, new_h = net_w, img_h * net_w // img_w
    else:
        new_w, new_h = img_w * net_h // img_h, net_h
    dx, dy = (net_w - new_w) // 2, (net_h - new_h) // 2
    for d in dets:
        x, y, w, h = d[0]
        d[0] = [(x * net_w - dx) / new_w, (y * net_h - dy) / new_h, w * net_w / new_w,
                h * net_h / new_h]
    for k in range(classes):
        order = sorted(range(len(dets)), key=lambda t: -dets[t][1][k])
        for a_pos, a in enumerate(order):
            if dets[a][1][k] == 0:
                continue
            for b in order[a_pos + 1:]:
                if _ref_iou(dets[a][0], dets[b][0]) > nms:
                    dets[b][1][k] = 0.0
    found = []
    for box, probs in dets:
        x, y, w, h = box
        x1, x2 = max((x - w / 2) * img_w, 0.0), min((x + w / 2) * img_w, img_w)
        y1, y2 = max((y - h / 2) * img_h, 0.0), min((y + h / 2) * img_h, img_h)
        for k, p in enumerate(probs):
            if p > 0 and x2 > x1 and y2 > y1:
                found.append((k, p, (x1, y1, x2, y2)))
    return found

def assert_same_detections(got, ref, img_w, img_h):
    got = sorted(((d.cls, d.score, d.box) for d in got), key=lambda t: (t[0], -t[1]))
    ref = sorted(ref, key=lambda t: (t[0], -t[1]))
    assert len(got) == len(ref) > 0
    assert [g[0] for g in got] == [r[0] for r in ref]
    np.testing.assert_allclose([g[1] for g in got], [r[1] for r in ref], atol=1e-4)
    size = max(img_w, img_h)
    np.testing.assert_allclose([g[2] for g in got], [r[2] for r in ref], atol=1e-3 * size)

def independent_letterbox(rgb, net_w, net_h):
    """darknet letterbox_image with its resize_image, written without the package."""
    im = rgb.astype(np.float64) / 255.0
    ih, iw = im.shape[:2]
    if net_w / iw < net_h / ih:
        new_w, new_h = net_w, ih * net_w // iw
    else:
        new_w, new_h = iw * net_h // ih, net_h
    part = np.empty((ih, new_w, 3))
    for c in range(new_w):
        if c == new_w - 1:
            part[:, c] = im[:, iw - 1]
        else:
            sx = c * (iw - 1) / (new_w - 1)
            ix = int(sx)
            part[:, c] = (1 - (sx - ix)) * im[:, ix] + (sx - ix) * im[:, ix + 1]
    resized = np.empty((new_h, new_w, 3))
    for r in range(new_h):
        if r == new_h - 1:
            resized[r] = part[ih - 1]
        else:
            sy = r * (ih - 1) / (new_h - 1)
            iy = int(sy)
            resized[r] = (1 - (sy - iy)) * part[iy] + (sy - iy) * part[iy + 1]
    boxed = np.full((net_h, net_w, 3), 0.5)
    dx, dy = (net_w - new_w) // 2, (net_h - new_h) // 2
    boxed[dy:dy + new_h, dx:dx + new_w] = resized
    return boxed.transpose(2, 0, 1)[None].astype(np.float32)
