"""The Dagster instance a project runs against, opened safely by any number of
concurrent processes.

A project's own instance lives in `<project>/.dagster` (SQLite). Dagster creates its
SQLite databases and stamps their schema version on first open; two processes doing
that at the same moment leave `alembic_version` with two heads and the instance
unusable. So the instance is created (and every later open checked) under an
exclusive flock on `<DAGSTER_HOME>/.matte-instance.lock`: the first opener creates the
databases, everyone else waits a moment and opens complete ones. `matte init` does it
once up front. A studio instance (DAGSTER_HOME with a Postgres `dagster.yaml`, see
deploy/) is opened the same way; Postgres needs the lock only for its first migration,
which dagster-postgres also guards itself.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from ..config import Project

# dagster-postgres/-celery releases trail dagster's own by a patch at times; same minor is fine.
warnings.filterwarnings("ignore", message="Found version mismatch between `dagster-shared`")

LOCK_NAME = ".matte-instance.lock"
# Farm machines have no route out; keep a project's own instance quiet.
DEFAULT_CONFIG = "telemetry:\n  enabled: false\n"


@contextmanager
def instance_lock(home: Path) -> Iterator[None]:
    try:
        fd = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only shared DAGSTER_HOME: its owner initialised it
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for well under a second per opener
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def open_instance(project: Project) -> dg.DagsterInstance:
    """The project's Dagster instance (created on first use), with DAGSTER_HOME set
    for this process so Dagster's own code finds the same one."""
    home = project.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    with instance_lock(home):
        config = home / "dagster.yaml"
        if not config.exists():
            _write_atomic(config, DEFAULT_CONFIG)
        # Opening creates and stamps the storages when they are new (eagerly, for the
        # run, event-log index and schedule databases), so it all happens under the lock.
        return dg.DagsterInstance.get()
