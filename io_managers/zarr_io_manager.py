"""Dagster IO manager over the Zarr store (UPathIOManager-style paths).

Each stage asset streams its frames into a staged version group and returns a
StageResult; `dump_to_path` commits it (atomic HEAD replace). `load_from_path` opens
the current version of an upstream stage lazily and wraps it in the stage's reader.
Paths: `<store>/<SHOW>/<SHOT>/<stage>` (per shot first, so one shot's data is one
folder to copy, archive or delete).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from upath import UPath

from matte_assets.config import Project, split_shot_ref
from matte_assets.shots.shot import project_store

from .readers import open_stage  # noqa: F401  (re-exported: readers need no Dagster)
from .zarr_store import ZarrStore


class ZarrIOManager(dg.UPathIOManager):
    extension = ""

    def __init__(self, store: ZarrStore):
        super().__init__(base_path=UPath(store.url, **store.storage_options))
        self.store = store

    def get_path_for_partition(self, context: Any, path: UPath, partition: str) -> UPath:
        show, shot = split_shot_ref(partition)
        return self._base_path / show / shot / path.name

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        head = self.store.commit(obj.staged, obj.record)
        context.add_output_metadata({"store_version": head["version"], "store_path": str(path)})

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        stage = context.asset_key.path[-1]
        # Inputs of a stage are re-hashed in full (once per process): what a stage
        # computes from is exactly what was written, or the run fails naming the chunk.
        return open_stage(self.store, context.asset_partition_key, stage, full=True)


class ZarrIOManagerFactory(dg.ConfigurableIOManagerFactory):
    """Resolves the store from the project's matte.yaml when a run starts."""

    project_root: str

    def create_io_manager(self, context: Any) -> ZarrIOManager:
        return ZarrIOManager(project_store(Project(self.project_root)))
