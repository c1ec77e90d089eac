"""`tracked_layers`: one layer per object over the whole shot (spec §3).

Windowed forward tracking re-prompted with the per-frame masks, identity by IoU with
the epsilon rule, then a backward pass for objects first seen after the first frame.
The algorithm is `algorithms.tracking.track_shot`; this asset wires it to the store."""


import dagster as dg
from dagster import AssetExecutionContext
import numpy as np

from resources.project import BackendsResource, ProjectResource

from .algorithms.layer_filter import OverlapAccumulator
from .algorithms.tracking import TrackingParams, track_shot
from .lineage import CODE_VERSIONS, stage_settings
from .partitions import shots
from .sources import settings_key
from .stage_data import FrameMasksData, LayerMaskWriter, LayersData, PlateData, frame_blocks, write_table
from .stage_run import StageResult, StageRun


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["tracked_layers"],
    deps=[settings_key("tracked_layers")],
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
    staged, record = run.begin(
        stage_settings(run.settings, "tracked_layers", tracker.identity()),
        {"plate": plate.record["data_version"], "frame_masks": frame_masks.record["data_version"]},
        plate.record,
        frame_masks.record,
    )
    width, height = plate.size
    sink = LayerMaskWriter(staged.group, plate.n_frames, height, width)
    params = TrackingParams(**run.settings.track.model_dump())
    result = track_shot(plate.n_frames, plate.frames, frame_masks, tracker, params, sink)

    layers = result.layers
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
        },
    )
    for lay in layers:
        sink.array(lay.layer_id)  # every layer has an array, even one that stayed empty
    staged.group.attrs.update(
        {"n_frames": plate.n_frames, "size": [width, height], "identity_decisions": [d.as_dict() for d in result.decisions]}
    )
    store_overlap_stats(LayersData(staged.group, record))
    return run.output(
        staged,
        record,
        {
            "layers": len(layers),
            "tracker_calls": dg.MetadataValue.json(result.tracker_calls),
            "layer_table": dg.MetadataValue.md(_layer_markdown(layers, plate.frame_numbers)),
            "stored_bytes_per_layer_frame": round(sink.bytes_per_frame_per_layer(), 1),
            "tracker": dg.MetadataValue.json(tracker.identity()),
        },
    )


def _layer_markdown(layers, numbers: list[int]) -> str:
    lines = ["| layer | label | first | last | prompts |", "|---|---|---|---|---|"]
    for lay in layers:
        first = "-" if lay.first_frame is None else numbers[lay.first_frame]
        last = "-" if lay.last_frame is None else numbers[lay.last_frame]
        lines.append(f"| {lay.layer_id} | {lay.label} | {first} | {last} | {len(lay.prompt_frames)} |")
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
