"""Versioned delivery folders: numbering, staging, never overwriting, digests."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from matte_assets.errors import DeliveryError
from matte_assets.media.delivery import (
    ContentDigest,
    VersionWriter,
    find_version_with_digest,
    frame_file_name,
    list_versions,
    version_name,
)
from matte_assets.media.exr import read_exr, write_exr


def test_names():
    assert version_name(1) == "v001" and version_name(1234) == "v1234"
    assert frame_file_name("sh010", 3, 1001) == "sh010_matte_v003.1001.exr"
    assert frame_file_name("sh010", 3, 7, padding=6) == "sh010_matte_v003.000007.exr"
    assert frame_file_name("sh010", 3, 7, padding=0) == "sh010_matte_v003.7.exr"
    assert frame_file_name("sh010", 3, 7, padding=None) == "sh010_matte_v003.0007.exr"
    with pytest.raises(ValueError):
        version_name(0)


def test_list_versions_ignores_staging_and_files(tmp_path):
    for name in ["v001", "v003", ".v004.partial-abc", "v02", "vfinal"]:
        (tmp_path / name).mkdir()
    (tmp_path / "v005").write_text("a file, not a version")
    assert list_versions(tmp_path) == [1, 3]
    assert list_versions(tmp_path / "missing") == []


def _deliver(shot_dir, frames=(1001, 1002), value=0.5, digest_only=False):
    digest = ContentDigest()
    with VersionWriter(shot_dir, "sh010") as vw:
        for frame in frames:
            chans = {"person1.A": np.full((4, 6), value, np.float32), "A": np.full((4, 6), value, np.float32)}
            digest.update(frame, chans)
            write_exr(vw.path_for(frame), chans, attributes={"matte/version": vw.version_name})
        return vw.commit(digest.hexdigest(), {"frames": list(frames)}), digest.hexdigest()


def test_versions_count_up_and_commit_publishes(tmp_path):
    shot_dir = tmp_path / "SHOW" / "sh010"
    first, d1 = _deliver(shot_dir)
    assert first == shot_dir / "v001"
    assert sorted(os.listdir(first)) == ["manifest.json", "sh010_matte_v001.1001.exr", "sh010_matte_v001.1002.exr"]
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["content_digest"] == d1 and manifest["version"] == "v001" and manifest["frames"] == [1001, 1002]
    chans, header = read_exr(first / "sh010_matte_v001.1001.exr")
    assert set(chans) == {"person1.A", "A"} and header["matte/version"] == "v001"
    second, _ = _deliver(shot_dir, value=0.25)
    assert second == shot_dir / "v002"
    assert list_versions(shot_dir) == [1, 2]
    assert [n for n in os.listdir(shot_dir) if n.startswith(".")] == []  # no staging left


def test_staging_removed_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with VersionWriter(tmp_path, "sh010") as vw:
            write_exr(vw.path_for(1001), {"A": np.zeros((2, 2))})
            assert vw.staging_dir.name.startswith(".v001.partial-")
            raise RuntimeError("killed mid-delivery")
    assert os.listdir(tmp_path) == []
    # leaving without commit also cleans up
    with VersionWriter(tmp_path, "sh010") as vw:
        write_exr(vw.path_for(1001), {"A": np.zeros((2, 2))})
    assert os.listdir(tmp_path) == []
    vw = VersionWriter(tmp_path, "sh010")
    vw.abort()
    assert os.listdir(tmp_path) == []


def test_never_replaces_a_version_that_appeared(tmp_path):
    vw = VersionWriter(tmp_path, "sh010")
    write_exr(vw.path_for(1001), {"A": np.ones((2, 2))})
    # another process published v001 meanwhile (even an empty one must not be replaced)
    (tmp_path / "v001").mkdir()
    with pytest.raises(DeliveryError, match="v001.*refusing to replace"):
        vw.commit("d", {})
    vw.abort()
    assert os.listdir(tmp_path / "v001") == []
    assert os.listdir(tmp_path) == ["v001"]


def test_concurrent_writers_one_wins(tmp_path):
    a = VersionWriter(tmp_path, "sh010")
    b = VersionWriter(tmp_path, "sh010")
    assert a.version == b.version == 1
    write_exr(a.path_for(1), {"A": np.ones((2, 2))})
    write_exr(b.path_for(1), {"A": np.zeros((2, 2))})
    a.commit("a", {})
    with pytest.raises(DeliveryError):
        b.commit("b", {})
    b.abort()
    assert read_exr(tmp_path / "v001" / "sh010_matte_v001.0001.exr")[0]["A"].min() == 1.0
    assert os.listdir(tmp_path) == ["v001"]


def test_find_version_with_digest(tmp_path):
    _, d1 = _deliver(tmp_path, value=0.5)
    _, d2 = _deliver(tmp_path, value=0.75)
    (tmp_path / "v003").mkdir()  # no manifest: skipped, not an error
    assert find_version_with_digest(tmp_path, d1) == 1
    assert find_version_with_digest(tmp_path, d2) == 2
    assert find_version_with_digest(tmp_path, "0" * 64) is None
    assert find_version_with_digest(tmp_path / "nothing", d1) is None


def _digest(frames: dict[int, dict[str, np.ndarray]]) -> str:
    d = ContentDigest()
    for frame in sorted(frames):
        d.update(frame, frames[frame])
    return d.hexdigest()


def test_content_digest_equality_and_inequality():
    a = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    base = {1001: {"person1.A": a, "A": a}, 1002: {"person1.A": a * 0.5, "A": a}}
    same = {1001: {"A": a.astype(np.float64), "person1.A": a}, 1002: {"person1.A": a * 0.5, "A": a}}
    assert _digest(base) == _digest(same)  # channel order and input dtype do not matter
    # differences below half precision are not differences in the delivered file
    halved = {f: {k: v.astype(np.float16).astype(np.float32) for k, v in ch.items()} for f, ch in base.items()}
    assert _digest(halved) == _digest(base)
    changed = {1001: base[1001], 1002: {"person1.A": a * 0.5, "A": a * 0.9}}
    renamed = {1001: {"car1.A": a, "A": a}, 1002: {"car1.A": a * 0.5, "A": a}}
    shifted = {1002: base[1001], 1003: base[1002]}
    digests = {_digest(x) for x in (base, changed, renamed, shifted)}
    assert len(digests) == 4
    with pytest.raises(ValueError, match="increasing order"):
        d = ContentDigest()
        d.update(2, {"A": a})
        d.update(1, {"A": a})
