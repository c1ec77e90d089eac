"""J (DAVIS region similarity) streamed over frames, one-to-one matching."""

from __future__ import annotations

import numpy as np
import pytest

from matte_assets.algorithms.metrics import JAccumulator

H, W = 20, 40


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


EMPTY = np.zeros((H, W), bool)


def test_hand_computed_j_and_matching() -> None:
    g0, g1 = rect(0, 0, 10, 10), rect(20, 0, 30, 10)
    half = rect(0, 0, 10, 5)  # 50 px inside g0: J = 0.5
    acc = JAccumulator(2, 3)
    acc.add_frame(np.stack([g0, g1]), np.stack([half, g1, EMPTY]))
    acc.add_frame(np.stack([EMPTY, g1]), np.stack([EMPTY, g1, EMPTY]))  # both empty scores 1
    res = acc.result()
    expected = np.array([[0.75, 0.0, 0.5], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(res.j_matrix, expected)
    assert res.assignment == {0: 0, 1: 1}
    np.testing.assert_allclose(res.per_object_j, [0.75, 1.0])
    assert res.mean_j == pytest.approx(0.875)
    assert res.unmatched_layers == [2] and res.unmatched_objects == [] and res.n_frames == 2


def test_matching_maximises_the_total_not_greedy() -> None:
    # Greedy would give object 0 layer 0 (0.9) and object 1 layer 1 (0.0): total 0.9.
    # The assignment object 0 -> layer 1 (0.8), object 1 -> layer 0 (0.5) totals 1.3.
    g0 = rect(0, 0, 10, 10)  # 100
    g1 = rect(0, 10, 10, 20)  # 100
    l0 = rect(0, 1, 10, 11)  # g0: 90/110; g1: 10/190
    l1 = rect(0, 0, 10, 8)  # g0: 0.8, g1: 0
    acc = JAccumulator(2, 2)
    acc.add_frame(np.stack([g0, g1]), np.stack([l0, l1]))
    res = acc.result()
    j = res.j_matrix
    assert j[0, 0] == pytest.approx(90 / 110) and j[0, 1] == pytest.approx(0.8)
    total = sum(j[o, l] for o, l in res.assignment.items())
    assert total == pytest.approx(max(j[0, 0] + j[1, 1], j[0, 1] + j[1, 0]))


def test_unmatched_object_scores_zero() -> None:
    acc = JAccumulator(2, 1)
    acc.add_frame(np.stack([rect(0, 0, 10, 10), rect(20, 0, 30, 10)]), np.stack([rect(20, 0, 30, 10)]))
    res = acc.result()
    assert res.assignment == {1: 0} and res.unmatched_objects == [0]
    np.testing.assert_allclose(res.per_object_j, [0.0, 1.0])
    assert res.mean_j == pytest.approx(0.5)


def test_no_layers_and_validation() -> None:
    acc = JAccumulator(1, 0)
    acc.add_frame(np.stack([rect(0, 0, 5, 5)]), np.zeros((0, H, W), bool))
    res = acc.result()
    assert res.mean_j == 0.0 and res.unmatched_objects == [0]
    with pytest.raises(ValueError):
        JAccumulator(1, 1).result()  # no frames
    with pytest.raises(ValueError):
        JAccumulator(2, 1).add_frame(np.stack([EMPTY]), np.stack([EMPTY]))
    with pytest.raises(ValueError):
        JAccumulator(0, 1)
