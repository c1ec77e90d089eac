"""The plate's files on disk: discovery and content hashes (shared by the `plate`
stage, its source observation and the run planner).

Hashing a 4K plate takes seconds, and every `matte run` / `matte status` needs the
hashes to plan. They are kept in a stat-keyed cache (path, size, mtime_ns, inode) in
the project (`.matte/plate_hashes.json`): a file that was rewritten, replaced or
touched is hashed again; `matte verify` re-hashes everything (`full=True`)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from ..config import ShotSettings
from ..media.sequence import discover_frames, hash_file
from .paths import from_project, project_relative

_HASH_CACHE: dict[tuple[str, int, int, int], str] = {}
CACHE_NAME = "plate_hashes.json"


def cache_file(project) -> Path:
    """Where a project keeps its plate hash cache."""
    return Path(project.root) / ".matte" / CACHE_NAME


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ino)


def cached_hash(path: Path, full: bool = False) -> str:
    """sha256 of a file, cached by (path, size, mtime_ns, inode)."""
    key = _stat_key(path)
    if full or key not in _HASH_CACHE:
        _HASH_CACHE[key] = hash_file(path)
    return _HASH_CACHE[key]


def _load(cache: Path) -> None:
    try:
        entries = json.loads(cache.read_text())
    except (OSError, ValueError):
        return  # no cache yet, or unreadable: everything is hashed again
    root = cache.parent.parent
    for path, (size, mtime_ns, ino, sha) in entries.items() if isinstance(entries, dict) else ():
        _HASH_CACHE.setdefault((str(from_project(root, path)), size, mtime_ns, ino), sha)


def _save(cache: Path, keys: list[tuple[str, int, int, int]]) -> None:
    try:
        old = json.loads(cache.read_text())
        old = old if isinstance(old, dict) else {}
    except (OSError, ValueError):
        old = {}
    # Plates inside the project are keyed relative to it, like every stored path (a copied
    # project's cache names no file of the original; inodes differ there, so it re-hashes).
    root = cache.parent.parent
    new = {**old, **{project_relative(root, k[0]): [k[1], k[2], k[3], _HASH_CACHE[k]] for k in keys}}
    if new == old:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    tmp.write_text(json.dumps(new, sort_keys=True))
    os.replace(tmp, cache)  # atomic: a concurrent reader sees the old or the new file


def hash_plate_files(settings: ShotSettings, full: bool = False, cache: Path | None = None) -> list[tuple[int, Path, str]]:
    """(frame number, path, sha256) for every frame of the shot's plate. With `cache`
    (a project's cache file) unchanged files are not read; `full` re-hashes them all."""
    frames = discover_frames(settings.plate.path, settings.plate.frames)
    if cache is not None and not full:
        _load(cache)
    out = [(frame, path, cached_hash(path, full)) for frame, path in frames]
    if cache is not None:
        try:
            _save(cache, [_stat_key(path) for _, path, _ in out])
        except OSError:
            pass  # a read-only project still works, it only hashes again next time
    return out
