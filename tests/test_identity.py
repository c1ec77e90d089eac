"""The identity rule at a prompt frame: IoU threshold, ε re-prompt rule, new objects."""

from __future__ import annotations

import numpy as np
import pytest

from matte_assets.algorithms.identity import (
    DUPLICATE,
    EMPTY,
    MATCH,
    NEW,
    REPROMPT,
    UNMATCHED,
    TrackedObject,
    match_prompt_masks,
)

H, W = 20, 120


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def stack(*masks: np.ndarray) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, H, W), bool)


def run(tracked, masks, qualities, labels=None, **kw):
    labels = labels or ["person"] * len(qualities)
    kw.setdefault("identity_iou", 0.9)
    kw.setdefault("epsilon", 0.1)
    kw.setdefault("next_id", 10)
    return match_prompt_masks(tracked, stack(*masks), np.array(qualities, float), labels, **kw)


def test_iou_just_below_and_above_identity_iou() -> None:
    base = rect(0, 0, 100, 10)  # 1000 px
    # A sub-rectangle of area k*10 inside `base` has IoU k/100.
    obj = TrackedObject(1, "person", base, 0.5)
    r89 = run([obj], [rect(0, 0, 89, 10)], [0.5])
    assert r89.decisions[0].action == NEW and r89.decisions[0].iou == pytest.approx(0.89)
    assert r89.decisions[0].object_id == 10 and r89.next_id == 11
    obj = TrackedObject(1, "person", base, 0.5)
    r91 = run([obj], [rect(0, 0, 91, 10)], [0.5])
    d = r91.decisions[0]
    assert d.action == MATCH and d.object_id == 1 and d.iou == pytest.approx(0.91)
    assert r91.new_objects == [] and r91.next_id == 10


def test_epsilon_rule_both_ways() -> None:
    base = rect(0, 0, 100, 10)
    obj = TrackedObject(1, "person", base, 0.6)
    small = run([obj], [base], [0.65])  # 0.05 better: not enough
    assert small.decisions[0].action == MATCH
    assert obj.cached_quality == 0.6 and small.prompts == {} and small.reprompted == []
    d = small.decisions[0]
    assert (d.cached_quality, d.new_cached_quality) == (0.6, 0.6)

    new_mask = rect(0, 0, 95, 10)  # IoU 0.95
    big = run([obj], [new_mask], [0.75])  # 0.15 better: re-prompt
    d = big.decisions[0]
    assert d.action == REPROMPT and big.prompts == {1: 0} and big.reprompted == [1]
    assert (d.cached_quality, d.new_cached_quality) == (0.6, 0.75)
    assert obj.cached_quality == 0.75  # updated in place
    np.testing.assert_array_equal(obj.mask, new_mask)  # the prompt replaces the tracked mask


def test_best_iou_wins_and_one_mask_per_object() -> None:
    a = TrackedObject(1, "person", rect(0, 0, 100, 10), 0.5)
    b = TrackedObject(2, "person", rect(5, 0, 105, 10), 0.5)
    m = rect(4, 0, 104, 10)  # IoU with a = 96/104, with b = 99/101
    r = run([a, b], [m, rect(1, 0, 101, 10)], [0.9, 0.8])
    first, second = r.decisions
    assert first.mask_index == 0 and first.object_id == 2  # best IoU wins
    assert second.mask_index == 1 and second.object_id == 1  # the other object is still free


def test_descending_quality_order_and_duplicates() -> None:
    obj = TrackedObject(1, "person", rect(0, 0, 100, 10), 0.2)
    # Two masks of the same object: the better one (index 1) is taken first.
    r = run([obj], [rect(0, 0, 98, 10), rect(0, 0, 99, 10)], [0.5, 0.7])
    assert [d.mask_index for d in r.decisions] == [1, 0]
    assert r.decisions[0].action == REPROMPT and r.decisions[0].object_id == 1
    assert r.decisions[1].action == DUPLICATE and r.decisions[1].object_id == 1
    assert r.new_objects == [] and obj.cached_quality == 0.7


def test_new_object_can_be_matched_by_a_later_mask_of_the_same_frame() -> None:
    r = run([], [rect(0, 0, 50, 10), rect(0, 0, 49, 10), rect(60, 0, 80, 10)], [0.9, 0.8, 0.7],
            labels=["person", "person", "car"], next_id=3)
    actions = [(d.mask_index, d.action, d.object_id) for d in r.decisions]
    assert actions == [(0, NEW, 3), (1, DUPLICATE, 3), (2, NEW, 4)]
    assert [(o.object_id, o.label, o.cached_quality) for o in r.new_objects] == [(3, "person", 0.9), (4, "car", 0.7)]
    assert r.prompts == {3: 0, 4: 2} and r.next_id == 5


def test_empty_masks_ignored_and_no_new_when_not_allowed() -> None:
    obj = TrackedObject(1, "person", rect(0, 0, 100, 10), 0.5)
    r = run([obj], [np.zeros((H, W), bool), rect(0, 0, 30, 10)], [0.99, 0.4], allow_new=False)
    assert [(d.mask_index, d.action, d.object_id) for d in r.decisions] == [(0, EMPTY, None), (1, UNMATCHED, None)]
    assert r.decisions[1].iou == pytest.approx(0.3)
    assert r.new_objects == [] and r.next_id == 10


def test_empty_tracked_object_never_matches_and_no_masks() -> None:
    lost = TrackedObject(1, "person", np.zeros((H, W), bool), 0.5)
    r = run([lost], [rect(0, 0, 10, 10)], [0.5])
    assert r.decisions[0].action == NEW
    r = run([lost], [], [])
    assert r.decisions == [] and r.new_objects == []


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        match_prompt_masks([], np.zeros((2, H, W), bool), np.zeros(3), ["a", "b"], 0.9, 0.1, 1)
