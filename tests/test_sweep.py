"""`matte sweep`: filter settings re-run on stored tracked layers only, scored in one pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from matte_assets.settings import FilterSettings
from matte_assets.config import Project
from matte_assets.errors import ConfigError, MatteError
from matte_assets.tuning.sweep import grid_points, parse_sets, run_sweep

from .conftest import SHOT, SHOW


def _stored(root: Path, stage: str):
    from io_managers.zarr_io_manager import open_stage
    from io_managers.zarr_store import ZarrStore

    return open_stage(ZarrStore(Project(root).store_url), f"{SHOW}__{SHOT}", stage)


def test_parse_sets_validates_against_the_filter_settings() -> None:
    grid = parse_sets(["filter.sim_merge=0.4, 0.5,0.4", "filter.sim_false_positive_count=1,2"])
    assert grid == {"sim_merge": [0.4, 0.5], "sim_false_positive_count": [1, 2]}
    assert len(grid_points({"sim_merge": 0.6, "duplicate_iou": 0.9}, grid)) == 4
    cases = {
        "filter.sim_merg=0.4": "--set filter.sim_merg: not a filter setting",
        "track.window=10": "--set track.window: not a filter setting",
        "filter.sim_merge=1.5": "--set filter.sim_merge=1.5: Input should be less than or equal to 1",
        "filter.sim_false_positive_count=1.5": "--set filter.sim_false_positive_count=1.5:",
        "filter.sim_merge=abc": "--set filter.sim_merge=abc:",
        "filter.sim_merge=0.4,": "--set filter.sim_merge: empty value",
        "filter.sim_merge": "expected filter.KEY=v1,v2",
    }
    for item, message in cases.items():
        with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
            parse_sets([item])
    with pytest.raises(ConfigError, match="given twice"):
        parse_sets(["filter.sim_merge=0.4", "filter.sim_merge=0.5"])
    with pytest.raises(ConfigError, match="at least one"):
        parse_sets([])


def test_sweep_points_agree_with_the_filter_stage(ran_project: Path) -> None:
    from matte_assets.tuning.evaluation import evaluate_layers

    tracked = _stored(ran_project, "tracked_layers")
    plate = _stored(ran_project, "plate")
    truth = ran_project / "plates" / SHOW / SHOT / "truth"
    base = Project(ran_project).shot(SHOW, SHOT).filter.model_dump()
    grid = {"sim_merge": [0.3, base["sim_merge"], 0.9], "sim_false_positive": [0.05, base["sim_false_positive"]]}
    result = run_sweep(tracked, base, grid, truth_dir=truth, frame_numbers=plate.frame_numbers)
    assert len(result.rows) == 6
    # (This small shot's two layers never overlap, so every point keeps both; the grid
    # reaching different decisions is tested on built layers below.)
    for row in result.rows:
        assert row.dropped + row.merged + row.kept == len(tracked.layer_ids)
    # The point with the stored settings is exactly what filtered_layers delivered.
    stored = evaluate_layers(_stored(ran_project, "filtered_layers"), plate.frame_numbers, truth)
    at_base = next(r for r in result.rows if r.settings == base)
    assert at_base.quality is not None
    assert at_base.quality.mean_j == stored.mean_j and at_base.quality.mean_f == stored.mean_f
    assert [k.split("(")[0] for k in at_base.kept_layers] == stored.layers


def test_sweep_command_writes_plot_and_report_and_runs_no_model_stage(
    project_copy: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    from io_managers.zarr_store import ZarrStore
    from matte_assets import cli
    from matte_assets.cli.tuning import register
    from matte_assets.shots.lineage import STAGES

    if not any(c.name == "sweep" for c in cli.app.registered_commands):
        register(cli.app)
    root = project_copy.root
    store = ZarrStore(project_copy.store_url)
    key = f"{SHOW}__{SHOT}"
    heads = {s: store.head(key, s) for s in STAGES}
    truth = root / "plates" / SHOW / SHOT / "truth"
    out = root / "sweep-out"
    argv = ["sweep", f"{SHOW}/{SHOT}", "--set", "filter.sim_merge=0.4,0.6,0.8", "--truth", str(truth), "--out", str(out), "--project", str(root)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "sim_merge" in text.splitlines()[0] and "plot:" in text
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "sweep.md").read_text()
    assert "![sweep](sweep.png)" in report and "| 0.4 |" in report and "No model stage was run" in report
    data = json.loads((out / "sweep.json").read_text())
    assert [p["sim_merge"] for p in data["points"]] == [0.4, 0.6, 0.8] and all("j" in p for p in data["points"])
    # Nothing was materialised: every stage's current version is unchanged.
    assert {s: store.head(key, s) for s in STAGES} == heads
    # Default output folder, no truth: counts only.
    assert cli.main(["sweep", f"{SHOW}/{SHOT}", "--set", "filter.duplicate_iou=0.5,0.9", "--json", "--project", str(root)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert Path(data["files"]["plot"]).parent.parent == root / "reports" / SHOW / SHOT
    assert "j" not in data["points"][0]
    assert cli.main(["sweep", f"{SHOW}/{SHOT}", "--set", "filter.nope=1", "--project", str(root)]) == 1
    assert "matte: --set filter.nope: not a filter setting" in capsys.readouterr().err


def test_sweep_applies_artist_drops_like_the_stage(ran_project: Path) -> None:
    from matte_assets.stages.filter_plan import filter_layers

    tracked = _stored(ran_project, "tracked_layers")
    base = Project(ran_project).shot(SHOW, SHOT).filter.model_dump()
    dropped = [tracked.layer_ids[0]]
    result = run_sweep(tracked, base, {"sim_merge": [0.5, 0.7]}, artist=(dropped, {}))
    for row in result.rows:
        plan = filter_layers(tracked, FilterSettings(**row.settings), dropped)
        assert row.kept == len(plan.kept) and all(f"({dropped[0]})" not in k for k in row.kept_layers)
    with pytest.raises(MatteError, match="artist corrections: cannot drop layer"):
        run_sweep(tracked, base, {"sim_merge": [0.5]}, artist=([999], {}))


def _built_layers(masks: list[np.ndarray], labels: list[str]):
    """LayersData over an in-memory group: one frame, the given masks."""
    import zarr

    from matte_assets.stages.stage_data import LayersData, create_mask_array, write_table

    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    h, w = masks[0].shape
    ids = list(range(1, len(masks) + 1))
    write_table(group, "layers", {
        "layer_id": np.array(ids, np.int32), "label": np.array(labels), "first_frame": np.zeros(len(ids), np.int32),
        "last_frame": np.zeros(len(ids), np.int32), "origin": np.array(["forward"] * len(ids)),
    })
    group.attrs.update({"n_frames": 1, "size": [w, h]})
    for lid, mask in zip(ids, masks):
        create_mask_array(group.require_group("masks"), str(lid), (1, h, w))[0] = mask
    return LayersData(group, {})


def test_sweep_grid_reaches_the_decisions_the_rules_state() -> None:
    """A group blob over two people: Sim(group, person) = 1/3 for each, so it is a false
    positive for sim_false_positive <= 1/3 and not above: known without the filter code."""
    rect = lambda x0, x1: np.pad(np.ones((10, x1 - x0), bool), ((0, 0), (x0, 40 - x1)))  # noqa: E731
    tracked = _built_layers([rect(0, 10), rect(20, 30), rect(0, 30)], ["person", "person", "person"])
    base = {"sim_false_positive": 0.1, "sim_false_positive_count": 2, "sim_merge": 0.6, "duplicate_iou": 0.9}
    result = run_sweep(tracked, base, {"sim_false_positive": [0.2, 0.5]})
    low, high = result.rows
    assert result.distinct_plans == 2
    assert [k.split("(")[0] for k in low.kept_layers] and low.kept == 2 and low.dropped == 1
    assert all("(3" not in k for k in low.kept_layers)  # the group is gone at 0.2
    assert any("(3" in k or "+3" in k for k in high.kept_layers)  # and survives (kept or as a merge target) at 0.5
