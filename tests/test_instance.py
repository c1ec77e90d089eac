"""Concurrent first use of a fresh project never corrupts its Dagster instance
(issue 10 item 5; benchmarks/concurrent_first_runs.py runs the 20-trial version)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from matte_assets.config import init_project

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _env(root: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{os.environ.get('PYTHONPATH', '')}", "MATTE_PROJECT": str(root)}
    env.pop("DAGSTER_HOME", None)
    return env


def _heads(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("select version_num from alembic_version")]


def test_simultaneous_first_opens_create_one_instance(tmp_path: Path) -> None:
    root = tmp_path / "project"
    init_project(root)  # no instance yet
    code = "from matte_assets.config import Project; from matte_assets.shots.instance import open_instance; import sys; open_instance(Project(sys.argv[1])).get_runs(limit=1)"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root)], env=_env(root), stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    history = root / ".dagster" / "history"
    for db in (history / "runs.db", history / "runs" / "index.db", root / ".dagster" / "schedules" / "schedules.db"):
        assert len(_heads(db)) == 1, db


def test_simultaneous_first_runs_of_different_shots(tmp_path: Path) -> None:
    from concurrent_first_runs import trial

    ok, why = trial(3)
    assert ok, why


def test_matte_init_creates_the_instance(tmp_path: Path) -> None:
    root = tmp_path / "project"
    out = subprocess.run([sys.executable, "-m", "matte_assets.cli", "init", str(root)], env=_env(root), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(_heads(root / ".dagster" / "history" / "runs.db")) == 1
