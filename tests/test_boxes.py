"""Box arithmetic, all in edge.vision.boxes."""

from __future__ import annotations

import pytest

from edge.vision.boxes import (
    Box,
    centre_distance,
    crop_box,
    dedupe,
    enclosing,
    intersection,
    iou,
    iou_matrix,
    mostly_inside,
    touches_any,
    widen,
)


def test_a_box_is_an_immutable_tuple() -> None:
    b = Box(1, 2, 3, 4)
    assert b == (1, 2, 3, 4) and list(b) == [1, 2, 3, 4] and b.area == 12
    x, y, w, h = b
    assert (x, y, w, h) == (1, 2, 3, 4)
    with pytest.raises(AttributeError):
        b.x = 5  # type: ignore[misc]


def test_intersection_and_iou() -> None:
    assert intersection((0, 0, 10, 10), (5, 5, 10, 10)) == 25
    assert intersection((0, 0, 10, 10), (10, 0, 10, 10)) == 0  # edges touching share nothing
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 5, 10, 10)) == pytest.approx(25 / 175)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_dedupe_keeps_the_larger_of_two_overlapping_boxes() -> None:
    small, big, apart = Box(1, 1, 9, 9), Box(0, 0, 10, 10), Box(50, 50, 10, 10)
    assert sorted(dedupe([small, apart, big])) == [big, apart]
    assert dedupe([small, big], threshold=0.9) == [big, small]


def test_widen_enclosing_and_centre_distance() -> None:
    assert widen((10, 10, 20, 10), 0.5) == (0, 5, 40, 20)
    assert enclosing((0, 0, 10, 10), (20, 5, 10, 10)) == (0, 0, 30, 15)
    assert centre_distance((0, 0, 10, 10), (3, 4, 10, 10)) == 5.0


def test_touching_and_mostly_inside() -> None:
    window = (0, 0, 10, 10)
    assert touches_any(window, [(50, 50, 5, 5), (9, 9, 5, 5)])
    assert not touches_any(window, [(10, 10, 5, 5)])
    assert mostly_inside((5, 0, 10, 10), window)  # exactly half
    assert not mostly_inside((6, 0, 10, 10), window)
    assert not mostly_inside((0, 0, 0, 0), window)


def test_crop_box_is_a_square_inside_the_frame() -> None:
    assert crop_box((100, 100, 50, 60), (480, 640), 0.2) == (83, 88, 84, 84)
    x, y, w, h = crop_box((600, 440, 40, 40), (480, 640), 0.25)
    assert w == h and x + w <= 640 and y + h <= 480


def test_iou_matrix_is_iou_for_every_pair() -> None:
    import numpy as np

    a = [(0, 0, 10, 10), (5, 5, 10, 10), (50, 50, 4, 4)]
    b = [(0, 0, 10, 10), (100, 100, 1, 1), (0, 0, 0, 0)]
    m = iou_matrix(a, b)
    assert m.shape == (3, 3)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            assert m[i, j] == pytest.approx(iou(p, q))
    assert iou_matrix([], b).shape == (0, 3) and iou_matrix(a, []).shape == (3, 0)
    assert isinstance(np.asarray(m), np.ndarray)
