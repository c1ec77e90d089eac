"""`matte submit` and `matte farm status` (docs/farm.md)."""

# No `from __future__ import annotations`: typer reads the annotations at registration
# and `ProjectOpt` only exists inside `register` (as in cli.tuning).

from typing import Annotated, Optional

import typer

from ..shots.lineage import STAGES


def register(app: typer.Typer) -> None:
    from .common import ProjectOpt, _out, _project

    farm_app = typer.Typer(help="The shared Dagster instance of a farm.", no_args_is_help=True)
    app.add_typer(farm_app, name="farm")

    @app.command()
    def submit(
        refs: Annotated[list[str], typer.Argument(metavar="SHOW[/SHOT]...", help="Shots, or whole shows.")],
        from_stage: Annotated[Optional[str], typer.Option("--from", help=f"Rerun this stage and everything after it ({', '.join(STAGES)}).")] = None,
        url: Annotated[Optional[str], typer.Option("--url", help="The farm's Dagster webserver (default $MATTE_DAGSTER_URL, else http://127.0.0.1:3000).")] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Queue runs on the farm instance (DAGSTER_HOME); print one run id per shot."""
        from ..farm.submit import submit_shots

        for sub in submit_shots(_project(project), refs, url=url, from_stage=from_stage):
            shot = sub.shot.replace("__", "/")
            if sub.run_id is None:
                _out(f"{shot:<24} fresh (nothing to run)")
            else:
                _out(f"{shot:<24} {sub.run_id}  {', '.join(sub.stages)}")

    @farm_app.command("status")
    def farm_status_cmd(
        refs: Annotated[Optional[list[str]], typer.Argument(metavar="[SHOW[/SHOT]...]", help="Default: every shot with runs.")] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Runs per shot on the farm instance: queued, running, failed, succeeded, and the
        last run's failure in one line."""
        from ..config import partition_key
        from ..farm.submit import expand_refs, farm_status
        from ..shots.runner import instance_for

        proj = _project(project)
        keys = [partition_key(*p) for p in expand_refs(proj, refs)] if refs else None
        rows = farm_status(instance_for(proj), keys)
        if not rows:
            _out("no runs")
        for row in rows:
            counts = "  ".join(f"{k} {row.counts.get(k, 0)}" for k in ("queued", "running", "failed", "succeeded"))
            line = f"{row.shot.replace('__', '/'):<24} {counts}  last {row.last_status} {row.last_run[:8]}"
            if row.reason:
                line += f": {row.reason}"
            _out(line)
