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

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from matte_assets.errors import StoreError

if TYPE_CHECKING:
    import zarr

HEAD = "HEAD.json"
# What a committed version wrote: every file (chunks and metadata) with its size and
# sha256, in `<version>.integrity.json` beside the version folder (inside it, zarr
# would warn about a foreign object). HEAD.json records this file's own hash.
INTEGRITY = ".integrity.json"

# Masks are highly redundant (long runs of 0/1): zstd through blosc with bit shuffle
# packs a 1024x576 frame of one layer into a few hundred bytes; empty frames are not
# written at all (zarr skips chunks equal to the fill value).
# (Built on first use: planning a run reads HEAD.json files only and never needs zarr.)
def __getattr__(name: str):
    if name not in ("MASK_CODECS", "IMAGE_CODECS"):
        raise AttributeError(name)
    from zarr.codecs import BloscCodec, BloscShuffle

    if name == "MASK_CODECS":
        return (BloscCodec(cname="zstd", clevel=5, shuffle=BloscShuffle.bitshuffle),)
    return (BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle),)


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def open_zarr_group(location: str, mode: str, storage_options: Mapping[str, Any] | None = None) -> zarr.Group:
    import zarr

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
        # where its project is, so whoever knows passes it (see matte_assets.shots.paths).
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
        """Make `staged` the current version of its stage (atomic HEAD replace).

        Before HEAD moves, every file of the version is listed with its size and
        sha256 (`_integrity.json`): readers then detect a missing or altered chunk
        instead of reading it as an empty mask."""
        head = {**record, "version": staged.name}
        staged.group.attrs["record"] = _jsonable(head)
        files = {rel: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                 for rel, data in self._version_files(staged.location)}
        body = json.dumps({"files": files}, sort_keys=True, separators=(",", ":")).encode()
        self._write_bytes(f"{staged.location}{INTEGRITY}", body)
        head["integrity"] = {"sha256": hashlib.sha256(body).hexdigest(), "files": len(files),
                             "bytes": sum(f["size"] for f in files.values())}
        self._write_json(f"{self.stage_location(staged.shot_key, staged.stage)}/{HEAD}", head)
        return head

    def _version_files(self, location: str):
        """(relative path, bytes) of every file of a version folder but the integrity list."""
        root = self._fs_path(location).rstrip("/")
        for rel in sorted(self._listing(root)):
            yield rel, self._read(f"{root}/{rel}")

    def _read(self, path: str) -> bytes:
        if self._local:
            with open(path, "rb") as fh:
                return fh.read()
        return self.fs.cat_file(path)

    def _listing(self, root: str) -> dict[str, int]:
        """{relative path: size} of every file under a version folder (os.scandir on
        local disks: fsspec's per-path overhead is most of the cost there)."""
        if not self._local:
            return {p[len(root) + 1:]: int(info.get("size") or 0) for p, info in self.fs.find(root, detail=True).items()}
        out: dict[str, int] = {}
        stack = [(root, "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    out[f"{prefix}{entry.name}"] = entry.stat(follow_symlinks=False).st_size
        return out

    def _write_bytes(self, location: str, data: bytes) -> None:
        path = self._fs_path(location)
        if self._local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        else:  # object stores: one PUT is atomic
            self.fs.pipe_file(path, data)

    @property
    def _local(self) -> bool:
        return self.fs.protocol in ("file", "local") or "file" in self.fs.protocol

    def _write_json(self, location: str, payload: Mapping[str, Any]) -> None:
        self._write_bytes(location, json.dumps(_jsonable(payload), indent=1, sort_keys=True).encode())

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

    def open_version(self, shot_key: str, stage: str, version: str | None = None, full: bool = False) -> tuple[zarr.Group, dict[str, Any]]:
        """The committed group of a stage (current by default) and its record, after
        checking that every file it wrote is there with its recorded size (cheap: one
        listing); `check_version(full=True)` re-hashes everything (`matte verify`)."""
        head = self.head(shot_key, stage)
        if version is None:
            if head is None:
                raise StoreError(f"{self.stage_location(shot_key, stage)}: stage {stage!r} of {shot_key} has not been materialised")
            version = head["version"]
        problems = self.check_version(shot_key, stage, version, full=full, once=True)
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            raise StoreError(f"{problems[0]}{more}; run `matte run {shot_key.replace('__', '/', 1)}` to recompute it")
        location = f"{self.stage_location(shot_key, stage)}/{version}"
        group = open_zarr_group(location, mode="r", storage_options=self.storage_options)
        return group, dict(group.attrs.get("record") or head or {})

    def version_attrs(self, shot_key: str, stage: str, version: str) -> dict[str, Any]:
        """A committed version's group attributes, read from its zarr.json (no zarr
        import; `open_version` first when the version may be damaged)."""
        path = self._fs_path(f"{self.stage_location(shot_key, stage)}/{version}/zarr.json")
        try:
            return dict(json.loads(self.fs.cat_file(path)).get("attributes") or {})
        except (FileNotFoundError, ValueError) as exc:
            raise StoreError(f"{path}: cannot read version attributes ({exc})") from None

    # -- integrity ---------------------------------------------------------------
    def check_version(self, shot_key: str, stage: str, version: str, full: bool = False, once: bool = False) -> list[str]:
        """What is wrong with a stored version, one line each (empty: intact). Checks
        the file list and sizes against the version's integrity record (and that
        record against HEAD when `version` is current); `full` also re-hashes (with
        `once`, not again for a version this process already re-hashed)."""
        location = f"{self.stage_location(shot_key, stage)}/{version}"
        where = f"{shot_key.replace('__', '/', 1)} {stage} version {version}"
        root = self._fs_path(location).rstrip("/")
        try:
            body = self.fs.cat_file(f"{root}{INTEGRITY}")
        except FileNotFoundError:
            if not self.fs.exists(root):
                return [f"store damaged: {where}: version folder missing ({location})"]
            return [f"store damaged: {where}: no integrity record ({version}{INTEGRITY}); written incompletely or before integrity checks"]
        try:
            head = self.head(shot_key, stage)
        except StoreError:
            head = None
        recorded = (head or {}).get("integrity", {}).get("sha256") if (head or {}).get("version") == version else None
        if recorded and hashlib.sha256(body).hexdigest() != recorded:
            return [f"store damaged: {where}: {INTEGRITY} altered (hash differs from HEAD.json)"]
        try:
            expected = json.loads(body)["files"]
        except (ValueError, KeyError, TypeError):
            return [f"store damaged: {where}: {INTEGRITY} unreadable"]
        found = self._listing(root)
        memo = (root, hashlib.sha256(body).hexdigest())
        if full and once and memo in _FULLY_VERIFIED:
            full = False  # re-hashed once in this process; sizes still checked
        problems = []
        for rel in sorted(expected):
            if rel not in found:
                problems.append(f"store damaged: {where}: {_describe(rel)} missing")
            elif found[rel] != expected[rel]["size"]:
                problems.append(f"store damaged: {where}: {_describe(rel)} altered (size {found[rel]}, recorded {expected[rel]['size']})")
            elif full and hashlib.sha256(self._read(f"{root}/{rel}")).hexdigest() != expected[rel]["sha256"]:
                problems.append(f"store damaged: {where}: {_describe(rel)} altered (content hash differs)")
        for rel in sorted(set(found) - set(expected)):
            problems.append(f"store damaged: {where}: {_describe(rel)} not written by the stage (unexpected file)")
        if full and not problems:
            _FULLY_VERIFIED.add(memo)
        return problems

    def versions(self, shot_key: str, stage: str) -> list[str]:
        path = self._fs_path(self.stage_location(shot_key, stage))
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(os.path.basename(e.rstrip("/")) for e in entries if not e.endswith((HEAD, INTEGRITY)))

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
        try:
            self.fs.rm_file(self._fs_path(f"{self.stage_location(shot_key, stage)}/{version}{INTEGRITY}"))
        except FileNotFoundError:
            pass  # an orphan (crashed) version has none


# Versions re-hashed in this process (location, integrity-record hash): a stage read
# by several downstream stages of one run is hashed once.
_FULLY_VERIFIED: set[tuple[str, str]] = set()


def _describe(rel: str) -> str:
    """'masks/3/c/17/0/0' -> 'array masks/3 chunk (17, 0, 0)'; metadata files as such."""
    parts = rel.split("/")
    if parts[-1] != "zarr.json" and "c" in parts:
        i = len(parts) - 1 - parts[::-1].index("c")
        array = "/".join(parts[:i]) or "/"
        return f"array {array} chunk ({', '.join(parts[i + 1:])})"
    if parts[-1] == "zarr.json":
        return f"metadata of {'/'.join(parts[:-1]) or 'the group'}"
    return f"file {rel}"


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
