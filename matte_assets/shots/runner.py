"""Plan and run a shot: which stages are fresh, stale (and why) or missing, and
materialise the ones that are not fresh through Dagster.

The plan compares each stage's expected data version (lineage.fingerprint over its
settings, backend identity and inputs) with the version stored in the Zarr store, so
it is exact and needs nothing to run. Execution goes through the Dagster job, so runs,
materialisations and observations land in the Dagster instance that `dagster dev`
shows."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from io_managers.zarr_store import ZarrStore

from .. import errors
from ..config import Project, partition_key
from .correction_inputs import CORRECTION_STAGES, corrections_version
from ..errors import MatteError, StoreError
from .lineage import (
    BACKEND_ROLE,
    CODE_VERSIONS,
    STAGES,
    UPSTREAM,
    digest,
    fingerprint,
    plate_files_version,
    settings_changes,
    stage_settings,
)
from .plate_files import cache_file, hash_plate_files
from .shot import project_store

if TYPE_CHECKING:
    import dagster as dg

# Dagster, the backends' registry and the asset modules are imported where they are
# used: a run that finds every stage fresh never loads them (a second of imports).


@dataclass
class StageState:
    stage: str
    state: str  # fresh | stale | missing | damaged
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


def stored_problems(project: Project, store: ZarrStore, key: str, stage: str, head: dict[str, Any], full: bool = False) -> list[str]:
    """Why the current version of `stage` cannot be trusted (empty: it can): files of
    the stored version missing or altered, or (mattes) delivered files gone."""
    problems = store.check_version(key, stage, head.get("version", "?"), full=full)
    if stage == "mattes" and not problems:
        from .verify import delivery_problems

        manifest = dict(store.version_attrs(key, stage, head["version"]).get("manifest") or {})
        problems = delivery_problems(project_delivery(project, key, manifest), full=full)
    return problems


def project_delivery(project: Project, key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """A `mattes` manifest with its folder and files resolved in this project's
    deliveries folder (a moved or copied project checks its own files)."""
    from ..config import split_shot_ref

    if "version" not in manifest:
        return manifest
    show, shot = split_shot_ref(key)
    folder = project.deliveries / show / shot / f"v{int(manifest['version']):03d}"
    files = [{**f, "path": str(folder / f["name"])} for f in manifest.get("files", [])]
    return {**manifest, "folder": str(folder), "files": files}


def plan_shot(project: Project, show: str, shot: str) -> list[StageState]:
    from resources import registry

    settings = project.shot(show, shot)
    store = project_store(project)
    key = partition_key(show, shot)
    files = hash_plate_files(settings, cache=cache_file(project))
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
        try:
            head = store.head(key, stage)
        except StoreError as exc:  # a corrupt HEAD.json: recompute, whatever it said
            states[stage] = StageState(stage, "damaged", expected[stage], None, [str(exc)])
            continue
        if head is None:
            states[stage] = StageState(stage, "missing", expected[stage], None, ["never materialised"])
            continue
        if head.get("data_version") == expected[stage]:
            problems = stored_problems(project, store, key, stage, head)
            if problems:
                states[stage] = StageState(stage, "damaged", expected[stage], head["data_version"], problems[:3])
                continue
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
    from ..partitions import shots

    key = partition_key(show, shot)
    if not instance.has_dynamic_partition(shots.name, key):
        instance.add_dynamic_partitions(shots.name, [key])


def _downstream(stage: str) -> list[str]:
    from ..stages.specs import downstream

    return downstream(stage)


def _source_value(project: Project, settings, key: str, source: dg.AssetKey) -> str:
    """What observing `source` would record now (the same values sources.py computes)."""
    from resources import registry

    kind, stage = source.path[0], source.path[-1]
    if kind == "settings":
        role = BACKEND_ROLE.get(stage)
        return digest(stage_settings(settings, stage, registry.backend_identity(settings, role) if role else None))
    if kind == "corrections":
        return corrections_version(project, key, stage)
    files = hash_plate_files(settings, cache=cache_file(project))
    return plate_files_version([(f, h) for f, _, h in files])


def _source_changed(instance: dg.DagsterInstance, project: Project, settings, key: str, source: dg.AssetKey) -> bool:
    from dagster._core.definitions.data_version import extract_data_version_from_entry

    record = instance.get_latest_data_version_record(source, is_source=True, partition_key=key)
    if record is None:
        return True
    observed = extract_data_version_from_entry(record.event_log_entry)
    return observed is None or observed.value != _source_value(project, settings, key, source)


def _echo_warnings(instance: dg.DagsterInstance, run_id: str) -> None:
    """Warnings the stages logged (NaN pixels replaced, no detections, no layers
    delivered) change what is delivered: one line each on the terminal."""
    for entry in instance.all_logs(run_id):
        if entry.is_dagster_event or entry.level < logging.WARNING or not entry.user_message:
            continue
        print(f"matte: warning: {entry.user_message.strip().splitlines()[0]}", file=sys.stderr)


def _user_error(result: dg.ExecuteInProcessResult) -> Exception | None:
    """The failing step's root cause as one line: our own errors verbatim, anything
    else as 'stage X failed: Type: message'."""
    for event in result.all_events:
        if not (event.is_step_failure and event.step_failure_data):
            continue
        error = event.step_failure_data.error
        if os.environ.get("MATTE_DEBUG"):  # the failing stage's full traceback, causes included
            print(f"matte: stage {event.step_key} failed:\n{error.to_string()}", file=sys.stderr)
        chain = []
        while error is not None:
            chain.append(error.cls_name)
            error = error.cause
        if _INTERRUPTED & set(chain):  # Ctrl-C inside a stage: nothing was committed
            raise KeyboardInterrupt
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


_INTERRUPTED = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}
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
    from resources import registry

    if from_stage is not None and from_stage not in STAGES:
        raise MatteError(f"--from {from_stage!r}: not a stage (stages: {', '.join(STAGES)})")
    settings = project.shot(show, shot)
    registry.check_backends(settings)  # missing weights fail before any stage runs
    from .roto import check_roto_shot

    check_roto_shot(project, show, shot, settings)  # detector none needs roto keyframes
    plan = plan_shot(project, show, shot)
    selected = {s.stage for s in plan if s.state != "fresh"}
    if from_stage:
        selected |= set(_downstream(from_stage))
    key = partition_key(show, shot)

    if selected:
        import dagster as dg

        from ..definitions import build_definitions
        from ..farm.automation import refuse_if_running
        from ..stages.sources import PLATE_FILES_KEY, corrections_key, settings_key

        instance = instance_for(project)
        # On a shared instance the shot may be running on the farm (queued runs take no flock).
        refuse_if_running(instance, key)
        register_shot(instance, show, shot)
        defs = build_definitions(str(project.root))
        job = defs.resolve_implicit_global_asset_job_def()
        # Observe the sources of the stages that run, and only those whose value differs
        # from their last observation (each observation is a Dagster step): a source whose
        # data version changed always has its stage selected, so the others still hold.
        candidates = {
            **({PLATE_FILES_KEY: "plate"} if "plate" in selected else {}),
            **{settings_key(s): s for s in STAGES if s in selected},
            **{corrections_key(s): s for s in CORRECTION_STAGES if s in selected},
        }
        selection = [
            *(k for k in candidates if _source_changed(instance, project, settings, key, k)),
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
        if result.success:  # (a failed run's own line says what matters; Dagster adds "not executing" noise)
            _echo_warnings(instance, result.run_id)
        if not result.success:
            raise _user_error(result) or MatteError(f"run {result.run_id} of {key} failed")

    store = project_store(project)
    for state in plan:
        ran = state.stage in selected
        head = store.head(key, state.stage) or {}
        state.seconds = head.get("seconds") if ran else None
        timing = f"  {state.seconds:7.2f} s" if ran and state.seconds is not None else ""
        echo(f"{state.stage:<16} {'ran' if ran else 'reused'}{timing}")
        state.state = "ran" if ran else "reused"
    return plan
