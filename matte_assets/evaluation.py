"""Scoring delivered mattes against ground-truth masks (J: region IoU, DAVIS)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from .algorithms.metrics import JAccumulator, MatchResult
from .errors import MatteError
from .media.exr import read_exr

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
