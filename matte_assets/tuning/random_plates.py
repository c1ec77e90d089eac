"""Seeded random locked-off plates with ground truth (automatic-mode benchmark).

`random_plate(seed)` builds a `SyntheticShot` (the renderer of `synthetic.py`) whose
objects, shapes, colours, textures, sizes, speeds and stories all come from
`numpy.random.default_rng(seed)`: the same seed always gives the same plate, another
seed a different one. Each object gets one story:

- `cross`: enters from one side after the first frame and leaves by the other;
- `leave`: in frame at the start, leaves before the end;
- `enter`: comes in late and stays;
- `return`: leaves, stays out for a while and comes back (exit and re-entry);
- `wander`: stays in frame, changing direction.

At least one pair of objects crosses (opposite directions on overlapping rows, one in
front of the other), so occlusion is in every plate. Speeds and sizes keep each pixel
covered in well under half the frames, the `moving` detector's locked-off assumption
(a temporal median recovers the background), which the generator checks and re-draws
a story when it fails. Not the demo's plate: a different background, objects and
stories per seed.

`benchmarks/random_plates.py` runs the pipeline on these through the `matte` CLI.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .synthetic import Keyframe, SyntheticObject, SyntheticShot, ground_truth_masks

STORIES = ("cross", "leave", "enter", "return", "wander")
SHAPES = ("ellipse", "rounded_rect", "blob")
MAX_COVER = 0.45  # most frames any pixel may be covered by objects (temporal median holds below 0.5)


def _colour(rng: np.random.Generator, hue: float) -> tuple[float, float, float]:
    s = float(rng.uniform(0.65, 0.9))
    v = float(rng.uniform(0.7, 0.92))
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, s, v)
    return (r, g, b)


def _story_keys(
    rng: np.random.Generator, story: str, n: int, w: int, h: int, rx: float, ry: float, speed: float, y: float,
    direction: int,
) -> list[Keyframe]:
    """Keyframes (index, x, y) of one story; `direction` +1 moves right, -1 left."""
    out_left, out_right = -rx - 4.0, w + rx + 4.0  # just outside the frame
    vy = float(rng.uniform(-0.12, 0.12)) * speed
    last = n - 1

    def clamp_y(v: float) -> float:
        return float(min(max(v, ry + 2), h - ry - 2))

    if story == "cross":
        start = float(rng.uniform(0.0, 0.3)) * last
        x0, x1 = (out_left, out_right) if direction > 0 else (out_right, out_left)
        # Fast enough to be out again by the end of the shot.
        t1 = start + min(abs(x1 - x0) / speed, last - start)
        return [(start, x0, y), (t1, x1, clamp_y(y + vy * (t1 - start)))]
    if story == "leave":
        x_exit = out_right if direction > 0 else out_left
        t_exit = float(rng.uniform(0.45, 0.8)) * last
        x0 = x_exit - direction * speed * t_exit
        return [(0.0, x0, y), (t_exit, x_exit, clamp_y(y + vy * t_exit))]
    if story == "enter":
        x_entry = out_left if direction > 0 else out_right
        t_in = float(rng.uniform(0.2, 0.5)) * last
        return [(t_in, x_entry, y), (float(last), x_entry + direction * speed * (last - t_in), clamp_y(y + vy * (last - t_in)))]
    if story == "return":
        # Out by one side, turn round off screen, back in: gone for `gap` frames.
        x_exit = out_right if direction > 0 else out_left
        t_exit = float(rng.uniform(0.25, 0.45)) * last
        gap = float(rng.uniform(0.15, 0.3)) * last
        x0 = x_exit - direction * speed * t_exit
        t_back = t_exit + gap
        return [(0.0, x0, y), (t_exit, x_exit, y), (t_back, x_exit, y), (float(last), x_exit - direction * speed * (last - t_back), y)]
    # wander: stays in frame, bouncing between two x positions
    span = float(rng.uniform(0.45, 0.7)) * (w - 2 * rx - 8)
    xa = float(rng.uniform(rx + 4, w - rx - 4 - span))
    xb = xa + span
    if direction < 0:
        xa, xb = xb, xa
    keys: list[Keyframe] = []
    t, x_from, x_to = 0.0, xa, xb
    while t < last:
        keys.append((t, x_from, clamp_y(y + vy * t * 0.3)))
        t += abs(x_to - x_from) / speed
        x_from, x_to = x_to, x_from
    keys.append((t, x_from, clamp_y(y + vy * t * 0.3)))
    return keys


def random_plate(seed: int, width: int = 320, height: int = 180, n_frames: int = 40, n_objects: int | None = None) -> SyntheticShot:
    """A random locked-off shot for `seed`: 2-4 objects (or `n_objects`) at sizes and
    speeds scaled to the frame (designed at 320x180 and 40 frames: half sizes 10-22 px,
    3.5-9 px/frame), one story each, at least one crossing pair. Draws are repeated
    (same rng stream, so still a function of the seed) until the plate is fair: every
    object on screen for at least a fifth of the shot, mostly visible while on screen
    (not hidden behind another for most of its life), and no pixel covered in
    `MAX_COVER` of the frames or more."""
    rng = np.random.default_rng([0x7A7E, seed])
    shot = None
    for _attempt in range(50):
        shot = _draw(rng, width, height, n_frames, n_objects)
        if _fair(shot):
            return shot
    assert shot is not None
    return shot


def _draw(rng: np.random.Generator, width: int, height: int, n_frames: int, n_objects: int | None) -> SyntheticShot:
    s = min(width / 320.0, height / 180.0)
    t_scale = 40.0 / max(n_frames, 2)  # same stories at any length
    count = int(n_objects if n_objects is not None else rng.integers(2, 5))
    base_hue = float(rng.uniform(0, 1))
    objects: list[SyntheticObject] = []
    # The crossing pair: the first two objects travel in opposite directions on close rows.
    cross_y = float(rng.uniform(0.35, 0.65)) * height
    for k in range(count):
        shape = str(rng.choice(SHAPES))
        rx = float(rng.uniform(10, 22)) * s
        ry = float(np.clip(rx * rng.uniform(0.7, 1.4), 9 * s, 24 * s))
        speed = float(rng.uniform(3.5, 9.0)) * s * t_scale
        if k < 2:
            story = "cross" if k == 0 else str(rng.choice(("cross", "leave", "enter", "wander")))
            direction = 1 if k == 0 else -1
            y = cross_y + float(rng.uniform(-0.25, 0.25)) * ry
        else:
            story = str(rng.choice(STORIES))
            direction = int(rng.choice((-1, 1)))
            y = float(rng.uniform(ry + 4, height - ry - 4))
        keys = _story_keys(rng, story, n_frames, width, height, rx, ry, speed, y, direction)
        # Hues spread round the wheel so objects differ in colour (as separate things do).
        hue = base_hue + k / count + float(rng.uniform(-0.06, 0.06))
        objects.append(SyntheticObject(
            name=f"obj{k + 1}", shape=shape, half_size=(rx, ry), colour=_colour(rng, hue),  # type: ignore[arg-type]
            keyframes=tuple(keys), z=int(rng.integers(0, 3)) if k >= 2 else (1 - k),
            texture_scale=float(rng.uniform(2.5, 6.0)) * s, texture_contrast=float(rng.uniform(0.2, 0.45)),
            seed=int(rng.integers(1, 1 << 30)),
        ))
    return SyntheticShot(
        width=width, height=height, n_frames=n_frames, objects=tuple(objects), seed=int(rng.integers(1, 1 << 30)),
        background_colour=tuple(float(c) for c in rng.uniform(0.35, 0.55, size=3)),  # type: ignore[arg-type]
        background_contrast=float(rng.uniform(0.08, 0.18)), background_scale=float(rng.uniform(5.0, 14.0)) * s,
    )


def _fair(shot: SyntheticShot) -> bool:
    """Every object on screen for >= max(6, n/5) frames, >= 60% of its silhouette
    visible on average over them and wholly visible (>= 90%) in at least 3; no pixel
    covered in MAX_COVER of the frames or more."""
    n = shot.n_frames
    on = np.zeros(len(shot.objects), np.int32)
    shown = np.zeros(len(shot.objects), np.float64)
    whole = np.zeros(len(shot.objects), np.int32)
    cover = np.zeros((shot.height, shot.width), np.int32)
    for i in range(n):
        full = ground_truth_masks(shot, i, visible=False)
        vis = ground_truth_masks(shot, i)
        union = np.zeros((shot.height, shot.width), bool)
        for k, obj in enumerate(shot.objects):
            a = int(full[obj.name].sum())
            union |= vis[obj.name]
            if a >= 30:  # on screen (a sliver at the edge is not)
                on[k] += 1
                share = float(vis[obj.name].sum()) / a
                shown[k] += share
                whole[k] += share >= 0.9
        cover += union
    if float(cover.max()) / n >= MAX_COVER:
        return False
    for k in range(len(shot.objects)):
        if on[k] < max(6, n // 5) or shown[k] / on[k] < 0.6 or whole[k] < 3:
            return False
    return True


def cover_fraction(shot: SyntheticShot) -> float:
    """Largest share of frames in which any one pixel is covered by some object."""
    cover = np.zeros((shot.height, shot.width), np.int32)
    for i in range(shot.n_frames):
        union = np.zeros((shot.height, shot.width), bool)
        for m in ground_truth_masks(shot, i).values():
            union |= m
        cover += union
    return float(cover.max()) / shot.n_frames


def plate_summary(shot: SyntheticShot) -> str:
    """One line: each object's shape and the frame ranges it is on screen."""
    spans: dict[str, list[int]] = {o.name: [] for o in shot.objects}
    for i in range(shot.n_frames):
        for name, m in ground_truth_masks(shot, i, visible=False).items():
            if m.sum() >= 30:
                spans[name].append(i)
    parts = []
    for obj in shot.objects:
        frames = spans[obj.name]
        runs, start = [], None
        for a, b in zip([None, *frames], [*frames, None]):
            if a is None or b is None or b != a + 1:
                if start is not None and a is not None:
                    runs.append(f"{start}-{a}")
                start = b
        parts.append(f"{obj.name} {obj.shape} z{obj.z} [{', '.join(runs)}]")
    return "; ".join(parts)
