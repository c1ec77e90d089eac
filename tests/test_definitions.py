"""The Dagster code location that `dagster dev -w workspace.yaml` loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from matte_assets.definitions import build_definitions
from matte_assets.shots.lineage import STAGES

REPO = Path(__file__).resolve().parents[1]


def test_graph_has_the_six_stages_and_their_sources(tmp_path: Path) -> None:
    defs = build_definitions(str(tmp_path))
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert set(STAGES) <= keys
    assert {f"settings/{s}" for s in STAGES} | {"source/plate_files"} <= keys
    # Each stage depends on its own settings (and corrections) and its upstream stages.
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("filtered_layers")).parent_keys}
    assert parents == {"tracked_layers", "settings/filtered_layers", "corrections/filtered_layers"}
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("tracked_layers")).parent_keys}
    assert parents == {"plate", "frame_masks", "settings/tracked_layers", "corrections/tracked_layers"}
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("mattes")).parent_keys}
    assert parents == {"plate", "filtered_layers", "settings/mattes"}
    assert graph.get(dg.AssetKey("plate")).partitions_def.name == "shots"


def test_workspace_yaml_loads(ran_project: Path) -> None:
    env = {**os.environ, "MATTE_PROJECT": str(ran_project), "DAGSTER_HOME": str(ran_project / ".dagster")}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_assets_materialize_with_dagster_directly(tmp_path: Path) -> None:
    """The assets run under plain `dagster.materialize` on a temporary instance (no
    matte runner), with settings observed as data."""
    from io_managers.zarr_io_manager import ZarrIOManagerFactory
    from io_managers.zarr_store import ZarrStore
    from matte_assets.definitions import STAGE_ASSETS
    from matte_assets.stages.sources import CORRECTION_SOURCES, SETTINGS_SOURCES, plate_files
    from matte_assets.tuning.synthetic import small_shot
    from resources.project import BackendsResource, ProjectResource

    from .conftest import SHOT, SHOW, make_project

    project = make_project(tmp_path / "p", shot=small_shot(n_frames=5))
    key = f"{SHOW}__{SHOT}"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", [key])
        result = dg.materialize(
            [plate_files, *SETTINGS_SOURCES.values(), *CORRECTION_SOURCES.values(), *STAGE_ASSETS],
            instance=instance,
            partition_key=key,
            resources={
                "project": ProjectResource(root=str(project.root)),
                "backends": BackendsResource(),
                "zarr_io_manager": ZarrIOManagerFactory(project_root=str(project.root)),
            },
        )
        assert result.success
        materialized = {m.asset_key.to_user_string() for m in result.asset_materializations_for_node("mattes")}
        assert materialized == {"mattes"}
        store = ZarrStore(project.store_url)
        for stage in STAGES:
            event = instance.get_latest_data_version_record(dg.AssetKey(stage), partition_key=key)
            assert event.asset_materialization.tags["dagster/data_version"] == store.head(key, stage)["data_version"]
