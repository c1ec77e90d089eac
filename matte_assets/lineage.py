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
from typing import Any

from .config import ShotSettings
from .media.ocio_colour import plate_colour

STAGES = ("plate", "detections", "frame_masks", "tracked_layers", "filtered_layers", "mattes")

UPSTREAM: dict[str, tuple[str, ...]] = {
    "plate": (),
    "detections": ("plate",),
    "frame_masks": ("plate", "detections"),
    "tracked_layers": ("plate", "frame_masks"),
    "filtered_layers": ("tracked_layers",),
    "mattes": ("plate", "filtered_layers"),
}

# Bump a stage's code version when a change to its code changes its results: every
# stored result of that stage (and everything downstream) becomes stale.
CODE_VERSIONS: dict[str, str] = {
    # 2: OpenImageIO reading (layers, DPX, pixel aspect), OCIO view transform instead of a
    # clipped sRGB OETF, downscale before colour, anamorphic plates desqueezed.
    "plate": "2",
    "detections": "2",  # 2: `moving` compensates exposure changes and camera motion
    "frame_masks": "1",
    # 2: flow tracker re-segments each frame with a colour model (issue 8), edge slivers dropped;
    # 3: stores per-layer track/colour summaries for stitching
    "tracked_layers": "3",
    # 2: false-positive rule judged iteratively (ec8d3bf); 3: stitches time-disjoint fragments of one object
    "filtered_layers": "3",
    "mattes": "4",  # 2: contact sheet + preview in each version (55f0138); 3: stable names, soft edges, Cryptomatte, Nuke script; 4: soft edges: band widened where unsettled + re-centring iteration
}
# tests/test_golden.py fails when a stage's stored results change while its entry here
# does not; after bumping, regenerate: MATTE_UPDATE_GOLDEN=1 pytest tests/test_golden.py

# Which backend role's identity is part of a stage's settings.
BACKEND_ROLE = {"detections": "detector", "frame_masks": "segmenter", "tracked_layers": "tracker"}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def stage_settings(settings: ShotSettings, stage: str, backend_identity: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings that enter `stage`, as plain data (what is hashed and recorded)."""
    if stage == "plate":
        return {
            "max_side": settings.plate.max_side,
            "frames": settings.plate.frames,
            "colour": plate_colour(settings).identity(),
            **({"layer": settings.plate.layer} if settings.plate.layer else {}),
        }
    if stage == "detections":
        out: dict[str, Any] = {"labels": settings.labels, **settings.detect.model_dump()}
    elif stage == "frame_masks":
        out = {}
    elif stage == "tracked_layers":
        out = settings.track.model_dump()
    elif stage == "filtered_layers":
        return settings.filter.model_dump()
    elif stage == "mattes":
        return {**settings.deliver.model_dump(), "naming": "<SHOT>_matte_v<NNN>.<FRAME>.exr"}
    else:
        raise KeyError(stage)
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
