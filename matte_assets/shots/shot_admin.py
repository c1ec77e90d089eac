"""`matte shot remove`: a shot leaves the project — its show-file entry, its stored
stage results, its corrections and its Dagster partition. Delivered versions stay
unless asked (they may already be in use downstream)."""

from __future__ import annotations

import os
import shutil

import yaml

from ..config import Project, _read_yaml, partition_key
from ..errors import ConfigError


def remove_shot(project: Project, show: str, shot: str, deliveries: bool = False) -> list[str]:
    project.show(show).shot(shot)  # unknown show / shot: a clear error, nothing removed
    removed: list[str] = []
    path = project.show_path(show)
    raw = _read_yaml(path)
    shots = raw.get("shots") or {}
    if not isinstance(shots, dict) or shot not in shots:
        raise ConfigError(f"{path}: no shot {shot!r}")
    del shots[shot]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    os.replace(tmp, path)  # the entry goes first: a half-finished removal leaves no live shot
    removed.append(f"shots.{shot} from {path}")

    from .shot import project_store

    store = project_store(project)
    location = store.stage_location(partition_key(show, shot), "x").rsplit("/", 1)[0]
    fs_path = store._fs_path(location)
    if store.fs.exists(fs_path):
        store.fs.rm(fs_path, recursive=True)
        removed.append(f"stored results {location}")
    from .corrections import corrections_path, masks_dir

    corrections = corrections_path(project, show, shot)
    if corrections.exists():
        corrections.unlink()
        removed.append(f"corrections {corrections}")
    if masks_dir(project, show, shot).is_dir():
        shutil.rmtree(masks_dir(project, show, shot))
    folder = project.deliveries / show / shot
    if deliveries and folder.is_dir():
        shutil.rmtree(folder)
        removed.append(f"deliveries {folder}")
    if (project.dagster_home / "dagster.yaml").exists():
        from .runner import instance_for

        instance = instance_for(project)
        if instance.has_dynamic_partition("shots", partition_key(show, shot)):
            instance.delete_dynamic_partition("shots", partition_key(show, shot))
            removed.append(f"Dagster partition {partition_key(show, shot)}")
    return removed
