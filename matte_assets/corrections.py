"""Artist corrections: per-shot data that enters the graph as observed sources.

    corrections/<SHOW>/<SHOT>.yaml          what was corrected (written by `matte correct`)
    corrections/<SHOW>/<SHOT>/<sha>.png     the masks it references, named by content

Entries (layer ids are tracked-layer ids; frames are VFX frame numbers):

    - {kind: mask,   layer: 3, frame: 1010, mask: 3f2a….png}            drawn mask: a prompt for the layer
    - {kind: clicks, layer: 2, frame: 1004, add: [[x, y]], remove: [[x, y]], mask: 9c1e….png}
    - {kind: new_layer, layer: 7, frame: 1020, label: person, mask: 51d0….png}
    - {kind: drop,   layer: 5}
    - {kind: merge,  layer: 4, into: 2}

Clicks are resolved into a mask when they are recorded (the segmenter refines the
layer's current mask on that frame with them as seeds), so tracking depends on masks
only and the same corrections file always gives the same result. Masks are stored at
plate resolution. Two digests split the file by what it affects: masks, clicks and new
layers change `tracked_layers` (only the layers they name are re-tracked); drops and
merges change `filtered_layers` only."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from .config import Project, validate_name
from .errors import ConfigError, MatteError
from .lineage import digest

TRACKING_KINDS = ("mask", "clicks", "new_layer")
FILTER_KINDS = ("drop", "merge")
KINDS = TRACKING_KINDS + FILTER_KINDS


class CorrectionError(MatteError):
    """A correction names a layer, frame or file that does not exist (nothing is changed)."""


def corrections_path(project: Project, show: str, shot: str) -> Path:
    return project.root / "corrections" / validate_name("show", show) / f"{validate_name('shot', shot)}.yaml"


def masks_dir(project: Project, show: str, shot: str) -> Path:
    return corrections_path(project, show, shot).with_suffix("")


@dataclass
class Corrections:
    """The parsed corrections of one shot."""

    path: Path
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def masks_folder(self) -> Path:
        return self.path.with_suffix("")

    def tracking_entries(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] in TRACKING_KINDS]

    def filter_entries(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] in FILTER_KINDS]

    def layer_prompts(self) -> dict[int, dict[int, str]]:
        """layer id -> {VFX frame: mask file}; a later entry for the same layer and
        frame replaces an earlier one (the artist's latest word)."""
        prompts: dict[int, dict[int, str]] = {}
        for e in self.tracking_entries():
            prompts.setdefault(int(e["layer"]), {})[int(e["frame"])] = e["mask"]
        return prompts

    def new_layers(self) -> dict[int, str]:
        return {int(e["layer"]): str(e.get("label", "layer")) for e in self.entries if e["kind"] == "new_layer"}

    def layer_digests(self) -> dict[int, str]:
        """Per corrected layer, a digest of its prompts (mask files are content-named)."""
        return {lid: digest(sorted(p.items())) for lid, p in self.layer_prompts().items()}

    def tracking_digest(self) -> str | None:
        if not self.tracking_entries():
            return None
        return digest({"layers": self.layer_digests(), "new": self.new_layers()})

    def filter_digest(self) -> str | None:
        entries = self.filter_entries()
        return digest(entries) if entries else None

    def drops(self) -> list[int]:
        return sorted({int(e["layer"]) for e in self.filter_entries() if e["kind"] == "drop"})

    def merges(self) -> dict[int, int]:
        return {int(e["layer"]): int(e["into"]) for e in self.filter_entries() if e["kind"] == "merge"}

    def load_mask(self, name: str, size: tuple[int, int]) -> np.ndarray:
        """A stored correction mask as bool at plate size (w, h)."""
        path = self.masks_folder / name
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise CorrectionError(f"{path}: correction mask missing or unreadable (referenced by {self.path})")
        if image.shape != (size[1], size[0]):
            raise CorrectionError(f"{path}: correction mask is {image.shape[1]}x{image.shape[0]}, plate is {size[0]}x{size[1]}")
        return image > 127

    def summary(self) -> list[dict[str, Any]]:
        """What lineage reports: every entry with its kind, layer, frame and mask hash."""
        return [dict(e) for e in self.entries]


def load_corrections(project: Project, show: str, shot: str) -> Corrections:
    path = corrections_path(project, show, shot)
    if not path.exists():
        return Corrections(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    entries = data.get("corrections", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected `corrections:` with a list of entries")
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("kind") not in KINDS:
            raise ConfigError(f"{path}: corrections[{k}]: kind must be one of {', '.join(KINDS)}")
        if "layer" not in e:
            raise ConfigError(f"{path}: corrections[{k}]: no layer")
        if e["kind"] in TRACKING_KINDS and ("frame" not in e or "mask" not in e):
            raise ConfigError(f"{path}: corrections[{k}]: a {e['kind']} correction needs frame and mask")
        if e["kind"] == "merge" and "into" not in e:
            raise ConfigError(f"{path}: corrections[{k}]: a merge needs `into`")
    return Corrections(path, entries)


def save_corrections(corrections: Corrections) -> None:
    """Atomic replace: a failed write never leaves a half-written corrections file."""
    corrections.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = corrections.path.with_name(f".{corrections.path.name}.tmp-{os.getpid()}")
    header = "# Artist corrections, written by `matte correct` (see matte_assets/corrections.py).\n"
    tmp.write_text(header + yaml.safe_dump({"corrections": corrections.entries}, sort_keys=False))
    os.replace(tmp, corrections.path)


def store_mask(corrections: Corrections, mask: np.ndarray) -> str:
    """Save a bool mask as a content-named PNG beside the corrections file."""
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise CorrectionError("could not encode the correction mask")
    data = png.tobytes()
    name = f"{hashlib.sha256(data).hexdigest()[:16]}.png"
    corrections.masks_folder.mkdir(parents=True, exist_ok=True)
    target = corrections.masks_folder / name
    if not target.exists():
        tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return name


def read_drawn_mask(path: Path, plate_size: tuple[int, int], original: dict[str, Any]) -> np.ndarray:
    """A drawn mask (PNG/JPEG/TIFF grey or alpha, or EXR channel A / first channel) at
    plate or original resolution -> bool at plate size."""
    path = Path(path)
    if not path.is_file():
        raise CorrectionError(f"{path}: no such mask file")
    if path.suffix.lower() == ".exr":
        from .media.exr import read_exr

        try:
            channels, _ = read_exr(path)
        except MatteError as exc:
            raise CorrectionError(str(exc)) from None
        name = "A" if "A" in channels else sorted(channels)[0]
        values = channels[name] > 0.5
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise CorrectionError(f"{path}: unreadable mask image")
        if image.ndim == 3:
            image = image[..., 3] if image.shape[2] == 4 else image.max(axis=2)
        values = image > (127 if image.dtype == np.uint8 else np.iinfo(image.dtype).max // 2)
    h, w = values.shape
    full = (int(original["width"]), int(original["height"]))
    if (w, h) not in (tuple(plate_size), full):
        raise CorrectionError(
            f"{path}: mask is {w}x{h}; expected the plate ({plate_size[0]}x{plate_size[1]}) "
            f"or the original resolution ({full[0]}x{full[1]})"
        )
    if (w, h) != tuple(plate_size):
        values = cv2.resize(values.astype(np.float32), tuple(plate_size), interpolation=cv2.INTER_AREA) > 0.5
    if not values.any():
        raise CorrectionError(f"{path}: the mask is empty")
    return values


def to_plate_xy(x: float, y: float, original: dict[str, Any], plate_size: tuple[int, int]) -> tuple[float, float]:
    """Original plate pixels (data window coordinates) -> plate pixels."""
    x0, y0 = original["data_window"][0], original["data_window"][1]
    sx = plate_size[0] / float(original["width"])
    sy = plate_size[1] / float(original["height"])
    return (x - x0 + 0.5) * sx - 0.5, (y - y0 + 0.5) * sy - 0.5
