"""What every `matte` command module shares (cli/__init__.py, tuning.py and farm.py import this;
none of them imports another)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import Project, find_project_root

ProjectOpt = Annotated[
    Optional[Path],
    typer.Option("--project", help="Project folder (default: $MATTE_PROJECT, else the current folder)."),
]


def _project(project: Path | None) -> Project:
    return Project(find_project_root(str(project) if project else None))


def _out(line: str = "") -> None:
    typer.echo(line)
