"""Source assets: what enters the graph from outside — the plate's files and each
stage's settings. Observing them records a data version (a hash of the files or the
settings), so Dagster itself marks exactly the dependent stages stale when a show
file's threshold changes or a plate frame is replaced."""

from __future__ import annotations

import warnings

import dagster as dg

# observable_source_asset is marked beta; its behaviour here is covered by our tests.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from resources.project import BackendsResource, ProjectResource

from ..shots.lineage import BACKEND_ROLE, STAGES, digest, plate_files_version, stage_settings
from ..partitions import shots
from ..shots.plate_files import cache_file, hash_plate_files


@dg.observable_source_asset(
    key=["source", "plate_files"],
    partitions_def=shots,
    group_name="sources",
    description="The shot's plate sequence on disk: frame numbers and content hashes.",
)
def plate_files(context, project: ProjectResource) -> dg.DataVersionsByPartition:
    settings = project.shot(context.partition_key)
    files = hash_plate_files(settings, cache=cache_file(project.project()))
    return dg.DataVersionsByPartition({context.partition_key: dg.DataVersion(plate_files_version([(f, h) for f, _, h in files]))})


def _settings_source(stage: str) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=["settings", stage],
        partitions_def=shots,
        group_name="sources",
        description=f"The show-file settings (and backend identity) that enter `{stage}`.",
    )
    def _observe(context, project: ProjectResource, backends: BackendsResource) -> dg.DataVersionsByPartition:
        settings = project.shot(context.partition_key)
        role = BACKEND_ROLE.get(stage)
        identity = backends.identity(settings, role) if role else None
        value = digest(stage_settings(settings, stage, identity))
        return dg.DataVersionsByPartition({context.partition_key: dg.DataVersion(value)})

    return _observe


SETTINGS_SOURCES = {stage: _settings_source(stage) for stage in STAGES}

from ..shots.correction_inputs import CORRECTION_STAGES, corrections_version  # noqa: E402  (re-exported)


def _corrections_source(stage: str) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=["corrections", stage],
        partitions_def=shots,
        group_name="sources",
        description=f"Artist corrections (corrections/<SHOW>/<SHOT>.yaml + masks) that affect `{stage}`.",
    )
    def _observe(context, project: ProjectResource) -> dg.DataVersionsByPartition:
        value = corrections_version(project.project(), context.partition_key, stage)
        return dg.DataVersionsByPartition({context.partition_key: dg.DataVersion(value)})

    return _observe


CORRECTION_SOURCES = {stage: _corrections_source(stage) for stage in CORRECTION_STAGES}


def corrections_key(stage: str) -> dg.AssetKey:
    return dg.AssetKey(["corrections", stage])


def settings_key(stage: str) -> dg.AssetKey:
    return dg.AssetKey(["settings", stage])


PLATE_FILES_KEY = dg.AssetKey(["source", "plate_files"])
