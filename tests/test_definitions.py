"""The Dagster code location that `dagster dev -w workspace.yaml` loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from matte_assets.definitions import build_definitions
from matte_assets.lineage import STAGES

REPO = Path(__file__).resolve().parents[1]


def test_graph_has_the_six_stages_and_their_sources(tmp_path: Path) -> None:
    defs = build_definitions(str(tmp_path))
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert set(STAGES) <= keys
    assert {f"settings/{s}" for s in STAGES} | {"source/plate_files"} <= keys
    # Each stage depends on its own settings and on its upstream stages, nothing else.
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("filtered_layers")).parent_keys}
    assert parents == {"tracked_layers", "settings/filtered_layers"}
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
