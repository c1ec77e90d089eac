"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here.

The project folder comes from $MATTE_PROJECT, else the current folder. `matte run`
builds the same definitions for the project it is given."""

from __future__ import annotations

import dagster as dg

from io_managers.zarr_io_manager import ZarrIOManagerFactory
from resources.project import BackendsResource, ProjectResource

from .config import find_project_root
from .stages.checks import MATTES_CHECKS
from .farm.automation import stale_shots_sensor
from .farm.executors import executor_from_env
from .stages.sources import CORRECTION_SOURCES, SETTINGS_SOURCES, plate_files
from .stages.specs import load_assets

# Derived from the stage specs (graph order).
STAGE_ASSETS = load_assets()


def build_definitions(project_root: str) -> dg.Definitions:
    return dg.Definitions(
        assets=[plate_files, *SETTINGS_SOURCES.values(), *CORRECTION_SOURCES.values(), *STAGE_ASSETS],
        asset_checks=MATTES_CHECKS,
        sensors=[stale_shots_sensor],
        resources={
            "project": ProjectResource(root=project_root),
            "backends": BackendsResource(),
            "zarr_io_manager": ZarrIOManagerFactory(project_root=project_root),
        },
        # Runs launched on an instance (UI, `matte submit`, sensors); `matte run` always
        # executes in its own process. $MATTE_EXECUTOR picks it (matte_assets.farm.executors).
        executor=executor_from_env(),
    )


defs = build_definitions(str(find_project_root(None)))
