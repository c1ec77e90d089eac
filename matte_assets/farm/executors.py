"""The executor of runs launched on an instance (not `matte run`, which always runs
in its own process): chosen by $MATTE_EXECUTOR where the code location is loaded
(webserver, daemon, Celery workers).

    in_process    every stage in the run's process (default; a laptop, one GPU box)
    multiprocess  one process per stage (Dagster's multiprocess executor)
    celery        each stage is a Celery task on a Redis broker ($MATTE_CELERY_BROKER,
                  default redis://localhost:6379/0); model stages go to the `gpu`
                  queue, the rest to `cpu` (op tag dagster-celery/queue)

dagster-k8s's k8s_job_executor is documented in deploy/README.md (not run here)."""

from __future__ import annotations

import os

import dagster as dg

from ..errors import ConfigError

EXECUTORS = ("in_process", "multiprocess", "celery")
DEFAULT_BROKER = "redis://localhost:6379/0"


def executor_from_env() -> dg.ExecutorDefinition:
    name = os.environ.get("MATTE_EXECUTOR", "in_process") or "in_process"
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError:
            raise ConfigError("MATTE_EXECUTOR=celery: dagster-celery is not installed (pip install -e '.[farm]')") from None
        broker = os.environ.get("MATTE_CELERY_BROKER", DEFAULT_BROKER)
        return celery_executor.configured(
            {
                "broker": broker,
                "backend": os.environ.get("MATTE_CELERY_BACKEND", broker),
                # Steps without a queue tag (source observations) go to `cpu`, not Celery's `dagster`.
                "config_source": {"task_default_queue": "cpu"},
            },
            name="celery",
        )
    raise ConfigError(f"MATTE_EXECUTOR={name!r}: expected one of {', '.join(EXECUTORS)}")
