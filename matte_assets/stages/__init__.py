"""The six stages: their one declaration (`specs.STAGE_SPECS`), their Dagster assets
and the source assets that feed them. Importing this package imports nothing heavy;
the asset modules load Dagster and are imported only by the code location."""
