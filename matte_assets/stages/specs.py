"""One declaration per stage (no Dagster import: the run planner, `matte status` and
the readers use it on every invocation).

Everything that lists stages is derived from `STAGE_SPECS`: lineage's STAGES /
UPSTREAM / CODE_VERSIONS / BACKEND_ROLE and `stage_settings`, the correction inputs,
the settings/corrections source assets, the readers (`io_managers.readers.open_stage`),
the planner's downstream walk and the code location's asset list. Adding a stage is
one entry here plus its asset function (named by `asset`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..config import ShotSettings
    from ..shots.corrections import Corrections


@dataclass(frozen=True)
class StageSpec:
    name: str
    upstream: tuple[str, ...]
    # Bump when a change to the stage's code changes its results: every stored result of
    # the stage (and everything downstream) becomes stale. tests/test_golden.py fails when
    # results change while this does not (regenerate: MATTE_UPDATE_GOLDEN=1 pytest tests/test_golden.py).
    code_version: str
    # The settings that enter the stage, as plain data (what is hashed and recorded).
    settings: Callable[["ShotSettings"], dict[str, Any]]
    # Reads a stored version: (zarr group, version record, store) -> the stage's data object.
    reader: Callable[[Any, dict, Any], Any]
    # "module:attribute" of the Dagster asset (imported only by the code location).
    asset: str
    # Which backend role's identity is part of the settings (None: no model).
    backend_role: str | None = None
    # The digest of the artist corrections that enter the stage (None: corrections do not).
    corrections: Callable[["Corrections"], str | None] | None = None


# --- settings ---------------------------------------------------------------------


def _plate_settings(settings: "ShotSettings") -> dict[str, Any]:
    from ..media.ocio_colour import plate_colour

    return {
        "max_side": settings.plate.max_side,
        "frames": settings.plate.frames,
        "colour": plate_colour(settings).identity(),
        **({"layer": settings.plate.layer} if settings.plate.layer else {}),
    }


def _detections_settings(settings: "ShotSettings") -> dict[str, Any]:
    return {"labels": settings.labels, **settings.detect.model_dump()}


def _mattes_settings(settings: "ShotSettings") -> dict[str, Any]:
    return {**settings.deliver.model_dump(), "naming": "<SHOT>_matte_v<NNN>.<FRAME>.exr"}


# --- readers ----------------------------------------------------------------------


def _read_plate(group, record, store):
    from .stage_data import PlateData

    return PlateData(group, record)


def _read_detections(group, record, store):
    from .stage_data import DetectionTable, read_table

    # Detectors that segment as they detect (SAM 3) store one mask per row beside the table.
    return DetectionTable(read_table(group, "table"), record, masks=group["masks"] if "masks" in group else None)


def _read_frame_masks(group, record, store):
    from .stage_data import FrameMasksData

    return FrameMasksData(group, record)


def _read_layers(group, record, store):
    from .stage_data import LayersData

    return LayersData(group, record)


def _read_mattes(group, record, store):
    from ..shots.paths import project_root_of_store, resolve_manifest

    # Manifest paths are stored relative to the project (a copied project reads its own files).
    root = store.project_root or project_root_of_store(store.url)
    return resolve_manifest(dict(group.attrs["manifest"]), root) | {"record": record}


# --- the table --------------------------------------------------------------------

STAGE_SPECS: tuple[StageSpec, ...] = (
    StageSpec(
        "plate",
        upstream=(),
        # 2: OpenImageIO reading (layers, DPX, pixel aspect), OCIO view transform instead of a
        # clipped sRGB OETF, downscale before colour, anamorphic plates desqueezed.
        code_version="2",
        settings=_plate_settings,
        reader=_read_plate,
        asset="matte_assets.stages.plate:plate",
    ),
    StageSpec(
        "detections",
        upstream=("plate",),
        code_version="2",  # 2: `moving` compensates exposure changes and camera motion
        settings=_detections_settings,
        reader=_read_detections,
        asset="matte_assets.stages.detections:detections",
        backend_role="detector",
    ),
    StageSpec(
        "frame_masks",
        upstream=("plate", "detections"),
        code_version="1",
        settings=lambda settings: {},
        reader=_read_frame_masks,
        asset="matte_assets.stages.frame_masks:frame_masks",
        backend_role="segmenter",
    ),
    StageSpec(
        "tracked_layers",
        upstream=("plate", "frame_masks"),
        # 2: flow tracker re-segments each frame with a colour model (issue 8), edge slivers dropped;
        # 3: stores per-layer track/colour summaries for stitching
        code_version="3",
        settings=lambda settings: settings.track.model_dump(),
        reader=_read_layers,
        asset="matte_assets.stages.tracked_layers:tracked_layers",
        backend_role="tracker",
        # Masks, clicks and new layers re-track.
        corrections=lambda corrections: corrections.tracking_digest(),
    ),
    StageSpec(
        "filtered_layers",
        upstream=("tracked_layers",),
        # 2: false-positive rule judged iteratively (ec8d3bf); 3: stitches time-disjoint fragments of one object
        code_version="3",
        settings=lambda settings: settings.filter.model_dump(),
        reader=_read_layers,
        asset="matte_assets.stages.filtered_layers:filtered_layers",
        # Drops and merges only re-filter.
        corrections=lambda corrections: corrections.filter_digest(),
    ),
    StageSpec(
        "mattes",
        upstream=("plate", "filtered_layers"),
        # 2: contact sheet + preview in each version (55f0138); 3: stable names, soft edges, Cryptomatte,
        # Nuke script; 4: soft edges widen the band where needed and take a damped second pass
        code_version="4",
        settings=_mattes_settings,
        reader=_read_mattes,
        asset="matte_assets.stages.mattes:mattes",
    ),
)

SPECS: dict[str, StageSpec] = {spec.name: spec for spec in STAGE_SPECS}


def spec(stage: str) -> StageSpec:
    try:
        return SPECS[stage]
    except KeyError:
        raise KeyError(stage) from None


def downstream(stage: str) -> list[str]:
    """`stage` and every stage that depends on it, in graph order."""
    out = [stage]
    for s in STAGE_SPECS:
        if any(up in out for up in s.upstream) and s.name not in out:
            out.append(s.name)
    return out


def load_assets() -> list:
    """The stages' Dagster assets, in graph order (imports Dagster)."""
    from importlib import import_module

    out = []
    for s in STAGE_SPECS:
        module, attr = s.asset.split(":")
        out.append(getattr(import_module(module), attr))
    return out


def _check_order() -> None:
    # Upstream stages come first: the planner and the downstream walk rely on table order.
    seen: set[str] = set()
    for s in STAGE_SPECS:
        missing = [up for up in s.upstream if up not in seen]
        if missing:
            raise RuntimeError(f"stage spec {s.name!r}: upstream {missing} must be declared before it")
        seen.add(s.name)


_check_order()
