"""boxes.py: IoU (pairwise, one-to-many, centre/size, shapes), formats, clipping, scaling and
the letterbox map. Expected values are worked out by hand in the comments."""
import numpy as np
import pytest

from yolo9000.boxes import (box_area, clip_xyxy, cxcywh_to_xyxy, image_to_network, iou_cxcywh,
                            iou_one_to_many, iou_wh, letterbox_info, letterbox_size,
                            network_to_image, normalised_to_pixels, pairwise_iou,
                            pixels_to_normalised, visible_region, xyxy_to_cxcywh)
from conftest import scalar_iou


# -- IoU ---------------------------------------------------------------------------------------
def test_pairwise_iou_by_hand_no_plus_one():
    # [0,10]x[0,10] vs [5,15]x[0,10]: overlap 5x10 = 50, union 100 + 100 - 50 = 150;
    # vs [10,20]x[10,20]: touching corners, 0; vs itself: 1
    iou = pairwise_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 1.0]])
    assert iou.dtype == np.float64                       # integer input -> float64


def test_pairwise_iou_matches_scalar_formula():
    rng = np.random.default_rng(9)
    a = rng.random((7, 2)) * 10
    a = np.concatenate([a, a + rng.random((7, 2)) * 5], axis=1)
    b = rng.random((5, 2)) * 10
    b = np.concatenate([b, b + rng.random((5, 2)) * 5], axis=1)
    got = pairwise_iou(a, b)
    assert got.shape == (7, 5)
    np.testing.assert_allclose(got, [[scalar_iou(x, y) for y in b] for x in a], atol=1e-12)


def test_zero_area_boxes_give_zero_not_nan():
    point = [1, 1, 1, 1]
    line = [0, 1, 4, 1]                                  # zero height, inside nothing
    with np.errstate(all="raise"):                       # no 0/0 either
        iou = pairwise_iou([point, line], [point, line, [0, 0, 4, 4]])
    assert iou.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert iou_cxcywh([2, 2, 0, 0], [2, 2, 0, 0]) == 0
    assert iou_wh(0, 0, 0, 0) == 0 and iou_wh(0, 1, 1, 1) == 0


def test_float32_stays_float32_and_float64_stays_float64():
    b32 = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)
    assert pairwise_iou(b32, b32).dtype == np.float32
    assert pairwise_iou(b32.astype(np.float64), b32).dtype == np.float64
    c32 = np.array([5, 5, 10, 10], np.float32)
    assert iou_cxcywh(c32, c32).dtype == np.float32
    assert iou_cxcywh(c32.astype(np.float64), c32.astype(np.float64)).dtype == np.float64
    one = np.float32(1)
    assert iou_wh(one, one, one, one).dtype == np.float32
    assert cxcywh_to_xyxy(b32).dtype == np.float32 and xyxy_to_cxcywh(b32).dtype == np.float32
    assert cxcywh_to_xyxy([[1, 1, 2, 2]]).dtype == np.float64


def test_one_to_many_is_one_row():
    # [0,4]x[0,2] vs [2,6]x[0,3]: 2x2 = 4 / (8 + 12 - 4) = 1/4; vs [0,2]x[0,2]: 4 / 8; vs far: 0
    got = iou_one_to_many(np.array([0, 0, 4, 2], np.float32),
                          np.array([[2, 0, 6, 3], [0, 0, 2, 2], [9, 9, 10, 10]], np.float32))
    np.testing.assert_allclose(got, [0.25, 0.5, 0.0], rtol=1e-6)
    assert got.shape == (3,) and got.dtype == np.float32


def test_box_area_no_plus_one():
    np.testing.assert_array_equal(box_area([[0, 0, 4, 2], [1, 1, 1, 5], [2, 3, 7, 9]]), [8, 0, 30])


def test_iou_cxcywh_by_hand_and_broadcasting():
    # centre (5, 5) size 10 vs centre (10, 5) size 10: overlap 5x10 = 50 of union 150
    assert iou_cxcywh([5, 5, 10, 10], [10, 5, 10, 10]) == pytest.approx(1 / 3)
    # centre (0, 0) size 2x2 vs centre (3, 0): apart by 1, no overlap
    assert iou_cxcywh([0, 0, 2, 2], [3, 0, 2, 2]) == 0
    a = np.array([[5, 5, 10, 10], [0, 0, 2, 2]], np.float64)
    b = np.array([[10, 5, 10, 10], [0, 0, 1, 1], [5, 5, 10, 10]], np.float64)
    # (2, 1, 4) against (1, 3, 4): all pairs. As corners: a = [0,10]^2, [-1,1]^2;
    # b = [5,15]x[0,10], [-.5,.5]^2, [0,10]^2
    got = iou_cxcywh(a[:, None], b[None])
    expected = [[1 / 3, 0.25 / (100 + 1 - 0.25), 1.0],   # [0,10]^2 and [-.5,.5]^2 share .5 x .5
                [0.0, 1 / 4, 1 / (4 + 100 - 1)]]         # [-1,1]^2 and [0,10]^2 share [0,1]^2
    np.testing.assert_allclose(got, expected)


def test_iou_wh_by_hand_and_all_pairs():
    # shapes aligned at a common centre: 2x2 vs 1x1 -> 1/4; 2x1 vs 1x2 -> 1 / (2 + 2 - 1)
    assert iou_wh(2, 2, 1, 1) == pytest.approx(0.25)
    assert iou_wh(2, 1, 1, 2) == pytest.approx(1 / 3)
    w, h = np.array([2.0, 4.0]), np.array([2.0, 1.0])
    got = iou_wh(w[:, None], h[:, None], w[None, :], h[None, :])
    # 2x2 vs 4x1: 2*1 / (4 + 4 - 2) = 1/3
    np.testing.assert_allclose(got, [[1, 1 / 3], [1 / 3, 1]])


def test_iou_wh_is_iou_of_boxes_sharing_a_centre():
    rng = np.random.default_rng(3)
    wh = rng.random((20, 2)) + 0.1
    corners = [[-w / 2, -h / 2, w / 2, h / 2] for w, h in wh]
    ref = [[scalar_iou(a, b) for b in corners] for a in corners]
    got = iou_wh(wh[:, None, 0], wh[:, None, 1], wh[None, :, 0], wh[None, :, 1])
    np.testing.assert_allclose(got, ref, atol=1e-12)


# -- formats, clipping, scaling ---------------------------------------------------------------
def test_centre_and_corner_conversions_by_hand():
    # centre (5, 5), size 4 x 2 -> corners (3, 4)-(7, 6)
    np.testing.assert_array_equal(cxcywh_to_xyxy([[5, 5, 4, 2]]), [[3, 4, 7, 6]])
    np.testing.assert_array_equal(xyxy_to_cxcywh([[3, 4, 7, 6]]), [[5, 5, 4, 2]])
    b = np.array([[10, 20, 30, 60], [0, 0, 1, 1]], np.float32)
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(b)), b)
    assert cxcywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)


def test_clip_xyxy_to_bounds_leaves_input_alone():
    boxes = np.array([[-5, 2, 50, 8], [1, -1, 2, 30]], np.float32)
    before = boxes.copy()
    np.testing.assert_array_equal(clip_xyxy(boxes, (0, 0, 40, 20)), [[0, 2, 40, 8], [1, 0, 2, 20]])
    np.testing.assert_array_equal(clip_xyxy(boxes, (1.5, 0, 3, 5)),
                                  [[1.5, 2, 3, 5], [1.5, 0, 2, 5]])
    np.testing.assert_array_equal(boxes, before)


def test_normalised_and_pixel_scaling():
    # a 200 x 100 image: x scales by 200, y by 100 (both formats)
    np.testing.assert_array_equal(normalised_to_pixels([[0.4, 0.3, 0.6, 0.7]], 200, 100),
                                  [[80, 30, 120, 70]])
    np.testing.assert_array_equal(pixels_to_normalised([[80, 30, 120, 70]], 200, 100),
                                  [[0.4, 0.3, 0.6, 0.7]])


# -- letterbox geometry -------------------------------------------------------------------------
@pytest.mark.parametrize("img, net, expected", [
    ((768, 576), (416, 416), (416, 312)),     # landscape: width fills
    ((576, 768), (416, 416), (312, 416)),     # portrait: height fills
    ((500, 500), (416, 416), (416, 416)),
    ((640, 424), (608, 320), (483, 320)),     # 608/640 > 320/424: height is the tighter one
    ((1001, 333), (416, 416), (416, 138)),    # integer truncation as in darknet
])
def test_letterbox_size_follows_darknet(img, net, expected):
    assert letterbox_size(*img, *net) == expected


def test_letterbox_info_placement_and_reduced_decodes():
    info = letterbox_info(768, 576, 416, 416)
    assert (info.new_w, info.new_h, info.dx, info.dy) == (416, 312, 0, 52)
    assert info.placed_window == (0, 0, 768, 576)
    # a 1/4 decode of 4800 x 3200 is placed at its own size; boxes map to the original
    reduced = letterbox_info(1200, 800, 416, 416, orig_size=(4800, 3200))
    assert (reduced.orig_w, reduced.orig_h) == (4800, 3200)
    assert (reduced.new_w, reduced.new_h) == (416, 277)         # 800 * 416 // 1200
    with pytest.raises(ValueError):
        letterbox_info(1200, 800, 416, 416, orig_size=(4800, 3200), window=(0, 0, 10, 10))


def test_image_to_network_by_hand():
    # 768 x 576 in 416 x 416: scale 416/768, image rows 52 .. 364 of the input
    info = letterbox_info(768, 576, 416, 416)
    np.testing.assert_allclose(image_to_network([[0.5, 0.5, 1.0, 1.0]], info),
                               [[0.5, 0.5, 1.0, 312 / 416]], rtol=1e-6)
    # a box at the image's top-left quarter: centre (192, 144) px -> (104, 52 + 78) input px
    np.testing.assert_allclose(image_to_network([[0.25, 0.25, 0.5, 0.5]], info),
                               [[104 / 416, 130 / 416, 208 / 416, 156 / 416]], rtol=1e-6)


def test_network_to_image_full_network_box_is_whole_image():
    info = letterbox_info(768, 576, 416, 416)
    full = [[0.5, 0.5, 1.0, 312 / 416]]
    np.testing.assert_allclose(network_to_image(full, info), [[0, 0, 768, 576]], atol=1e-3)


@pytest.mark.parametrize("img, net", [((768, 576), (416, 416)), ((333, 1001), (320, 608)),
                                      ((64, 64), (64, 64)), ((1920, 1080), (608, 608))])
def test_forward_and_inverse_maps_round_trip(img, net):
    rng = np.random.default_rng(5)
    W, H = img
    xy = rng.random((50, 2)) * [W * 0.8, H * 0.8]
    corners = np.concatenate([xy, xy + rng.random((50, 2)) * [W * 0.2, H * 0.2] + 1], axis=1)
    normalised = np.stack([(corners[:, 0] + corners[:, 2]) / 2 / W,
                           (corners[:, 1] + corners[:, 3]) / 2 / H,
                           (corners[:, 2] - corners[:, 0]) / W,
                           (corners[:, 3] - corners[:, 1]) / H], axis=1)
    info = letterbox_info(W, H, *net)
    back = network_to_image(image_to_network(normalised, info), info)
    np.testing.assert_allclose(back, corners, atol=1e-3 * max(W, H))


def test_window_maps_round_trip_and_by_hand():
    # window (-50, -20)-(240, 200) of a 300 x 200 image placed 1:1 in a 290 x 220 input:
    # image pixel (x, y) lands at (x + 50, y + 20)
    info = letterbox_info(300, 200, 290, 220, window=(-50, -20, 240, 200))
    assert (info.new_w, info.new_h, info.dx, info.dy) == (290, 220, 0, 0)
    box = np.array([[95 / 300, 70 / 200, 110 / 300, 80 / 200]], np.float32)  # (40,30)-(150,110)
    np.testing.assert_allclose(image_to_network(box, info),
                               [[145 / 290, 90 / 220, 110 / 290, 80 / 220]], rtol=1e-6)
    np.testing.assert_allclose(network_to_image(image_to_network(box, info), info),
                               [[40, 30, 150, 110]], atol=1e-4)
    # the image shows from input column 50 and row 20 to the right/bottom edges
    assert visible_region(info) == pytest.approx((50 / 290, 20 / 220, 1.0, 1.0))


def test_visible_region_stops_at_the_image_edges():
    # window (-30, -20)-(330, 220) around a 300 x 200 image, placed 1:1 in 360 x 240: the image
    # covers input columns 30 .. 330 and rows 20 .. 220
    info = letterbox_info(300, 200, 360, 240, window=(-30, -20, 330, 220))
    assert visible_region(info) == pytest.approx((30 / 360, 20 / 240, 330 / 360, 220 / 240))
    # the same window placed at half size in 180 x 120
    half = letterbox_info(300, 200, 180, 120, window=(-30, -20, 330, 220))
    assert visible_region(half) == pytest.approx((15 / 180, 10 / 120, 165 / 180, 110 / 120))


def test_visible_region_of_a_plain_letterbox_is_the_placed_image():
    info = letterbox_info(768, 576, 416, 416)                      # rows 52 .. 364
    assert visible_region(info) == pytest.approx((0, 52 / 416, 1, 364 / 416))


def test_network_to_image_uses_original_size_of_reduced_image():
    # both decodes place 416 x 277 at dy = 69; boxes come back in 4800 x 3200 pixels
    full = letterbox_info(4800, 3200, 416, 416)
    reduced = letterbox_info(1200, 800, 416, 416, orig_size=(4800, 3200))
    box = [[0.5, 0.5, 0.5, 0.25]]
    np.testing.assert_allclose(network_to_image(box, reduced), network_to_image(box, full))
    # centre (208, 208) input px -> (2400, (208 - 69) * 3200/277) image px
    cy = (208 - 69) * 3200 / 277
    hh = 0.25 * 416 * 3200 / 277 / 2
    np.testing.assert_allclose(network_to_image(box, reduced)[0],
                               [1200, cy - hh, 3600, cy + hh], rtol=1e-5)


def test_network_to_image_clips_to_image():
    info = letterbox_info(100, 50, 64, 64)
    out = network_to_image([[0.0, 0.5, 0.5, 2.0]], info)
    raw = network_to_image([[0.0, 0.5, 0.5, 2.0]], info, clip=False)
    assert raw[0, 0] < 0 and raw[0, 3] > 50
    # 100 x 50 -> 64 x 32 at dy = 16: x centre 0 -> -50 px... clipped to [0, 100] x [0, 50]
    np.testing.assert_allclose(out, [[0, 0, raw[0, 2], 50]])
    assert 0 < raw[0, 2] < 100
