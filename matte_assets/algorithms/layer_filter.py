"""Layer filtering (spec §3 "Filtering"): drop false positives, merge duplicates and
parts into their whole, from overlap statistics summed over the frames of the shot.

Sim(A, B) = |A ∩ B| / |A| (0 when |A| = 0) is asymmetric: a part inside a whole has
Sim(part, whole) = 1 while Sim(whole, part) = |part| / |whole|.

Rules, in this order, each decision recorded with the values that decided it:

(a) "empty": a layer with zero area over the whole shot is dropped.
    "false_positive": A is dropped when Sim(A, B) ≥ sim_false_positive for at least
    sim_false_positive_count other layers B (counted over all layers) — e.g. a group
    box covering two people.
(b) "duplicate": among the remaining layers, pairs with IoU ≥ duplicate_iou are joined
    (union-find, so A~B and B~C join all three); the survivor of a group is the layer
    with the largest total area (ties: lowest id).
(c) "part_of_whole": among the remaining layers, A merges into B when B is the only
    other remaining layer A overlaps (Sim(A, B) ≥ sim_false_positive) and
    Sim(A, B) ≥ sim_merge. Each layer has at most one such target, so the targets form
    chains and (rarely) cycles. Chains resolve to their end (A→B→C: A and B into C).
    A cycle (e.g. two layers each mostly inside the other, with IoU below
    duplicate_iou) is broken at the member with the largest area (ties: lowest id),
    which stays; the others merge into it.
    Rule (c) uses each survivor's own statistics, not the union with its duplicates
    (pairwise sums cannot give union areas; duplicates differ by < 1 - duplicate_iou).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..settings import FilterSettings

from .geometry import pairwise_intersections

KEEP, DROP, MERGE = "keep", "drop", "merge"


@dataclass(frozen=True)
class OverlapStats:
    areas: np.ndarray  # (L,) int64: pixels per layer summed over the shot
    intersections: np.ndarray  # (L, L) int64: |A ∩ B| summed over the shot (diagonal = areas)

    def sim(self) -> np.ndarray:
        """(L, L) Sim(A, B) = I[A, B] / area[A], 0 where area[A] == 0."""
        a = self.areas.astype(np.float64)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, self.intersections / np.maximum(a, 1), 0.0)

    def subset(self, rows: Sequence[int]) -> "OverlapStats":
        """The statistics of some layers only (rows of this matrix)."""
        idx = np.asarray(rows, dtype=np.int64)
        return OverlapStats(self.areas[idx], self.intersections[np.ix_(idx, idx)])

    def iou(self) -> np.ndarray:
        """(L, L) IoU = I / (area_A + area_B - I), 0 where the union is empty."""
        union = self.areas[:, None] + self.areas[None, :] - self.intersections
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, self.intersections / np.maximum(union, 1), 0.0)


class OverlapAccumulator:
    """Streams the shot frame by frame; memory is (L, L) whatever the shot length."""

    def __init__(self, n_layers: int) -> None:
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        self.n_layers = n_layers
        self._intersections = np.zeros((n_layers, n_layers), dtype=np.int64)
        self.n_frames = 0

    def add_frame(self, masks: np.ndarray) -> None:
        m = np.asarray(masks, dtype=bool)
        if m.ndim != 3 or m.shape[0] != self.n_layers:
            raise ValueError(f"expected masks ({self.n_layers}, H, W), got {m.shape}")
        self._intersections += pairwise_intersections(m, m)
        self.n_frames += 1

    def stats(self) -> OverlapStats:
        inter = self._intersections.copy()
        return OverlapStats(areas=np.diagonal(inter).copy(), intersections=inter)


@dataclass(frozen=True)
class FilterRow:
    layer: int
    label: str
    action: str  # keep | drop | merge
    into: int | None  # survivor a merged layer joins
    rule: str  # empty | false_positive | duplicate | part_of_whole | kept
    reason: str
    values: dict[str, Any]  # plain ints/floats/lists: the numbers that decided it

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer, "label": self.label, "action": self.action, "into": self.into,
            "rule": self.rule, "reason": self.reason, "values": self.values,
        }


@dataclass
class FilterPlan:
    kept: list[int]  # surviving layer ids, ascending
    members: dict[int, list[int]]  # kept id -> ids unioned into it (itself included), ascending
    rows: list[FilterRow] = field(default_factory=list)  # one per layer, in rule order
    stitch_rows: list[dict[str, Any]] = field(default_factory=list)  # pairs stitching considered (stitching.py)

    def action_of(self, layer_id: int) -> FilterRow:
        for row in self.rows:
            if row.layer == layer_id:
                return row
        raise KeyError(layer_id)


def _r(x: float) -> float:
    return round(float(x), 6)


def decide(layer_ids: Sequence[int], labels: Sequence[str], stats: OverlapStats, params: FilterSettings) -> FilterPlan:
    """Apply rules (a), (b), (c); `layer_ids[i]`, `labels[i]` describe row i of `stats`."""
    ids = [int(i) for i in layer_ids]
    n = len(ids)
    if len(set(ids)) != n or len(labels) != n or stats.areas.shape != (n,) or stats.intersections.shape != (n, n):
        raise ValueError(
            f"layer_ids ({n}, distinct), labels ({len(labels)}) and stats {stats.intersections.shape} must agree"
        )
    pos = {lid: k for k, lid in enumerate(ids)}
    label = dict(zip(ids, labels))
    area = {lid: int(stats.areas[pos[lid]]) for lid in ids}
    sim = stats.sim()
    iou = stats.iou()

    def s(a: int, b: int) -> float:
        return float(sim[pos[a], pos[b]])

    def name(lid: int) -> str:
        return f"{label[lid]}{lid}"

    rows: list[FilterRow] = []
    order = sorted(ids)

    # (a) empty layers, then false positives. Judged iteratively: the layer overlapping
    # the most others goes first (ties: the larger, then the lower id), and the counts
    # are taken again without it. A group mask covering two objects is then dropped
    # while the objects it covered survive; judged all at once, each object would also
    # count the group mask (and the other object or a duplicate) and be dropped with it.
    remaining: list[int] = []
    for a in order:
        if area[a] == 0:
            rows.append(FilterRow(a, label[a], DROP, None, "empty", f"{name(a)} is empty in every frame", {"area": 0}))
        else:
            remaining.append(a)
    while True:
        worst = None
        for a in remaining:
            hits = [b for b in remaining if b != a and s(a, b) >= params.sim_false_positive]
            if len(hits) >= params.sim_false_positive_count:
                rank = (len(hits), area[a], -a)
                if worst is None or rank > worst[0]:
                    worst = (rank, a, hits)
        if worst is None:
            break
        _, a, hits = worst
        fv = {
            "area": area[a], "overlapped": hits, "sims": [_r(s(a, b)) for b in hits],
            "sim_false_positive": params.sim_false_positive, "count": len(hits),
            "sim_false_positive_count": params.sim_false_positive_count,
        }
        reason = (
            f"{name(a)} overlaps {len(hits)} layers ({', '.join(name(b) for b in hits)}) with "
            f"Sim >= {params.sim_false_positive}: a box around several objects"
        )
        rows.append(FilterRow(a, label[a], DROP, None, "false_positive", reason, fv))
        remaining.remove(a)

    # (b) duplicates: union-find over all pairs with IoU >= duplicate_iou.
    parent = {a: a for a in remaining}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    links: dict[int, list[tuple[int, float]]] = {a: [] for a in remaining}
    for i, a in enumerate(remaining):
        for b in remaining[i + 1 :]:
            v = float(iou[pos[a], pos[b]])
            if v >= params.duplicate_iou:
                links[a].append((b, v))
                links[b].append((a, v))
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for a in remaining:
        groups.setdefault(find(a), []).append(a)
    members: dict[int, list[int]] = {}
    after_dup: list[int] = []
    for group in groups.values():
        survivor = min(group, key=lambda x: (-area[x], x))
        members[survivor] = sorted(group)
        after_dup.append(survivor)
        for a in sorted(group):
            if a == survivor:
                continue
            dv = {
                "iou_with_survivor": _r(iou[pos[a], pos[survivor]]),
                "linked": [b for b, _ in links[a]], "ious": [_r(v) for _, v in links[a]],
                "duplicate_iou": params.duplicate_iou, "area": area[a], "survivor_area": area[survivor],
            }
            reason = (
                f"{name(a)} duplicates {', '.join(name(b) for b, _ in links[a])} (IoU >= {params.duplicate_iou}); "
                f"{name(survivor)} has the largest area"
            )
            rows.append(FilterRow(a, label[a], MERGE, survivor, "duplicate", reason, dv))
    after_dup.sort()

    # (c) part of a whole: each layer points at its single overlapped layer if Sim >= sim_merge.
    target: dict[int, int] = {}
    part_values: dict[int, dict[str, Any]] = {}
    for a in after_dup:
        overlapped = [b for b in after_dup if b != a and s(a, b) >= params.sim_false_positive]
        if len(overlapped) == 1 and s(a, overlapped[0]) >= params.sim_merge:
            b = overlapped[0]
            target[a] = b
            part_values[a] = {
                "whole": b, "sim": _r(s(a, b)), "sim_reverse": _r(s(b, a)), "sim_merge": params.sim_merge,
                "area": area[a], "whole_area": area[b],
            }
    # Break cycles at their largest member (ties: lowest id), which stays.
    for start in sorted(target):
        path: list[int] = []
        a = start
        while a in target and a not in path:
            path.append(a)
            a = target[a]
        if a in path:  # `a` closes a cycle
            cycle = path[path.index(a) :]
            root = min(cycle, key=lambda x: (-area[x], x))
            del target[root]
            part_values[root]["cycle_broken"] = sorted(cycle)

    def final(a: int) -> int:
        while a in target:
            a = target[a]
        return a

    for a in after_dup:
        if a not in target:
            continue
        into = final(a)
        b = target[a]
        pv = dict(part_values[a])
        pv["chain"] = _chain(a, target)
        via = f" (via {', '.join(name(x) for x in pv['chain'][1:-1])})" if len(pv["chain"]) > 2 else ""
        reason = (
            f"{name(a)} overlaps only {name(b)}, Sim={pv['sim']:.3f} >= {params.sim_merge}: "
            f"a part of {name(into)}{via}"
        )
        rows.append(FilterRow(a, label[a], MERGE, into, "part_of_whole", reason, pv))
        members.setdefault(into, [into])
        members[into] = sorted(set(members[into]) | set(members.pop(a, [a])))

    kept = sorted(a for a in after_dup if a not in target)
    for a in kept:
        kv: dict[str, Any] = {"area": area[a], "members": members[a]}
        if a in part_values and "cycle_broken" in part_values[a]:
            kv["cycle_broken"] = part_values[a]["cycle_broken"]
        joined = [m for m in members[a] if m != a]
        reason = f"{name(a)} kept" + (f", with {', '.join(name(m) for m in joined)} merged in" if joined else "")
        rows.append(FilterRow(a, label[a], KEEP, None, "kept", reason, kv))
    return FilterPlan(kept=kept, members={a: members[a] for a in kept}, rows=rows)


def _chain(a: int, target: Mapping[int, int]) -> list[int]:
    chain = [a]
    while chain[-1] in target:
        chain.append(target[chain[-1]])
    return chain


def merge_frame(masks: np.ndarray, plan: FilterPlan, index_of_id: Mapping[int, int]) -> np.ndarray:
    """One frame of the filtered layers: (L, H, W) tracked masks -> (K, H, W), the union
    of each kept layer's members, in `plan.kept` order. `index_of_id` maps a layer id to
    its row in `masks`."""
    m = np.asarray(masks, dtype=bool)
    if m.ndim != 3:
        raise ValueError(f"expected masks (L, H, W), got {m.shape}")
    out = np.zeros((len(plan.kept), *m.shape[1:]), dtype=bool)
    for k, lid in enumerate(plan.kept):
        for member in plan.members[lid]:
            out[k] |= m[index_of_id[member]]
    return out


def apply_artist_decisions(plan: FilterPlan, drops: Sequence[int], merges: Mapping[int, int]) -> FilterPlan:
    """Artist corrections override the rules: `drops` leave the delivery (with whatever
    was merged into them), `merges` {a: b} put layer a (and its members) into the layer
    that b ended up in — even if a rule had dropped a. Unknown layers, or a merge into a
    dropped layer, raise ValueError naming them. Every overridden row says so."""
    rows = {row.layer: row for row in plan.rows}
    for lid in [*drops, *merges, *merges.values()]:
        if lid not in rows:
            raise ValueError(f"layer {lid} does not exist (layers: {sorted(rows)})")
    group_of = {m: k for k, members in plan.members.items() for m in members}
    members = {k: set(v) for k, v in plan.members.items()}

    def detach(lid: int) -> set[int]:
        """Take lid out of its group; a kept layer takes its whole group with it."""
        if lid in members:
            return members.pop(lid)
        if lid in group_of and group_of[lid] in members:
            members[group_of[lid]].discard(lid)
        return {lid}

    for a, b in sorted(merges.items()):
        target = b if b in members else group_of.get(b)
        if target is None or target not in members:
            raise ValueError(f"cannot merge layer {a} into layer {b}: layer {b} is dropped")
        if a == target or a in members.get(target, set()):
            continue
        moved = detach(a)
        members[target] |= moved
        for m in moved:
            group_of[m] = target
            r = rows[m]
            rows[m] = FilterRow(m, r.label, MERGE, target, "artist", f"merged into {target} by an artist correction", r.values)
    for a in sorted(drops):
        for m in detach(a):
            r = rows[m]
            why = "dropped by an artist correction" if m == a else f"merged into {a}, which an artist dropped"
            rows[m] = FilterRow(m, r.label, DROP, None, "artist", why, r.values)
    kept = sorted(members)
    for k in kept:
        r = rows[k]
        if r.action != KEEP:
            rows[k] = FilterRow(k, r.label, KEEP, None, "artist", "kept: target of an artist merge", r.values)
    ordered = [rows[row.layer] for row in plan.rows]
    return FilterPlan(kept=kept, members={k: sorted(members[k]) for k in kept}, rows=ordered, stitch_rows=plan.stitch_rows)
