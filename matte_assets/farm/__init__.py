"""Running shots on a studio farm with Dagster's own machinery (docs/farm.md):
a shared instance (Postgres), the queued run coordinator with one run per shot, a
`gpu` concurrency pool on the model stages, a choice of executor (in-process,
multiprocess, Celery), `matte submit` / `matte farm status`, and automation that
enqueues the stale stages of a shot when its inputs change."""
