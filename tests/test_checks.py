"""Asset checks on `mattes` (issue 10 item 4): in Dagster and in `matte status`."""

from __future__ import annotations

import dagster as dg

from matte_assets.stages.checks import check_mattes
from matte_assets.cli import main
from matte_assets.definitions import build_definitions

from .conftest import SHOT, SHOW

KEY = f"{SHOW}__{SHOT}"


def test_checks_pass_on_a_real_delivery_and_fail_on_a_broken_one(project_copy) -> None:
    outcomes = {c.name: c for c in check_mattes(project_copy, KEY)}
    assert set(outcomes) == {"frame_count", "no_empty_layer", "provenance", "mask_quality"}
    assert all(c.passed for c in outcomes.values()), [c.detail for c in outcomes.values()]
    assert "12 EXR files, plate has 12 frames" in outcomes["frame_count"].detail

    # A delivered file that lost its content fails the provenance check, naming it.
    last = sorted((project_copy.deliveries / SHOW / SHOT / "v001").glob("*.exr"))[-1]
    last.write_bytes(b"not an exr")
    broken = {c.name: c for c in check_mattes(project_copy, KEY)}
    assert not broken["provenance"].passed and last.name in broken["provenance"].detail


def test_status_shows_the_checks(capsys, project_copy) -> None:
    assert main(["status", f"{SHOW}/{SHOT}", "--project", str(project_copy.root)]) == 0
    out = capsys.readouterr().out
    for name in ("frame_count", "no_empty_layer", "provenance", "mask_quality"):
        assert f"check {name}" in out and "FAILED" not in out


def test_dagster_has_the_checks_on_mattes(tmp_path) -> None:
    graph = build_definitions(str(tmp_path)).resolve_asset_graph()
    keys = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("mattes")}
    assert keys == {"frame_count", "no_empty_layer", "provenance", "mask_quality"}


def test_sensor_enqueues_the_stale_stages_once_per_change(project_copy) -> None:
    import shutil

    from matte_assets.farm.automation import stale_shot_requests
    from matte_assets.shots.lineage import STAGES

    instance = dg.DagsterInstance.ephemeral()
    assert stale_shot_requests(project_copy, instance) == []  # all fresh: nothing to do
    plate_dir = project_copy.root / "plates" / SHOW / SHOT
    frames = sorted(plate_dir.glob(f"{SHOT}.*.exr"))
    number = int(frames[-1].name.split(".")[1]) + 1
    shutil.copy(frames[-1], plate_dir / f"{SHOT}.{number:04d}.exr")  # a new plate frame

    first = stale_shot_requests(project_copy, instance)
    assert len(first) == 1 and first[0].partition_key == KEY
    assert {k.to_user_string() for k in first[0].asset_selection} >= set(STAGES)
    assert first[0].tags["matte/shot"] == KEY and "plate frames added" in first[0].tags["matte/reason"]
    again = stale_shot_requests(project_copy, instance)
    assert [r.run_key for r in again] == [first[0].run_key]  # same change, same run key: one run
