"""`filtered_layers`: the kept and merged layers plus a decision table (spec §3).

Two streaming passes over the tracked layers: the first sums the per-frame overlaps
(Sim and IoU need whole-shot sums), the second writes each kept layer as the union of
its members. Every keep / drop / merge is recorded with the values that decided it."""


import hashlib

import dagster as dg
import numpy as np
from dagster import AssetExecutionContext

from io_managers.zarr_io_manager import open_stage
from resources.project import ProjectResource

from ..algorithms.layer_filter import merge_frame
from ..shots.corrections import CorrectionError, load_corrections
from ..errors import StoreError
from ..farm.tags import stage_execution
# The decision itself is plain logic (matte sweep calls it too).
from .filter_plan import decide_with_corrections, decision_markdown, layer_names, stitch_markdown
from ..shots.lineage import CODE_VERSIONS, stage_settings
from ..partitions import shots
from .pictures import metadata_pictures, pictures_metadata_from
from .sources import corrections_key, settings_key
from .stage_data import LayerMaskWriter, LayersData, frame_blocks, write_table
from .stage_run import StageResult, StageRun, progress

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
