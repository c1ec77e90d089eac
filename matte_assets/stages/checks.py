"""Checks on a shot's delivered mattes, as Dagster asset checks on `mattes` (shown in
the UI beside each materialisation) and in `matte status`:

- frame_count: one EXR per plate frame;
- no_empty_layer: no delivered layer is empty on every frame;
- provenance: the first and last EXR carry the `matte/*` header attributes;
- mask_quality: the segmenter's mean quality of the per-frame masks is at least
  `checks.min_mask_quality` (show file).

Plain functions on the stored results; the Dagster checks are thin wrappers."""


from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import warnings

import dagster as dg
import numpy as np

# Partitioned asset checks are a Dagster preview feature; covered by tests/test_checks.py.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from resources.project import ProjectResource

from ..config import Project, split_shot_ref
from ..partitions import shots

PROVENANCE_KEYS = ("matte/show", "matte/shot", "matte/version", "matte/run_id", "matte/data_versions", "matte/plate_sha256")


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    detail: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _store(project: Project):
    from ..shots.shot import project_store

    return project_store(project)


def frame_count(project: Project, key: str) -> CheckOutcome:
    from io_managers.zarr_io_manager import open_stage

    store = _store(project)
    manifest = open_stage(store, key, "mattes")
    plate = len(open_stage(store, key, "plate").attrs["frame_numbers"])
    files = len(manifest["files"])
    return CheckOutcome("frame_count", files == plate, f"{files} EXR files, plate has {plate} frames", {"files": files, "plate_frames": plate})


def no_empty_layer(project: Project, key: str) -> CheckOutcome:
    from io_managers.zarr_io_manager import open_stage

    layers = open_stage(_store(project), key, "filtered_layers")
    masks = layers.group["masks"]
    # Frames where a layer is empty are not stored: no stored chunk = empty everywhere.
    empty = [name for lid, name in zip(layers.layer_ids, layers.names()) if masks[str(lid)].nchunks_initialized == 0]
    detail = f"empty on every frame: {', '.join(empty)}" if empty else f"{len(layers.layer_ids)} layer(s), none empty"
    return CheckOutcome("no_empty_layer", not empty, detail, {"layers": len(layers.layer_ids), "empty": len(empty)})


def provenance(project: Project, key: str) -> CheckOutcome:
    from io_managers.zarr_io_manager import open_stage

    from ..media.exr import read_exr_header

    files = open_stage(_store(project), key, "mattes")["files"]
    missing: list[str] = []
    for entry in (files[:1] + files[-1:]) if files else []:
        path = Path(entry["path"])
        try:
            header = read_exr_header(path)
        except Exception as exc:  # unreadable file: the check fails naming it
            missing.append(f"{path.name}: unreadable ({type(exc).__name__})")
            continue
        missing += [f"{path.name}: {k}" for k in PROVENANCE_KEYS if not header.get(k)]
    if not files:
        missing.append("no delivered files")
    return CheckOutcome("provenance", not missing, "missing " + "; ".join(missing) if missing else "header provenance present")


def mask_quality(project: Project, key: str) -> CheckOutcome:
    from io_managers.zarr_io_manager import open_stage

    threshold = project.shot(*split_shot_ref(key)).checks.min_mask_quality
    quality = np.asarray(open_stage(_store(project), key, "frame_masks").table["quality"], dtype=np.float64)
    mean = float(quality.mean()) if quality.size else 0.0
    return CheckOutcome(
        "mask_quality", mean >= threshold, f"mean mask quality {mean:.3f} (minimum {threshold})",
        {"mean_quality": mean, "min_mask_quality": threshold, "masks": int(quality.size)},
    )


CHECKS = (frame_count, no_empty_layer, provenance, mask_quality)


def check_mattes(project: Project, key: str) -> list[CheckOutcome]:
    return [check(project, key) for check in CHECKS]


def _asset_check(fn) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset="mattes", name=fn.__name__, partitions_def=shots, description=(fn.__doc__ or "").strip() or None)
    def _check(context: dg.AssetCheckExecutionContext, project: ProjectResource) -> dg.AssetCheckResult:
        outcome = fn(project.project(), context.partition_key)
        return dg.AssetCheckResult(passed=outcome.passed, description=outcome.detail, metadata=outcome.metadata)

    return _check


MATTES_CHECKS = [_asset_check(fn) for fn in CHECKS]
