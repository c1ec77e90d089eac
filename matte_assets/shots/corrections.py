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

import numpy as np
import yaml

from ..config import Project, validate_name
from ..errors import ConfigError, MatteError
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
        folder = self.masks_folder.resolve()
        if folder not in path.resolve().parents:  # a hand-edited `mask:` must not reach outside the project
            raise CorrectionError(
                f"{self.path}: mask {name!r} is outside the shot's corrections folder {self.masks_folder}; "
                "record masks with `matte correct --mask`"
            )
        import cv2  # lazily: planning a run reads corrections without images

        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise CorrectionError(f"{path}: correction mask missing or unreadable (referenced by {self.path})")
        if image.shape != (size[1], size[0]) and _same_aspect(image.shape, size):
            # Stored at an earlier working size (plate.max_side changed since): the
            # artist's shape still holds, resampled to the current plate.
            return cv2.resize((image > 127).astype(np.float32), tuple(size), interpolation=cv2.INTER_AREA) > 0.5
        if image.shape != (size[1], size[0]):
            raise CorrectionError(f"{path}: correction mask is {image.shape[1]}x{image.shape[0]}, plate is {size[0]}x{size[1]}")
        return image > 127

    def summary(self) -> list[dict[str, Any]]:
        """What lineage reports: every entry with its kind, layer, frame and mask hash."""
        return [dict(e) for e in self.entries]


def _same_aspect(shape: tuple[int, ...], size: tuple[int, int]) -> bool:
    h, w = shape[:2]
    return abs(w / h - size[0] / size[1]) <= 0.01 * size[0] / size[1]


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
        mask = e.get("mask")
        if mask is not None and (not isinstance(mask, str) or Path(mask).name != mask or mask in ("", ".", "..")):
            raise ConfigError(
                f"{path}: corrections[{k}].mask: {mask!r} must be a file name in {path.with_suffix('')} "
                "(masks outside the project's corrections folder are not read)"
            )
    return Corrections(path, entries)


def save_corrections(corrections: Corrections) -> None:
    """Atomic replace: a failed write never leaves a half-written corrections file."""
    corrections.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = corrections.path.with_name(f".{corrections.path.name}.tmp-{os.getpid()}")
    header = "# Artist corrections, written by `matte correct` (see matte_assets/shots/corrections.py).\n"
    tmp.write_text(header + yaml.safe_dump({"corrections": corrections.entries}, sort_keys=False))
    os.replace(tmp, corrections.path)


def store_mask(corrections: Corrections, mask: np.ndarray) -> str:
    """Save a bool mask as a content-named PNG beside the corrections file."""
    import cv2  # lazily: planning a run reads corrections without images

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
    import cv2  # lazily: planning a run reads corrections without images

    path = Path(path)
    if not path.is_file():
        raise CorrectionError(f"{path}: no such mask file")
    if path.suffix.lower() == ".exr":
        from ..media.exr import read_exr

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


NEW_LAYER_BASE = 1000  # artist layers get ids 1001, 1002 ...: never an automatic layer's id


def resolve_layer(ref: str, tracked, filtered, registry: dict[int, str] | None = None) -> int:
    """A tracked-layer id ('3') or a delivered layer name ('moving2') -> tracked id.
    Delivered names come from the shot's name registry (every name ever delivered, see
    layer_names.py), so `moving1` means the same object after moving2 was dropped."""
    if ref.isdigit():
        lid = int(ref)
        if lid not in tracked.layer_ids:
            raise CorrectionError(f"layer {lid} does not exist (tracked layers: {tracked.layer_ids})")
        return lid
    for lid, name in (registry or {}).items():
        if name == ref:
            return lid
    if registry:
        known = ", ".join(sorted(registry.values()))
    elif filtered is not None:
        names = dict(zip(filtered.names(), filtered.layer_ids))
        if ref in names:
            return int(names[ref])
        known = ", ".join(sorted(names)) or "none"
    else:
        known = "none (run the shot first)"
    raise CorrectionError(f"layer {ref!r} does not exist (delivered layers: {known}; or give a tracked layer id)")


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise CorrectionError(f"bad point {text!r}: expected X,Y in original plate pixels") from None
    return x, y


def record_correction(
    project: Project,
    show: str,
    shot: str,
    *,
    layer: str | None,
    frame: int | None,
    add: list[str] = (),  # type: ignore[assignment]
    remove: list[str] = (),  # type: ignore[assignment]
    mask: Path | None = None,
    drop: bool = False,
    merge_into: str | None = None,
    new_layer: bool = False,
    label: str | None = None,
) -> dict[str, Any]:
    """Validate a correction against the stored shot and append it to the corrections
    file. Anything invalid raises before the file is touched."""
    from io_managers.zarr_io_manager import open_stage
    from .shot import project_store
    from resources import registry
    from resources.backends import PointPrompt

    from ..algorithms.geometry import mask_to_box
    from ..config import partition_key

    actions = [bool(add or remove), mask is not None and not new_layer, drop, merge_into is not None, new_layer]
    if sum(actions) != 1:
        raise CorrectionError("give exactly one of --add/--remove, --mask, --drop, --merge-into, --new-layer")
    store = project_store(project)
    key = partition_key(show, shot)
    if store.head(key, "tracked_layers") is None:
        # Before any run only roto keyframes make sense: a new layer, or another
        # keyframe for one (see roto.py); anything else needs tracked layers.
        pre = load_corrections(project, show, shot).new_layers()
        roto_layer = int(layer) if layer is not None and layer.isdigit() and int(layer) in pre else None
        if new_layer or (roto_layer is not None and mask is not None and not (add or remove or drop or merge_into)):
            from .roto import record_before_run

            return record_before_run(project, show, shot, frame=frame, mask=mask, layer=roto_layer, label=label)
        raise CorrectionError(f"{show}/{shot} has no tracked layers yet: run `matte run {show}/{shot}` first")
    plate = open_stage(store, key, "plate")
    tracked = open_stage(store, key, "tracked_layers")
    filtered = open_stage(store, key, "filtered_layers") if store.head(key, "filtered_layers") else None
    original = plate.attrs["original"]
    corrections = load_corrections(project, show, shot)
    names_registry = delivered_names(project, show, shot)

    def frame_index() -> int:
        if frame is None:
            raise CorrectionError("--frame is required for this correction")
        if frame not in plate.frame_numbers:
            numbers = plate.frame_numbers
            raise CorrectionError(f"frame {frame} is not in the plate of {show}/{shot} ({numbers[0]}-{numbers[-1]})")
        return plate.frame_numbers.index(frame)

    if new_layer:
        if mask is None:
            raise CorrectionError("--new-layer needs --mask PATH")
        index = frame_index()
        drawn = read_drawn_mask(mask, plate.size, original)
        taken = set(tracked.layer_ids) | set(corrections.new_layers())
        lid = max([NEW_LAYER_BASE, *(i for i in taken if i > NEW_LAYER_BASE)]) + 1
        settings = project.shot(show, shot)
        entry = {"kind": "new_layer", "layer": lid, "frame": frame, "label": label or settings.labels[0],
                 "mask": store_mask(corrections, drawn), "source": str(mask)}
    else:
        if layer is None:
            raise CorrectionError("--layer is required")
        all_ids = set(tracked.layer_ids) | set(corrections.new_layers())
        lid = int(layer) if layer.isdigit() and int(layer) in all_ids else resolve_layer(layer, tracked, filtered, names_registry)
        if drop:
            entry = {"kind": "drop", "layer": lid}
        elif merge_into is not None:
            into = int(merge_into) if merge_into.isdigit() and int(merge_into) in all_ids else resolve_layer(merge_into, tracked, filtered, names_registry)
            if into == lid:
                raise CorrectionError(f"cannot merge layer {lid} into itself")
            entry = {"kind": "merge", "layer": lid, "into": into}
        elif mask is not None:
            index = frame_index()
            entry = {"kind": "mask", "layer": lid, "frame": frame,
                     "mask": store_mask(corrections, read_drawn_mask(mask, plate.size, original)), "source": str(mask)}
        else:
            index = frame_index()
            if lid not in tracked.layer_ids:
                raise CorrectionError(f"layer {lid} has no tracked result yet: run the shot before clicking on it")
            clicks = [PointPrompt(*to_plate_xy(*_point(p), original, plate.size), True) for p in add]
            clicks += [PointPrompt(*to_plate_xy(*_point(p), original, plate.size), False) for p in remove]
            w, h = plate.size
            for c in clicks:
                if not (0 <= c.x < w and 0 <= c.y < h):
                    raise CorrectionError(f"click ({c.x:.0f}, {c.y:.0f}) in plate pixels is outside the {w}x{h} plate")
            current = tracked.masks_at(index, [lid])[0]
            box = mask_to_box(current)
            xs = [c.x for c in clicks if c.positive] + ([box[0], box[2]] if box else [])
            ys = [c.y for c in clicks if c.positive] + ([box[1], box[3]] if box else [])
            if not xs:
                raise CorrectionError(f"layer {lid} is empty at frame {frame}: add a positive click or draw a mask")
            pad = 4.0  # a positive click outside the current mask widens the box around it
            box = np.array([[max(0, min(xs) - pad), max(0, min(ys) - pad), min(w, max(xs) + pad), min(h, max(ys) + pad)]], np.float32)
            segmenter = registry.segmenter(project.shot(show, shot))
            refined, _ = segmenter.segment(plate.frame(index), box, [clicks])
            if not refined[0].any():
                raise CorrectionError(f"the clicks left layer {lid} empty at frame {frame}; draw a mask instead")
            entry = {"kind": "clicks", "layer": lid, "frame": frame, "add": [list(_point(p)) for p in add],
                     "remove": [list(_point(p)) for p in remove], "mask": store_mask(corrections, refined[0])}
    corrections.entries.append(entry)
    save_corrections(corrections)
    return entry


def delivered_names(project: Project, show: str, shot: str) -> dict[int, str]:
    """The shot's name registry: tracked-layer id -> every name ever delivered for it."""
    from ..stages.layer_names import load_registry

    return load_registry(project.deliveries / show / shot)


def undo_correction(project: Project, show: str, shot: str, layer: str | None = None) -> dict[str, Any]:
    """Remove the most recent correction (of `layer`, a tracked id or delivered name, when
    given) from the corrections file, atomically. The content-named mask PNGs stay: older
    deliveries' lineage names them. The next `matte run` reruns what the entry touched."""
    corrections = load_corrections(project, show, shot)
    if not corrections.entries:
        raise CorrectionError(f"{corrections.path}: no corrections to undo")
    index = len(corrections.entries) - 1
    if layer is not None:
        lid: int | None = int(layer) if layer.isdigit() else None
        if lid is None:
            for known_id, name in delivered_names(project, show, shot).items():
                if name == layer:
                    lid = known_id
            if lid is None:
                raise CorrectionError(f"layer {layer!r} was never delivered for {show}/{shot}; give a tracked layer id")
        matches = [k for k, e in enumerate(corrections.entries) if int(e["layer"]) == lid or e.get("into") == lid]
        if not matches:
            raise CorrectionError(f"{corrections.path}: no correction of layer {layer} to undo")
        index = matches[-1]
    entry = corrections.entries.pop(index)
    save_corrections(corrections)
    return entry
