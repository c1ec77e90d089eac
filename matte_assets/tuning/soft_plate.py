"""A synthetic plate with KNOWN soft alpha, for measuring edge quality (deliver.edges).

Rendered at full resolution by supersampling: every object's coverage of a pixel is the
mean of its binary silhouette over `supersample`^2 sub-pixel positions and, for motion
blur, over `time_samples` instants across the shutter. The plate is the objects
composited over a textured background with those coverages, so its edges are
anti-aliased, motion-blurred and (for the hairy object) made of strands thinner than a
pixel, and the true alpha of every object is known exactly.

- `ball`: an ellipse crossing the frame fast (~45 px/frame: ~15 px of motion blur);
- `box`: a rounded rectangle (~25 px/frame);
- `hairy`: a round head with ~90 curved strands 0.25-1 px wide (fine detail), ~22 px/frame.
The shutter is open 35% of the frame interval for all of them.

Objects never overlap and each pixel is covered in well under half of the frames, so the
`moving` detector's median background holds. Pure function of (shot, index)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..media.colour import srgb_to_linear


@dataclass(frozen=True)
class SoftShot:
    width: int = 960
    height: int = 540
    n_frames: int = 24
    first_frame: int = 1001
    supersample: int = 4
    time_samples: int = 6
    shutter: float = 0.35
    seed: int = 7


NAMES = ("ball", "box", "hairy")
_COLOURS = {"ball": (0.85, 0.2, 0.15), "box": (0.15, 0.3, 0.85), "hairy": (0.32, 0.2, 0.1)}
_BACKGROUND = (0.62, 0.62, 0.58)


def _position(shot: SoftShot, name: str, t: float) -> tuple[float, float]:
    """Centre in full-resolution pixels at (fractional) frame index t."""
    w, h, n = shot.width, shot.height, max(shot.n_frames - 1, 1)
    a = t / n
    if name == "ball":  # fast, left to right across the upper third: ~1.1 frame widths
        return (-0.05 + 1.1 * a) * w, 0.27 * h + 0.04 * h * math.sin(3.0 * a)
    if name == "box":  # lower left to the middle
        return (0.05 + 0.6 * a) * w, (0.74 - 0.06 * a) * h
    return (0.95 - 0.55 * a) * w, (0.52 + 0.06 * a) * h  # hairy: right to the middle, above the box


@lru_cache(maxsize=8)
def _sprites(shot: SoftShot) -> dict[str, np.ndarray]:
    """Each object's binary silhouette at supersampled resolution, centred."""
    ss, s = shot.supersample, shot.width / 960.0
    out: dict[str, np.ndarray] = {}
    rx, ry = round(52 * s * ss), round(40 * s * ss)
    ball = np.zeros((2 * ry + 1, 2 * rx + 1), np.uint8)
    cv2.ellipse(ball, (rx, ry), (rx, ry), 0, 0, 360, 1, -1)
    out["ball"] = ball.astype(bool)
    bw, bh, r = round(70 * s * ss), round(48 * s * ss), round(14 * s * ss)
    box = np.zeros((2 * bh + 1, 2 * bw + 1), np.uint8)
    cv2.rectangle(box, (r, 0), (2 * bw - r, 2 * bh), 1, -1)
    cv2.rectangle(box, (0, r), (2 * bw, 2 * bh - r), 1, -1)
    for cx, cy in ((r, r), (2 * bw - r, r), (r, 2 * bh - r), (2 * bw - r, 2 * bh - r)):
        cv2.circle(box, (cx, cy), r, 1, -1)
    out["box"] = box.astype(bool)
    # Head radius 42 px, strands up to 26 px beyond it, 1-4 sub-pixels (0.25-1 px) wide.
    head, reach = 42 * s * ss, 26 * s * ss
    half = int(math.ceil(head + reach)) + 2
    hairy = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
    cv2.circle(hairy, (half, half), round(head), 1, -1)
    rng = np.random.default_rng(shot.seed)
    for _ in range(90):
        theta = rng.uniform(-math.pi, 0.15 * math.pi)  # mostly the top half, like hair
        length = rng.uniform(0.35, 1.0) * reach
        bend = rng.uniform(-0.5, 0.5)
        pts = []
        for u in np.linspace(0.0, 1.0, 12):
            rad = head * 0.9 + u * (length + 0.1 * head)
            ang = theta + bend * u * u
            pts.append((half + rad * math.cos(ang), half + rad * math.sin(ang)))
        thickness = int(rng.integers(1, 5))
        cv2.polylines(hairy, [np.round(np.array(pts)).astype(np.int32)], False, 1, thickness, cv2.LINE_8)
    out["hairy"] = hairy.astype(bool)
    return out


def _splat(alpha: np.ndarray, sprite: np.ndarray, centre: tuple[float, float], ss: int, weight: float) -> None:
    """Add `weight` x the sprite's pixel coverage (block means of the supersampled
    silhouette placed at `centre`) into the full-resolution `alpha`."""
    hs, ws = sprite.shape
    X = int(round(centre[0] * ss - ws / 2.0))
    Y = int(round(centre[1] * ss - hs / 2.0))
    px, py = X // ss, Y // ss
    rx, ry = X - px * ss, Y - py * ss
    hc, wc = -(-(ry + hs) // ss) * ss, -(-(rx + ws) // ss) * ss
    canvas = np.zeros((hc, wc), np.float32)
    canvas[ry : ry + hs, rx : rx + ws] = sprite
    cover = canvas.reshape(hc // ss, ss, wc // ss, ss).mean(axis=(1, 3))
    H, W = alpha.shape
    y0, x0 = max(py, 0), max(px, 0)
    y1, x1 = min(py + cover.shape[0], H), min(px + cover.shape[1], W)
    if y1 > y0 and x1 > x0:
        alpha[y0:y1, x0:x1] += weight * cover[y0 - py : y1 - py, x0 - px : x1 - px]


def true_alpha(shot: SoftShot, index: int) -> dict[str, np.ndarray]:
    """Each object's exact coverage (H, W) float32 in [0, 1] at frame `index`."""
    sprites = _sprites(shot)
    n = shot.time_samples
    offsets = [0.0] if n < 2 else [shot.shutter * (k / (n - 1) - 0.5) for k in range(n)]
    out = {}
    for name in NAMES:
        alpha = np.zeros((shot.height, shot.width), np.float32)
        for dt in offsets:
            _splat(alpha, sprites[name], _position(shot, name, index + dt), shot.supersample, 1.0 / len(offsets))
        out[name] = np.clip(alpha, 0.0, 1.0)
    return out


def _texture(shot: SoftShot, name: str, index: int, amplitude: float, period: float) -> np.ndarray:
    """A texture fixed to the object (or the background when name is ''), so optical flow
    can follow it: a sum of sines in object coordinates."""
    cx, cy = _position(shot, name, index) if name else (0.0, 0.0)
    ys, xs = np.mgrid[0 : shot.height, 0 : shot.width].astype(np.float32)
    u, v = (xs - cx) / period, (ys - cy) / period
    phase = {"": 0.0, "ball": 1.0, "box": 2.0, "hairy": 3.0}[name]
    return 1.0 + amplitude * (np.sin(u + phase) * np.cos(0.7 * v) + 0.5 * np.sin(1.9 * u - 1.3 * v + phase))


def render(shot: SoftShot, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(scene-linear RGB (H, W, 3) float32, true alpha per object)."""
    alphas = true_alpha(shot, index)
    bg = srgb_to_linear(np.array(_BACKGROUND, np.float32))
    image = bg[None, None, :] * _texture(shot, "", index, 0.12, 23.0)[..., None]
    for name in NAMES:
        colour = srgb_to_linear(np.array(_COLOURS[name], np.float32))
        fg = colour[None, None, :] * _texture(shot, name, index, 0.3, 5.0)[..., None]
        a = alphas[name][..., None]
        image = image * (1.0 - a) + fg * a
    rng = np.random.default_rng([shot.seed, index])
    image = image + rng.normal(0.0, 0.002, image.shape).astype(np.float32)
    return np.maximum(image, 0.0).astype(np.float32), alphas


def write_plate(shot: SoftShot, folder: Path, shot_name: str = "sh010") -> str:
    """Plate EXRs (half, scene-linear) into `folder`; returns the frame pattern."""
    from ..media.exr import write_rgb_exr

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(shot.n_frames):
        path = folder / f"{shot_name}.{shot.first_frame + index:04d}.exr"
        if not path.exists():
            write_rgb_exr(path, render(shot, index)[0], compression="zip")
    return str(folder / f"{shot_name}.####.exr")
