"""Versioned delivery folders (spec section 6):

    <deliveries>/<SHOW>/<SHOT>/v<NNN>/<SHOT>_matte_v<NNN>.<FRAME>.exr

A version is written into a hidden staging folder (`.v003.partial-<uuid>`) and renamed
to `v003` only when complete, so a `vNNN` folder is always whole. Versions are never
modified or replaced; identical content can reuse an existing version via its digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from matte_assets.errors import DeliveryError

MANIFEST_NAME = "manifest.json"
_VERSION_DIR = re.compile(r"v(\d{3,})\Z")


def version_name(n: int) -> str:
    """1 -> "v001"."""
    if n < 1:
        raise ValueError(f"version numbers start at 1, got {n}")
    return f"v{n:03d}"


def frame_file_name(shot: str, version: int, frame: int, padding: int | None = 4) -> str:
    """("sh010", 3, 1001) -> "sh010_matte_v003.1001.exr". `padding` None (a plate
    pattern whose padding was never resolved) falls back to 4 digits."""
    padding = 4 if padding is None else padding
    return f"{shot}_matte_{version_name(version)}.{frame:0{padding}d}.exr"


def list_versions(shot_dir: str | os.PathLike) -> list[int]:
    """Version numbers of the `vNNN` folders in `shot_dir`, ascending (staging folders
    are hidden and never match)."""
    shot_dir = Path(shot_dir)
    if not shot_dir.is_dir():
        return []
    found = []
    for entry in os.scandir(shot_dir):
        m = _VERSION_DIR.match(entry.name)
        if m is not None and entry.is_dir():
            found.append(int(m.group(1)))
    return sorted(found)


def read_manifest(version_dir: str | os.PathLike) -> dict:
    """The manifest.json of a delivered version folder."""
    path = Path(version_dir) / MANIFEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{path}: cannot read delivery manifest ({exc})") from exc


def find_version_with_digest(shot_dir: str | os.PathLike, digest: str) -> int | None:
    """The newest version whose manifest records `digest` as its content digest, so
    a rerun with identical pixels reuses it instead of making a new version."""
    shot_dir = Path(shot_dir)
    for n in reversed(list_versions(shot_dir)):
        try:
            manifest = read_manifest(shot_dir / version_name(n))
        except DeliveryError:
            continue  # a version without a readable manifest cannot prove its content
        if isinstance(manifest, dict) and manifest.get("content_digest") == digest:
            return n
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on every filesystem; the rename is still atomic
    finally:
        os.close(fd)


class VersionWriter:
    """Stage the files of the next version and publish them with one rename.

        with VersionWriter(shot_dir, "sh010") as vw:
            write_exr(vw.path_for(1001), channels)
            vw.commit(digest, {"frames": [1001]})

    Leaving the block by an exception, or without commit(), removes the staging folder."""

    def __init__(self, shot_dir: str | os.PathLike, shot: str) -> None:
        self.shot_dir = Path(shot_dir)
        self.shot = shot
        self.shot_dir.mkdir(parents=True, exist_ok=True)
        self.version = max(list_versions(self.shot_dir), default=0) + 1
        self.staging_dir = self.shot_dir / f".{version_name(self.version)}.partial-{uuid.uuid4().hex}"
        self.staging_dir.mkdir()
        self.committed: Path | None = None

    @property
    def version_name(self) -> str:
        return version_name(self.version)

    @property
    def final_dir(self) -> Path:
        return self.shot_dir / self.version_name

    def path_for(self, frame: int, padding: int | None = 4) -> Path:
        """Where to write a frame's EXR while staging."""
        return self.staging_dir / frame_file_name(self.shot, self.version, frame, padding)

    def commit(self, content_digest: str, manifest: dict[str, Any]) -> Path:
        """Write manifest.json and rename the staging folder to `vNNN`."""
        if self.committed is not None:
            raise DeliveryError(f"{self.final_dir}: already committed")
        if not self.staging_dir.is_dir():
            raise DeliveryError(f"{self.staging_dir}: staging folder is gone (aborted?)")
        body = {**manifest, "shot": self.shot, "version": self.version_name, "content_digest": content_digest}
        manifest_path = self.staging_dir / MANIFEST_NAME
        with open(manifest_path, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self.staging_dir)
        final = self.final_dir
        # POSIX rename() silently replaces an EMPTY target directory, so check first;
        # a non-empty existing version makes rename fail (ENOTEMPTY/EEXIST) anyway.
        if final.exists():
            raise DeliveryError(f"{final}: version appeared while staging; refusing to replace it")
        try:
            os.rename(self.staging_dir, final)
        except OSError as exc:
            raise DeliveryError(f"{final}: cannot publish version ({exc.strerror or exc})") from exc
        _fsync_dir(self.shot_dir)
        self.committed = final
        return final

    def abort(self) -> None:
        """Remove the staging folder and everything written into it."""
        if self.committed is None:
            shutil.rmtree(self.staging_dir, ignore_errors=True)

    def __enter__(self) -> VersionWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


class ContentDigest:
    """Incremental sha256 over the delivered pixels: per frame, in frame order, each
    channel's name, shape and float16 bytes (what a half EXR stores). Headers, run ids
    and compression are not part of it, so identical mattes give identical digests."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._last_frame: int | None = None

    def update(self, frame: int, channels: dict[str, np.ndarray],
               data_window: tuple[int, int, int, int] | None = None) -> None:
        if self._last_frame is not None and frame <= self._last_frame:
            raise ValueError(f"frames must be added in increasing order: {frame} after {self._last_frame}")
        self._last_frame = frame
        window = "" if data_window is None else ",".join(str(int(v)) for v in data_window)
        self._sha.update(f"frame {frame} window {window} channels {len(channels)}\n".encode())
        for name in sorted(channels):
            data = np.ascontiguousarray(channels[name], dtype="<f2")
            self._sha.update(f"{name} {'x'.join(map(str, data.shape))}\n".encode())
            self._sha.update(data.tobytes())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
