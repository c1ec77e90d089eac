"""`filtered_layers`: the kept and merged layers plus a decision table (spec §3).

Two streaming passes over the tracked layers: the first sums the per-frame overlaps
(Sim and IoU need whole-shot sums), the second writes each kept layer as the union of
its members. Every keep / drop / merge is recorded with the values that decided it."""


import hashlib
import re
from collections.abc import Sequence

import dagster as dg
import numpy as np
from dagster import AssetExecutionContext

from io_managers.zarr_io_manager import open_stage
from resources.project import ProjectResource

from .algorithms.layer_filter import (
    KEEP,
    MERGE,
    FilterPlan,
    FilterRow,
    OverlapAccumulator,
    OverlapStats,
    apply_artist_decisions,
    decide,
    merge_frame,
)
from .algorithms.stitching import StitchParams, decide_stitches
from .corrections import CorrectionError, load_corrections
from .errors import StoreError
from .farm.tags import stage_execution
from .layer_stats import load_layer_summaries
from .lineage import CODE_VERSIONS, stage_settings
from .partitions import shots
from .pictures import metadata_pictures, pictures_metadata_from
from .settings import FilterSettings
from .sources import corrections_key, settings_key
from .stage_data import LayerMaskWriter, LayersData, frame_blocks, write_table
from .stage_run import StageResult, StageRun, progress


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


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["filtered_layers"],
    deps=[settings_key("filtered_layers"), corrections_key("filtered_layers")],
    io_manager_key="zarr_io_manager",
    group_name="matte",
    kinds={"zarr"},
    **stage_execution("filtered_layers"),  # farm: GPU pool / Celery queue (matte_assets.farm.tags)
)
def filtered_layers(
    context: AssetExecutionContext, tracked_layers: LayersData, project: ProjectResource
) -> dg.Output[StageResult]:
    """Layers kept after the false-positive, duplicate and part-of-whole rules."""
    run = StageRun(context, "filtered_layers", project.shot(context.partition_key), project.store())
    corrections = load_corrections(project.project(), *run.show_shot)
    inputs = {"tracked_layers": tracked_layers.record["data_version"]}
    if corrections.filter_digest():
        inputs["corrections"] = corrections.filter_digest()
    staged, record = run.begin(stage_settings(run.settings, "filtered_layers"), inputs, tracked_layers.record)
    record["lineage"]["filtered_layers"]["corrections"] = corrections.filter_entries()
    try:
        plan = decide_with_corrections(
            tracked_layers, run.settings.filter, corrections.drops(), corrections.merges()
        )
    except ValueError as exc:
        raise CorrectionError(f"{corrections.path}: {exc}") from None

    width, height = tracked_layers.size
    sink = LayerMaskWriter(staged.group, tracked_layers.n_frames, height, width)
    plan_key = [[lid, plan.members[lid]] for lid in plan.kept]
    record["plan"] = plan_key
    previous = _same_plan_previous(run, record)
    if previous is not None:
        # A tweak that keeps the same layers and members: the merged masks are the
        # previous version's, chunk for chunk — copy them instead of re-merging.
        for lid in plan.kept:
            run.store.copy_array(previous.group, staged, f"masks/{lid}")
            sink.adopt(lid)
        spans = dict(zip(previous.layer_ids, zip(previous.table["first_frame"], previous.table["last_frame"])))
        first = np.asarray([spans[lid][0] for lid in plan.kept], np.int32)
        last = np.asarray([spans[lid][1] for lid in plan.kept], np.int32)
        record["content_digest"] = previous.record["content_digest"]
    else:
        first, last, record["content_digest"] = _merge_and_write(tracked_layers, plan, sink)

    labels_by_id = dict(zip(tracked_layers.layer_ids, tracked_layers.table["label"]))
    labels = [labels_by_id[lid] for lid in plan.kept]
    names = layer_names(labels, list(first))
    write_table(
        staged.group,
        "layers",
        {
            "layer_id": np.asarray(plan.kept, np.int32),
            "name": np.asarray(names, dtype=str),
            "label": np.asarray(labels, dtype=str),
            "first_frame": first,
            "last_frame": last,
            "members": np.asarray(["+".join(map(str, plan.members[lid])) for lid in plan.kept], dtype=str),
        },
    )
    rows = [row.as_dict() for row in plan.rows]
    stitch_rows = list(getattr(plan, "stitch_rows", []))
    staged.group.attrs.update(
        {"n_frames": tracked_layers.n_frames, "size": [width, height], "decisions": rows, "stitch_decisions": stitch_rows}
    )
    actions = [row["action"] for row in rows]
    pictures = _pictures(run, record, staged, LayersData(staged.group, record), f"{context.partition_key} filtered layers")
    return run.output(
        staged,
        record,
        {
            "kept": len(plan.kept),
            "dropped": actions.count("drop"),
            "merged": actions.count("merge"),
            "layers": dg.MetadataValue.json(dict(zip(names, [plan.members[lid] for lid in plan.kept]))),
            "decisions": dg.MetadataValue.md(decision_markdown(rows)),
            "stitched": sum(1 for r in rows if r["rule"] == "stitch"),
            "stitch_decisions": dg.MetadataValue.md(stitch_markdown(stitch_rows)),
            **pictures,
        },
    )


def _same_plan_previous(run, record) -> LayersData | None:
    """The current filtered version, if it merged the same tracked layers the same way."""
    from io_managers.zarr_io_manager import open_stage as _open

    try:
        head = run.store.head(run.shot_key, "filtered_layers")
    except StoreError:  # corrupt HEAD.json: nothing to reuse
        return None
    if (
        head is None
        or head.get("plan") != record["plan"]
        or head.get("inputs", {}).get("tracked_layers") != record["inputs"]["tracked_layers"]
        or not head.get("content_digest")
    ):
        return None
    try:
        return _open(run.store, run.shot_key, "filtered_layers")
    except StoreError:  # damaged: recompute rather than copy
        return None


def _merge_and_write(tracked_layers: LayersData, plan, sink: LayerMaskWriter) -> tuple[np.ndarray, np.ndarray, str]:
    """Union each kept layer's members frame by frame (in blocks), write them, and
    return first/last non-empty frames and a digest of the kept masks (mattes reuses a
    delivered version when it matches)."""
    width, height = tracked_layers.size
    first = np.full(len(plan.kept), -1, np.int32)
    last = np.full(len(plan.kept), -1, np.int32)
    index_of = {lid: k for k, lid in enumerate(tracked_layers.layer_ids)}
    label_of = dict(zip(tracked_layers.layer_ids, tracked_layers.table["label"]))
    content = hashlib.sha256(repr([(lid, label_of[lid], plan.members[lid]) for lid in plan.kept]).encode())
    blocks = frame_blocks(tracked_layers.n_frames, len(index_of), height, width)
    for start, stop in progress(blocks, "filtered_layers", total=len(blocks)):
        block = tracked_layers.masks_block(start, stop)
        merged = np.stack([merge_frame(block[:, b], plan, index_of) for b in range(stop - start)], axis=1)
        for k, lid in enumerate(plan.kept):
            sink.write_block(lid, start, merged[k])
            filled = np.flatnonzero(merged[k].reshape(stop - start, -1).any(axis=1))
            if filled.size:
                first[k] = start + filled[0] if first[k] < 0 else first[k]
                last[k] = start + filled[-1]
        content.update(np.packbits(merged).tobytes())
    for lid in plan.kept:
        sink.array(lid)
    return first, last, content.hexdigest()


def _pictures(run, record, staged, layers: LayersData, title: str) -> dict:
    """Inline contact sheet + preview. They depend only on the plate and the kept
    masks, so when both equal the previous version's (a threshold tweak that keeps the
    same layers) its stored images are reused instead of redrawn."""
    plate_version = record["lineage"]["plate"]["data_version"]
    key = f"{plate_version}:{record['content_digest']}"
    images: dict[str, bytes] = {}
    try:
        head = run.store.head(run.shot_key, "filtered_layers")
        if head and head.get("pictures_key") == key:
            previous, _ = run.store.open_version(run.shot_key, "filtered_layers", head["version"])
            if "pictures" in previous:
                images = {name: bytes(previous["pictures"][name][...]) for name in previous["pictures"].array_keys()}
    except StoreError:  # a damaged previous version: draw them again
        images = {}
    if not images:
        plate = open_stage(run.store, run.shot_key, "plate")
        images = metadata_pictures(plate, layers, title)
    group = staged.group.require_group("pictures")
    for name, data in images.items():
        group.create_array(name, data=np.frombuffer(data, np.uint8))
    record["pictures_key"] = key
    return pictures_metadata_from(images, title)


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
