"""`detections`: boxes for the shot's text prompt on every frame.

Table columns: frame_index, frame (VFX number), label, score, x0 y0 x1 y1 (plate px)."""


from collections import Counter

import dagster as dg
import numpy as np
from dagster import AssetExecutionContext

from resources.project import BackendsResource, ProjectResource

from ..errors import BackendError
from ..farm.tags import stage_execution
from ..shots.lineage import CODE_VERSIONS, stage_settings
from ..partitions import shots
from .sources import settings_key
from .stage_data import PlateData, create_mask_array, write_table
from .stage_run import StageResult, StageRun, progress

BATCH = 8  # frames per detector call: amortises model overhead, bounded memory
BACKGROUND_SAMPLES = 32


def check_labels(labels: list[str], supported: frozenset[str] | None, backend: str) -> None:
    if supported is None:
        return
    unknown = [label for label in labels if label not in supported]
    if unknown:
        raise BackendError(
            f"prompt label(s) {', '.join(map(repr, unknown))} cannot be served by the {backend} detector; "
            f"it serves: {', '.join(sorted(supported))}"
        )


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["detections"],
    deps=[settings_key("detections")],
    io_manager_key="zarr_io_manager",
    group_name="matte",
    kinds={"zarr"},
    **stage_execution("detections"),  # farm: GPU pool / Celery queue (matte_assets.farm.tags)
)
def detections(
    context: AssetExecutionContext, plate: PlateData, project: ProjectResource, backends: BackendsResource
) -> dg.Output[StageResult]:
    """Boxes for the prompt's labels on every frame (plate pixels)."""
    run = StageRun(context, "detections", project.shot(context.partition_key), project.store())
    settings = run.settings
    detector = backends.detector(settings)
    check_labels(settings.labels, detector.supported_labels(), settings.backends.detector)
    staged, record = run.begin(
        stage_settings(settings, "detections", detector.identity()), {"plate": plate.record["data_version"]}, plate.record
    )

    detector.begin_shot(plate.sample(BACKGROUND_SAMPLES))
    numbers = plate.frame_numbers
    rows: dict[str, list] = {k: [] for k in ("frame_index", "frame", "label", "score", "x0", "y0", "x1", "y1")}
    masks = None  # created on the first detection that carries a mask (SAM 3), grown per batch
    for start in progress(range(0, plate.n_frames, BATCH), "detections", total=-(-plate.n_frames // BATCH)):
        batch = plate.frames(start, min(start + BATCH, plate.n_frames))
        found = detector.detect(list(batch), settings.labels, settings.detect.box_threshold, settings.detect.text_threshold)
        masks = _store_masks(staged.group, masks, len(rows["label"]), found, plate.size)
        for offset, frame_dets in enumerate(found):
            for det in frame_dets:
                rows["frame_index"].append(start + offset)
                rows["frame"].append(numbers[start + offset])
                rows["label"].append(det.label)
                rows["score"].append(det.score)
                for key, value in zip(("x0", "y0", "x1", "y1"), det.box):
                    rows[key].append(value)

    write_table(
        staged.group,
        "table",
        {
            "frame_index": np.asarray(rows["frame_index"], np.int32),
            "frame": np.asarray(rows["frame"], np.int32),
            "label": np.asarray(rows["label"], dtype=str),
            "score": np.asarray(rows["score"], np.float32),
            **{k: np.asarray(rows[k], np.float32) for k in ("x0", "y0", "x1", "y1")},
        },
    )
    per_label = Counter(rows["label"])
    empty_frames = plate.n_frames - len(set(rows["frame_index"]))
    if not rows["label"]:
        context.log.warning(f"{context.partition_key}: no detections for prompt {settings.prompt!r}")
    return run.output(
        staged,
        record,
        {
            "detections": len(rows["label"]),
            "frames_without_detections": empty_frames,
            "per_label": dg.MetadataValue.json(dict(per_label)),
            "detector": dg.MetadataValue.json(detector.identity()),
            "stored_masks": masks is not None,
        },
    )


def _store_masks(group, masks, first_row: int, found, size: tuple[int, int]):
    """Write the masks a detector returned with its detections (rows first_row onwards).
    Every detection of a mask-giving detector must carry one: a row without its mask
    would silently fall back to another segmentation."""
    batch = [det for frame_dets in found for det in frame_dets]
    with_mask = [det.mask is not None for det in batch]
    if not any(with_mask) and masks is None:
        return None
    if not all(with_mask) or (masks is not None and first_row != masks.shape[0]) or (masks is None and first_row):
        raise BackendError("the detector returned masks for some detections but not all; cannot store them")
    width, height = size
    if masks is None:
        masks = create_mask_array(group, "masks", (0, height, width))
    masks.resize((first_row + len(batch), height, width))
    for k, det in enumerate(batch):
        if det.mask.shape != (height, width):
            raise BackendError(f"detector mask shape {det.mask.shape} != plate {(height, width)}")
        if det.mask.any():  # empty masks stay unwritten (fill value False)
            masks[first_row + k] = det.mask
    return masks
