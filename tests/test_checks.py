"""Asset checks on `mattes` (issue 10 item 4): in Dagster and in `matte status`."""

from __future__ import annotations

import dagster as dg

from matte_assets.checks import check_mattes
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
