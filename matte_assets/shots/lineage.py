"""Data versions: what makes a stage's result what it is.

A stage's data version is a hash of its code version, its settings (incl. the
identity of the model that runs it) and the data versions of its inputs. It is known
*before* the stage runs, so `matte run` can tell `ran` from `reused` without running
anything, and `matte status` can say why a stage is stale (which setting, which file,
which upstream stage changed). The same versions are recorded in Dagster (the
materialisation's data version), in the store (HEAD.json) and in every EXR header.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import ShotSettings

from ..stages.specs import SPECS, STAGE_SPECS

# Derived from the one declaration per stage (matte_assets/stages/specs.py).
STAGES = tuple(s.name for s in STAGE_SPECS)
UPSTREAM: dict[str, tuple[str, ...]] = {s.name: s.upstream for s in STAGE_SPECS}
# Bump a stage's code version in its spec when a change to its code changes its results.
CODE_VERSIONS: dict[str, str] = {s.name: s.code_version for s in STAGE_SPECS}
# Which backend role's identity is part of a stage's settings.
BACKEND_ROLE = {s.name: s.backend_role for s in STAGE_SPECS if s.backend_role}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def stage_settings(settings: ShotSettings, stage: str, backend_identity: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings that enter `stage`, as plain data (what is hashed and recorded)."""
    if stage not in SPECS:
        raise KeyError(stage)
    spec = SPECS[stage]
    out = dict(spec.settings(settings))
    if spec.backend_role:
        out["backend"] = dict(backend_identity or {})
    return out


def fingerprint(stage: str, settings: dict[str, Any], inputs: dict[str, str]) -> str:
    """The data version of `stage` given its settings and its inputs' data versions."""
    return digest({"stage": stage, "code": CODE_VERSIONS[stage], "settings": settings, "inputs": inputs})


def plate_files_version(files: list[tuple[int, str]]) -> str:
    """Data version of the plate's source files: frame numbers and content hashes."""
    return digest([[frame, sha] for frame, sha in files])


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(settings, dict):
        out: dict[str, Any] = {}
        for key, value in settings.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: settings}


def settings_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences, e.g. 'sim_merge 0.6 -> 0.5'."""
    a, b = flatten(old), flatten(json.loads(canonical_json(new)))
    changes = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            changes.append(f"{key} {a.get(key, '(unset)')!r} -> {b.get(key, '(unset)')!r}")
    return changes
