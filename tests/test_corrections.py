"""Artist corrections, partial reruns, lineage, gc and safety (issue: corrections)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.cli import main
from matte_assets.shots.corrections import (
    CorrectionError,
    load_corrections,
    record_correction,
)
from matte_assets.tuning.evaluation import score_delivery
from matte_assets.shots.runner import run_shot
from matte_assets.tuning.synthetic import small_shot

from .conftest import SHOT, SHOW, make_project

KEY = f"{SHOW}__{SHOT}"
REPO = Path(__file__).resolve().parents[1]


def quiet(line: str) -> None:
    pass


def states(result) -> dict[str, str]:
    return {s.stage: s.state for s in result}


def truth_dir(project) -> Path:
    return project.root / "plates" / SHOW / SHOT / "truth"


def score(project) -> tuple[dict[str, float], dict[str, str]]:
    manifest = open_stage(ZarrStore(project.store_url), KEY, "mattes")
    result, objects, layers = score_delivery([(f["frame"], Path(f["path"])) for f in manifest["files"]], truth_dir(project))
    per_object = {name: float(result.per_object_j[k]) for k, name in enumerate(objects)}
    layer_of = {name: layers[result.assignment[k]] for k, name in enumerate(objects) if k in result.assignment}
    return per_object, layer_of


def tracked_id_of(project, layer_name: str) -> int:
    filtered = open_stage(ZarrStore(project.store_url), KEY, "filtered_layers")
    return dict(zip(filtered.names(), filtered.layer_ids))[layer_name]


def generous_mask(project, obj: str, frame: int) -> Path:
    """The object's true mask grown by 2 px, as an artist might draw it: it differs from
    the tracked result, so the delivered pixels change."""
    truth = cv2.imread(str(truth_dir(project) / f"{obj}.{frame}.png"), cv2.IMREAD_GRAYSCALE) > 127
    drawn = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    path = project.root / f"drawn-{obj}.{frame}.png"
    cv2.imwrite(str(path), drawn.astype(np.uint8) * 255)
    return path


@pytest.fixture()
def corrected_project(project_copy):
    return project_copy


# -- corrections as data --------------------------------------------------------------


def test_corrections_round_trip_and_split_digests(corrected_project, tmp_path: Path) -> None:
    project = corrected_project
    mask_png = truth_dir(project) / "disc.1005.png"
    e1 = record_correction(project, SHOW, SHOT, layer="1", frame=1005, mask=mask_png)
    e2 = record_correction(project, SHOW, SHOT, layer="1", frame=1007, add=["30,20"], remove=["5,5"])
    e3 = record_correction(project, SHOW, SHOT, layer="2", frame=None, drop=True)
    corrections = load_corrections(project, SHOW, SHOT)
    assert [e["kind"] for e in corrections.entries] == ["mask", "clicks", "drop"]
    assert (e1["layer"], e1["frame"]) == (1, 1005) and e2["add"] == [[30.0, 20.0]] and e3 == {"kind": "drop", "layer": 2}
    for e in (e1, e2):  # masks are stored beside the file, named by content
        assert (corrections.masks_folder / e["mask"]).is_file()
    assert corrections.layer_prompts() == {1: {1005: e1["mask"], 1007: e2["mask"]}}
    assert corrections.drops() == [2]
    tracking, filtering = corrections.tracking_digest(), corrections.filter_digest()
    record_correction(project, SHOW, SHOT, layer="1", frame=None, merge_into="2")
    again = load_corrections(project, SHOW, SHOT)
    assert again.tracking_digest() == tracking and again.filter_digest() != filtering  # a merge re-filters only


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layer": "99", "frame": 1005, "drop": False, "mask": "truth"}, "layer 99 does not exist"),
        ({"layer": "nope", "frame": None, "drop": True}, "layer 'nope' does not exist"),
        ({"layer": "1", "frame": 2000, "mask": "truth"}, "frame 2000 is not in the plate"),
        ({"layer": "1", "frame": 1005, "mask": "missing"}, "no such mask file"),
        ({"layer": "1", "frame": 1005, "mask": "tiny"}, "expected the plate"),
        ({"layer": "1", "frame": 1005}, "give exactly one of"),
        ({"layer": "1", "frame": 1005, "add": ["12"]}, "bad point '12'"),
        ({"layer": "1", "frame": None, "merge_into": "1"}, "into itself"),
    ],
)
def test_bad_corrections_change_nothing(corrected_project, tmp_path: Path, kwargs, message) -> None:
    project = corrected_project
    masks = {
        "truth": truth_dir(project) / "disc.1005.png",
        "missing": tmp_path / "nope.png",
        "tiny": tmp_path / "tiny.png",
    }
    cv2.imwrite(str(masks["tiny"]), np.full((7, 9), 255, np.uint8))
    if "mask" in kwargs:
        kwargs = {**kwargs, "mask": masks[kwargs["mask"]]}
    with pytest.raises(CorrectionError, match=message):
        record_correction(project, SHOW, SHOT, **kwargs)
    assert not (project.root / "corrections" / SHOW / f"{SHOT}.yaml").exists()


# -- partial reruns ---------------------------------------------------------------------


def count_tracked_objects(monkeypatch) -> list[int]:
    """Every object id the embedded tracker is prompted with, across sessions."""
    from resources.embedded import FlowSession

    seen: list[int] = []
    original = FlowSession.add_mask

    def spy(self, frame_index, object_id, mask):
        seen.append(object_id)
        return original(self, frame_index, object_id, mask)

    monkeypatch.setattr(FlowSession, "add_mask", spy)
    return seen


def test_drawn_mask_reruns_only_that_layer(corrected_project, monkeypatch) -> None:
    project = corrected_project
    store = ZarrStore(project.store_url)
    before = open_stage(store, KEY, "tracked_layers")
    assert len(before.layer_ids) >= 2
    _, layer_of = score(project)
    target = tracked_id_of(project, layer_of["disc"])
    others = [lid for lid in before.layer_ids if lid != target]
    others_before = {lid: before.masks_block(0, before.n_frames, [lid]).copy() for lid in others}

    drawn_path = generous_mask(project, "disc", 1006)
    drawn = cv2.imread(str(drawn_path), cv2.IMREAD_GRAYSCALE) > 127
    main(["correct", f"{SHOW}/{SHOT}", "--layer", layer_of["disc"], "--frame", "1006",
          "--mask", str(drawn_path), "--project", str(project.root)])
    seen = count_tracked_objects(monkeypatch)
    result = states(run_shot(project, SHOW, SHOT, echo=quiet))
    assert result == {"plate": "reused", "detections": "reused", "frame_masks": "reused",
                      "tracked_layers": "ran", "filtered_layers": "ran", "mattes": "ran"}
    assert seen and set(seen) == {target}  # the tracker only ever saw the corrected layer
    after = open_stage(store, KEY, "tracked_layers")
    assert after.group.attrs["retracked_layers"] == [target]
    for lid in others:  # other layers are the stored ones, bit for bit
        assert np.array_equal(after.masks_block(0, after.n_frames, [lid]), others_before[lid])
    assert np.array_equal(after.masks_at(5, [target])[0], drawn)  # the prompt frame is the artist's mask exactly
    manifest = open_stage(store, KEY, "mattes")
    assert manifest["version"] == 2  # a new delivery, v001 untouched


def test_drawn_mask_fixes_a_deliberately_broken_layer(corrected_project) -> None:
    """A wrong drawn mask (an artist's slip: a box far off the object) breaks the layer;
    drawing the right mask on the same frame replaces it and J rises again."""
    project = corrected_project
    j0, layer_of = score(project)
    name = layer_of["disc"]
    shot = small_shot()
    wrong = np.zeros((shot.height, shot.width), np.uint8)
    wrong[70:90, 120:150] = 255  # far from the disc
    wrong_path = project.root / "wrong.png"
    cv2.imwrite(str(wrong_path), wrong)
    main(["correct", f"{SHOW}/{SHOT}", "--layer", name, "--frame", "1004", "--mask", str(wrong_path), "--project", str(project.root)])
    run_shot(project, SHOW, SHOT, echo=quiet)
    j_broken, _ = score(project)
    assert j_broken["disc"] < j0["disc"] - 0.2

    main(["correct", f"{SHOW}/{SHOT}", "--layer", name, "--frame", "1004",
          "--mask", str(truth_dir(project) / "disc.1004.png"), "--project", str(project.root)])
    run_shot(project, SHOW, SHOT, echo=quiet)
    j_fixed, _ = score(project)
    assert j_fixed["disc"] > j_broken["disc"] + 0.2
    assert j_fixed["disc"] >= j0["disc"] - 0.02


def test_drop_and_merge_rerun_only_filtering(corrected_project) -> None:
    project = corrected_project
    filtered = open_stage(ZarrStore(project.store_url), KEY, "filtered_layers")
    a, b = filtered.names()[:2]
    main(["correct", f"{SHOW}/{SHOT}", "--layer", a, "--merge-into", b, "--project", str(project.root)])
    result = states(run_shot(project, SHOW, SHOT, echo=quiet))
    assert [result[s] for s in ("tracked_layers", "filtered_layers", "mattes")] == ["reused", "ran", "ran"]
    after = open_stage(ZarrStore(project.store_url), KEY, "filtered_layers")
    assert len(after.layer_ids) == len(filtered.layer_ids) - 1
    rows = {r["layer"]: r for r in after.decisions()}
    merged = dict(zip(filtered.names(), filtered.layer_ids))[a]
    assert rows[merged]["rule"] == "artist" and rows[merged]["action"] == "merge"


def test_new_layer_from_a_mask(corrected_project) -> None:
    project = corrected_project
    before = open_stage(ZarrStore(project.store_url), KEY, "tracked_layers").layer_ids
    main(["correct", f"{SHOW}/{SHOT}", "--frame", "1003", "--new-layer", "--label", "prop",
          "--mask", str(truth_dir(project) / "disc.1003.png"), "--project", str(project.root)])
    run_shot(project, SHOW, SHOT, echo=quiet)
    tracked = open_stage(ZarrStore(project.store_url), KEY, "tracked_layers")
    new = sorted(set(tracked.layer_ids) - set(before))
    assert new == [1001]
    row = tracked.layer_ids.index(1001)
    assert tracked.table["label"][row] == "prop" and tracked.table["origin"][row] == "artist"
    assert tracked.table["first_frame"][row] == 0  # tracked backward from 1003 to the start


# -- lineage ----------------------------------------------------------------------------


def test_lineage_shows_the_correction_and_each_versions_data(corrected_project, capsys) -> None:
    project = corrected_project
    _, layer_of = score(project)
    main(["correct", f"{SHOW}/{SHOT}", "--layer", layer_of["disc"], "--frame", "1006",
          "--mask", str(generous_mask(project, "disc", 1006)), "--project", str(project.root)])
    run_shot(project, SHOW, SHOT, echo=quiet)
    capsys.readouterr()
    v1 = sorted((project.deliveries / SHOW / SHOT / "v001").glob("*.exr"))[0]
    v2 = sorted((project.deliveries / SHOW / SHOT / "v002").glob("*.exr"))[0]
    assert main(["lineage", str(v2), "--project", str(project.root)]) == 0
    out2 = capsys.readouterr().out
    assert "corrections: 1" in out2 and "mask" in out2 and "frame 1006" in out2
    assert "every stage's data version matches a materialisation" in out2
    assert main(["lineage", str(v1), "--project", str(project.root)]) == 0
    out1 = capsys.readouterr().out
    assert "corrections: none" in out1
    tracked_line = lambda out: next(l for l in out.splitlines() if l.startswith("  tracked_layers "))  # noqa: E731
    assert tracked_line(out1).split()[1] != tracked_line(out2).split()[1]  # different data versions


def test_gc_keeps_what_deliveries_reference(corrected_project, capsys) -> None:
    project = corrected_project
    store = ZarrStore(project.store_url)
    v1_lineage = yaml.safe_load((project.deliveries / SHOW / SHOT / "v001" / "manifest.json").read_text())
    # Two reruns: one delivers v002, one leaves a superseded, undelivered filter result.
    _, layer_of = score(project)
    main(["correct", f"{SHOW}/{SHOT}", "--layer", layer_of["disc"], "--frame", "1006",
          "--mask", str(generous_mask(project, "disc", 1006)), "--project", str(project.root)])
    run_shot(project, SHOW, SHOT, echo=quiet)
    assert (project.deliveries / SHOW / SHOT / "v002").is_dir()
    run_shot(project, SHOW, SHOT, from_stage="filtered_layers", echo=quiet)
    orphan = store.begin(KEY, "tracked_layers", "deadbeefdeadbeef", "killedrun")  # as a killed run leaves it
    assert main(["gc", f"{SHOW}/{SHOT}", "--project", str(project.root)]) == 0
    left = {s: set(store.versions(KEY, s)) for s in ("tracked_layers", "filtered_layers")}
    assert orphan.name not in left["tracked_layers"]
    for manifest in sorted((project.deliveries / SHOW / SHOT).glob("v*/manifest.json")):
        body = yaml.safe_load(manifest.read_text())
        for stage, version in body["store_versions"].items():
            assert version in store.versions(KEY, stage), (manifest, stage)
    # The stage data of the first delivery is still there and readable.
    old = open_stage(store, KEY, "tracked_layers", v1_lineage["store_versions"]["tracked_layers"])
    assert old.layer_ids
    assert "removed" in capsys.readouterr().out


# -- safety -------------------------------------------------------------------------------


def test_a_second_run_of_the_same_shot_fails_clearly(corrected_project) -> None:
    project = corrected_project
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from matte_assets.config import Project; from matte_assets.shots.locking import shot_lock\n"
         f"with shot_lock(Project({str(project.root)!r}), {SHOW!r}, {SHOT!r}):\n"
         "    print('locked', flush=True); time.sleep(30)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        from matte_assets.shots.locking import ShotLockedError

        with pytest.raises(ShotLockedError, match=rf"{SHOW}/{SHOT} is locked by another process \(pid {holder.pid}"):
            run_shot(project, SHOW, SHOT, echo=quiet)
        started = time.monotonic()
        with pytest.raises(ShotLockedError):
            run_shot(project, SHOW, SHOT, echo=quiet, wait=0.6)
        assert time.monotonic() - started >= 0.6
    finally:
        holder.kill()
        holder.wait()
    assert states(run_shot(project, SHOW, SHOT, echo=quiet))["mattes"] == "reused"  # released on death


def test_killed_run_loses_nothing_and_resumes(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", shot=small_shot(width=320, height=192, n_frames=24))
    store = ZarrStore(project.store_url)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "matte_assets.cli", "run", f"{SHOW}/{SHOT}", "--project", str(project.root)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it mid-stage: as soon as tracking has started writing its version.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if store.versions(KEY, "tracked_layers") and store.head(KEY, "tracked_layers") is None:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.head(KEY, "frame_masks") is not None  # materialised before the kill: kept
    assert store.head(KEY, "tracked_layers") is None  # the half-written version is not current
    assert not list((project.deliveries / SHOW / SHOT).glob("v[0-9]*")) if (project.deliveries / SHOW / SHOT).exists() else True

    result = states(run_shot(project, SHOW, SHOT, echo=quiet))
    assert [result[s] for s in ("plate", "detections", "frame_masks")] == ["reused"] * 3
    assert [result[s] for s in ("tracked_layers", "filtered_layers", "mattes")] == ["ran"] * 3
    files = sorted((project.deliveries / SHOW / SHOT / "v001").glob("*.exr"))
    assert len(files) == 24
    manifest = open_stage(store, KEY, "mattes")
    recorded = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == recorded  # complete files


# -- stable names and undo ---------------------------------------------------------------


def _delivered(project) -> dict[str, int]:
    """name -> tracked id of the current delivery (from its manifest)."""
    manifest = open_stage(ZarrStore(project.store_url), KEY, "mattes")
    return dict(manifest["layer_ids"])


def test_names_stay_with_their_objects_across_drop_merge_new_layer_and_undo(corrected_project, capsys) -> None:
    from matte_assets.media.delivery import read_manifest

    project = corrected_project
    ref, where = f"{SHOW}/{SHOT}", ["--project", str(project.root)]
    first = _delivered(project)
    assert sorted(first) == ["moving1", "moving2"], first
    numbers = [int(n.removeprefix("moving")) for n in first]
    new_name = f"moving{max(numbers) + 1}"

    # new layer (a patch of background no other layer covers): a new number after
    # every number the label used
    patch = np.zeros((96, 160), np.uint8)
    patch[4:20, 4:30] = 255
    cv2.imwrite(str(project.root / "patch.png"), patch)
    main(["correct", ref, "--frame", "1003", "--new-layer", "--label", "moving",
          "--mask", str(project.root / "patch.png"), *where])
    run_shot(project, SHOW, SHOT, echo=quiet)
    after_new = _delivered(project)
    assert after_new[new_name] == 1001 and all(after_new[n] == first[n] for n in first)

    # drop moving1: moving2 and the new layer keep their names (today's bug: renumbered)
    main(["correct", ref, "--layer", "moving1", "--drop", *where])
    run_shot(project, SHOW, SHOT, echo=quiet)
    after_drop = _delivered(project)
    assert after_drop == {"moving2": first["moving2"], new_name: 1001}

    # merge the new layer into moving2: the survivor keeps its name, the other is a gap
    main(["correct", ref, "--layer", new_name, "--merge-into", "moving2", *where])
    run_shot(project, SHOW, SHOT, echo=quiet)
    assert _delivered(project) == {"moving2": first["moving2"]}

    # a dropped name still resolves to its object, so the drop can be undone by name
    capsys.readouterr()
    assert main(["correct", ref, "--layer", "moving1", "--undo", *where]) == 0
    assert "removed drop correction" in capsys.readouterr().out
    assert [e["kind"] for e in load_corrections(project, SHOW, SHOT).entries] == ["new_layer", "merge"]
    run_shot(project, SHOW, SHOT, echo=quiet)
    assert _delivered(project) == {"moving1": first["moving1"], "moving2": first["moving2"]}
    # every version's manifest carries the registry it was named with
    folder = Path(open_stage(ZarrStore(project.store_url), KEY, "mattes")["folder"])
    registry = read_manifest(folder)["name_registry"]
    assert registry == {str(first["moving1"]): "moving1", str(first["moving2"]): "moving2", "1001": new_name}
    # undo without --layer removes the latest entry (the merge): the new layer is back under its name
    assert main(["correct", ref, "--undo", *where]) == 0
    assert [e["kind"] for e in load_corrections(project, SHOW, SHOT).entries] == ["new_layer"]
    run_shot(project, SHOW, SHOT, echo=quiet)
    assert _delivered(project) == {**first, new_name: 1001}


def test_undo_with_nothing_recorded_fails_clearly(corrected_project, capsys) -> None:
    code = main(["correct", f"{SHOW}/{SHOT}", "--undo", "--project", str(corrected_project.root)])
    assert code not in (0, None)
    assert "no corrections to undo" in capsys.readouterr().err
