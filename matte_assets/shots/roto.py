"""Keyframe roto entry: a shot started from an artist's drawn masks.

    matte shot add SHOW/SHOT --plate P --roto 1001=dancer.1001.png [--roto 1040=dancer.1040.png]
    matte shot add SHOW/SHOT --plate P --roto dancer:1001=a.png --roto partner:1001=b.png

Each `--roto [LABEL:]FRAME=MASK` is one keyframe; keyframes sharing a label (default:
the prompt's first label) are one layer. They are stored as ordinary artist
corrections (`new_layer` for a layer's first keyframe, `mask` for the others, see
`corrections.py`), so the first `matte run` propagates them forward and backward
through the shot with the same machinery as a later correction, they enter
`tracked_layers`' data version, and changing one reruns tracking and what follows
only. With `backends.detector: none` they are the shot's only layers.

No stage has to have run: the plate's frame numbers and working size come from the
plate files and `plate.max_side` here, exactly as the `plate` stage computes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Project, ShotSettings
from .corrections import (
    NEW_LAYER_BASE,
    CorrectionError,
    Corrections,
    load_corrections,
    read_drawn_mask,
    save_corrections,
    store_mask,
)
from ..errors import ConfigError


@dataclass(frozen=True)
class PlateGeometry:
    frame_numbers: list[int]
    size: tuple[int, int]  # working plate (w, h)
    original: dict[str, Any]  # width, height, data_window (as the plate stage records it)


def plate_geometry(settings: ShotSettings) -> PlateGeometry:
    """Frame numbers, working size and original resolution of a shot's plate, read from
    its files (the first frame's header/pixels) without running the `plate` stage."""
    from ..media.scale import fit_within
    from ..media.sequence import discover_frames, read_image

    frames = discover_frames(settings.plate.path, settings.plate.frames)
    first = read_image(frames[0][1])
    dw = first.data_window
    width, height = dw[2] - dw[0] + 1, dw[3] - dw[1] + 1
    return PlateGeometry(
        [f for f, _ in frames],
        fit_within(width, height, settings.plate.max_side),
        {"width": width, "height": height, "data_window": list(dw)},
    )


@dataclass(frozen=True)
class RotoKey:
    label: str | None
    frame: int
    path: Path


def parse_roto(spec: str) -> RotoKey:
    """`[LABEL:]FRAME=PATH` -> RotoKey (one-line error naming the bad spec)."""
    head, sep, path = spec.partition("=")
    label, _, frame = head.rpartition(":")
    if not sep or not path or not frame.strip().lstrip("-").isdigit():
        raise CorrectionError(f"--roto {spec!r}: expected FRAME=MASK or LABEL:FRAME=MASK, e.g. 1001=roto.1001.png")
    return RotoKey(label.strip() or None, int(frame), Path(path).expanduser())


def _new_layer_id(corrections: Corrections, taken: set[int]) -> int:
    ids = taken | set(corrections.new_layers())
    return max([NEW_LAYER_BASE, *(i for i in ids if i > NEW_LAYER_BASE)]) + 1


def record_roto(
    project: Project, show: str, shot: str, keys: list[RotoKey], taken: set[int] = frozenset()  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """Validate every keyframe (frame on the plate, mask readable, non-empty, at plate or
    original resolution) and only then append them to the shot's corrections. A label
    that already has a roto layer gets the keyframes added to it (the same frame again
    replaces the earlier mask). `taken`: tracked-layer ids already in use."""
    settings = project.shot(show, shot)
    geometry = plate_geometry(settings)
    numbers = geometry.frame_numbers
    masks = []
    for key in keys:
        if key.frame not in numbers:
            raise CorrectionError(
                f"roto keyframe {key.frame} ({key.path}): frame not in the plate of {show}/{shot} ({numbers[0]}-{numbers[-1]})"
            )
        try:
            masks.append(read_drawn_mask(key.path, geometry.size, geometry.original))
        except CorrectionError as exc:
            raise CorrectionError(f"roto keyframe {key.frame}: {exc}") from None
    corrections = load_corrections(project, show, shot)
    by_label = {label: lid for lid, label in sorted(corrections.new_layers().items())}
    entries = []
    for key, mask in zip(keys, masks):
        label = key.label or settings.labels[0]
        name = store_mask(corrections, mask)
        if label in by_label:
            entry = {"kind": "mask", "layer": by_label[label], "frame": key.frame, "mask": name, "source": str(key.path)}
        else:
            lid = _new_layer_id(corrections, set(taken))
            by_label[label] = lid
            entry = {"kind": "new_layer", "layer": lid, "frame": key.frame, "label": label, "mask": name,
                     "source": str(key.path)}
        corrections.entries.append(entry)
        entries.append(entry)
    save_corrections(corrections)
    return entries


def check_roto_shot(project: Project, show: str, shot: str, settings: ShotSettings) -> None:
    """A shot without a detector needs at least one roto keyframe, or nothing would ever
    be tracked."""
    if settings.backends.detector == "none" and not load_corrections(project, show, shot).new_layers():
        raise ConfigError(
            f"{show}/{shot}: backends.detector is none and the shot has no roto keyframes; add one with "
            f"`matte shot add {show}/{shot} --plate ... --roto FRAME=mask.png` or `matte correct --new-layer`"
        )


def record_before_run(
    project: Project, show: str, shot: str, *, frame: int | None, mask: Path | None, layer: int | None, label: str | None
) -> dict[str, Any]:
    """`matte correct --new-layer` (or `--layer <roto layer> --mask`) on a shot that has
    not run yet: a roto keyframe like `--roto`, but `--new-layer` always starts a new
    layer."""
    if frame is None or mask is None:
        raise CorrectionError("--new-layer needs --frame and --mask before the shot's first run")
    corrections = load_corrections(project, show, shot)
    if layer is None:
        # A fresh label that no roto layer has yet, so record_roto starts a new layer.
        base = label or project.shot(show, shot).labels[0]
        used = set(corrections.new_layers().values())
        label = base if base not in used else next(f"{base}{k}" for k in range(2, 10_000) if f"{base}{k}" not in used)
    else:
        label = corrections.new_layers()[layer]
    return record_roto(project, show, shot, [RotoKey(label, int(frame), Path(mask))])[0]
