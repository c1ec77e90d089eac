"""The brief's layering: plain algorithms, media I/O and the backends never import
Dagster (they are usable and testable without the orchestration), and a `matte run`
that finds everything fresh loads neither Dagster nor zarr nor scipy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PURE = sorted(
    [f"matte_assets.algorithms.{p.stem}" for p in (REPO / "matte_assets" / "algorithms").glob("*.py") if p.stem != "__init__"]
    + [f"matte_assets.media.{p.stem}" for p in (REPO / "matte_assets" / "media").glob("*.py") if p.stem != "__init__"]
    + [f"resources.{p.stem}" for p in (REPO / "resources").glob("*.py") if p.stem not in ("__init__", "project")]
)


def imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        cwd=REPO, capture_output=True, text=True, check=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    ).stdout
    return set(out.split())


def test_module_list_is_not_empty() -> None:
    assert "matte_assets.algorithms.layer_filter" in PURE and "resources.embedded" in PURE and "matte_assets.media.exr" in PURE


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_never_import_dagster(module: str) -> None:
    loaded = imported_after(f"import {module}")
    assert module in loaded
    assert "dagster" not in loaded, f"{module} imports Dagster"


def test_planning_imports_no_orchestration() -> None:
    loaded = imported_after("import matte_assets.cli, matte_assets.shots.runner, matte_assets.shots.verify, io_managers.readers")
    assert {"matte_assets.shots.runner", "io_managers.zarr_store"} <= loaded
    assert not {"dagster", "zarr", "scipy", "torch", "transformers"} & loaded
