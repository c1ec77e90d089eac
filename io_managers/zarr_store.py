"""The Zarr store: one folder per shot, one per stage, one Zarr group per stage version.

    <store>/<SHOW>/<SHOT>/<stage>/HEAD.json            which version is current (+ its record)
    <store>/<SHOW>/<SHOT>/<stage>/<data_version>-<run>/ a complete Zarr group per version

A stage writes a *new* version group frame by frame (memory stays bounded by the
frame size), then commits it by replacing the small HEAD.json in one atomic step
(rename on local disks, a single PUT on object stores). A crash mid-write leaves an
orphan version folder that no HEAD points at: readers never see it, `matte gc`
removes it. Earlier versions stay readable so older deliveries remain auditable.

Works on local paths and any fsspec URL (`memory://` in tests, `s3://` on a farm).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from matte_assets.errors import StoreError

HEAD = "HEAD.json"

# Masks are highly redundant (long runs of 0/1): zstd through blosc with bit shuffle
# packs a 1024x576 frame of one layer into a few hundred bytes; empty frames are not
# written at all (zarr skips chunks equal to the fill value).
MASK_CODECS = (BloscCodec(cname="zstd", clevel=5, shuffle=BloscShuffle.bitshuffle),)
IMAGE_CODECS = (BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle),)


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def open_zarr_group(location: str, mode: str, storage_options: Mapping[str, Any] | None = None) -> zarr.Group:
    if _is_url(location):
        store = zarr.storage.FsspecStore.from_url(
            location, storage_options=dict(storage_options or {}), read_only=(mode == "r")
        )
    else:
        store = zarr.storage.LocalStore(location.removeprefix("file://"), read_only=(mode == "r"))
    return zarr.open_group(store=store, mode=mode)


@dataclass(frozen=True)
class StagedVersion:
    """A version group being written; invisible to readers until committed."""

    shot_key: str
    stage: str
    name: str
    location: str
    group: zarr.Group


class ZarrStore:
    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None, project_root: str | None = None):
        self.url = url.rstrip("/")
        # Stored delivery paths are relative to the project; an object store cannot say
        # where its project is, so whoever knows passes it (see matte_assets.paths).
        self.project_root = project_root
        self.storage_options = dict(storage_options or {})
        self.fs, self._root = fsspec.core.url_to_fs(self.url, **self.storage_options)

    # -- locations ---------------------------------------------------------------
    def stage_location(self, shot_key: str, stage: str) -> str:
        show, shot = shot_key.split("__", 1)
        return f"{self.url}/{show}/{shot}/{stage}"

    def _fs_path(self, location: str) -> str:
        return self.fs._strip_protocol(location)

    # -- writing ---------------------------------------------------------------
    def begin(self, shot_key: str, stage: str, data_version: str, run_id: str) -> StagedVersion:
        name = f"{data_version}-{(run_id or uuid.uuid4().hex)[:8]}"
        location = f"{self.stage_location(shot_key, stage)}/{name}"
        group = open_zarr_group(location, mode="w", storage_options=self.storage_options)
        return StagedVersion(shot_key, stage, name, location, group)

    def commit(self, staged: StagedVersion, record: Mapping[str, Any]) -> dict[str, Any]:
        """Make `staged` the current version of its stage (atomic HEAD replace)."""
        head = {**record, "version": staged.name}
        staged.group.attrs["record"] = _jsonable(head)
        self._write_json(f"{self.stage_location(staged.shot_key, staged.stage)}/{HEAD}", head)
        return head

    def _write_json(self, location: str, payload: Mapping[str, Any]) -> None:
        data = json.dumps(_jsonable(payload), indent=1, sort_keys=True).encode()
        path = self._fs_path(location)
        if self.fs.protocol in ("file", "local") or "file" in self.fs.protocol:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        else:  # object stores: one PUT is atomic
            self.fs.pipe_file(path, data)

    def copy_array(self, source: zarr.Group, staged: StagedVersion, path: str) -> None:
        """Copy an array from a committed version into a staged one, chunk files as
        they are (no decode/encode): reusing an unchanged layer costs a file copy."""
        version = source.attrs["record"]["version"]
        src = self._fs_path(f"{self.stage_location(staged.shot_key, staged.stage)}/{version}/{path}")
        dst = self._fs_path(f"{staged.location}/{path}")
        self.fs.makedirs(os.path.dirname(dst), exist_ok=True)
        self.fs.copy(src, dst, recursive=True)

    # -- reading ---------------------------------------------------------------
    def head(self, shot_key: str, stage: str) -> dict[str, Any] | None:
        path = self._fs_path(f"{self.stage_location(shot_key, stage)}/{HEAD}")
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path}: corrupt stage record: {exc}") from None

    def open_version(self, shot_key: str, stage: str, version: str | None = None) -> tuple[zarr.Group, dict[str, Any]]:
        """The committed group of a stage (current by default) and its record."""
        head = self.head(shot_key, stage)
        if version is None:
            if head is None:
                raise StoreError(f"{self.stage_location(shot_key, stage)}: stage {stage!r} of {shot_key} has not been materialised")
            version = head["version"]
        location = f"{self.stage_location(shot_key, stage)}/{version}"
        try:
            group = open_zarr_group(location, mode="r", storage_options=self.storage_options)
        except FileNotFoundError:
            raise StoreError(f"{location}: stage version missing from the store") from None
        return group, dict(group.attrs.get("record") or head or {})

    def versions(self, shot_key: str, stage: str) -> list[str]:
        path = self._fs_path(self.stage_location(shot_key, stage))
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(os.path.basename(e.rstrip("/")) for e in entries if not e.endswith(HEAD))

    def size(self, location: str) -> int:
        try:
            return int(self.fs.du(self._fs_path(location)))
        except (FileNotFoundError, NotImplementedError):
            return 0

    def remove_version(self, shot_key: str, stage: str, version: str) -> None:
        head = self.head(shot_key, stage)
        if head and head.get("version") == version:
            raise StoreError(f"{shot_key}/{stage}/{version} is the current version; refusing to remove it")
        self.fs.rm(self._fs_path(f"{self.stage_location(shot_key, stage)}/{version}"), recursive=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
