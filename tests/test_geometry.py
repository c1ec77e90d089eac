"""Geometry: boxes, IoU, exact pairwise intersections, hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from matte_assets.algorithms.geometry import (
    areas,
    box_iou,
    mask_iou,
    mask_to_box,
    pairwise_intersections,
    pairwise_iou,
)


def rect(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_mask_to_box_is_tight_and_exclusive() -> None:
    m = rect(10, 12, 2, 3, 7, 5)
    assert mask_to_box(m) == (2, 3, 7, 5)
    single = np.zeros((4, 4), bool)
    single[3, 0] = True
    assert mask_to_box(single) == (0, 3, 1, 4)
    assert mask_to_box(np.zeros((4, 4), bool)) is None


def test_box_iou_by_hand() -> None:
    # 10x10 and 10x10 shifted by 5 in x: inter 50, union 150.
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # degenerate boxes overlap nothing


def test_mask_iou_by_hand_and_empty_convention() -> None:
    a = rect(8, 8, 0, 0, 4, 4)  # 16 px
    b = rect(8, 8, 2, 0, 6, 4)  # 16 px, overlap 8
    assert mask_iou(a, b) == pytest.approx(8 / 24)
    empty = np.zeros((8, 8), bool)
    assert mask_iou(empty, empty) == 1.0
    assert mask_iou(a, empty) == 0.0
    with pytest.raises(ValueError):
        mask_iou(a, np.zeros((4, 4), bool))


def test_pairwise_matches_loops_exactly() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((5, 31, 17)) < 0.4
    b = rng.random((3, 31, 17)) < 0.6
    inter = pairwise_intersections(a, b)
    assert inter.dtype == np.int64 and inter.shape == (5, 3)
    for i in range(5):
        for j in range(3):
            assert inter[i, j] == np.count_nonzero(a[i] & b[j])
            assert pairwise_iou(a, b)[i, j] == pytest.approx(mask_iou(a[i], b[j]))
    np.testing.assert_array_equal(areas(a), [np.count_nonzero(x) for x in a])


def test_pairwise_empty_stacks_and_both_empty() -> None:
    a = np.zeros((0, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    assert pairwise_intersections(a, b).shape == (0, 2)
    np.testing.assert_array_equal(pairwise_iou(b, b), np.ones((2, 2)))
    with pytest.raises(ValueError):
        pairwise_intersections(b, np.zeros((1, 4, 5), bool))


def test_pairwise_exact_beyond_float32_chunk() -> None:
    # Large full masks: counts above 2**24 must still be exact (chunked float32 sums).
    a = np.ones((1, 4200, 4100), bool)
    inter = pairwise_intersections(a, a)
    assert inter[0, 0] == 4200 * 4100
