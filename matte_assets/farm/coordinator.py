"""The run coordinator of a farm instance: Dagster's QueuedRunCoordinator, plus the
`matte/shot` tag on every run of a shot however it was launched.

The queue's tag concurrency limit (`matte/shot`, one per unique value) is what keeps
two runs of one shot from executing at the same time anywhere on the farm. `matte
submit`, the automation sensor and schedules set the tag themselves; a run launched
from the UI (materialise a partition) carries only `dagster/partition`, so the tag is
added here, before the run enters the queue."""

from __future__ import annotations

from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext

from .tags import PARTITION_TAG, SHOT_TAG


class ShotRunCoordinator(QueuedRunCoordinator):
    def submit_run(self, context: SubmitRunContext):
        run = context.dagster_run
        key = run.tags.get(SHOT_TAG) or run.tags.get(PARTITION_TAG)
        if key and run.tags.get(SHOT_TAG) != key:
            self._instance.add_run_tags(run.run_id, {SHOT_TAG: key})
            run = self._instance.get_run_by_id(run.run_id) or run
            context = SubmitRunContext(run, context.workspace)
        return super().submit_run(context)
