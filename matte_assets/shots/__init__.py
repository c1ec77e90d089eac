"""Shot and store services without Dagster assets: the shot handle, the run planner
and runner, data versions (lineage), locking, corrections, verify, gc, provenance."""
