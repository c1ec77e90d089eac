"""`matte run` end to end on the model backends, with tiny randomly initialised
GroundingDINO and SAM2 folders saved with save_pretrained (the path a user's folder takes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.cli import main
from matte_assets.media.exr import read_exr
from matte_assets.tuning.synthetic import small_shot

from .conftest import SHOT, SHOW, edit_show, make_project
from .model_fixtures import write_tiny_grounding_dino, write_tiny_sam2

KEY = f"{SHOW}__{SHOT}"
MODELS = {
    "prompt": "person, car",
    "backends": {"detector": "grounding_dino", "segmenter": "sam2", "tracker": "sam2"},
    "device": "cpu",
    # Random weights score every box about alike; a high threshold keeps a few objects.
    "detect": {"box_threshold": 0.5, "text_threshold": 0.25},
}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"grounding_dino": write_tiny_grounding_dino(root / "gdino"), "sam2": write_tiny_sam2(root / "sam2")}


def model_project(root: Path, models: dict[str, Path], n_frames: int = 6):
    settings = {**MODELS, "models": {k: str(v) for k, v in models.items()}}
    return make_project(root, shot=small_shot(n_frames=n_frames), show_settings=settings)


def test_model_backends_run_end_to_end(tmp_path: Path, tiny_models, capsys) -> None:
    project = model_project(tmp_path / "p", tiny_models)
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()[:6]] == ["ran"] * 6

    store = ZarrStore(project.store_url)
    dets = open_stage(store, KEY, "detections")
    assert len(dets) > 0
    assert set(dets.columns["label"]) <= {"person", "car"}
    plate = open_stage(store, KEY, "plate")
    w, h = plate.size
    assert (dets.columns["x0"] >= 0).all() and (dets.columns["x1"] <= w).all() and (dets.columns["y1"] <= h).all()
    assert sorted(set(dets.columns["frame"])) <= plate.frame_numbers
    masks = open_stage(store, KEY, "frame_masks")
    assert len(masks) == len(dets)
    assert ((masks.table["quality"] >= 0) & (masks.table["quality"] <= 1)).all()  # SAM2's predicted IoU
    tracked = open_stage(store, KEY, "tracked_layers")
    assert tracked.layer_ids and tracked.n_frames == 6

    files = sorted((project.deliveries / SHOW / SHOT / "v001").glob("*.exr"))
    assert len(files) == 6
    channels, header = read_exr(files[0])
    assert channels["A"].shape == (small_shot().height, small_shot().width)
    # The weights' identity is in the stage records and the EXR header.
    assert "sha256:" in header["matte/models"] or "hf:" in header["matte/models"]
    assert "Sam2" in header["matte/models"] and "GroundingDino" in header["matte/models"]

    # Same inputs, same device: a forced rerun reproduces the same data and reuses v001.
    versions = {s: store.head(KEY, s)["version"] for s in ("detections", "frame_masks", "tracked_layers")}
    first_masks = [tracked.masks_at(i) for i in range(6)]
    first_dets = {k: list(v) for k, v in dets.columns.items()}
    assert main(["run", f"{SHOW}/{SHOT}", "--from", "detections", "--project", str(project.root)]) == 0
    after = open_stage(store, KEY, "tracked_layers")
    assert all(store.head(KEY, s)["version"] != versions[s] for s in versions)  # really recomputed
    assert {k: list(v) for k, v in open_stage(store, KEY, "detections").columns.items()} == first_dets
    assert any(m.any() for m in first_masks)
    assert all((after.masks_at(i) == first_masks[i]).all() for i in range(6))
    assert open_stage(store, KEY, "mattes")["reused_existing_version"]


def test_missing_weights_fail_before_any_stage(tmp_path: Path, tiny_models, capsys) -> None:
    project = model_project(tmp_path / "p", {**tiny_models, "sam2": tmp_path / "no-such-folder"})
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    _, err = capsys.readouterr()
    assert code != 0 and "no-such-folder" in err and "sam2" in err.lower()
    assert ZarrStore(project.store_url).head(KEY, "plate") is None  # nothing ran


def test_unreadable_weights_fail_before_any_stage(tmp_path: Path, tiny_models, capsys) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    project = model_project(tmp_path / "p", {**tiny_models, "grounding_dino": broken})
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    _, err = capsys.readouterr()
    assert code != 0 and "broken" in err
    assert ZarrStore(project.store_url).head(KEY, "plate") is None


def test_switching_tracker_reruns_from_tracking(tmp_path: Path, tiny_models) -> None:
    from matte_assets.shots.runner import plan_shot, run_shot

    project = model_project(tmp_path / "p", tiny_models)
    run_shot(project, SHOW, SHOT, echo=lambda line: None)
    edit_show(project, lambda d: d["backends"].update(tracker="flow"))
    states = {s.stage: s.state for s in plan_shot(project, SHOW, SHOT)}
    assert states == {
        "plate": "fresh", "detections": "fresh", "frame_masks": "fresh",
        "tracked_layers": "stale", "filtered_layers": "stale", "mattes": "stale",
    }
