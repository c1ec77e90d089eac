"""A project is portable (issue 10 item 3): every stored path is relative to the
project, so a copied or moved project points at its own files; the Zarr store also
works on S3-compatible object storage (a local moto server started here)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.cli import main
from matte_assets.config import Project
from matte_assets.media.exr import read_exr_header
from matte_assets.shots.runner import run_shot

from .conftest import SHOT, SHOW, make_project

KEY = f"{SHOW}__{SHOT}"


def quiet(line: str) -> None:
    pass


def matte(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _texts(root: Path):
    """Every small text-like file a project keeps about itself (store records and
    attributes, show files, delivery manifests)."""
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".yaml") and path.stat().st_size < 5_000_000:
            yield path, path.read_text(errors="replace")


def test_a_moved_project_points_at_its_own_files(capsys, tmp_path: Path, monkeypatch) -> None:
    original = tmp_path / "original"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    run_shot(make_project(original), SHOW, SHOT, echo=quiet)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(original, moved)
    shutil.move(original, tmp_path / "gone")  # nothing may still point at the old place

    for path, text in _texts(moved):
        assert str(original) not in text, path
    manifest = open_stage(ZarrStore(Project(moved).store_url), KEY, "mattes")
    assert Path(manifest["folder"]).is_relative_to(moved)
    exr = Path(manifest["files"][0]["path"])
    assert exr.is_file() and exr.is_relative_to(moved)
    header = read_exr_header(exr)
    assert not any(str(original) in str(v) for v in header.values())
    assert header["matte/plate_file"].startswith("plates/")

    code, out, _ = matte(capsys, "status", f"{SHOW}/{SHOT}", "--project", str(moved))
    assert code == 0 and "stale" not in out and "missing" not in out
    assert f"latest delivery: {moved}" in out
    code, out, _ = matte(capsys, "lineage", str(exr), "--project", str(moved))
    assert code == 0 and "plates/" in out
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code, out, err = matte(capsys, "run", f"{SHOW}/{SHOT}", "--project", str(moved))
    assert code == 0, err
    assert " ran" not in out and f"delivered: {moved}" in out


def test_shot_add_stores_a_project_relative_pattern(capsys, tmp_path: Path) -> None:
    from matte_assets.tuning.demo import write_synthetic_plate
    from matte_assets.tuning.synthetic import small_shot

    root = tmp_path / "p"
    assert matte(capsys, "init", str(root))[0] == 0
    pattern = write_synthetic_plate(small_shot(n_frames=4), root / "plates" / "a")
    code, _, err = matte(capsys, "shot", "add", "s/sh1", "--plate", pattern, "--project", str(root))
    assert code == 0, err
    entry = yaml.safe_load((root / "shows" / "s.yaml").read_text())["shots"]["sh1"]
    assert entry["plate"] == "plates/a/sh010.####.exr"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def s3_server(monkeypatch):
    """A local S3 (moto's server) on 127.0.0.1, with credentials for it in the env."""
    pytest.importorskip("s3fs")
    if shutil.which("moto_server", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]')")
    port = _free_port()
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start in 30 s")
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint}.items():
            monkeypatch.setenv(key, value)
        import fsspec
        import s3fs

        fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = endpoint
        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir("matte-farm")
        yield endpoint
    finally:
        import fsspec

        fsspec.config.conf.get("s3", {}).pop("endpoint_url", None)
        proc.terminate()
        proc.wait(10)


def test_store_on_s3(s3_server, tmp_path: Path, monkeypatch) -> None:
    import s3fs

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    project = make_project(tmp_path / "p", store="s3://matte-farm/store")
    states = run_shot(project, SHOW, SHOT, echo=quiet)
    assert all(s.state == "ran" for s in states)
    fs = s3fs.S3FileSystem()
    head = json.loads(fs.cat_file(f"matte-farm/store/{SHOW}/{SHOT}/mattes/HEAD.json"))
    assert str(tmp_path) not in json.dumps(head)
    store = ZarrStore(project.store_url, project_root=str(project.root))
    manifest = open_stage(store, KEY, "mattes")
    assert all(Path(f["path"]).is_file() for f in manifest["files"])  # deliveries on the shared filesystem
    assert open_stage(store, KEY, "plate").frames(0, 1).shape[0] == 1
    again = run_shot(project, SHOW, SHOT, echo=quiet)
    assert all(s.state == "reused" for s in again)
