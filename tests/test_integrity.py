"""Store and delivery integrity: a missing or altered stored chunk, a deleted stage
version, a HEAD.json pointing nowhere or corrupt, a deleted or altered delivery. Each
is detected (status `damaged`, reads fail naming stage/array/chunk, `matte verify`
exits 1), repaired by the next `matte run`, and nothing is delivered from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.cli import main
from matte_assets.errors import StoreError
from matte_assets.shots.runner import plan_shot, run_shot

from .conftest import SHOT, SHOW, edit_show

KEY = f"{SHOW}__{SHOT}"


def matte(capsys, project, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--project", str(project.root)])
    out, err = capsys.readouterr()
    return code, out, err


def states(project) -> dict[str, str]:
    return {s.stage: s.state for s in plan_shot(project, SHOW, SHOT)}


def version_dir(project, stage: str) -> Path:
    store = ZarrStore(project.store_url)
    return Path(store.stage_location(KEY, stage)) / store.head(KEY, stage)["version"]


def a_mask_chunk(project, stage: str) -> tuple[Path, str]:
    """A stored (non-empty) mask chunk of the current version and its layer id."""
    root = version_dir(project, stage) / "masks"
    for layer in sorted(root.iterdir()):
        chunks = sorted((layer / "c").rglob("*")) if (layer / "c").is_dir() else []
        chunks = [c for c in chunks if c.is_file()]
        if chunks:
            return chunks[len(chunks) // 2], layer.name
    raise AssertionError(f"no stored mask chunk under {root}")


def test_a_clean_store_verifies(capsys, project_copy) -> None:
    assert set(states(project_copy).values()) == {"fresh"}
    code, out, err = matte(capsys, project_copy, "verify", f"{SHOW}/{SHOT}")
    assert code == 0, err
    assert out.count("ok ") >= 7  # six stages + the delivered version
    assert "no damage" in out


def test_missing_chunk_is_an_error_never_an_empty_mask(capsys, project_copy) -> None:
    chunk, layer = a_mask_chunk(project_copy, "filtered_layers")
    rel = chunk.relative_to(version_dir(project_copy, "filtered_layers"))
    chunk.unlink()
    with pytest.raises(StoreError, match=rf"filtered_layers .*array masks/{layer} chunk \(\d+, 0, 0\) missing"):
        open_stage(ZarrStore(project_copy.store_url), KEY, "filtered_layers")
    code, out, _ = matte(capsys, project_copy, "status", f"{SHOW}/{SHOT}")
    assert code == 0
    assert "filtered_layers  damaged" in out and f"array masks/{layer} chunk" in out
    code, out, err = matte(capsys, project_copy, "verify", f"{SHOW}/{SHOT}")
    assert code == 1 and "DAMAGED" in out and f"masks/{layer} chunk" in out and "problem(s) found" in err

    # A compression change must not deliver from the damaged layers: the run recomputes them.
    edit_show(project_copy, lambda d: d.setdefault("deliver", {}).update(compression="piz"))
    ran = {s.stage: s.state for s in run_shot(project_copy, SHOW, SHOT, echo=lambda line: None)}
    assert ran["filtered_layers"] == "ran" and ran["mattes"] == "ran"
    assert set(states(project_copy).values()) == {"fresh"}
    assert (version_dir(project_copy, "filtered_layers") / rel).is_file()  # the lost frame is back
    assert matte(capsys, project_copy, "verify", f"{SHOW}/{SHOT}")[0] == 0


def test_altered_chunk_fails_the_stage_that_reads_it(capsys, project_copy) -> None:
    chunk, layer = a_mask_chunk(project_copy, "tracked_layers")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only a hash sees it
    chunk.write_bytes(bytes(data))
    assert states(project_copy)["tracked_layers"] == "fresh"  # the cheap check is sizes only
    code, out, _ = matte(capsys, project_copy, "verify", f"{SHOW}/{SHOT}")
    assert code == 1 and f"tracked_layers version" in out and f"masks/{layer} chunk" in out and "content hash differs" in out
    # A stage reading it (filtering after a threshold tweak) re-hashes its inputs and fails naming the chunk.
    edit_show(project_copy, lambda d: d.setdefault("filter", {}).update(sim_merge=0.55))
    code, _, err = matte(capsys, project_copy, "run", f"{SHOW}/{SHOT}")
    assert code == 1 and f"masks/{layer} chunk" in err and "content hash differs" in err
    # --from tracked_layers recomputes it, then everything verifies again.
    code, out, err = matte(capsys, project_copy, "run", f"{SHOW}/{SHOT}", "--from", "tracked_layers")
    assert code == 0, err
    assert matte(capsys, project_copy, "verify", f"{SHOW}/{SHOT}")[0] == 0


@pytest.mark.parametrize("damage", ["delete_version", "head_points_nowhere", "corrupt_head"])
def test_broken_current_version_is_damaged_and_recomputed(capsys, project_copy, damage) -> None:
    stage_dir = version_dir(project_copy, "tracked_layers").parent
    if damage == "delete_version":
        shutil.rmtree(version_dir(project_copy, "tracked_layers"))
    elif damage == "head_points_nowhere":
        head = json.loads((stage_dir / "HEAD.json").read_text())
        (stage_dir / "HEAD.json").write_text(json.dumps({**head, "version": "nowhere-00000000"}))
    else:
        (stage_dir / "HEAD.json").write_text("{not json")
    assert states(project_copy)["tracked_layers"] == "damaged"
    code, out, _ = matte(capsys, project_copy, "status", f"{SHOW}/{SHOT}")
    assert "tracked_layers   damaged" in out
    # --from works whatever state the current version is in (here even --from plate).
    code, out, err = matte(capsys, project_copy, "run", f"{SHOW}/{SHOT}", "--from", "plate")
    assert code == 0, err
    assert "tracked_layers   ran" in out
    assert set(states(project_copy).values()) == {"fresh"}


def test_damaged_stage_is_recomputed_by_a_plain_run(project_copy) -> None:
    shutil.rmtree(version_dir(project_copy, "frame_masks"))
    ran = {s.stage: s.state for s in run_shot(project_copy, SHOW, SHOT, echo=lambda line: None)}
    assert ran["frame_masks"] == "ran"
    assert ran["plate"] == "reused" and ran["detections"] == "reused"
    assert set(states(project_copy).values()) == {"fresh"}


def test_deleted_delivery_is_not_delivered(capsys, project_copy) -> None:
    folder = project_copy.deliveries / SHOW / SHOT / "v001"
    before = sorted(p.name for p in folder.glob("*.exr"))
    shutil.rmtree(folder)
    assert states(project_copy)["mattes"] == "damaged"
    code, out, _ = matte(capsys, project_copy, "status", f"{SHOW}/{SHOT}")
    assert "mattes           damaged" in out and "delivered folder missing" in out
    assert "latest delivery" not in out
    assert matte(capsys, project_copy, "verify", f"{SHOW}/{SHOT}")[0] == 1
    code, out, err = matte(capsys, project_copy, "run", f"{SHOW}/{SHOT}")
    assert code == 0, err
    assert "mattes           ran" in out and "delivered: " in out
    redelivered = ZarrStore(project_copy.store_url)
    manifest = open_stage(redelivered, KEY, "mattes")
    new_folder = project_copy.deliveries / SHOW / SHOT / f"v{manifest['version']:03d}"
    assert sorted(p.name.replace(new_folder.name, "v001") for p in new_folder.glob("*.exr")) == before
    assert matte(capsys, project_copy, "verify", f"{SHOW}/{SHOT}")[0] == 0


def test_altered_delivered_file_fails_verify(capsys, project_copy) -> None:
    exr = sorted((project_copy.deliveries / SHOW / SHOT / "v001").glob("*.exr"))[3]
    data = bytearray(exr.read_bytes())
    data[-10] ^= 0xFF
    exr.write_bytes(bytes(data))
    code, out, _ = matte(capsys, project_copy, "verify")
    assert code == 1 and exr.name in out and "content differs" in out


def test_version_written_without_integrity_record_is_damaged(project_copy) -> None:
    folder = version_dir(project_copy, "detections")
    (folder.parent / f"{folder.name}.integrity.json").unlink()
    assert states(project_copy)["detections"] == "damaged"
    with pytest.raises(StoreError, match="no integrity record"):
        open_stage(ZarrStore(project_copy.store_url), KEY, "detections")


def test_unexpected_chunk_is_damage(project_copy) -> None:
    """A chunk appearing where the stage wrote none (an empty frame) would read as a mask."""
    chunk, _ = a_mask_chunk(project_copy, "filtered_layers")
    layers = open_stage(ZarrStore(project_copy.store_url), KEY, "filtered_layers")
    masks = version_dir(project_copy, "filtered_layers") / "masks"
    # An empty frame of some layer (no chunk stored there); on this small shot every
    # layer may cover every frame, then a frame index past the end.
    target, empty = next(
        ((masks / str(lid), str(t)) for lid in layers.layer_ids for t in range(layers.n_frames)
         if not (masks / str(lid) / "c" / str(t) / "0" / "0").exists()),
        (chunk.parents[3], str(layers.n_frames)),
    )
    extra = target / "c" / empty / "0" / "0"
    extra.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(chunk, extra)
    with pytest.raises(StoreError, match=rf"chunk \({empty}, 0, 0\) not written by the stage"):
        open_stage(ZarrStore(project_copy.store_url), KEY, "filtered_layers")


def test_integrity_record_covers_every_file(project_copy) -> None:
    root = version_dir(project_copy, "plate")
    record = json.loads((root.parent / f"{root.name}.integrity.json").read_text())["files"]
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert set(record) == on_disk and len(on_disk) > 3
    assert all(np.int64(v["size"]) == (root / k).stat().st_size for k, v in record.items())
