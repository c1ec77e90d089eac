"""Plan and run a shot: which stages are fresh, stale (and why) or missing, and
materialise the ones that are not fresh through Dagster.

The plan compares each stage's expected data version (lineage.fingerprint over its
settings, backend identity and inputs) with the version stored in the Zarr store, so
it is exact and needs nothing to run. Execution goes through the Dagster job, so runs,
materialisations and observations land in the Dagster instance that `dagster dev`
shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import dagster as dg

from io_managers.zarr_store import ZarrStore
from resources import registry

from . import errors
from .config import Project, partition_key
from .errors import MatteError, StoreError
from .lineage import (
    BACKEND_ROLE,
    CODE_VERSIONS,
    STAGES,
    UPSTREAM,
    fingerprint,
    plate_files_version,
    settings_changes,
    stage_settings,
)
from .partitions import shots
from .plate_files import hash_plate_files
from .sources import (
    CORRECTION_STAGES,
    PLATE_FILES_KEY,
    corrections_key,
    corrections_version,
    settings_key,
)


@dataclass
class StageState:
    stage: str
    state: str  # fresh | stale | missing
    expected: str
    current: str | None
    reasons: list[str] = field(default_factory=list)
    seconds: float | None = None


def _plate_file_changes(store: ZarrStore, key: str, head: dict[str, Any], files: list[tuple[int, Any, str]]) -> list[str]:
    try:
        group, _ = store.open_version(key, "plate", head["version"])
        old = dict(zip(group.attrs["frame_numbers"], group.attrs["sha256"]))
    except (StoreError, KeyError):
        return ["plate files changed"]
    new = {frame: sha for frame, _, sha in files}
    changed = sorted(f for f in new if f in old and old[f] != new[f])
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    out = []
    for what, frames in (("changed", changed), ("added", added), ("removed", removed)):
        if frames:
            shown = ", ".join(map(str, frames[:8])) + (" ..." if len(frames) > 8 else "")
            out.append(f"plate frames {what}: {shown}")
    return out


def plan_shot(project: Project, show: str, shot: str) -> list[StageState]:
    settings = project.shot(show, shot)
    store = ZarrStore(project.store_url)
    key = partition_key(show, shot)
    files = hash_plate_files(settings)
    states: dict[str, StageState] = {}
    expected: dict[str, str] = {}
    for stage in STAGES:
        role = BACKEND_ROLE.get(stage)
        current_settings = stage_settings(settings, stage, registry.backend_identity(settings, role) if role else None)
        if stage == "plate":
            inputs = {"files": plate_files_version([(f, h) for f, _, h in files])}
        else:
            inputs = {up: expected[up] for up in UPSTREAM[stage]}
        if stage in CORRECTION_STAGES and (corr := corrections_version(project, key, stage)) != "none":
            inputs["corrections"] = corr
        expected[stage] = fingerprint(stage, current_settings, inputs)
        head = store.head(key, stage)
        if head is None:
            states[stage] = StageState(stage, "missing", expected[stage], None, ["never materialised"])
            continue
        if head.get("data_version") == expected[stage]:
            states[stage] = StageState(stage, "fresh", expected[stage], head["data_version"], seconds=head.get("seconds"))
            continue
        reasons: list[str] = []
        if head.get("code_version") != CODE_VERSIONS[stage]:
            reasons.append(f"code version {head.get('code_version')} -> {CODE_VERSIONS[stage]}")
        changes = settings_changes(head.get("settings", {}), current_settings)
        if changes:
            reasons.append("settings changed: " + "; ".join(changes))
        if stage == "plate" and head.get("inputs", {}).get("files") != inputs["files"]:
            reasons.extend(_plate_file_changes(store, key, head, files))
        if head.get("inputs", {}).get("corrections") != inputs.get("corrections"):
            reasons.append("artist corrections changed" if inputs.get("corrections") else "artist corrections removed")
        for up in UPSTREAM[stage]:
            if head.get("inputs", {}).get(up) != expected[up]:
                upstream = states[up]
                reasons.append(
                    f"upstream {up} is {upstream.state}" if upstream.state != "fresh" else f"upstream {up} was re-materialised"
                )
        states[stage] = StageState(stage, "stale", expected[stage], head.get("data_version"), reasons or ["data version differs"])
    return [states[s] for s in STAGES]


def instance_for(project: Project) -> dg.DagsterInstance:
    # Created once, under a lock: concurrent first runs must not race on the schema.
    from .instance import open_instance

    return open_instance(project)


def register_shot(instance: dg.DagsterInstance, show: str, shot: str) -> None:
    key = partition_key(show, shot)
    if not instance.has_dynamic_partition(shots.name, key):
        instance.add_dynamic_partitions(shots.name, [key])


def _downstream(stage: str) -> list[str]:
    out = [stage]
    for s in STAGES:
        if any(up in out for up in UPSTREAM[s]) and s not in out:
            out.append(s)
    return out


def _user_error(result: dg.ExecuteInProcessResult) -> Exception | None:
    """The failing step's root cause as one line: our own errors verbatim, anything
    else as 'stage X failed: Type: message'."""
    for event in result.all_events:
        if not (event.is_step_failure and event.step_failure_data):
            continue
        error = event.step_failure_data.error
        root = error
        while error is not None:
            if error.cls_name in _MATTE_ERRORS:  # ours: same class, same one-line message
                return getattr(errors, error.cls_name)(error.message.split(": ", 1)[-1].strip())
            root = error
            error = error.cause
        message = root.message.strip().splitlines()[0] if root and root.message else "unknown error"
        return MatteError(f"stage {event.step_key} failed: {message}")
    return None


_MATTE_ERRORS = {"MatteError", "ConfigError", "PlateError", "BackendError", "StoreError", "DeliveryError"}


def run_shot(
    project: Project,
    show: str,
    shot: str,
    from_stage: str | None = None,
    echo: Callable[[str], None] = print,
    wait: float = 0.0,
) -> list[StageState]:
    """Materialise what is missing or stale (or everything from `from_stage` on) and
    report each stage as ran / reused. One run per shot at a time (see locking)."""
    from .locking import shot_lock

    with shot_lock(project, show, shot, wait=wait):
        return _run_locked(project, show, shot, from_stage, echo)


def _run_locked(project: Project, show: str, shot: str, from_stage: str | None, echo: Callable[[str], None]) -> list[StageState]:
    from .definitions import build_definitions

    if from_stage is not None and from_stage not in STAGES:
        raise MatteError(f"--from {from_stage!r}: not a stage (stages: {', '.join(STAGES)})")
    settings = project.shot(show, shot)
    registry.check_backends(settings)  # missing weights fail before any stage runs
    plan = plan_shot(project, show, shot)
    selected = {s.stage for s in plan if s.state != "fresh"}
    if from_stage:
        selected |= set(_downstream(from_stage))
    instance = instance_for(project)
    key = partition_key(show, shot)
    if selected:
        # On a shared instance the shot may be running on the farm (queued runs take no flock).
        from .farm.automation import refuse_if_running

        refuse_if_running(instance, key)
    register_shot(instance, show, shot)

    if selected:
        defs = build_definitions(str(project.root))
        job = defs.resolve_implicit_global_asset_job_def()
        # Observe the sources of the stages that run: a source whose data version changed
        # always has its stage selected, so the others' last observations still hold.
        selection = [
            *([PLATE_FILES_KEY] if "plate" in selected else []),
            *(settings_key(s) for s in STAGES if s in selected),
            *(corrections_key(s) for s in CORRECTION_STAGES if s in selected),
            *(dg.AssetKey(s) for s in STAGES if s in selected),
        ]
        result = job.execute_in_process(
            partition_key=key,
            instance=instance,
            asset_selection=selection,
            raise_on_error=False,
            # Failures are reported by us as one line; Dagster's own log keeps the detail.
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            tags={"matte/shot": key, "matte/local": "true", **({"matte/recompute": "true", "matte/from": from_stage} if from_stage else {})},
        )
        if not result.success:
            raise _user_error(result) or MatteError(f"run {result.run_id} of {key} failed")

    store = ZarrStore(project.store_url)
    for state in plan:
        ran = state.stage in selected
        head = store.head(key, state.stage) or {}
        state.seconds = head.get("seconds") if ran else None
        timing = f"  {state.seconds:7.2f} s" if ran and state.seconds is not None else ""
        echo(f"{state.stage:<16} {'ran' if ran else 'reused'}{timing}")
        state.state = "ran" if ran else "reused"
    return plan
