"""Shared fixtures: small synthetic projects built on the fly (no files shipped)."""

from __future__ import annotations

import os

# Two pytest workers share two cores: torch's default thread pool per worker (and per
# `matte` subprocess) oversubscribes them and makes the tiny-model tests 10x slower.
# Set before anything imports torch; results do not depend on the thread count.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
from pathlib import Path

import pytest
import yaml

from matte_assets.config import Project, init_project
from matte_assets.tuning.demo import write_synthetic_plate
from matte_assets.tuning.synthetic import small_shot

SHOW, SHOT = "demo", "sh010"
# Small windows so a 12-frame shot still exercises window seeding and re-prompting.
SMALL_TRACK = {"window": 6, "prompt_step": 3}


def make_project(root: Path, shot=None, show_settings: dict | None = None, store: str | None = None) -> Project:
    init_project(root)
    if store:
        (root / "matte.yaml").write_text(yaml.safe_dump({"store": store, "deliveries": "deliveries", "shows": "shows"}))
    shot = shot or small_shot()
    pattern = write_synthetic_plate(shot, root / "plates" / SHOW / SHOT)
    show = {"prompt": "moving", "track": dict(SMALL_TRACK), **(show_settings or {})}
    show["shots"] = {SHOT: {"plate": str(Path(pattern).relative_to(root))}}
    (root / "shows" / f"{SHOW}.yaml").write_text(yaml.safe_dump(show, sort_keys=False))
    return Project(root)


def edit_show(project: Project, change) -> None:
    path = project.show_path(SHOW)
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="session")
def ran_project(tmp_path_factory) -> Path:
    """A small project run once end to end; tests copy it before changing anything."""
    from matte_assets.shots.runner import run_shot

    root = tmp_path_factory.mktemp("ran") / "project"
    project = make_project(root)
    run_shot(project, SHOW, SHOT, echo=lambda line: None)
    return root


@pytest.fixture()
def project_copy(ran_project: Path, tmp_path: Path) -> Project:
    dest = tmp_path / "project"
    shutil.copytree(ran_project, dest)
    # Manifests and the Dagster instance keep absolute paths of the original; the
    # copy gets its own instance and deliveries so tests never touch the shared one.
    shutil.rmtree(dest / ".dagster", ignore_errors=True)
    return Project(dest)
