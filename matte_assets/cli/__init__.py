"""`matte`: the command line (spec §5).

Every command takes --project DIR (default $MATTE_PROJECT, else the current folder).
Exit code 0 on success; on failure one line `matte: <reason>` on stderr, non-zero.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from ..config import Project, add_shot, find_project_root, init_project, partition_key, split_shot_ref, validate_name
from ..errors import MatteError
from ..shots.lineage import STAGES
from ..shots.roto import parse_roto

app = typer.Typer(
    name="matte",
    help="Automatic roto-matte pipeline: plate -> detections -> masks -> tracked layers -> filtered layers -> EXR mattes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
shot_app = typer.Typer(help="Manage shots.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"matte {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Automatic roto-matte pipeline: plate -> detections -> masks -> tracked layers -> filtered layers -> EXR mattes."""
app.add_typer(shot_app, name="shot")

from .common import ProjectOpt, _out, _project  # noqa: E402  (shared with cli.tuning)


@app.command()
def init(
    directory: Annotated[Optional[Path], typer.Argument(help="Folder for the new project (default: --project or current).")] = None,
    project: ProjectOpt = None,
) -> None:
    """Create a project: matte.yaml and an empty shows/ folder."""
    root = directory or find_project_root(str(project) if project else None)
    target = init_project(Path(root))
    from ..shots.instance import open_instance

    open_instance(Project(target.parent))  # the Dagster instance, created once, here
    _out(f"created {target}")


@shot_app.command("add")
def shot_add(
    ref: Annotated[str, typer.Argument(metavar="SHOW/SHOT")],
    plate: Annotated[str, typer.Option("--plate", help="Frame pattern: name.####.exr, name.%04d.png or name.@.jpg")],
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Text prompt, e.g. 'person, car'.")] = None,
    roto: Annotated[
        Optional[list[str]],
        typer.Option("--roto", help="Roto keyframe [LABEL:]FRAME=MASK (PNG/EXR, plate or original resolution); repeatable."),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Write the shot into shows/<SHOW>.yaml and register its Dagster partition."""
    from ..media.sequence import discover_frames
    from ..shots.runner import instance_for, register_shot

    proj = _project(project)
    show, shot = split_shot_ref(ref)
    pattern = Path(plate).expanduser()
    resolved = pattern if pattern.is_absolute() else (Path.cwd() / pattern)
    frames = discover_frames(str(resolved))  # a typo'd pattern fails here, not at run time
    keys = [parse_roto(spec) for spec in roto or []]  # malformed specs fail before anything is written
    from ..shots.paths import project_relative

    # Inside the project the pattern is stored relative to it, so the project can move.
    path = add_shot(proj, show, shot, project_relative(proj.root, resolved), prompt)
    register_shot(instance_for(proj), show, shot)
    _out(f"{show}/{shot}: {len(frames)} frames {frames[0][0]}-{frames[-1][0]} -> {path}")
    if keys:
        from ..shots.locking import shot_lock
        from ..shots.roto import record_roto

        with shot_lock(proj, show, shot):
            entries = record_roto(proj, show, shot, keys, _tracked_ids(proj, show, shot))
        for entry in entries:
            _out(f"roto keyframe {entry['frame']}: layer {entry['layer']} ({entry['source']})")


def _tracked_ids(proj: Project, show: str, shot: str) -> set[int]:
    """Tracked-layer ids of the shot's current result (none before its first run)."""
    from ..shots.shot import Shot

    handle = Shot(proj, show, shot)
    return set(handle.open("tracked_layers").layer_ids) if handle.head("tracked_layers") else set()


@shot_app.command("remove")
def shot_remove(
    ref: Annotated[str, typer.Argument(metavar="SHOW/SHOT")],
    deliveries: Annotated[bool, typer.Option("--deliveries", help="Also delete the shot's delivered versions.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Remove a shot: its show-file entry, stored results and corrections (deliveries are kept unless --deliveries)."""
    from ..shots.locking import shot_lock
    from ..shots.shot_admin import remove_shot

    proj = _project(project)
    show, shot = split_shot_ref(ref)
    with shot_lock(proj, show, shot):
        removed = remove_shot(proj, show, shot, deliveries=deliveries)
    for what in removed:
        _out(f"removed {what}")
    if not deliveries and (proj.deliveries / show / shot).is_dir():
        _out(f"kept deliveries in {proj.deliveries / show / shot} (--deliveries removes them)")


@app.command()
def run(
    ref: Annotated[str, typer.Argument(metavar="SHOW/SHOT")],
    from_stage: Annotated[Optional[str], typer.Option("--from", help=f"Rerun this stage and everything after it ({', '.join(STAGES)}).")] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for another run of this shot to finish.", min=0)] = 0.0,
    project: ProjectOpt = None,
) -> None:
    """Materialise what is missing or stale; print each stage as ran or reused."""
    from ..shots.runner import run_shot

    proj = _project(project)
    show, shot = split_shot_ref(ref)
    started = time.perf_counter()
    run_shot(proj, show, shot, from_stage=from_stage, echo=_out, wait=wait)
    head = _delivery(proj, show, shot)
    if head:
        _out(f"delivered: {head['folder']}")
    _out(f"total {time.perf_counter() - started:.2f} s")


def _delivery(proj: Project, show: str, shot: str) -> dict | None:

    from ..errors import StoreError
    from ..shots.verify import delivery_problems

    from ..shots.shot import Shot

    handle = Shot(proj, show, shot)
    store, key = handle.store, handle.key
    try:
        head = store.head(key, "mattes")
        if head is None or store.check_version(key, "mattes", head["version"]):
            return None
        manifest = store.version_attrs(key, "mattes", head["version"])["manifest"]
    except (StoreError, KeyError):
        return None  # damaged: `status` says so per stage; nothing to point at
    from ..shots.runner import project_delivery

    manifest = project_delivery(proj, key, manifest)
    return None if delivery_problems(manifest) else manifest  # a deleted delivery is not delivered


@app.command()
def status(
    ref: Annotated[str, typer.Argument(metavar="SHOW/SHOT")],
    project: ProjectOpt = None,
) -> None:
    """Each stage: fresh, stale (with why) or missing."""
    from ..shots.runner import plan_shot

    proj = _project(project)
    show, shot = split_shot_ref(ref)
    for state in plan_shot(proj, show, shot):
        line = f"{state.stage:<16} {state.state}"
        if state.state != "fresh":
            line += f"  ({'; '.join(state.reasons)})"
        _out(line)
    head = _delivery(proj, show, shot)
    if head:
        from ..stages.pictures import find_pictures

        _out(f"latest delivery: {head['folder']}")
        from ..errors import StoreError
        from ..stages.checks import check_mattes

        try:
            checks = check_mattes(proj, partition_key(show, shot))
        except StoreError as exc:  # the checks read the stored layers: a damaged store is shown above
            _out(f"  checks not run: {exc}")
            checks = []
        for check in checks:
            _out(f"  check {check.name:<15} {'passed' if check.passed else 'FAILED'}  ({check.detail})")
        for name, path in find_pictures(Path(head["folder"])).items():
            _out(f"  {name.replace('_', ' ')}: {path}")


@app.command()
def verify(
    ref: Annotated[Optional[str], typer.Argument(metavar="[SHOW[/SHOT]]", help="A show, one shot, or (default) every shot.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Re-hash the store and the deliveries in full; exit 1 when anything is damaged."""
    from ..shots.verify import VerifyReport, verify_shot

    proj = _project(project)
    if ref is None:
        shots = proj.all_shots()
    elif "/" in ref:
        shots = [split_shot_ref(ref)]
    else:
        shots = [(ref, shot) for shot in proj.show(validate_name("show", ref)).shots]
    report = VerifyReport()
    for show, shot in shots:
        verify_shot(proj, show, shot, report)
    for line in report.lines:
        _out(line)
    if report.damaged:
        raise MatteError(f"{report.damaged} problem(s) found; `matte run SHOW/SHOT` recomputes damaged stages and re-delivers")
    _out(f"verified {len(shots)} shot(s): no damage")


@app.command()
def lineage(
    path: Annotated[Path, typer.Argument(help="A delivered EXR file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the provenance as JSON.")] = False,
    project: ProjectOpt = None,
) -> None:
    """The provenance of a delivered EXR, from its header; checked against the Dagster
    instance's records when run in (or pointed at) the project."""
    from ..shots.provenance import check_with_dagster, read_provenance, render_provenance

    info = read_provenance(path)
    root = find_project_root(str(project) if project else None)
    if (root / "matte.yaml").exists():
        proj = Project(root)
        if (proj.dagster_home / "dagster.yaml").exists():
            from ..shots.runner import instance_for

            info["dagster"] = check_with_dagster(info, instance_for(proj))
    _out(json.dumps(info, indent=2, sort_keys=True) if as_json else render_provenance(info))


@app.command()
def correct(
    ref: Annotated[str, typer.Argument(metavar="SHOW/SHOT")],
    layer: Annotated[Optional[str], typer.Option("--layer", help="Tracked layer id or delivered layer name (moving2).")] = None,
    frame: Annotated[Optional[int], typer.Option("--frame", help="VFX frame number.")] = None,
    add: Annotated[Optional[list[str]], typer.Option("--add", help="Positive click X,Y (original plate pixels); repeatable.")] = None,
    remove: Annotated[Optional[list[str]], typer.Option("--remove", help="Negative click X,Y; repeatable.")] = None,
    mask: Annotated[Optional[Path], typer.Option("--mask", help="Drawn mask (PNG/EXR, plate or original resolution).")] = None,
    drop: Annotated[bool, typer.Option("--drop", help="Drop this layer from the delivery.")] = False,
    merge_into: Annotated[Optional[str], typer.Option("--merge-into", help="Merge this layer into another.")] = None,
    new_layer: Annotated[bool, typer.Option("--new-layer", help="Start a new layer from --mask at --frame.")] = False,
    label: Annotated[Optional[str], typer.Option("--label", help="Label of a new layer (default: the prompt's first).")] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Remove the latest recorded correction (of --layer, if given).")] = False,
    project: ProjectOpt = None,
) -> None:
    """Record an artist correction; the next `matte run` reruns only what it touches."""
    from ..shots.corrections import CorrectionError, corrections_path, record_correction, undo_correction
    from ..shots.locking import shot_lock

    proj = _project(project)
    show, shot = split_shot_ref(ref)
    if undo:
        if any([frame, add, remove, mask, drop, merge_into, new_layer, label]):
            raise CorrectionError("--undo takes only --layer")
        with shot_lock(proj, show, shot):
            entry = undo_correction(proj, show, shot, layer)
        what = {k: v for k, v in entry.items() if k not in ("kind", "source")}
        _out(f"removed {entry['kind']} correction {what} from {corrections_path(proj, show, shot)}")
        _out(f"next: matte run {show}/{shot}")
        return
    with shot_lock(proj, show, shot):
        entry = record_correction(
            proj, show, shot, layer=layer, frame=frame, add=add or [], remove=remove or [], mask=mask,
            drop=drop, merge_into=merge_into, new_layer=new_layer, label=label,
        )
    what = {k: v for k, v in entry.items() if k not in ("kind", "source")}
    _out(f"recorded {entry['kind']} correction {what} -> {corrections_path(proj, show, shot)}")
    _out(f"next: matte run {show}/{shot}")


@app.command()
def gc(
    ref: Annotated[Optional[str], typer.Argument(metavar="[SHOW/SHOT]", help="One shot (default: every shot).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Remove stored stage versions that no current result or delivered version needs."""
    from ..shots.gc import collect_garbage

    proj = _project(project)
    shots = [split_shot_ref(ref)] if ref else proj.all_shots()
    removed = collect_garbage(proj, shots, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for r in removed:
        _out(f"{verb} {r.shot} {r.what} ({r.bytes / 1e6:.2f} MB)")
    _out(f"{verb} {len(removed)} item(s), {sum(r.bytes for r in removed) / 1e6:.2f} MB")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo project.")] = Path("matte-demo"),
    frames: Annotated[int, typer.Option(help="Number of frames.", min=4)] = 48,
    width: Annotated[int, typer.Option(help="Plate width (scene-linear EXR).", min=64)] = 1280,
    height: Annotated[int, typer.Option(help="Plate height.", min=64)] = 720,
) -> None:
    """Build a synthetic shot with ground truth, run the whole graph, score it."""
    from ..tuning.demo import run_demo

    run_demo(out, n_frames=frames, width=width, height=height, echo=_out)


from .tuning import register as _register_tuning  # noqa: E402  (matte eval, matte sweep)

_register_tuning(app)

from .farm import register as _register_farm  # noqa: E402  (matte submit, matte farm status)

_register_farm(app)


def _usage_errors() -> tuple[type[BaseException], ...]:
    """click's UsageError and typer's own copy of it (typer vendors click)."""
    classes: list[type[BaseException]] = [click.exceptions.UsageError]
    try:
        from typer._click import exceptions as typer_click

        classes.append(typer_click.UsageError)
    except ImportError:
        pass
    return tuple(classes)


def _click_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(Exit, ClickException, Abort) from click and from typer's vendored click."""
    exits, errors, aborts = [click.exceptions.Exit], [click.ClickException], [click.exceptions.Abort]
    try:
        from typer._click import exceptions as tc

        exits.append(getattr(tc, "Exit", click.exceptions.Exit))
        errors.append(tc.ClickException)
        aborts.append(getattr(tc, "Abort", click.exceptions.Abort))
    except ImportError:
        pass
    return tuple(exits), tuple(errors), tuple(aborts)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, meaningful exit codes (0 ok, 1 failure, 2 usage,
    3 internal error, 130 interrupted)."""
    exits, click_errors, aborts = _click_errors()
    try:
        result = app(args=argv, prog_name="matte", standalone_mode=False)
        if result == 130:  # typer turns Ctrl-C into Exit(130) and returns its code
            print("matte: interrupted", file=sys.stderr)
        return int(result or 0)
    except MatteError as exc:
        print(f"matte: {exc}", file=sys.stderr)
        return 1
    except exits as exc:
        return exc.exit_code
    except _usage_errors() as exc:
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            print(ctx.get_usage().splitlines()[0], file=sys.stderr)
        message = exc.format_message().strip() if type(exc).__name__ != "NoArgsIsHelpError" else "missing command"
        print(f"matte: {message.splitlines()[0] if message else 'usage error'} (--help for more)", file=sys.stderr)
        return 2
    except click_errors as exc:
        print(f"matte: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, *aborts):
        print("matte: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure is still one line (traceback on request)
        if os.environ.get("MATTE_DEBUG"):
            raise
        print(f"matte: internal error: {type(exc).__name__}: {exc} (set MATTE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
