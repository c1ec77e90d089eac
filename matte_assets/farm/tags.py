"""Run and op tags the farm relies on."""

from __future__ import annotations

from typing import Any

from ..stages.specs import STAGE_SPECS

# Every run of a shot carries this tag; the run queue admits one run per value.
SHOT_TAG = "matte/shot"
PARTITION_TAG = "dagster/partition"
# The stages that run a model (detector, segmenter, tracker) take a slot of this
# concurrency pool; its limit is the number of GPUs (deploy/dagster.yaml).
GPU_POOL = "gpu"
MODEL_STAGES = tuple(s.name for s in STAGE_SPECS if s.backend_role)  # derived: stages with a backend role
CELERY_QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG


def stage_execution(stage: str) -> dict[str, Any]:
    """Keyword arguments for a stage's @asset: its pool and its Celery queue (`gpu`
    for the model stages, `cpu` for reading plates, filtering and EXR writing)."""
    if stage in MODEL_STAGES:
        return {"pool": GPU_POOL, "op_tags": {CELERY_QUEUE_TAG: "gpu"}}
    return {"op_tags": {CELERY_QUEUE_TAG: "cpu"}}


def shot_tags(shot_key: str) -> dict[str, str]:
    """Tags for a run of one shot (matte, sensors and schedules set them; the run
    coordinator adds the shot tag to runs launched without it, e.g. from the UI)."""
    return {SHOT_TAG: shot_key, PARTITION_TAG: shot_key}
