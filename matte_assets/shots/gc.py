"""`matte gc`: remove stored stage versions nothing needs any more.

Kept, per shot and stage: the current version (HEAD), every version named in the
lineage of a current version, and every version a delivered EXR version was built from
(its manifest's `store_versions`; for manifests without them, every version of the
recorded data version). Everything else — superseded results, and orphans left by
killed runs — is removed, as are leftover delivery staging folders. Runs under the
shot lock, so it never races a `matte run`."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .shot import project_store

from ..config import Project, partition_key
from .lineage import STAGES
from .locking import shot_lock


@dataclass
class Removal:
    shot: str
    what: str
    bytes: int


def _delivered_references(shot_dir: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(store versions, data versions) per stage referenced by delivered versions."""
    versions: dict[str, set[str]] = {s: set() for s in STAGES}
    data: dict[str, set[str]] = {s: set() for s in STAGES}
    for manifest in sorted(shot_dir.glob("v[0-9]*/manifest.json")):
        try:
            body = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        for stage, version in (body.get("store_versions") or {}).items():
            if version:
                versions.setdefault(stage, set()).add(version)
        if not body.get("store_versions"):
            for stage, dv in (body.get("data_versions") or {}).items():
                data.setdefault(stage, set()).add(dv)
    return versions, data


def collect_garbage(project: Project, shots: list[tuple[str, str]], dry_run: bool = False) -> list[Removal]:
    store = project_store(project)
    removed: list[Removal] = []
    for show, shot in shots:
        key = partition_key(show, shot)
        shot_dir = project.deliveries / show / shot
        with shot_lock(project, show, shot):
            keep, keep_data = _delivered_references(shot_dir)
            for stage in STAGES:
                head = store.head(key, stage)
                if head:
                    keep[stage].add(head["version"])
                    for upstream, entry in (head.get("lineage") or {}).items():
                        if entry.get("version"):
                            keep.setdefault(upstream, set()).add(entry["version"])
            for stage in STAGES:
                for version in store.versions(key, stage):
                    if version in keep.get(stage, set()) or version.split("-")[0] in keep_data.get(stage, set()):
                        continue
                    location = f"{store.stage_location(key, stage)}/{version}"
                    size = store.size(location)
                    if not dry_run:
                        store.remove_version(key, stage, version)
                    removed.append(Removal(key, f"store {stage}/{version}", size))
            for staging in sorted(shot_dir.glob(".v*.partial-*")) if shot_dir.is_dir() else []:
                size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
                if not dry_run:
                    shutil.rmtree(staging, ignore_errors=True)
                removed.append(Removal(key, f"delivery staging {staging.name}", size))
    return removed
