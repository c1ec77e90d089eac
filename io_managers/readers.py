"""Readers of stored stage results, without Dagster (the CLI's status, verify and
tuning commands open results without loading the orchestration)."""

from __future__ import annotations

from typing import Any

from .zarr_store import ZarrStore


def open_stage(store: ZarrStore, shot_key: str, stage: str, version: str | None = None, full: bool = False) -> Any:
    """The reader for a stored stage result (current version unless `version`);
    `full` re-hashes every stored file against the version's integrity record."""
    from matte_assets.stage_data import DetectionTable, FrameMasksData, LayersData, PlateData, read_table

    group, record = store.open_version(shot_key, stage, version, full=full)
    if stage == "plate":
        return PlateData(group, record)
    if stage == "detections":
        # Detectors that segment as they detect (SAM 3) store one mask per row beside the table.
        return DetectionTable(read_table(group, "table"), record, masks=group["masks"] if "masks" in group else None)
    if stage == "frame_masks":
        return FrameMasksData(group, record)
    if stage in ("tracked_layers", "filtered_layers"):
        return LayersData(group, record)
    if stage == "mattes":
        from matte_assets.paths import project_root_of_store, resolve_manifest

        # Manifest paths are stored relative to the project (a copied project reads its own files).
        root = store.project_root or project_root_of_store(store.url)
        return resolve_manifest(dict(group.attrs["manifest"]), root) | {"record": record}
    raise KeyError(stage)
