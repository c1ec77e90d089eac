"""`matte eval` and `matte sweep`: tuning commands, added to the CLI by `register(app)`.

Kept out of cli.py so the core CLI and these commands can change independently; cli.py
calls `register(app)`. The shared helpers live in cli/common.py (no import circle).
"""

# No `from __future__ import annotations`: typer reads the command annotations at
# registration.
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import ProjectOpt, _out, _project
from ..config import split_shot_ref
from ..errors import MatteError

EVAL_STAGES = ("mattes", "filtered_layers", "tracked_layers")


def register(app: typer.Typer) -> None:
    """Add `eval` and `sweep` to `app` (the `matte` Typer app)."""
    @app.command("eval")
    def eval_command(
        ref: Annotated[str, typer.Argument(metavar="SHOW/SHOT")],
        truth: Annotated[Path, typer.Option("--truth", help="Ground truth: <object>.<frame>.png files, or one object's per-frame PNGs.")],
        stage: Annotated[str, typer.Option("--stage", help=f"What to score: {', '.join(EVAL_STAGES)} (stored layers at plate resolution).")] = "mattes",
        version: Annotated[Optional[int], typer.Option("--version", help="Delivered version number to score (default: the current delivery).", min=1)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
        project: ProjectOpt = None,
    ) -> None:
        """Score delivered mattes (or stored layers) against ground truth: J, F, switches."""
        proj = _project(project)
        show, shot = split_shot_ref(ref)
        report = evaluate_shot(proj, show, shot, truth, stage=stage, version=version)
        _out(json.dumps(report.as_dict(), indent=2) if as_json else report.table())

    @app.command("sweep")
    def sweep_command(
        ref: Annotated[str, typer.Argument(metavar="SHOW/SHOT")],
        sets: Annotated[list[str], typer.Option("--set", help="filter.KEY=v1,v2,... (repeat for a grid).")],
        truth: Annotated[Optional[Path], typer.Option("--truth", help="Ground truth folder: adds J and F per setting.")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default: <project>/reports/<SHOW>/<SHOT>/sweep-<time>).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
        project: ProjectOpt = None,
    ) -> None:
        """Re-run only the filtering on the stored tracked layers for a grid of filter settings."""
        proj = _project(project)
        show, shot = split_shot_ref(ref)
        result, paths = sweep_shot(proj, show, shot, sets, truth=truth, out=out)
        if as_json:
            _out(json.dumps({**result.as_dict(), "files": {k: str(v) for k, v in paths.items()}}, indent=2))
            return
        _out(result.table())
        _out(f"plot: {paths['plot']}")
        _out(f"report: {paths['report']}")


def evaluate_shot(proj: Any, show: str, shot: str, truth: Path, *, stage: str = "mattes", version: int | None = None):
    """The `EvalReport` of a shot's delivery (default: the current one) or stored layers."""
    from io_managers.zarr_io_manager import open_stage
    from ..shots.shot import Shot

    from ..tuning.evaluation import evaluate_delivery, evaluate_layers
    from ..media.delivery import read_manifest, version_name

    if stage not in EVAL_STAGES:
        raise MatteError(f"--stage {stage!r}: not scorable (choose {', '.join(EVAL_STAGES)})")
    if version is not None and stage != "mattes":
        raise MatteError("--version selects a delivered version; it only applies to --stage mattes")
    proj.shot(show, shot)  # an unknown show or shot fails here, naming the show file
    handle = Shot(proj, show, shot)
    store, key = handle.store, handle.key
    if stage == "mattes":
        if version is not None:
            folder = proj.deliveries / show / shot / version_name(version)
            if not folder.is_dir():
                raise MatteError(f"{folder}: no such delivered version")
            manifest = read_manifest(folder)
            files = [(int(f["frame"]), folder / f["name"]) for f in manifest["files"]]
        else:
            if store.head(key, "mattes") is None:
                raise MatteError(f"{show}/{shot}: nothing delivered yet (run `matte run {show}/{shot}`)")
            manifest = open_stage(store, key, "mattes")
            folder = Path(manifest["folder"])
            files = [(int(f["frame"]), Path(f["path"])) for f in manifest["files"]]
        missing = [str(p) for _, p in files if not p.exists()]
        if missing:
            raise MatteError(f"{missing[0]}: delivered file missing ({len(missing)} missing in {folder})")
        return evaluate_delivery(files, truth, source=f"delivery {folder}")
    for needed in ("plate", stage):
        if store.head(key, needed) is None:
            raise MatteError(f"{show}/{shot}: stage {needed} has not been materialised (run `matte run {show}/{shot}`)")
    layers = open_stage(store, key, stage)
    plate = open_stage(store, key, "plate")
    if plate.n_frames != layers.n_frames:
        raise MatteError(
            f"{show}/{shot}: stored {stage} has {layers.n_frames} frames but the plate {plate.n_frames}; run `matte run {show}/{shot}`"
        )
    source = f"{stage} {layers.record.get('version', '')} at plate resolution"
    return evaluate_layers(layers, plate.frame_numbers, truth, source=source)


def sweep_shot(proj: Any, show: str, shot: str, sets: list[str], *, truth: Path | None = None, out: Path | None = None):
    """Parse `--set`s, run the sweep on the stored tracked layers, write the report.
    Returns (SweepResult, {plot, report, json: path})."""
    from io_managers.zarr_io_manager import open_stage
    from ..shots.shot import Shot

    from ..tuning.sweep import default_out, parse_sets, run_sweep, write_report

    grid = parse_sets(sets)
    settings = proj.shot(show, shot)
    handle = Shot(proj, show, shot)
    store, key = handle.store, handle.key
    if store.head(key, "tracked_layers") is None:
        raise MatteError(f"{show}/{shot}: no tracked layers stored (run `matte run {show}/{shot}` first)")
    tracked = open_stage(store, key, "tracked_layers")
    frame_numbers = None
    if truth is not None:
        plate = open_stage(store, key, "plate")
        if plate.n_frames != tracked.n_frames:
            raise MatteError(f"{show}/{shot}: tracked layers and plate differ in length; run `matte run {show}/{shot}`")
        frame_numbers = plate.frame_numbers
    artist = _artist_decisions(proj, show, shot)
    result = run_sweep(tracked, settings.filter.model_dump(), grid, truth_dir=truth, frame_numbers=frame_numbers, artist=artist)
    folder = out or default_out(proj.root, show, shot)
    swept = ", ".join(f"filter.{k}" for k in grid)
    paths = write_report(result, Path(folder), f"{show}/{shot}: sweep of {swept}")
    return result, paths


def _artist_decisions(proj: Any, show: str, shot: str) -> tuple[list[int], dict[int, int]] | None:
    """Artist drops / merges apply in every sweep point, as in `filtered_layers`."""
    try:
        from ..shots.corrections import load_corrections
    except ImportError:  # corrections are optional for a sweep
        return None
    corrections = load_corrections(proj, show, shot)
    return list(corrections.drops()), dict(corrections.merges())
