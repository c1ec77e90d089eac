"""`frame_masks`: one mask per detection (box prompt), with a quality score.

Masks are stored (N, H, W) bool, one compressed chunk per mask; the table mirrors the
detections with the segmenter's quality and the mask area."""


import dagster as dg
import numpy as np
from dagster import AssetExecutionContext

from resources.project import BackendsResource, ProjectResource

from ..farm.tags import stage_execution
from ..shots.lineage import CODE_VERSIONS, stage_settings
from ..partitions import shots
from .sources import settings_key
from .stage_data import (
    DetectionTable,
    PlateData,
    create_mask_array,
    stored_bytes,
    write_table,
)
from .stage_run import StageResult, StageRun, progress


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["frame_masks"],
    deps=[settings_key("frame_masks")],
    io_manager_key="zarr_io_manager",
    group_name="matte",
    kinds={"zarr"},
    **stage_execution("frame_masks"),  # farm: GPU pool / Celery queue (matte_assets.farm.tags)
)
def frame_masks(
    context: AssetExecutionContext,
    plate: PlateData,
    detections: DetectionTable,
    project: ProjectResource,
    backends: BackendsResource,
) -> dg.Output[StageResult]:
    """SAM2 (or GrabCut) mask for every detection box, all boxes of a frame at once."""
    run = StageRun(context, "frame_masks", project.shot(context.partition_key), project.store())
    segmenter = backends.segmenter(run.settings)
    staged, record = run.begin(
        stage_settings(run.settings, "frame_masks", segmenter.identity()),
        {"plate": plate.record["data_version"], "detections": detections.record["data_version"]},
        plate.record,
        detections.record,
    )
    width, height = plate.size
    masks = create_mask_array(staged.group, "masks", (len(detections), height, width))
    quality = np.zeros(len(detections), np.float32)
    area = np.zeros(len(detections), np.int64)
    frames_with = sorted(set(int(f) for f in detections.columns["frame_index"]))
    # SAM 3 segments as it detects: its stored masks are the frame masks, quality = score.
    reuse = segmenter.reuses_detector_masks and detections.masks is not None
    for frame_index in progress(frames_with, "frame_masks"):
        rows = detections.rows_at(frame_index)
        if reuse:
            frame_m = detections.stored_masks(rows)
            frame_q = np.clip(np.asarray(detections.columns["score"], np.float32)[rows], 0, 1)
        else:
            frame_m, frame_q = segmenter.segment(plate.frame(frame_index), detections.boxes(rows))
        for k, row in enumerate(rows):
            masks[row] = frame_m[k]
            quality[row] = frame_q[k]
            area[row] = int(frame_m[k].sum())

    cols = detections.columns
    write_table(
        staged.group,
        "table",
        {
            "detection": np.arange(len(detections), dtype=np.int32),
            "frame_index": np.asarray(cols["frame_index"], np.int32),
            "frame": np.asarray(cols["frame"], np.int32),
            "label": np.asarray(cols["label"], dtype=str),
            "score": np.asarray(cols["score"], np.float32),
            "quality": quality,
            "area": area,
        },
    )
    return run.output(
        staged,
        record,
        {
            "masks": len(detections),
            "mean_quality": float(quality.mean()) if len(quality) else 0.0,
            "empty_masks": int((area == 0).sum()),
            "stored_bytes_per_mask": stored_bytes(masks) / max(1, int((area > 0).sum())),
            "segmenter": dg.MetadataValue.json(segmenter.identity()),
            "reused_detector_masks": reuse,
        },
    )
