"""Layer filtering: Sim/IoU by hand, false positives, duplicates, parts, chains, cycles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matte_assets.algorithms.layer_filter import (
    OverlapAccumulator,
    decide,
    merge_frame,
)
from matte_assets.settings import FilterSettings

H, W = 40, 100


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def stats_of(*layers: np.ndarray, frames: int = 1):
    acc = OverlapAccumulator(len(layers))
    for _ in range(frames):
        acc.add_frame(np.stack(layers))
    return acc.stats()


def plan_for(layers: list[np.ndarray], labels: list[str] | None = None, **params):
    ids = list(range(1, len(layers) + 1))
    labels = labels or ["person"] * len(layers)
    return decide(ids, labels, stats_of(*layers), FilterSettings(**params))


def test_sim_and_iou_by_hand_with_containment() -> None:
    a = rect(0, 0, 4, 4)  # 16 px
    b = rect(0, 0, 8, 8)  # 64 px, contains a
    st = stats_of(a, b, frames=3)
    np.testing.assert_array_equal(st.areas, [48, 192])
    assert st.intersections[0, 1] == 48
    sim = st.sim()
    assert sim[0, 1] == 1.0  # a inside b
    assert sim[1, 0] == pytest.approx(16 / 64)
    assert st.iou()[0, 1] == pytest.approx(16 / 64)


def test_stats_sum_over_frames_and_empty_layers() -> None:
    acc = OverlapAccumulator(3)
    a, b, empty = rect(0, 0, 4, 4), rect(0, 0, 8, 8), np.zeros((H, W), bool)
    acc.add_frame(np.stack([a, b, empty]))  # a inside b
    acc.add_frame(np.stack([rect(50, 0, 54, 4), b, empty]))  # a away from b
    st = acc.stats()
    assert st.sim()[0, 1] == pytest.approx(16 / 32)
    assert st.sim()[2, 0] == 0.0 and st.iou()[2, 2] == 0.0  # empty layer: 0, not NaN
    with pytest.raises(ValueError):
        acc.add_frame(np.stack([a, b]))


def test_group_box_over_two_objects_is_dropped() -> None:
    p1, p2 = rect(0, 0, 10, 10), rect(20, 0, 30, 10)
    group = rect(0, 0, 30, 10)  # 300 px: Sim(group, p) = 100/300 for each person
    plan = plan_for([p1, p2, group])
    assert plan.kept == [1, 2]
    row = plan.action_of(3)
    assert (row.action, row.rule) == ("drop", "false_positive")
    assert row.values["overlapped"] == [1, 2]
    assert row.values["sims"] == [pytest.approx(1 / 3, abs=1e-6)] * 2
    # Each person overlaps the group fully but only one other layer: kept, not merged.
    assert plan.action_of(1).action == "keep" and plan.members == {1: [1], 2: [2]}
    assert len(plan.rows) == 3
    json.dumps([r.as_dict() for r in plan.rows])  # the decision table is stored as plain data


def test_false_positive_needs_the_count() -> None:
    p1, p2 = rect(0, 0, 10, 10), rect(20, 0, 30, 10)
    group = rect(0, 0, 30, 10)
    plan = plan_for([p1, p2, group], sim_false_positive_count=3)
    assert 3 in plan.kept


def test_empty_layer_is_dropped() -> None:
    plan = plan_for([rect(0, 0, 10, 10), np.zeros((H, W), bool)])
    assert plan.kept == [1]
    assert (plan.action_of(2).action, plan.action_of(2).rule) == ("drop", "empty")


def test_part_is_merged_into_its_whole() -> None:
    person = rect(0, 0, 20, 20)  # 400 px
    bag = rect(2, 2, 7, 7)  # 25 px inside: Sim(bag, person) = 1, Sim(person, bag) = 0.0625
    half_out = rect(15, 0, 25, 4)  # 40 px, 20 inside: Sim 0.5 < sim_merge -> stays
    plan = plan_for([person, bag, half_out], labels=["person", "bag", "hat"])
    assert plan.kept == [1, 3]
    row = plan.action_of(2)
    assert (row.action, row.into, row.rule) == ("merge", 1, "part_of_whole")
    assert row.values["sim"] == 1.0 and row.values["sim_reverse"] == pytest.approx(0.0625)
    assert plan.members == {1: [1, 2], 3: [3]}
    assert plan.action_of(3).action == "keep"


def test_duplicates_merge_into_the_largest() -> None:
    d1 = rect(0, 0, 19, 10)  # 190 px
    d2 = rect(0, 0, 20, 10)  # 200 px: IoU 0.95
    other = rect(50, 0, 60, 10)
    plan = plan_for([d1, d2, other])
    assert plan.kept == [2, 3]
    row = plan.action_of(1)
    assert (row.action, row.into, row.rule) == ("merge", 2, "duplicate")
    assert row.values["iou_with_survivor"] == pytest.approx(0.95)
    assert plan.members[2] == [1, 2]


def test_duplicate_chain_by_union_find_and_equal_area_tie() -> None:
    a = rect(0, 0, 20, 10)  # 200
    b = rect(1, 0, 21, 10)  # IoU(a,b) = 190/210 = 0.905
    c = rect(2, 0, 22, 10)  # IoU(b,c) = 0.905, IoU(a,c) = 180/220 = 0.818
    # Three mutually overlapping layers would be false positives by rule (a); raise the count.
    plan = plan_for([a, b, c], sim_false_positive_count=3)
    assert plan.kept == [1]  # equal areas: lowest id survives
    assert plan.members == {1: [1, 2, 3]}
    assert plan.action_of(3).values["iou_with_survivor"] == pytest.approx(180 / 220)


def test_three_duplicates_lose_one_to_the_iterative_false_positive_rule() -> None:
    # Near-identical triples each overlap two others. Judged all at once (the paper's
    # wording) all three would go; judged iteratively one goes (tie: lowest id), the
    # other two then overlap only each other and merge as duplicates.
    a, b, c = rect(0, 0, 20, 10), rect(1, 0, 21, 10), rect(2, 0, 22, 10)
    plan = plan_for([a, b, c])
    assert plan.action_of(1).rule == "false_positive"
    assert plan.kept == [2] and plan.members == {2: [2, 3]}
    assert plan.action_of(3).rule == "duplicate"


def test_a_group_mask_goes_and_the_objects_it_covered_stay() -> None:
    # Two touching objects and a box around both: every layer overlaps the other two.
    a, b = rect(0, 0, 10, 10), rect(9, 0, 19, 10)
    group = rect(0, 0, 20, 10)
    plan = plan_for([a, b, group])
    assert plan.action_of(3).rule == "false_positive"
    assert plan.kept == [1, 2]


def test_part_chain_resolves_to_the_final_whole() -> None:
    c = rect(3, 0, 83, 10)  # 800 px
    b = rect(0, 0, 10, 10)  # 100 px, 70 inside c: Sim(b, c) = 0.7, Sim(c, b) = 0.0875
    a = rect(0, 0, 2, 4)  # 8 px inside b, outside c: Sim(a, b) = 1, Sim(b, a) = 0.08
    plan = plan_for([a, b, c])
    assert plan.kept == [3]
    assert plan.members == {3: [1, 2, 3]}
    ra, rb = plan.action_of(1), plan.action_of(2)
    assert (ra.into, ra.values["whole"], ra.values["chain"]) == (3, 2, [1, 2, 3])
    assert (rb.into, rb.values["chain"]) == (3, [2, 3])
    assert rb.values["sim"] == pytest.approx(0.7)


def test_mutual_parts_cycle_is_broken_at_the_largest() -> None:
    x = rect(0, 0, 10, 10)  # 100
    y = rect(2, 0, 13, 10)  # 110, overlap 80: Sim(x,y)=0.8, Sim(y,x)=0.727, IoU 0.615
    plan = plan_for([x, y])
    assert plan.kept == [2]
    assert plan.action_of(1).into == 2
    assert plan.action_of(2).values["cycle_broken"] == [1, 2]
    # Equal areas: the lowest id stays.
    plan = plan_for([rect(0, 0, 10, 10), rect(2, 0, 12, 10)])
    assert plan.kept == [1] and plan.members == {1: [1, 2]}


def test_merge_frame_unions_members() -> None:
    person, bag, other = rect(0, 0, 20, 20), rect(2, 2, 7, 7), rect(50, 0, 60, 10)
    plan = decide([7, 8, 9], ["person", "bag", "car"], stats_of(person, bag, other), FilterSettings())
    assert plan.kept == [7, 9]
    frame = np.stack([np.zeros((H, W), bool), rect(30, 30, 35, 35), other])  # bag drifts outside
    out = merge_frame(frame, plan, {7: 0, 8: 1, 9: 2})
    assert out.shape == (2, H, W)
    np.testing.assert_array_equal(out[0], rect(30, 30, 35, 35))
    np.testing.assert_array_equal(out[1], other)


def test_params_and_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="sim_merge"):
        FilterSettings(sim_merge=1.5)
    with pytest.raises(ValueError, match="sim_false_positive_count"):
        FilterSettings(sim_false_positive_count=0)
    with pytest.raises(ValueError):
        decide([1, 1], ["a", "b"], stats_of(rect(0, 0, 1, 1), rect(0, 0, 1, 1)), FilterSettings())


def test_random_plans_are_consistent() -> None:
    # Invariants on random scenes: one row per layer, members partition the non-dropped
    # layers, every merge points at a kept layer.
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(0, 7))
        layers = []
        for _ in range(n):
            x0, y0 = int(rng.integers(0, 60)), int(rng.integers(0, 30))
            layers.append(rect(x0, y0, x0 + int(rng.integers(0, 40)), y0 + int(rng.integers(0, 12))))
        st = stats_of(*layers) if n else OverlapAccumulator(0).stats()
        params = FilterSettings(sim_false_positive_count=int(rng.integers(1, 4)), sim_merge=float(rng.uniform(0.1, 1)))
        plan = decide(list(range(10, 10 + n)), ["x"] * n, st, params)
        assert sorted(r.layer for r in plan.rows) == list(range(10, 10 + n))
        dropped = {r.layer for r in plan.rows if r.action == "drop"}
        merged = {r.layer: r.into for r in plan.rows if r.action == "merge"}
        assert set(plan.kept) == {r.layer for r in plan.rows if r.action == "keep"}
        assert all(into in plan.kept for into in merged.values())
        flat = sorted(m for k in plan.kept for m in plan.members[k])
        assert flat == sorted(set(range(10, 10 + n)) - dropped)
        assert all(plan.members[k] == sorted(plan.members[k]) and k in plan.members[k] for k in plan.kept)


def test_an_artist_dropped_blob_no_longer_condemns_the_objects_it_covered() -> None:
    """Objects A, B; a blob C over both; D a duplicate of B. The iterative rule drops C
    first (most overlaps) and keeps the rest; with C dropped by the artist beforehand
    the outcome is the same, and the artist's drop is what the decision table shows."""
    from matte_assets.algorithms.layer_filter import OverlapStats

    areas = np.array([100, 100, 210, 100])
    inter = np.array(
        [
            [100, 0, 95, 0],
            [0, 100, 95, 95],
            [95, 95, 210, 95],
            [0, 95, 95, 100],
        ]
    )
    stats = OverlapStats(areas, inter)
    params = FilterSettings()
    everything = decide([1, 2, 3, 4], ["x"] * 4, stats, params)
    assert everything.kept == [1, 2] and everything.action_of(3).rule == "false_positive"
    without_blob = decide([1, 2, 4], ["x"] * 3, stats.subset([0, 1, 3]), params)
    assert without_blob.kept == [1, 2] and without_blob.members[2] == [2, 4]
