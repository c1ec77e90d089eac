"""`matte verify`: is everything stored and delivered what was written?

The normal path checks cheaply (every stored file present with its recorded size,
delivered files present); `matte verify` re-hashes everything in full: each current
stage version's files against its integrity record, every delivered file against its
version's manifest, and the plate files on disk (refreshing the stat-keyed hash cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DeliveryError, StoreError


def _hash(path: Path) -> str:
    from ..media.sequence import hash_file

    return hash_file(path)


def delivery_problems(manifest: dict[str, Any], full: bool = False) -> list[str]:
    """What is wrong with the delivery a `mattes` manifest names (empty: intact)."""
    folder = manifest.get("folder")
    if not folder or not Path(folder).is_dir():
        return [f"delivery damaged: {folder}: delivered folder missing"]
    problems = []
    for entry in manifest.get("files", []):
        path = Path(entry.get("path") or Path(folder) / entry["name"])
        if not path.is_file():
            problems.append(f"delivery damaged: {path}: delivered file missing")
        elif full and _hash(path) != entry.get("sha256"):
            problems.append(f"delivery damaged: {path}: content differs from the manifest's sha256")
    return problems


def version_folder_problems(folder: Path, full: bool = False) -> list[str]:
    """A delivered `vNNN` folder against its own manifest.json."""
    from ..media.delivery import read_manifest

    try:
        manifest = read_manifest(folder)
    except DeliveryError as exc:
        return [f"delivery damaged: {exc}"]
    files = [{**f, "path": str(folder / f["name"])} for f in manifest.get("files", [])]
    return delivery_problems({"folder": str(folder), "files": files}, full=full)


@dataclass
class VerifyReport:
    lines: list[str] = field(default_factory=list)
    damaged: int = 0

    def ok(self, what: str) -> None:
        self.lines.append(f"ok       {what}")

    def bad(self, problems: list[str]) -> None:
        self.damaged += len(problems)
        self.lines.extend(f"DAMAGED  {p}" for p in problems)

    def note(self, what: str) -> None:
        self.lines.append(f"note     {what}")


def verify_shot(project: Any, show: str, shot: str, report: VerifyReport) -> None:
    """Full check of one shot's store and deliveries, appended to `report`."""
    from .shot import project_store

    from ..config import partition_key
    from .lineage import STAGES, plate_files_version
    from ..media.delivery import list_versions, version_name
    from .plate_files import cache_file, hash_plate_files
    from .runner import stored_problems

    settings = project.shot(show, shot)
    store = project_store(project)
    key = partition_key(show, shot)
    for stage in STAGES:
        try:
            head = store.head(key, stage)
        except StoreError as exc:
            report.bad([str(exc)])
            continue
        if head is None:
            report.note(f"{show}/{shot} {stage}: not materialised")
            continue
        try:
            problems = stored_problems(project, store, key, stage, head, full=True)
        except StoreError as exc:
            problems = [str(exc)]
        if problems:
            report.bad(problems)
        else:
            report.ok(f"{show}/{shot} {stage} {head['version']} ({head.get('integrity', {}).get('files', '?')} files re-hashed)")
        if stage == "plate" and not problems:
            try:
                files = hash_plate_files(settings, full=True, cache=cache_file(project))
                if plate_files_version([(f, h) for f, _, h in files]) != head.get("inputs", {}).get("files"):
                    report.note(f"{show}/{shot} plate files on disk differ from the stored plate: stale, `matte run` recomputes")
            except Exception as exc:  # a plate that cannot be read is reported, not fatal here
                report.note(f"{show}/{shot} plate files: {exc}")
    shot_dir = project.deliveries / show / shot
    for n in list_versions(shot_dir) if shot_dir.is_dir() else []:
        problems = version_folder_problems(shot_dir / version_name(n), full=True)
        if problems:
            report.bad(problems)
        else:
            report.ok(f"{show}/{shot} delivery {version_name(n)}")
