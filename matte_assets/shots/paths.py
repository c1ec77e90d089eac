"""Paths as stored: relative to the project root whenever they lie under it, so a
project folder can be copied, moved or mounted elsewhere (a farm machine, an archive)
and its manifests, EXR headers and show files still point inside the copy. Paths
outside the project (a plate on a studio mount) stay absolute."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import PROJECT_FILE


def project_relative(root: Path | str, path: Path | str) -> str:
    """`path` relative to `root` (POSIX separators) when it lies under it, else as is."""
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    for base in (Path(os.path.abspath(root)), Path(root).resolve()):
        try:
            return absolute.relative_to(base).as_posix()
        except ValueError:
            continue
    try:
        return absolute.resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def from_project(root: Path | str, path: Path | str) -> Path:
    """A stored path back on this machine: relative ones are under `root`."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def project_root_of_store(url: str) -> Path | None:
    """The project a local store belongs to: the nearest folder above it with a
    matte.yaml (the default layout is `<project>/store`). None for object stores."""
    if "://" in url and not url.startswith("file://"):
        return None
    here = Path(url.removeprefix("file://")).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def resolve_manifest(manifest: dict[str, Any], root: Path | str | None) -> dict[str, Any]:
    """A stored `mattes` manifest with its folder and file paths made absolute on
    this machine (older manifests with absolute paths pass through unchanged)."""
    if root is None:
        return manifest
    out = dict(manifest)
    if "folder" in out:
        out["folder"] = str(from_project(root, out["folder"]))
    if "files" in out:
        out["files"] = [{**f, "path": str(from_project(root, f["path"]))} if "path" in f else f for f in out["files"]]
    return out
