"""One Dagster partition per shot, keyed `SHOW__SHOT`, added by `matte shot add`."""

import dagster as dg

shots = dg.DynamicPartitionsDefinition(name="shots")
