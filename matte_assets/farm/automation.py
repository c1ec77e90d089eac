"""Automation: a sensor that enqueues exactly the stale stages of a shot when its
inputs change (new or changed artist corrections, plate frames added or replaced, a
show-file setting), once per change.

Each tick plans every shot that has been run before (the same plan as `matte run` /
`matte status`) and requests one run per shot with stale stages, selecting just those
stages. The run key is the shot plus the expected data versions of the selected stages,
so the same change never yields a second run (Dagster drops a repeated run key), and a
shot with a run queued or in progress is left alone until it finishes. Off by default:
turn it on in the UI (Automation) or `dagster sensor start matte_stale_shots`."""

import dagster as dg

from resources.project import ProjectResource

from ..config import partition_key
from ..shots.lineage import STAGES
from .tags import SHOT_TAG, shot_tags

ACTIVE = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
]


def refuse_if_running(instance: dg.DagsterInstance, key: str) -> None:
    """`matte run` on a shared instance: fail at once, like the local lock, when a run of
    the shot is queued or in progress on the farm."""
    from dagster._core.run_coordinator import QueuedRunCoordinator

    from ..shots.locking import ShotLockedError

    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        return  # a project's own instance: the flock is the guard
    # Local `matte run`s (tagged matte/local) hold the flock instead; a killed one would
    # otherwise look "started" forever (nothing monitors in-process runs).
    runs = [r for r in instance.get_runs(dg.RunsFilter(tags={SHOT_TAG: key}, statuses=ACTIVE), limit=20) if "matte/local" not in r.tags]
    if runs:
        run = runs[0]
        raise ShotLockedError(
            f"{key.replace('__', '/')} has a {run.status.value.lower()} run on the farm ({run.run_id}); "
            "wait for it (matte farm status) or cancel it in the Dagster UI"
        )


def stale_shot_requests(project, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    from ..shots.shot import project_store

    from ..shots.lineage import digest
    from ..shots.runner import plan_shot
    from .submit import stage_selection

    store = project_store(project)
    requests = []
    for show, shot in project.all_shots():
        key = partition_key(show, shot)
        if store.head(key, "plate") is None:
            continue  # never run: new shots are submitted, not discovered
        plan = plan_shot(project, show, shot)
        stale = [s for s in plan if s.state != "fresh"]
        if not stale:
            continue
        if instance.get_runs(dg.RunsFilter(tags={SHOT_TAG: key}, statuses=ACTIVE), limit=1):
            continue  # one run per shot: look again when it is done
        selected = {s.stage for s in stale}
        change = digest({s.stage: s.expected for s in stale})
        requests.append(
            dg.RunRequest(
                run_key=f"{key}:{change}",
                partition_key=key,
                asset_selection=stage_selection(selected),
                tags={**shot_tags(key), "matte/reason": "; ".join(f"{s.stage}: {s.reasons[0]}" for s in stale if s.reasons)[:500]},
            )
        )
    return requests


@dg.sensor(
    name="matte_stale_shots",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Enqueue the stale stages of each shot (corrections, plate frames, settings), once per change.",
)
def stale_shots_sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
    from ..shots.runner import register_shot

    requests = stale_shot_requests(project.project(), context.instance)
    for request in requests:
        register_shot(context.instance, *request.partition_key.split("__", 1))
    return dg.SensorResult(run_requests=requests)
