"""`matte submit` and `matte farm status`: runs of shots on a shared instance.

Submission goes through Dagster's GraphQL API (the webserver of the farm instance):
the run is created for the implicit asset job with exactly the stages that `matte
run` would run (the same plan: missing, stale, or forced with --from), tagged with
the shot, and handed to the instance's run coordinator, which queues it. The daemon
dequeues it when the shot has no other run in progress and launches it with the
configured executor. Status reads the instance's run storage (Postgres on a farm)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlparse

import dagster as dg

from ..config import Project, partition_key, split_shot_ref, validate_name
from ..errors import MatteError
from ..shots.lineage import STAGES
from ..stages.sources import CORRECTION_STAGES, PLATE_FILES_KEY, corrections_key, settings_key
from .tags import SHOT_TAG, shot_tags

DEFAULT_URL = "http://127.0.0.1:3000"
ASSET_JOB = "__ASSET_JOB"


def stage_selection(selected: set[str]) -> list[dg.AssetKey]:
    """The assets a run of these stages materialises and observes (as `matte run`)."""
    return [
        *([PLATE_FILES_KEY] if "plate" in selected else []),
        *(settings_key(s) for s in STAGES if s in selected),
        *(corrections_key(s) for s in CORRECTION_STAGES if s in selected),
        *(dg.AssetKey(s) for s in STAGES if s in selected),
    ]


def stages_to_run(project: Project, show: str, shot: str, from_stage: str | None = None) -> set[str]:
    from ..shots.runner import _downstream, plan_shot

    if from_stage is not None and from_stage not in STAGES:
        raise MatteError(f"--from {from_stage!r}: not a stage (stages: {', '.join(STAGES)})")
    selected = {s.stage for s in plan_shot(project, show, shot) if s.state != "fresh"}
    if from_stage:
        selected |= set(_downstream(from_stage))
    return selected


def expand_refs(project: Project, refs: list[str]) -> list[tuple[str, str]]:
    """SHOW/SHOT as given; a bare SHOW is every shot of its show file."""
    out: list[tuple[str, str]] = []
    for ref in refs:
        if "/" in ref or "__" in ref:
            show, shot = split_shot_ref(ref)
            project.shot(show, shot)  # an unknown shot fails here, naming the show file
            pairs = [(show, shot)]
        else:
            pairs = [(validate_name("show", ref), s) for s in project.show(ref).shots]
        out.extend(p for p in pairs if p not in out)
    return out


@dataclass
class Submission:
    shot: str
    run_id: str | None
    stages: list[str]


def graphql_client(url: str | None):
    from dagster_graphql import DagsterGraphQLClient

    parsed = urlparse(url or os.environ.get("MATTE_DAGSTER_URL") or DEFAULT_URL)
    if not parsed.hostname:
        raise MatteError(f"--url {url!r}: expected http://HOST:PORT of the farm's Dagster webserver")
    return DagsterGraphQLClient(
        parsed.hostname, port_number=parsed.port, use_https=parsed.scheme == "https", path_prefix=parsed.path.rstrip("/")
    )


def submit_shots(
    project: Project, refs: list[str], url: str | None = None, from_stage: str | None = None, extra_tags: dict[str, str] | None = None
) -> list[Submission]:
    from dagster_graphql import DagsterGraphQLClientError

    from ..shots.runner import instance_for, register_shot
    from resources import registry

    shots = expand_refs(project, refs)
    client = graphql_client(url)
    instance = instance_for(project)
    out: list[Submission] = []
    for show, shot in shots:
        registry.check_backends(project.shot(show, shot))  # missing weights fail here, not on the farm
        selected = stages_to_run(project, show, shot, from_stage)
        key = partition_key(show, shot)
        if not selected:
            out.append(Submission(key, None, []))
            continue
        register_shot(instance, show, shot)  # the farm instance must know the partition
        tags = {**shot_tags(key), "matte/project": str(project.root), **(extra_tags or {})}
        if from_stage:
            tags |= {"matte/recompute": "true", "matte/from": from_stage}
        try:
            run_id = client.submit_job_execution(ASSET_JOB, tags=tags, asset_selection=stage_selection(selected))
        except DagsterGraphQLClientError as exc:
            raise MatteError(f"{show}/{shot}: the farm refused the run: {exc}".splitlines()[0]) from None
        except Exception as exc:  # connection refused, timeouts: one line naming the URL
            raise MatteError(f"{show}/{shot}: cannot reach the farm's Dagster webserver: {type(exc).__name__}: {exc}".splitlines()[0]) from None
        out.append(Submission(key, run_id, [s for s in STAGES if s in selected]))
    return out


# -- status --------------------------------------------------------------------------

STATUS_GROUPS = {
    "QUEUED": "queued", "NOT_STARTED": "queued", "STARTING": "running", "STARTED": "running",
    "CANCELING": "running", "SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "failed",
}


@dataclass
class ShotRuns:
    shot: str
    counts: Counter
    last_run: str
    last_status: str
    reason: str | None


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """The failing step's root cause in one line (our own errors verbatim), else the
    run failure's message (a worker that died, a cancelled run)."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.step_failure_data if entry.dagster_event else None
        error = data.error if data else None
        root = error
        while error is not None:
            root = error
            if error.cls_name in ("MatteError", "ConfigError", "PlateError", "BackendError", "StoreError", "DeliveryError"):
                break
            error = error.cause
        message = (root.message.strip().splitlines() or ["unknown error"])[0] if root and root.message else "unknown error"
        return f"stage {entry.step_key} failed: {message}"
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED}):
        message = entry.dagster_event.message if entry.dagster_event else entry.user_message
        return (message or "run failed").strip().splitlines()[0]
    return "run failed"


def farm_status(instance: dg.DagsterInstance, shot_keys: list[str] | None = None, limit: int = 5000) -> list[ShotRuns]:
    filters = dg.RunsFilter(tags={SHOT_TAG: shot_keys}) if shot_keys else dg.RunsFilter()
    records = instance.get_run_records(filters, limit=limit)  # newest first
    by_shot: dict[str, ShotRuns] = {}
    for record in records:
        run = record.dagster_run
        key = run.tags.get(SHOT_TAG)
        if not key:
            continue
        group = STATUS_GROUPS.get(run.status.value, run.status.value.lower())
        if key not in by_shot:
            reason = failure_reason(instance, run.run_id) if group == "failed" else None
            by_shot[key] = ShotRuns(key, Counter(), run.run_id, group, reason)
        by_shot[key].counts[group] += 1
    return [by_shot[k] for k in sorted(by_shot)]
