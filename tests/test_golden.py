"""Code versions that cannot lie: each stage's results on a small fixed plate, as a
digest, stored in tests/golden/stages.json with the code version they were made with.

A stage whose results changed while its CODE_VERSIONS entry did not fails here: a
store made before the change would otherwise serve the old results as fresh.
Regenerate (after bumping the version, or when a bump was intended):

    MATTE_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import zarr

from io_managers.zarr_store import ZarrStore
from matte_assets.config import Project
from matte_assets.shots.lineage import CODE_VERSIONS, STAGES, UPSTREAM

from .conftest import SHOT, SHOW

GOLDEN = Path(__file__).parent / "golden" / "stages.json"
REGENERATE = "MATTE_UPDATE_GOLDEN=1 pytest tests/test_golden.py"
# Stored beside the results but not results: pictures for people, timings, run records.
SKIP_ARRAYS = {"pictures"}
SKIP_ATTRS = {"record", "files", "pattern", "created", "run_id"}


def _arrays(group: zarr.Group, prefix: str = ""):
    for name, array in sorted(group.arrays()):
        yield f"{prefix}{name}", array
    for name, sub in sorted(group.groups()):
        if name not in SKIP_ARRAYS:
            yield from _arrays(sub, f"{prefix}{name}/")


def stage_digest(store: ZarrStore, key: str, stage: str) -> str:
    """sha256 over a stage's decoded arrays (shape, dtype, values) and its attributes
    minus run records, paths and timestamps; `mattes`: the delivered pixels' digest."""
    group, _ = store.open_version(key, stage)
    h = hashlib.sha256()
    if stage == "mattes":
        manifest = dict(group.attrs["manifest"])
        h.update(json.dumps([manifest["content_digest"], manifest["channels"], len(manifest["files"])]).encode())
        return h.hexdigest()[:32]
    attrs = {k: v for k, v in group.attrs.asdict().items() if k not in SKIP_ATTRS}
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    for name, array in _arrays(group):
        data = np.ascontiguousarray(array[...])
        h.update(f"{name}:{data.shape}:{data.dtype}".encode())
        h.update(json.dumps(array.attrs.asdict(), sort_keys=True, default=str).encode())
        h.update(data.tobytes())
    return h.hexdigest()[:32]


def test_stage_results_match_their_code_versions(ran_project: Path) -> None:
    project = Project(ran_project)
    store = ZarrStore(project.store_url)
    key = f"{SHOW}__{SHOT}"
    now = {stage: {"code_version": CODE_VERSIONS[stage], "digest": stage_digest(store, key, stage)} for stage in STAGES}
    if os.environ.get("MATTE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        return
    assert GOLDEN.exists(), f"{GOLDEN} missing: create it with `{REGENERATE}`"
    golden = json.loads(GOLDEN.read_text())
    changed = {s for s in STAGES if now[s]["digest"] != golden.get(s, {}).get("digest")}
    problems = []
    for stage in STAGES:
        if stage not in changed or any(up in changed for up in UPSTREAM[stage]):
            continue  # unchanged, or changed because an input did (that stage is named)
        old = golden.get(stage, {}).get("code_version")
        if old == CODE_VERSIONS[stage]:
            problems.append(
                f"{stage}: results changed but CODE_VERSIONS[{stage!r}] is still {old!r}: bump it in "
                f"matte_assets/shots/lineage.py (stored results would otherwise be served as fresh), then `{REGENERATE}`"
            )
    bumped = [s for s in STAGES if golden.get(s, {}).get("code_version") != CODE_VERSIONS[s]]
    if not problems and (changed or bumped):
        problems.append(f"golden out of date (changed: {sorted(changed)}, code versions bumped: {bumped}): `{REGENERATE}`")
    assert not problems, "\n".join(problems)


def test_digest_sees_a_changed_mask(ran_project: Path, tmp_path: Path) -> None:
    """The digest is not blind: flipping one stored mask pixel changes it."""
    import shutil

    root = tmp_path / "p"
    shutil.copytree(ran_project / "store", root / "store")
    store = ZarrStore(str(root / "store"))
    key = f"{SHOW}__{SHOT}"
    before = stage_digest(store, key, "filtered_layers")
    group, record = store.open_version(key, "filtered_layers")
    location = f"{store.stage_location(key, 'filtered_layers')}/{record['version']}"
    writable = zarr.open_group(location, mode="r+")
    lid = sorted(writable["masks"].array_keys())[0]
    arr = writable["masks"][lid]
    frame = arr[0]
    frame[0, 0] = not frame[0, 0]
    arr[0] = frame
    assert stage_digest(store, key, "filtered_layers") != before
