"""One writer per shot: `matte run`, `matte correct` and `matte gc` hold an exclusive
lock on `<project>/.locks/<SHOW>__<SHOT>.lock` while they change the shot's data.

flock(2) locks are released by the kernel when the holder dies (a killed run never
leaves a stale lock). They cover processes on one machine, and NFS clients that
forward flock; across farm machines on other filesystems, queue each shot on one
worker (Dagster run tags / concurrency keys, see docs/design.md)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from ..config import Project, partition_key
from ..errors import MatteError


class ShotLockedError(MatteError):
    """Another process is changing this shot."""


@contextmanager
def shot_lock(project: Project, show: str, shot: str, wait: float = 0.0) -> Iterator[None]:
    folder = project.root / ".locks"
    folder.mkdir(exist_ok=True)
    path = folder / f"{partition_key(show, shot)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(path)
                    raise ShotLockedError(
                        f"{show}/{shot} is locked by another process ({holder}); "
                        f"wait for it, or pass --wait SECONDS"
                    ) from None
                time.sleep(0.2)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
    except (OSError, ValueError):
        return "holder unknown"
