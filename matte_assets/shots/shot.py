"""A shot of a project as one handle: its partition key, its store, its stored stage
results and its corrections (instead of rebuilding stores and spelling out keys).
No Dagster or Zarr import until something is opened."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..config import Project, partition_key, split_shot_ref, validate_name

if TYPE_CHECKING:
    from io_managers.zarr_store import ZarrStore

    from ..config import ShotSettings
    from .corrections import Corrections


def project_store(project: Project) -> "ZarrStore":
    """The project's stage store (knows its project, so delivery paths resolve)."""
    from io_managers.zarr_store import ZarrStore

    return ZarrStore(project.store_url, project_root=str(project.root))


class Shot:
    def __init__(self, project: Project, show: str, shot: str, store: "ZarrStore | None" = None):
        self.project = project
        self.show = validate_name("show", show)
        self.name = validate_name("shot", shot)
        if store is not None:
            self.__dict__["store"] = store

    @classmethod
    def from_ref(cls, project: Project, ref: str, store: "ZarrStore | None" = None) -> "Shot":
        """'SHOW/SHOT' (CLI) or 'SHOW__SHOT' (partition key)."""
        return cls(project, *split_shot_ref(ref), store=store)

    @property
    def key(self) -> str:
        """The Dagster partition key and the store's key of the shot."""
        return partition_key(self.show, self.name)

    @property
    def ref(self) -> str:
        return f"{self.show}/{self.name}"

    @cached_property
    def store(self) -> "ZarrStore":
        return project_store(self.project)

    def settings(self) -> "ShotSettings":
        return self.project.shot(self.show, self.name)

    def head(self, stage: str) -> dict[str, Any] | None:
        """The current version's record of `stage` (None: never stored)."""
        return self.store.head(self.key, stage)

    def open(self, stage: str, version: str | None = None, full: bool = False) -> Any:
        """The stored result of `stage` (current version unless `version`)."""
        from io_managers.readers import open_stage

        return open_stage(self.store, self.key, stage, version, full=full)

    def corrections(self) -> "Corrections":
        from .corrections import load_corrections

        return load_corrections(self.project, self.show, self.name)

    def __repr__(self) -> str:
        return f"Shot({self.ref})"
