"""`matte sweep`: filter settings re-run on stored tracked layers only, scored in one pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matte_assets.algorithms.layer_filter import FilterParams
from matte_assets.config import Project
from matte_assets.errors import ConfigError, MatteError
from matte_assets.sweep import grid_points, parse_sets, run_sweep

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
    from matte_assets.evaluation import evaluate_layers

    tracked = _stored(ran_project, "tracked_layers")
    plate = _stored(ran_project, "plate")
    truth = ran_project / "plates" / SHOW / SHOT / "truth"
    base = Project(ran_project).shot(SHOW, SHOT).filter.model_dump()
    grid = {"sim_merge": [0.3, base["sim_merge"], 0.9], "sim_false_positive": [0.05, base["sim_false_positive"]]}
    result = run_sweep(tracked, base, grid, truth_dir=truth, frame_numbers=plate.frame_numbers)
    assert len(result.rows) == 6
    # The grid must reach different decisions, or agreeing with the stage proves nothing.
    assert result.distinct_plans >= 2, [r.kept_layers for r in result.rows]
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
    from matte_assets.cli_tuning import register
    from matte_assets.lineage import STAGES

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
    from matte_assets.filtered_layers import filter_layers

    tracked = _stored(ran_project, "tracked_layers")
    base = Project(ran_project).shot(SHOW, SHOT).filter.model_dump()
    dropped = [tracked.layer_ids[0]]
    result = run_sweep(tracked, base, {"sim_merge": [0.5, 0.7]}, artist=(dropped, {}))
    for row in result.rows:
        plan = filter_layers(tracked, FilterParams(**row.settings), dropped)
        assert row.kept == len(plan.kept) and all(f"({dropped[0]})" not in k for k in row.kept_layers)
    with pytest.raises(MatteError, match="artist corrections: cannot drop layer"):
        run_sweep(tracked, base, {"sim_merge": [0.5]}, artist=([999], {}))
