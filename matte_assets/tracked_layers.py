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

from io_managers.zarr_store import ZarrStore
from resources.project import BackendsResource, ProjectResource

from .algorithms.layer_filter import OverlapAccumulator
from .algorithms.tracking import LayerRecord, PromptedLayer, TrackingParams, track_from_prompts, track_shot
from .corrections import Corrections, CorrectionError, load_corrections
from .lineage import CODE_VERSIONS, stage_settings
from .partitions import shots
from .sources import corrections_key, settings_key
from .stage_data import FrameMasksData, LayerMaskWriter, LayersData, PlateData, frame_blocks, write_table
from .stage_run import StageResult, StageRun


class _SkipLayers:
    """A sink that ignores the automatic result of layers an artist has corrected."""

    def __init__(self, sink: LayerMaskWriter, skip: set[int]):
        self.sink, self.skip = sink, skip

    def write(self, layer_id: int, frame_index: int, mask: np.ndarray) -> None:
        if layer_id not in self.skip:
            self.sink.write(layer_id, frame_index, mask)


def reusable_previous(store: ZarrStore, shot_key: str, record: dict[str, Any]) -> LayersData | None:
    """The current tracked version, if it was made from the same inputs and settings
    (corrections aside): its uncorrected layers can be copied instead of re-tracked."""
    from io_managers.zarr_io_manager import open_stage

    head = store.head(shot_key, "tracked_layers")
    if head is None or head.get("settings") != record["settings"]:
        return None
    strip = lambda inputs: {k: v for k, v in inputs.items() if k != "corrections"}  # noqa: E731
    if strip(head.get("inputs", {})) != strip(record["inputs"]):
        return None
    return open_stage(store, shot_key, "tracked_layers")


def _records_from(layers: LayersData) -> dict[int, LayerRecord]:
    t = layers.table
    out = {}
    for k, lid in enumerate(layers.layer_ids):
        first, last = int(t["first_frame"][k]), int(t["last_frame"][k])
        out[lid] = LayerRecord(lid, t["label"][k], None if first < 0 else first, None if last < 0 else last,
                               [], t["origin"][k])
    return out


def _prompted_layers(corrections: Corrections, plate: PlateData, labels: dict[int, str], ids: set[int]) -> list[PromptedLayer]:
    numbers = plate.frame_numbers
    new = corrections.new_layers()
    layers = []
    for lid, prompts in sorted(corrections.layer_prompts().items()):
        if lid not in ids:
            continue
        if lid not in labels and lid not in new:
            raise CorrectionError(f"{corrections.path}: layer {lid} does not exist (tracked layers: {sorted(labels)})")
        masks = {}
        for frame, name in prompts.items():
            if frame not in numbers:
                raise CorrectionError(f"{corrections.path}: frame {frame} is not in the plate ({numbers[0]}-{numbers[-1]})")
            masks[numbers.index(frame)] = corrections.load_mask(name, plate.size)
        origin = "artist" if lid in new else "correction"
        layers.append(PromptedLayer(lid, new.get(lid) or labels[lid], masks, origin))
    return layers


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["tracked_layers"],
    deps=[settings_key("tracked_layers"), corrections_key("tracked_layers")],
    io_manager_key="zarr_io_manager",
    group_name="matte",
    kinds={"zarr"},
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
    inputs = {"plate": plate.record["data_version"], "frame_masks": frame_masks.record["data_version"]}
    if corrections.tracking_digest():
        inputs["corrections"] = corrections.tracking_digest()
    settings = stage_settings(run.settings, "tracked_layers", tracker.identity())
    previous = reusable_previous(run.store, run.shot_key, {"settings": settings, "inputs": inputs})
    staged, record = run.begin(settings, inputs, plate.record, frame_masks.record)

    width, height = plate.size
    sink = LayerMaskWriter(staged.group, plate.n_frames, height, width)
    params = TrackingParams(**run.settings.track.model_dump())
    digests = corrections.layer_digests()
    prev_digests: dict[int, str] = {}
    if previous is not None:
        prev_digests = dict(zip(previous.layer_ids, previous.table.get("correction", [""] * len(previous.layer_ids))))
    # The automatic result of a layer is needed again only where a correction was taken
    # back; otherwise the previous version holds every uncorrected layer.
    partial = previous is not None and not any(d and lid not in digests for lid, d in prev_digests.items())

    decisions: list[dict[str, Any]] = []
    calls: dict[str, int] = {}
    if partial:
        assert previous is not None
        records = _records_from(previous)
        retrack = {lid for lid, d in digests.items() if prev_digests.get(lid, "") != d}
        for lid in previous.layer_ids:
            if lid not in retrack:
                run.store.copy_array(previous.group, staged, f"masks/{lid}")
                sink.adopt(lid)
        decisions = list(previous.group.attrs.get("identity_decisions", []))
        context.log.info(f"re-tracking corrected layers {sorted(retrack)}; {len(previous.layer_ids) - len(retrack & set(previous.layer_ids))} copied")
    else:
        result = track_shot(plate.n_frames, plate.frames, frame_masks, tracker, params, _SkipLayers(sink, set(digests)))
        records = {lay.layer_id: lay for lay in result.layers}
        retrack = set(digests)
        decisions = [d.as_dict() for d in result.decisions]
        calls = dict(result.tracker_calls)

    labels = {lid: rec.label for lid, rec in records.items()}
    prompted = _prompted_layers(corrections, plate, labels, retrack)
    if prompted:
        corrected = track_from_prompts(plate.n_frames, plate.frames, frame_masks, tracker, params, sink, prompted)
        records.update({lay.layer_id: lay for lay in corrected.layers})
        decisions += [d.as_dict() for d in corrected.decisions]
        calls = {**calls, **{f"corrected_{k}": v for k, v in corrected.tracker_calls.items()}}

    layers = [records[lid] for lid in sorted(records)]
    for lay in layers:
        sink.array(lay.layer_id)  # every layer has an array, even one that stayed empty
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
    store_overlap_stats(LayersData(staged.group, record))
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


def store_overlap_stats(layers: LayersData) -> None:
    """Whole-shot areas and pairwise intersections of the layers, stored with them: the
    filter (and any threshold sweep) then decides without reading a mask."""
    acc = OverlapAccumulator(len(layers.layer_ids))
    width, height = layers.size
    for start, stop in frame_blocks(layers.n_frames, len(layers.layer_ids), height, width):
        block = layers.masks_block(start, stop)
        for b in range(stop - start):
            acc.add_frame(block[:, b])
    stats = acc.stats()
    layers.group.create_array("overlap_areas", data=stats.areas)
    layers.group.create_array("overlap_intersections", data=stats.intersections)
