"""Readers of stored stage results, without Dagster (the CLI's status, verify and
tuning commands open results without loading the orchestration)."""

from __future__ import annotations

from typing import Any

from .zarr_store import ZarrStore


def open_stage(store: ZarrStore, shot_key: str, stage: str, version: str | None = None, full: bool = False) -> Any:
    """The reader for a stored stage result (current version unless `version`);
    `full` re-hashes every stored file against the version's integrity record."""
    from matte_assets.stages.specs import spec

    reader = spec(stage).reader
    group, record = store.open_version(shot_key, stage, version, full=full)
    return reader(group, record, store)
