"""`tracked_layers`: one layer per object over the whole shot (spec §3).

Windowed forward tracking re-prompted with the per-frame masks, identity by IoU with
the epsilon rule, then a backward pass for objects first seen after the first frame
(`algorithms.tracking.track_shot`).

Artist corrections (drawn or click-refined masks, new layers) re-track only the layers
they name (`algorithms.tracking.track_from_prompts`): when the current stored version
was made from the same plate, frame masks and settings, every other layer is copied
from it chunk for chunk instead of being tracked again."""

from typing import Any

import dagster as dg
import numpy as np
from dagster import AssetExecutionContext

from resources.project import BackendsResource, ProjectResource

from ..algorithms.layer_filter import OverlapAccumulator
from ..algorithms.tracking import correction_reach, track_from_prompts, track_shot
from ..shots.corrections import load_corrections
from ..farm.tags import stage_execution
from .layer_stats import store_layer_summaries
from ..shots.lineage import CODE_VERSIONS, stage_settings
from ..partitions import shots
from .retrack_plan import (
    automatic_prompts,
    only_added,
    previous_prompts,
    prompted_layers,
    records_from,
    reusable_previous,
)
from ..shots.roto import check_roto_shot
from .sources import corrections_key, settings_key
from .stage_data import (
    FrameMasksData,
    LayerMaskWriter,
    PlateData,
    frame_blocks,
    write_table,
)
from .stage_run import StageResult, StageRun, progress_counter


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["tracked_layers"],
    deps=[settings_key("tracked_layers"), corrections_key("tracked_layers")],
    io_manager_key="zarr_io_manager",
    group_name="matte",
    kinds={"zarr"},
    **stage_execution("tracked_layers"),  # farm: GPU pool / Celery queue (matte_assets.farm.tags)
)
def tracked_layers(
    context: AssetExecutionContext,
    plate: PlateData,
    frame_masks: FrameMasksData,
    project: ProjectResource,
    backends: BackendsResource,
) -> dg.Output[StageResult]:
    """One layer per tracked object, masks for every frame (empty where absent)."""
    run = StageRun(context, "tracked_layers", project.shot(context.partition_key), project.store())
    tracker = backends.tracker(run.settings)
    corrections = load_corrections(project.project(), *run.show_shot)
    check_roto_shot(project.project(), *run.show_shot, run.settings)  # also when run from Dagster's UI
    inputs = {"plate": plate.record["data_version"], "frame_masks": frame_masks.record["data_version"]}
    if corrections.tracking_digest():
        inputs["corrections"] = corrections.tracking_digest()
    settings = stage_settings(run.settings, "tracked_layers", tracker.identity())
    previous = reusable_previous(run.store, run.shot_key, {"settings": settings, "inputs": inputs})
    staged, record = run.begin(settings, inputs, plate.record, frame_masks.record)

    width, height = plate.size
    sink = LayerMaskWriter(staged.group, plate.n_frames, height, width)
    params = run.settings.track
    digests = corrections.layer_digests()
    prev_digests: dict[int, str] = {}
    if previous is not None:
        prev_digests = dict(zip(previous.layer_ids, previous.table.get("correction", [""] * len(previous.layer_ids))))
    # Partial when the previous version's corrections are all still there (new ones only
    # add prompts): a taken-back or changed correction needs the automatic result again.
    # Only corrections make a partial run; `matte run --from` (tag matte/recompute)
    # always recomputes in full.
    forced = context.run.tags.get("matte/recompute") == "true"
    partial = (
        previous is not None
        and not forced
        and bool(corrections.tracking_entries())
        and only_added(previous_prompts(previous), corrections.layer_prompts())
    )

    decisions: list[dict[str, Any]] = []
    calls: dict[str, int] = {}
    if partial:
        assert previous is not None
        records = records_from(previous)
        retrack = {lid for lid, d in digests.items() if prev_digests.get(lid, "") != d}
        for lid in previous.layer_ids:
            # Every layer is copied, corrected ones too: only the reach of their
            # corrections is cleared and re-tracked below.
            run.store.copy_array(previous.group, staged, f"masks/{lid}")
            sink.adopt(lid)
        decisions = list(previous.group.attrs.get("identity_decisions", []))
        for lid, rec in records.items():
            rec.prompt_frames = sorted(automatic_prompts(decisions, lid))
        context.log.info(f"re-tracking corrected layers {sorted(retrack)}; {len(previous.layer_ids) - len(retrack & set(previous.layer_ids))} copied")
    else:
        with progress_counter("tracked_layers (forward + backward)") as bar:
            result = track_shot(plate.n_frames, plate.frames, frame_masks, tracker, params, sink, bar.update)
        records = {lay.layer_id: lay for lay in result.layers}
        retrack = set(digests)
        decisions = [d.as_dict() for d in result.decisions]
        calls = dict(result.tracker_calls)

    labels = {lid: rec.label for lid, rec in records.items()}
    prompted = prompted_layers(corrections, plate, frame_masks, labels, decisions, retrack)
    if prompted:
        for layer in prompted:
            for lo, hi in correction_reach(sorted(layer.prompts), layer.artist, plate.n_frames).values():
                sink.clear(layer.layer_id, lo, hi)
        with progress_counter("tracked_layers (corrections)") as bar:
            corrected = track_from_prompts(plate.n_frames, plate.frames, frame_masks, tracker, params, sink, prompted, bar.update)
        for lay in corrected.layers:
            old = records.get(lay.layer_id)
            lay.origin = old.origin if old is not None and old.origin != "detection" else lay.origin
            records[lay.layer_id] = lay
        decisions += [d.as_dict() for d in corrected.decisions]
        calls = {**calls, **{f"corrected_{k}": v for k, v in corrected.tracker_calls.items()}}

    layers = [records[lid] for lid in sorted(records)]
    for lay in layers:
        sink.array(lay.layer_id)  # every layer has an array, even one that stayed empty
    extent = store_overlap_stats(staged.group, [lay.layer_id for lay in layers], plate.n_frames, (width, height))
    for lay in layers:
        lay.first_frame, lay.last_frame = extent.get(lay.layer_id, (None, None))
    # Track, edge and colour summaries per layer: filtering stitches fragments from these.
    store_layer_summaries(staged.group, plate, [lay.layer_id for lay in layers], plate.n_frames, (width, height))
    write_table(
        staged.group,
        "layers",
        {
            "layer_id": np.asarray([lay.layer_id for lay in layers], np.int32),
            "label": np.asarray([lay.label for lay in layers], dtype=str),
            "first_frame": np.asarray([-1 if lay.first_frame is None else lay.first_frame for lay in layers], np.int32),
            "last_frame": np.asarray([-1 if lay.last_frame is None else lay.last_frame for lay in layers], np.int32),
            "prompts": np.asarray([len(lay.prompt_frames) for lay in layers], np.int32),
            "origin": np.asarray([lay.origin for lay in layers], dtype=str),
            "correction": np.asarray([digests.get(lay.layer_id, "") for lay in layers], dtype=str),
        },
    )
    staged.group.attrs.update(
        {
            "n_frames": plate.n_frames,
            "size": [width, height],
            "identity_decisions": decisions,
            "retracked_layers": sorted(retrack),
            "tracker_calls": calls,
            "corrections": corrections.summary(),
        }
    )
    record["retracked_layers"] = sorted(retrack) if partial else "all"
    record["lineage"]["tracked_layers"]["corrections"] = corrections.tracking_entries()
    return run.output(
        staged,
        record,
        {
            "layers": len(layers),
            "retracked": "all" if not partial else (", ".join(map(str, sorted(retrack))) or "none"),
            "tracker_calls": dg.MetadataValue.json(calls),
            "layer_table": dg.MetadataValue.md(_layer_markdown(layers, plate.frame_numbers)),
            "stored_bytes_per_layer_frame": round(sink.bytes_per_frame_per_layer(), 1),
            "tracker": dg.MetadataValue.json(tracker.identity()),
        },
    )


def _layer_markdown(layers, numbers: list[int]) -> str:
    lines = ["| layer | label | first | last | prompts | origin |", "|---|---|---|---|---|---|"]
    for lay in layers:
        first = "-" if lay.first_frame is None else numbers[lay.first_frame]
        last = "-" if lay.last_frame is None else numbers[lay.last_frame]
        lines.append(f"| {lay.layer_id} | {lay.label} | {first} | {last} | {len(lay.prompt_frames)} | {lay.origin} |")
    return "\n".join(lines)


def store_overlap_stats(group, layer_ids: list[int], n_frames: int, size: tuple[int, int]) -> dict[int, tuple[int, int]]:
    """Whole-shot areas and pairwise intersections of the layers, stored with them (the
    filter and threshold sweeps then decide without reading a mask); returns each
    layer's first and last non-empty frame, read from the final arrays."""
    acc = OverlapAccumulator(len(layer_ids))
    width, height = size
    masks = group["masks"]
    extent: dict[int, tuple[int, int]] = {}
    for start, stop in frame_blocks(n_frames, len(layer_ids), height, width) if layer_ids else []:
        block = np.stack([masks[str(lid)][start:stop] for lid in layer_ids])
        for b in range(stop - start):
            acc.add_frame(block[:, b])
        filled = block.reshape(len(layer_ids), stop - start, height * width).any(axis=2)
        for k, lid in enumerate(layer_ids):
            hits = np.flatnonzero(filled[k])
            if hits.size:
                first = extent.get(lid, (start + int(hits[0]),))[0]
                extent[lid] = (first, start + int(hits[-1]))
    stats = acc.stats()
    group.create_array("overlap_areas", data=stats.areas)
    group.create_array("overlap_intersections", data=stats.intersections)
    return extent
