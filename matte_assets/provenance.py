"""Provenance of a delivered EXR, from its header alone (no Dagster instance needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import MatteError
from .lineage import STAGES
from .mattes import HEADER_PREFIX
from .media.exr import read_exr_header


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
    return "\n".join(lines)
