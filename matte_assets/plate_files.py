"""The plate's files on disk: discovery and content hashes (shared by the `plate`
stage, its source observation and the run planner)."""

from __future__ import annotations

from pathlib import Path

from .config import ShotSettings
from .media.sequence import discover_frames, hash_file

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def cached_hash(path: Path) -> str:
    """sha256 of a file, cached per process by (path, size, mtime) — `matte run`
    hashes the plate to plan, then the plate stage needs the same hashes."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = hash_file(path)
    return _HASH_CACHE[key]


def hash_plate_files(settings: ShotSettings) -> list[tuple[int, Path, str]]:
    """(frame number, path, sha256) for every frame of the shot's plate."""
    frames = discover_frames(settings.plate.path, settings.plate.frames)
    return [(frame, path, cached_hash(path)) for frame, path in frames]
