"""Scoring delivered mattes or stored layers against ground-truth masks (DAVIS J and F,
identity switches, layer precision / recall); `matte eval` and the demo's score."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..algorithms.metrics import (
    DAVIS_BOUND_TH,
    JAccumulator,
    MatchResult,
    QualityAccumulator,
    QualityResult,
    boundary_radius,
)
from ..errors import MatteError
from ..media.exr import read_exr
from ..stages.stage_data import LayersData

TRUTH_RE = re.compile(r"^(?P<object>.+)\.(?P<frame>-?\d+)\.png$")


def truth_objects(truth_dir: Path) -> dict[str, dict[int, Path]]:
    """`<object>.<frame>.png` files -> {object: {frame: path}}."""
    objects: dict[str, dict[int, Path]] = {}
    for path in sorted(Path(truth_dir).glob("*.png")):
        m = TRUTH_RE.match(path.name)
        if m:
            objects.setdefault(m["object"], {})[int(m["frame"])] = path
    if not objects:
        raise MatteError(f"{truth_dir}: no ground-truth files named <object>.<frame>.png")
    return objects


def score_delivery(files: list[tuple[int, Path]], truth_dir: Path) -> tuple[MatchResult, list[str], list[str]]:
    """J of delivered layers (`<layer>.A` channels, > 0.5) against the truth, objects
    matched to layers one to one. Returns (result, object names, layer names)."""
    objects = truth_objects(truth_dir)
    names = sorted(objects)
    layer_names: list[str] | None = None
    acc: JAccumulator | None = None
    for frame, path in files:
        channels, _ = read_exr(path)
        if layer_names is None:
            layer_names = sorted(c[:-2] for c in channels if c.endswith(".A"))
            acc = JAccumulator(len(names), len(layer_names))
        layers = np.stack([channels[f"{n}.A"] > 0.5 for n in layer_names]) if layer_names else None
        h, w = next(iter(channels.values())).shape
        gt = np.zeros((len(names), h, w), bool)
        for k, name in enumerate(names):
            p = objects[name].get(frame)
            if p is not None:
                img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                if img is None or img.shape != (h, w):
                    raise MatteError(f"{p}: unreadable or not {w}x{h}")
                gt[k] = img > 127
        assert acc is not None
        acc.add_frame(gt, layers if layers is not None else np.zeros((0, h, w), bool))
    if acc is None:
        raise MatteError("no delivered frames to score")
    return acc.result(), names, layer_names or []


# --- `matte eval`: J, F, switches and layer precision / recall ----------------------------

FRAME_RE = re.compile(r"^(?P<stem>.*?)(?P<frame>-?\d+)\.png$")


def load_truth(truth_dir: Path) -> dict[str, dict[int, Path]]:
    """Ground truth as {object: {frame: path}} from either layout:
    - `<object>.<frame>.png` files (several objects, the demo's layout);
    - a single-object folder of per-frame PNGs whose names end in the frame number
      (`0001.png`, `mask_1001.png`): one object named after the folder."""
    folder = Path(truth_dir)
    if not folder.is_dir():
        raise MatteError(f"{folder}: no such truth folder")
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not pngs:
        raise MatteError(f"{folder}: no PNG files (expected <object>.<frame>.png, or per-frame PNGs of one object)")
    named = [TRUTH_RE.match(p.name) for p in pngs]
    if all(named):
        objects: dict[str, dict[int, Path]] = {}
        for p, m in zip(pngs, named):
            assert m is not None
            objects.setdefault(m["object"], {})[int(m["frame"])] = p
        return objects
    frames: dict[int, Path] = {}
    for p in pngs:
        m = FRAME_RE.match(p.name)
        if m is None:
            raise MatteError(
                f"{p}: truth file name has no frame number (expected <object>.<frame>.png or a name ending in the frame)"
            )
        frame = int(m["frame"])
        if frame in frames:
            raise MatteError(f"{p}: frame {frame} also given by {frames[frame].name}")
        frames[frame] = p
    return {folder.resolve().name: frames}


def read_truth_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A truth PNG as a bool (H, W) mask at `size` = (w, h): pixels > 127 (any channel
    for colour PNGs). A truth larger than `size` (stored layers are at plate resolution)
    is reduced by area averaging and kept where more than half a pixel is covered; the
    aspect ratio must match."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MatteError(f"{path}: unreadable truth image")
    if img.ndim == 3:
        img = img[..., :3].max(axis=2)
    scale = 255 if img.dtype == np.uint8 else (65535 if img.dtype == np.uint16 else 1)
    mask = img.astype(np.float32) / scale > 0.5
    w, h = size
    ih, iw = mask.shape
    if (iw, ih) == (w, h):
        return mask
    if abs(iw / ih - w / h) > 0.01 or iw < w or ih < h:
        raise MatteError(f"{path}: truth is {iw}x{ih}, cannot be scored against {w}x{h} layers (aspect or size differs)")
    area = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return area > 0.5


@dataclass
class EvalReport:
    """What `matte eval` prints: per object its layer, J and F; the means; layer
    precision / recall; identity switches; what was scored."""

    source: str  # what was scored (delivery folder, stage and version)
    objects: list[str]
    layers: list[str]
    frames: list[int]  # frame numbers scored
    size: tuple[int, int]  # (w, h) the masks were compared at
    result: QualityResult

    @property
    def mean_j(self) -> float:
        return self.result.mean_j

    @property
    def mean_f(self) -> float:
        return self.result.mean_f

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        m = r.match
        per_object = []
        for k, name in enumerate(self.objects):
            lay = m.assignment.get(k)
            per_object.append(
                {
                    "object": name,
                    "layer": self.layers[lay] if lay is not None else None,
                    "j": round(float(m.per_object_j[k]), 6),
                    "f": round(float(r.per_object_f[k]), 6),
                    "found": k not in r.missed_objects,
                    "switches": r.switches[k],
                    "switch_frames": r.switch_frames[k],
                }
            )
        return {
            "source": self.source,
            "frames": {"count": len(self.frames), "first": self.frames[0], "last": self.frames[-1]},
            "size": list(self.size),
            "objects": per_object,
            "mean_j": round(m.mean_j, 6),
            "mean_f": round(r.mean_f, 6),
            "mean_jf": round((m.mean_j + r.mean_f) / 2, 6),
            "layers": self.layers,
            "layer_precision": round(r.layer_precision, 6),
            "object_recall": round(r.object_recall, 6),
            "spurious_layers": [self.layers[i] for i in r.spurious_layers],
            "missed_objects": [self.objects[i] for i in r.missed_objects],
            "identity_switches": r.total_switches,
            "conventions": {
                "bound_th": r.bound_th,
                "boundary_radius_px": boundary_radius((self.size[1], self.size[0]), r.bound_th),
                "match_j": r.match_j,
                "switch_iou": r.switch_iou,
            },
        }

    def table(self) -> str:
        r = self.result
        m = r.match
        w = max([6, *(len(n) for n in self.objects)])
        lw = max([5, *(len(n) for n in self.layers)])
        lines = [
            f"scored: {self.source}",
            f"frames: {len(self.frames)} ({self.frames[0]}-{self.frames[-1]}) at {self.size[0]}x{self.size[1]}",
            f"{'object':<{w}}  {'layer':<{lw}}  {'J':>6}  {'F':>6}  switches",
        ]
        for k, name in enumerate(self.objects):
            lay = m.assignment.get(k)
            layer = self.layers[lay] if lay is not None else "(none)"
            lines.append(
                f"{name:<{w}}  {layer:<{lw}}  {m.per_object_j[k]:6.3f}  {r.per_object_f[k]:6.3f}  {r.switches[k]}"
                + (f" at {', '.join(map(str, r.switch_frames[k]))}" if r.switch_frames[k] else "")
            )
        lines.append(f"{'mean':<{w}}  {'':<{lw}}  {m.mean_j:6.3f}  {r.mean_f:6.3f}  {r.total_switches}")
        found = len(r.found)
        spurious = ", ".join(self.layers[i] for i in r.spurious_layers) or "none"
        missed = ", ".join(self.objects[i] for i in r.missed_objects) or "none"
        lines.append(
            f"layers: {len(self.layers)} for {len(self.objects)} objects; precision {r.layer_precision:.3f} "
            f"({found}/{len(self.layers)} match an object; spurious: {spurious}), "
            f"recall {r.object_recall:.3f} ({found}/{len(self.objects)} objects found; missed: {missed})"
        )
        return "\n".join(lines)


def _scored_frames(available: list[int], truth: dict[str, dict[int, Path]], truth_dir: Path) -> list[int]:
    """Frames with both a result and at least one truth file (sparse truth is fine)."""
    truth_frames = set().union(*(set(v) for v in truth.values()))
    frames = [f for f in available if f in truth_frames]
    if not frames:
        lo, hi = min(truth_frames), max(truth_frames)
        raise MatteError(
            f"{truth_dir}: truth frames {lo}-{hi} do not overlap the scored frames {available[0]}-{available[-1]}"
        )
    return frames


def _truth_stack(truth: dict[str, dict[int, Path]], names: list[str], frame: int, size: tuple[int, int]) -> np.ndarray:
    # An object without a file for a frame that has truth for others is absent there.
    w, h = size
    gt = np.zeros((len(names), h, w), bool)
    for k, name in enumerate(names):
        path = truth[name].get(frame)
        if path is not None:
            gt[k] = read_truth_mask(path, size)
    return gt


def evaluate_delivery(
    files: list[tuple[int, Path]],
    truth_dir: Path,
    *,
    source: str | None = None,
    bound_th: float = DAVIS_BOUND_TH,
) -> EvalReport:
    """Delivered EXRs (`<layer>.A` > 0.5, at the plate's original resolution) against the
    truth; the same J as `score_delivery` (same masks, same matching) plus F, switches
    and layer precision / recall."""
    if not files:
        raise MatteError("no delivered frames to score")
    truth = load_truth(truth_dir)
    names = sorted(truth)
    by_frame = dict(files)
    frames = _scored_frames(sorted(by_frame), truth, truth_dir)
    acc: QualityAccumulator | None = None
    layer_names: list[str] = []
    size = (0, 0)
    for frame in frames:
        path = by_frame[frame]
        channels, _ = read_exr(path)
        if acc is None:
            layer_names = sorted(c[:-2] for c in channels if c.endswith(".A"))
            acc = QualityAccumulator(len(names), len(layer_names), bound_th=bound_th)
        h, w = next(iter(channels.values())).shape
        size = (w, h)
        missing = [n for n in layer_names if f"{n}.A" not in channels]
        if missing:
            raise MatteError(f"{path}: channels {', '.join(f'{n}.A' for n in missing)} missing (present in the first frame)")
        layers = np.stack([channels[f"{n}.A"] > 0.5 for n in layer_names]) if layer_names else np.zeros((0, h, w), bool)
        acc.add_frame(_truth_stack(truth, names, frame, size), layers, frame)
    assert acc is not None
    folder = str(Path(files[0][1]).parent)
    return EvalReport(source or f"delivery {folder}", names, layer_names, frames, size, acc.result())


def evaluate_layers(
    layers: LayersData,
    frame_numbers: list[int],
    truth_dir: Path,
    *,
    names: list[str] | None = None,
    source: str = "stored layers",
    bound_th: float = DAVIS_BOUND_TH,
) -> EvalReport:
    """Stored layers (tracked or filtered) at plate resolution against the truth, the
    truth reduced to that resolution (see `read_truth_mask`). Streams one frame at a time."""
    if len(frame_numbers) != layers.n_frames:
        raise MatteError(f"{source}: {layers.n_frames} frames stored but {len(frame_numbers)} frame numbers given")
    truth = load_truth(truth_dir)
    objects = sorted(truth)
    ids = layers.layer_ids
    layer_names = names or layer_display_names(layers)
    index_of = {f: i for i, f in enumerate(frame_numbers)}
    frames = _scored_frames(list(frame_numbers), truth, truth_dir)
    size = layers.size
    acc = QualityAccumulator(len(objects), len(ids), bound_th=bound_th)
    for frame in frames:
        acc.add_frame(_truth_stack(truth, objects, frame, size), layers.masks_at(index_of[frame], ids), frame)
    return EvalReport(source, objects, layer_names, frames, size, acc.result())


def layer_display_names(layers: LayersData) -> list[str]:
    """Filtered layers have delivery names (`moving1`); tracked layers only ids and
    labels, shown as `<label>#<id>`."""
    if "name" in layers.table:
        return [str(n) for n in layers.table["name"]]
    return [f"{label}#{lid}" for label, lid in zip(layers.table["label"], layers.layer_ids)]
