"""Dagster resources: the project (config + store) and the backends."""

from __future__ import annotations

import dagster as dg

from io_managers.zarr_store import ZarrStore
from matte_assets.config import Project, ShotSettings, split_shot_ref
from matte_assets.shots.shot import project_store

from . import registry
from .backends import Detector, Segmenter, Tracker


class ProjectResource(dg.ConfigurableResource):
    """A matte project folder. Config files are re-read on every use, so an edited
    show file is seen by the next run without restarting `dagster dev`."""

    root: str

    def project(self) -> Project:
        return Project(self.root)

    def shot(self, shot_key: str) -> ShotSettings:
        show, shot = split_shot_ref(shot_key)
        return self.project().shot(show, shot)

    def store(self) -> ZarrStore:
        return project_store(self.project())


class BackendsResource(dg.ConfigurableResource):
    """Detectors, segmenters and trackers, loaded once per process (resources.registry)."""

    def detector(self, settings: ShotSettings) -> Detector:
        return registry.detector(settings)

    def segmenter(self, settings: ShotSettings) -> Segmenter:
        return registry.segmenter(settings)

    def tracker(self, settings: ShotSettings) -> Tracker:
        return registry.tracker(settings)

    def identity(self, settings: ShotSettings, role: str) -> dict[str, str]:
        return registry.backend_identity(settings, role)
