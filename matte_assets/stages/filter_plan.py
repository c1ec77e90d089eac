"""The filter decision of a shot's tracked layers, with artist corrections: the rules
(algorithms.layer_filter), stitching of time-disjoint fragments (algorithms.stitching),
drops and merges, and the layer names. Plain logic on stored layers, no Dagster: the
`filtered_layers` asset and `matte sweep` both call it, so a sweep point is what the
stage does."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..algorithms.layer_filter import (
    KEEP,
    MERGE,
    FilterPlan,
    FilterRow,
    OverlapAccumulator,
    OverlapStats,
    apply_artist_decisions,
    decide,
)
from ..algorithms.stitching import StitchParams, decide_stitches
from .layer_stats import load_layer_summaries
from ..settings import FilterSettings
from .stage_data import LayersData, frame_blocks


def layer_names(labels: list[str], first_frames: list[int]) -> list[str]:
    """'person1', 'person2', 'car1' ... numbered per label in order of appearance.
    Names become EXR channel prefixes, so only [A-Za-z0-9_] survive."""
    order = sorted(range(len(labels)), key=lambda i: (first_frames[i] if first_frames[i] >= 0 else 1 << 30, i))
    counts: dict[str, int] = {}
    names = [""] * len(labels)
    for i in order:
        base = re.sub(r"[^A-Za-z0-9_]", "_", labels[i]) or "layer"
        counts[base] = counts.get(base, 0) + 1
        names[i] = f"{base}{counts[base]}"
    return names


def decide_with_corrections(
    tracked: LayersData, params: FilterSettings, drops: Sequence[int] = (), merges: dict[int, int] | None = None
):
    """The stage's decisions: artist drops leave before the rules, merges override
    them after. `matte sweep` calls this too, so a sweep point is what the stage does."""
    plan = filter_layers(tracked, params, drops)
    return apply_artist_decisions(plan, [], merges) if merges else plan


def filter_layers(tracked: LayersData, params: FilterSettings, dropped: Sequence[int] = ()):
    """The filter decisions from the whole-shot overlaps stored with the tracked layers
    (computed here in one streaming pass for results stored without them).

    Layers an artist dropped leave before the rules run: a dropped occlusion blob must
    not make the objects it covered look like false positives."""
    ids = tracked.layer_ids
    unknown = sorted(set(dropped) - set(ids))
    if unknown:
        raise ValueError(f"cannot drop layer(s) {unknown}: no such tracked layer (layers: {ids})")
    stored = tracked.overlap_stats()
    if stored is not None:
        stats = OverlapStats(*stored)
    else:
        acc = OverlapAccumulator(len(ids))
        width, height = tracked.size
        for start, stop in frame_blocks(tracked.n_frames, len(ids), height, width):
            block = tracked.masks_block(start, stop, ids)
            for b in range(stop - start):
                acc.add_frame(block[:, b])
        stats = acc.stats()
    labels = list(tracked.table["label"])
    rows = [k for k, lid in enumerate(ids) if lid not in set(dropped)]
    plan = decide([ids[k] for k in rows], [labels[k] for k in rows], stats.subset(rows), params)
    plan = stitch_fragments(tracked, plan, params)
    for k, lid in enumerate(ids):
        if lid in set(dropped):
            plan.rows.append(FilterRow(lid, labels[k], "drop", None, "artist", "dropped by an artist correction", {}))
    return plan


def stitch_fragments(tracked: LayersData, plan: FilterPlan, params: FilterSettings) -> FilterPlan:
    """Join kept layers that are time-disjoint fragments of one object
    (`algorithms.stitching`): each stitched layer (with its members) merges into its
    chain's first fragment, recorded as rule `stitch` with the pair's numbers; every
    pair considered is kept in `plan.stitch_rows`. Results stored before the layer
    summaries existed are left as they are."""
    label_of = dict(zip(tracked.layer_ids, tracked.table["label"]))
    summaries = load_layer_summaries(tracked.group, plan.kept, [label_of[lid] for lid in plan.kept])
    if summaries is None:
        return plan
    sp = StitchParams(params.stitch_max_gap, params.stitch_max_overlap, params.stitch_similarity, params.stitch_motion)
    root, pair_rows = decide_stitches(summaries, sp, tracked.n_frames)
    plan.stitch_rows = pair_rows
    if not root:
        return plan
    members = {k: list(v) for k, v in plan.members.items()}
    link = {r["b"]: r for r in pair_rows if r["decision"] == "link"}
    for lid in sorted(root, key=lambda x: (summaries[plan.kept.index(x)].first, x)):
        members[root[lid]] = sorted(set(members[root[lid]]) | set(members.pop(lid)))
    rows = []
    for row in plan.rows:
        if row.layer in root:
            r = link[row.layer]
            values = {k: r[k] for k in ("a", "gap", "overlap_frames", "similarity", "motion_error", "edge", "size")}
            rows.append(FilterRow(row.layer, row.label, MERGE, root[row.layer], "stitch",
                                  f"{r['reason']}; joins layer {root[row.layer]}", values))
        elif row.action == MERGE and row.into in root:
            rows.append(FilterRow(row.layer, row.label, MERGE, root[row.into], row.rule, row.reason, row.values))
        elif row.action == KEEP and row.layer in members and members[row.layer] != plan.members[row.layer]:
            joined = [m for m in members[row.layer] if m != row.layer]
            rows.append(FilterRow(row.layer, row.label, KEEP, None, row.rule,
                                  f"{row.reason.split(',')[0]}, with {', '.join(map(str, joined))} merged in",
                                  {**row.values, "members": members[row.layer]}))
        else:
            rows.append(row)
    kept = sorted(members)
    out = FilterPlan(kept=kept, members={k: members[k] for k in kept}, rows=rows)
    out.stitch_rows = pair_rows
    return out


def stitch_markdown(rows: list[dict]) -> str:
    lines = ["| a | b | gap | both | similarity | motion | edge | decision | reason |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['a']} | {r['b']} | {r['gap']} | {r['overlap_frames']} | {r['similarity']:.3f} | "
            f"{r['motion_error']:.2f} | {r['edge']} | {r['decision']} | {r['reason']} |"
        )
    return "\n".join(lines)


def decision_markdown(rows: list[dict]) -> str:
    lines = ["| layer | action | into | rule | reason |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.get('layer')} | {row.get('action')} | {row.get('into') or ''} | {row.get('rule', '')} | {row.get('reason', '')} |"
        )
    return "\n".join(lines)
