"""The few lines every stage asset shares: resolve the shot, stage a new version,
and hand Dagster an Output whose data version is the stage's fingerprint."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, TypeVar

import dagster as dg
from tqdm import tqdm

from io_managers.zarr_store import StagedVersion, ZarrStore

from .. import __version__
from ..config import ShotSettings, split_shot_ref
from ..shots.lineage import CODE_VERSIONS, fingerprint

T = TypeVar("T")


@dataclass
class StageResult:
    """What a stage asset returns: a fully written, not yet committed version. The
    Zarr IO manager commits it (makes it the stage's current version)."""

    staged: StagedVersion
    record: dict[str, Any]


def upstream_lineage(*records: dict[str, Any]) -> dict[str, Any]:
    lineage: dict[str, Any] = {}
    for record in records:
        lineage.update(record.get("lineage", {}))
    return lineage


@dataclass
class StageRun:
    context: dg.AssetExecutionContext
    stage: str
    settings: ShotSettings
    store: ZarrStore
    started: float = field(default_factory=time.perf_counter)

    @property
    def shot_key(self) -> str:
        return self.context.partition_key

    @property
    def show_shot(self) -> tuple[str, str]:
        return split_shot_ref(self.shot_key)

    def begin(self, stage_settings: dict[str, Any], inputs: dict[str, str], *upstream: dict[str, Any]) -> tuple[StagedVersion, dict[str, Any]]:
        data_version = fingerprint(self.stage, stage_settings, inputs)
        staged = self.store.begin(self.shot_key, self.stage, data_version, self.context.run_id)
        record = {
            "stage": self.stage,
            "shot": self.shot_key,
            "data_version": data_version,
            "code_version": CODE_VERSIONS[self.stage],
            "software": __version__,
            "settings": stage_settings,
            "inputs": inputs,
            "run_id": self.context.run_id,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        lineage = upstream_lineage(*upstream)
        lineage[self.stage] = {k: record[k] for k in ("data_version", "code_version", "settings", "inputs", "run_id", "created")}
        lineage[self.stage]["version"] = staged.name
        record["lineage"] = lineage
        return staged, record

    def output(self, staged: StagedVersion, record: dict[str, Any], metadata: dict[str, Any]) -> dg.Output[StageResult]:
        seconds = time.perf_counter() - self.started
        record["seconds"] = round(seconds, 3)
        record["summary"] = {k: v for k, v in metadata.items() if isinstance(v, (int, float, str, bool))}
        meta = {
            "data_version": record["data_version"],
            "store_version": staged.name,
            "seconds": round(seconds, 3),
            "settings": dg.MetadataValue.json(record["settings"]),
            "inputs": dg.MetadataValue.json(record["inputs"]),
            **metadata,
        }
        return dg.Output(StageResult(staged, record), data_version=dg.DataVersion(record["data_version"]), metadata=meta)


def progress_counter(desc: str, total: int | None = None):
    """A bar advanced by increments (`bar.update(k)`), for loops that report progress
    through a callback (the tracking driver); interactive terminals only."""
    return tqdm(desc=desc, total=total, unit="frame", leave=False, disable=not sys.stderr.isatty(), file=sys.stderr)


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """A progress bar on interactive terminals only (farm logs stay clean)."""
    return tqdm(items, desc=desc, total=total, unit="frame", leave=False, disable=not sys.stderr.isatty(), file=sys.stderr)
