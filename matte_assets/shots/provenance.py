"""Provenance of a delivered EXR, from its header alone (no Dagster instance needed):
what the `mattes` stage writes into each header and how it is read back."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import partition_key
from ..errors import MatteError
from .lineage import STAGES, canonical_json
from ..media.exr import read_exr_header

HEADER_PREFIX = "matte/"


def header_attributes(common: dict[str, Any], frame: int, plate_file: str, plate_sha: str) -> dict[str, str]:
    """EXR header attributes: enough to audit the file without the Dagster instance."""
    attrs = {f"{HEADER_PREFIX}{k}": v if isinstance(v, str) else canonical_json(v) for k, v in common.items()}
    attrs[f"{HEADER_PREFIX}frame"] = str(frame)
    attrs[f"{HEADER_PREFIX}plate_file"] = plate_file
    attrs[f"{HEADER_PREFIX}plate_sha256"] = plate_sha
    return attrs


def read_provenance(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise MatteError(f"{path}: no such file")
    try:
        header = read_exr_header(path)
    except MatteError:
        raise
    except Exception as exc:
        raise MatteError(f"{path}: not a readable EXR ({exc})") from None
    info: dict[str, Any] = {}
    for key, value in header.items():
        if not key.startswith(HEADER_PREFIX):
            continue
        name = key[len(HEADER_PREFIX):]
        if isinstance(value, bytes):
            value = value.decode()
        try:
            info[name] = json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value
        except json.JSONDecodeError:
            info[name] = value
    if not info:
        raise MatteError(f"{path}: no matte provenance in the header (not delivered by this pipeline?)")
    info["file"] = str(path)
    info["channels"] = sorted(header.get("channels", [])) if isinstance(header.get("channels"), (list, tuple, dict)) else None
    return info


def render_provenance(info: dict[str, Any]) -> str:
    lines = [
        f"file      {info['file']}",
        f"show      {info.get('show')}   shot {info.get('shot')}   version {info.get('version')}   frame {info.get('frame')}",
        f"run id    {info.get('run_id')}",
        f"created   {info.get('created')}",
        f"software  {info.get('software')}",
        f"plate     {info.get('plate_file')}",
        f"          sha256 {info.get('plate_sha256')}",
        "stages (data version, settings):",
    ]
    versions = info.get("data_versions", {})
    settings = info.get("settings", {})
    for stage in STAGES:
        if stage in versions:
            shown = {k: v for k, v in (settings.get(stage) or {}).items() if k != "backend"}
            lines.append(f"  {stage:<16} {versions[stage]}  {json.dumps(shown, sort_keys=True)}")
    lines.append("models:")
    for stage, identity in (info.get("models") or {}).items():
        lines.append(f"  {stage:<16} {json.dumps(identity, sort_keys=True)}")
    lines.append("layers:")
    for name, members in (info.get("layers") or {}).items():
        lines.append(f"  {name:<16} tracked layers {members}")
    corrections = info.get("corrections") or []
    lines.append(f"corrections: {len(corrections) or 'none'}")
    for c in corrections:
        where = f" frame {c['frame']}" if "frame" in c else ""
        extra = f" into {c['into']}" if "into" in c else ""
        mask = f" mask {c['mask']}" if "mask" in c else ""
        clicks = f" add {c.get('add')} remove {c.get('remove')}" if c.get("kind") == "clicks" else ""
        lines.append(f"  {c['kind']:<10} layer {c['layer']}{where}{extra}{clicks}{mask}")
    check = info.get("dagster")
    if check is not None:
        lines.append(f"dagster:   {check['summary']}")
        for stage, state in check.get("stages", {}).items():
            lines.append(f"  {stage:<16} {state}")
    return "\n".join(lines)


def check_with_dagster(info: dict[str, Any], instance: Any) -> dict[str, Any]:
    """Compare the header's data versions with the Dagster instance's own records:
    each stage must have a materialisation of that shot with that data version."""
    import dagster as dg

    key = partition_key(str(info.get("show")), str(info.get("shot")))
    stages: dict[str, str] = {}
    ok = True
    for stage, version in (info.get("data_versions") or {}).items():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=[key]), limit=1000
        ).records
        same = [r for r in records if r.asset_materialization.tags.get("dagster/data_version") == version]
        # Prefer the run that wrote this file; a later run may have re-materialised the
        # same data version (e.g. a reused delivery).
        hit = next((r for r in same if r.run_id == info.get("run_id")), same[0] if same else None)
        if hit is None:
            stages[stage] = f"{version}: NOT in the instance"
            ok = False
        else:
            when = datetime.fromtimestamp(hit.timestamp, timezone.utc).isoformat(timespec="seconds")
            stages[stage] = f"{version}: recorded by run {hit.run_id} at {when}"
            if stage == "mattes" and hit.run_id != info.get("run_id"):
                stages[stage] += f" (header says run {info.get('run_id')})"
    summary = "every stage's data version matches a materialisation" if ok else "MISMATCH with the instance's records"
    return {"summary": summary, "stages": stages, "ok": ok}
