"""Deterministic synthetic shots with ground truth.

Used by `matte demo`, the tests and the quality benchmarks. A shot is a locked-off,
textured, low-saturation background with textured, saturated objects moving over it.
Each object's texture is fixed to the object (it moves with it), so optical flow can
track it. Rendering is a pure function of `(shot, index)`: all randomness comes from
`numpy.random.default_rng` seeded with the shot seed (and the frame index for sensor
noise), never from global state, so repeated calls are bit-identical.

Pixels are scene-linear float32 RGB (colours are designed in sRGB and converted with
`srgb_to_linear`); specular highlights may exceed 1.0, as on a real EXR plate. Ground
truth is the *visible* mask per object: parts hidden by an object in front are
excluded, and the mask is empty while the object is outside the frame.

Optional, off by default (the hard-case suite uses them; a shot that leaves them off
renders exactly as before): a camera path (pan: the frame is a window onto a wider
background, objects move in world coordinates), motion blur (`shutter` > 0: the frame
is the mean of sub-frame renders over the shutter interval; the truth is where an
object covers at least half the samples), a lighting gain over time, and `groups`
(one truth object made of several drawn objects, e.g. a body and the bag it carries;
`truth_masks` gives their union).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from matte_assets.media.colour import srgb_to_linear, to_display_uint8

Shape = Literal["ellipse", "rounded_rect", "blob"]
Keyframe = tuple[float, float, float]  # (frame index, centre x, centre y) in pixels


@dataclass(frozen=True)
class SyntheticObject:
    """One moving object. Frozen (hashable) so prepared textures can be cached per shot."""

    name: str
    shape: Shape
    half_size: tuple[float, float]  # (rx, ry) in pixels
    colour: tuple[float, float, float]  # base colour, sRGB-encoded in [0, 1]
    keyframes: tuple[Keyframe, ...]  # linear in between, held before the first / after the last
    z: int = 0  # larger is nearer the camera (drawn on top)
    texture_scale: float = 6.0  # feature size of the surface texture, pixels
    texture_contrast: float = 0.35  # relative brightness modulation of the texture
    highlight: float = 0.0  # peak scene-linear value added by a specular spot (0: none)
    seed: int = 0  # texture seed, combined with the shot seed

    def position(self, index: float) -> tuple[float, float]:
        """Centre (x, y) in pixels at frame `index` (0-based)."""
        keys = sorted(self.keyframes)
        if index <= keys[0][0]:
            return keys[0][1], keys[0][2]
        for (t0, x0, y0), (t1, x1, y1) in zip(keys, keys[1:]):
            if index <= t1:
                a = (index - t0) / (t1 - t0) if t1 > t0 else 1.0
                return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return keys[-1][1], keys[-1][2]


@dataclass(frozen=True)
class SyntheticShot:
    """A locked-off shot: size, length, frame numbering, objects and background. Frozen
    (hashable): the per-shot textures are cached on it, so edit with `dataclasses.replace`."""

    width: int
    height: int
    n_frames: int
    objects: tuple[SyntheticObject, ...]
    first_frame: int = 1001
    seed: int = 0
    background_colour: tuple[float, float, float] = (0.46, 0.45, 0.42)  # sRGB, low saturation
    background_contrast: float = 0.16  # amplitude of the background texture (sRGB units)
    background_scale: float = 20.0  # feature size of the background texture, pixels
    noise_sigma: float = 0.004  # per-frame Gaussian sensor noise, scene-linear units
    # -- optional difficulties (defaults: a locked-off, sharp, evenly lit shot) --
    camera: tuple[Keyframe, ...] = ()  # (frame index, x, y) of the view's top-left in world px; () = locked off
    shutter: float = 0.0  # open fraction of the frame interval (0.5 = 180 degrees); 0 = no motion blur
    blur_samples: int = 8  # sub-frame renders averaged when shutter > 0
    lighting: tuple[tuple[float, float], ...] = ()  # (frame index, gain on scene-linear light); () = constant
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # truth object -> the drawn objects it is made of
    props: tuple[SyntheticObject, ...] = ()  # static set dressing painted into the background (no truth)

    @property
    def frame_numbers(self) -> list[int]:
        return list(range(self.first_frame, self.first_frame + self.n_frames))

    @property
    def truth_names(self) -> list[str]:
        """Names of the truth objects (`groups` joined, other objects as themselves)."""
        grouped = {m for _, members in self.groups for m in members}
        return sorted([name for name, _ in self.groups] + [o.name for o in self.objects if o.name not in grouped])


def demo_shot(width: int = 1280, height: int = 720, n_frames: int = 48) -> SyntheticShot:
    """The demo plate: three objects over a locked-off background (designed at
    1280x720 / 48 frames and scaled to the requested size and length).

    - `red` (9 px/frame) leaves the frame on the left: empty from index 35;
    - `green` (slower, 7.5 px/frame, moving down) is passed in front of by `blue` over
      indices 22-33, down to about a third of it visible, whole again afterwards;
    - `blue` (12 px/frame) enters late from beyond the right edge: first visible at
      index 10.

    Sizes and speeds keep every pixel covered by some object in at most ~38% of the
    frames, so a temporal median still recovers the background (the `moving`
    detector's assumption)."""
    sx, sy = width / 1280.0, height / 720.0
    s = min(sx, sy)
    ft = (n_frames - 1) / 47.0 if n_frames > 1 else 1.0  # time scale: keep the story at any length

    def kf(points: list[tuple[float, float, float]]) -> tuple[Keyframe, ...]:
        return tuple((t * ft, x * sx, y * sy) for t, x, y in points)

    objects = (
        SyntheticObject(
            name="red", shape="ellipse", half_size=(60 * s, 82 * s), colour=(0.86, 0.18, 0.12),
            keyframes=kf([(0, 250, 230), (47, 250 - 9 * 47, 230 + 1.5 * 47)]),
            z=0, texture_scale=7 * s, seed=1,
        ),
        SyntheticObject(
            name="green", shape="blob", half_size=(40 * s, 40 * s), colour=(0.16, 0.72, 0.24),
            keyframes=kf([(0, 1100, 250), (47, 1100, 250 + 7.5 * 47)]),
            z=0, texture_scale=6 * s, seed=2,
        ),
        SyntheticObject(
            # Comes in from beyond the right edge; its silhouette first crosses into the
            # frame at index 10.
            name="blue", shape="blob", half_size=(60 * s, 60 * s), colour=(0.14, 0.30, 0.90),
            keyframes=kf([(0, 1450, 430), (47, 1450 - 12 * 47, 430)]),
            z=1, texture_scale=6 * s, highlight=1.2, seed=3,
        ),
    )
    return SyntheticShot(width=width, height=height, n_frames=n_frames, objects=objects, seed=7)


def small_shot(width: int = 160, height: int = 96, n_frames: int = 12, seed: int = 3) -> SyntheticShot:
    """A tiny shot for tests: two separated objects crossing in opposite directions at
    ~6 px/frame (each pixel is covered in well under half the frames, so a temporal
    median recovers the background)."""
    sx, sy = width / 160.0, height / 96.0
    s = min(sx, sy)
    last = max(n_frames - 1, 1)
    objects = (
        SyntheticObject(
            name="disc", shape="ellipse", half_size=(11 * s, 9 * s), colour=(0.85, 0.2, 0.15),
            keyframes=((0, 24 * sx, 28 * sy), (last, (24 + 6 * last) * sx, 30 * sy)),
            texture_scale=3 * s, seed=1,
        ),
        SyntheticObject(
            name="slab", shape="rounded_rect", half_size=(10 * s, 12 * s), colour=(0.15, 0.35, 0.9),
            keyframes=((0, 136 * sx, 66 * sy), (last, (136 - 6 * last) * sx, 64 * sy)),
            texture_scale=3 * s, seed=2,
        ),
    )
    return SyntheticShot(
        width=width, height=height, n_frames=n_frames, objects=objects, seed=seed,
        background_scale=8.0 * s,
    )


def render_frame(shot: SyntheticShot, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Frame `index` (0-based) as scene-linear float32 RGB (H, W, 3) and the visible
    ground-truth mask of every object, bool (H, W), keyed by object name (with motion
    blur: where the object covers at least half the shutter samples)."""
    _check_index(shot, index)
    prepared = _prepare(shot)
    if shot.shutter > 0 and shot.blur_samples > 1:
        image, masks = _render_blurred(shot, prepared, index)
    else:
        image = _background_view(shot, prepared, index)
        owner = _paint(shot, prepared, index, image)
        masks = {obj.name: owner == k + 1 for k, obj in enumerate(prepared.order)}
    gain = lighting_gain(shot, index)
    if gain != 1.0:
        image *= np.float32(gain)
    if shot.noise_sigma > 0:
        # Seeded per (shot seed, frame index): repeatable, independent between frames.
        rng = np.random.default_rng([shot.seed, 0x5E45, index])
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(shot.noise_sigma)
    return image, masks


def truth_masks(shot: SyntheticShot, index: int) -> dict[str, np.ndarray]:
    """The ground truth a matte is scored against: `render_frame`'s masks with each
    group's members joined into one object (keys: `shot.truth_names`)."""
    if shot.shutter > 0 and shot.blur_samples > 1:
        _, masks = _render_blurred(shot, _prepare(shot), index, pixels=False)
    else:
        masks = ground_truth_masks(shot, index)
    return _join_groups(shot, masks)


def _join_groups(shot: SyntheticShot, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(masks)
    for name, members in shot.groups:
        unknown = [m for m in members if m not in masks]
        if unknown:
            raise ValueError(f"group {name!r}: no object named {', '.join(map(repr, unknown))}")
        joined = np.zeros((shot.height, shot.width), dtype=bool)
        for m in members:
            joined |= out.pop(m)
        out[name] = joined
    return out


def lighting_gain(shot: SyntheticShot, index: float) -> float:
    """Scene-linear gain at frame `index` (1.0 without a lighting path)."""
    if not shot.lighting:
        return 1.0
    keys = sorted(shot.lighting)
    if index <= keys[0][0]:
        return float(keys[0][1])
    for (t0, g0), (t1, g1) in zip(keys, keys[1:]):
        if index <= t1:
            a = (index - t0) / (t1 - t0) if t1 > t0 else 1.0
            return float(g0 + a * (g1 - g0))
    return float(keys[-1][1])


def camera_offset(shot: SyntheticShot, index: float) -> tuple[int, int]:
    """Integer (x, y) of the view's top-left in the prepared background, (0, 0) when
    locked off. Whole pixels, so the background moves rigidly like the objects."""
    if not shot.camera:
        return 0, 0
    vx, vy = _view_origin(shot, index)
    wx, wy = _world_origin(shot)
    return vx - wx, vy - wy


def _world_origin(shot: SyntheticShot) -> tuple[int, int]:
    """World position of the prepared background's top-left: the camera path's lowest
    (snapped) x and y; (0, 0) when locked off."""
    if not shot.camera:
        return 0, 0
    return int(math.floor(min(k[1] for k in shot.camera) + 0.5)), int(math.floor(min(k[2] for k in shot.camera) + 0.5))


def _interpolate(keys: list[Keyframe], index: float) -> tuple[float, float]:
    if index <= keys[0][0]:
        return keys[0][1], keys[0][2]
    for (t0, x0, y0), (t1, x1, y1) in zip(keys, keys[1:]):
        if index <= t1:
            a = (index - t0) / (t1 - t0) if t1 > t0 else 1.0
            return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
    return keys[-1][1], keys[-1][2]


def _camera_span(shot: SyntheticShot) -> tuple[int, int]:
    """Extra background (x, y) pixels the camera path needs beyond one frame."""
    if not shot.camera:
        return 0, 0
    xs = [k[1] for k in shot.camera]
    ys = [k[2] for k in shot.camera]
    return int(math.ceil(max(xs) - min(xs))) + 1, int(math.ceil(max(ys) - min(ys))) + 1


def _background_view(shot: SyntheticShot, prepared: _Prepared, index: float) -> np.ndarray:
    if not shot.camera:
        return prepared.background.copy()
    cx, cy = camera_offset(shot, index)
    return prepared.background[cy : cy + shot.height, cx : cx + shot.width].copy()


def _render_blurred(
    shot: SyntheticShot, prepared: _Prepared, index: int, pixels: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mean of `blur_samples` renders at times spread evenly over the open shutter,
    centred on the frame; per object the share of samples it covers, >= 0.5 as truth."""
    n = shot.blur_samples
    image = np.zeros((shot.height, shot.width, 3), np.float32)
    cover = np.zeros((len(prepared.order), shot.height, shot.width), np.float32)
    for s in range(n):
        t = index + shot.shutter * ((s + 0.5) / n - 0.5)
        sample = _background_view(shot, prepared, t) if pixels else None
        owner = _paint(shot, prepared, t, sample)
        if sample is not None:
            image += sample
        for k in range(len(prepared.order)):
            cover[k] += owner == k + 1
    image /= np.float32(n)
    masks = {obj.name: cover[k] >= 0.5 * n for k, obj in enumerate(prepared.order)}
    return image, masks


def render_display(shot: SyntheticShot, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`render_frame` converted to the display-referred uint8 RGB the backends consume."""
    image, masks = render_frame(shot, index)
    return to_display_uint8(image, linear=True), masks


def ground_truth_masks(shot: SyntheticShot, index: int, visible: bool = True) -> dict[str, np.ndarray]:
    """Masks only (no pixels): visible masks, or with `visible=False` the full
    (amodal) silhouettes, ignoring occlusion. Cheap enough to score whole shots."""
    _check_index(shot, index)
    prepared = _prepare(shot)
    if visible and shot.shutter > 0 and shot.blur_samples > 1:
        return _render_blurred(shot, prepared, index, pixels=False)[1]
    if visible:
        owner = _paint(shot, prepared, index, None)
        return {obj.name: owner == k + 1 for k, obj in enumerate(prepared.order)}
    out: dict[str, np.ndarray] = {}
    for k, obj in enumerate(prepared.order):
        mask = np.zeros((shot.height, shot.width), dtype=bool)
        placed = _placement(shot, obj, prepared.shapes[k].shape, index)
        if placed is not None:
            (fy, fx), (py, px) = placed
            mask[fy, fx] = prepared.shapes[k][py, px]
        out[obj.name] = mask
    return out


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight box of a mask as (x0, y0, x1, y1), x1/y1 exclusive; None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


# --- internals -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    background: np.ndarray  # (H, W, 3) float32 scene-linear
    order: tuple[SyntheticObject, ...]  # objects in the shot's declared order
    draw_order: tuple[int, ...]  # indices into `order`, back to front
    shapes: tuple[np.ndarray, ...]  # per object: bool silhouette patch
    textures: tuple[np.ndarray, ...]  # per object: float32 scene-linear RGB patch


def _check_index(shot: SyntheticShot, index: int) -> None:
    if not 0 <= index < shot.n_frames:
        raise IndexError(f"frame index {index} outside the synthetic shot (0..{shot.n_frames - 1})")


@lru_cache(maxsize=8)
def _prepare(shot: SyntheticShot) -> _Prepared:
    # Everything that does not change per frame is built once per shot and cached; the
    # cache key is the frozen shot itself, so any parameter change rebuilds it.
    rng = np.random.default_rng([shot.seed, 0xB6])
    span_x, span_y = _camera_span(shot)  # (0, 0) locked off: exactly one frame of background
    h, w = shot.height + span_y, shot.width + span_x
    lum = _smooth_noise(rng, h, w, shot.background_scale)
    # Low-saturation tint variation on a coarser scale than the luminance texture.
    tint = np.stack([_smooth_noise(rng, h, w, shot.background_scale * 4) for _ in range(3)], axis=-1)
    # A gentle vertical gradient (brighter top), like a lit set wall.
    ramp = np.linspace(0.06, -0.06, h, dtype=np.float32)[:, None, None]
    base = np.asarray(shot.background_colour, dtype=np.float32)
    srgb = base + shot.background_contrast * lum[..., None] + 0.02 * tint + ramp
    background = srgb_to_linear(np.clip(srgb, 0.0, 1.0))
    for prop in shot.props:  # at their first keyframe, in world pixels (background coordinates)
        prng = np.random.default_rng([shot.seed, 0x9C, prop.seed])
        shape = _silhouette(prop, prng)
        texture = _texture(prop, shape.shape, prng)
        _, px, py = sorted(prop.keyframes)[0]
        wx, wy = _world_origin(shot)
        x0 = int(math.floor(px + 0.5)) - shape.shape[1] // 2 - wx
        y0 = int(math.floor(py + 0.5)) - shape.shape[0] // 2 - wy
        fx0, fy0 = max(x0, 0), max(y0, 0)
        fx1, fy1 = min(x0 + shape.shape[1], w), min(y0 + shape.shape[0], h)
        if fx0 < fx1 and fy0 < fy1:
            sil = shape[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
            background[fy0:fy1, fx0:fx1][sil] = texture[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0][sil]

    shapes: list[np.ndarray] = []
    textures: list[np.ndarray] = []
    for obj in shot.objects:
        orng = np.random.default_rng([shot.seed, 0x0B, obj.seed])
        shape = _silhouette(obj, orng)
        shapes.append(shape)
        textures.append(_texture(obj, shape.shape, orng))
    draw_order = tuple(sorted(range(len(shot.objects)), key=lambda k: (shot.objects[k].z, k)))
    for array in (background, *shapes, *textures):
        array.setflags(write=False)  # shared by every call through the cache
    return _Prepared(background, tuple(shot.objects), draw_order, tuple(shapes), tuple(textures))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Multi-octave value noise in about [-1, 1], float32 (H, W): random grids upsampled
    bicubically at feature sizes `scale`, `scale/2`, `scale/4`."""
    out = np.zeros((h, w), dtype=np.float32)
    total = 0.0
    for octave in range(3):
        step = max(scale / (2**octave), 1.5)
        gh, gw = int(math.ceil(h / step)) + 3, int(math.ceil(w / step)) + 3
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        up = cv2.resize(grid, (int(round(gw * step)), int(round(gh * step))), interpolation=cv2.INTER_CUBIC)
        amp = 0.5**octave
        out += amp * up[:h, :w]
        total += amp
    return np.clip(out / (total * 1.5), -1.0, 1.0)


def _silhouette(obj: SyntheticObject, rng: np.random.Generator) -> np.ndarray:
    rx, ry = max(obj.half_size[0], 1.0), max(obj.half_size[1], 1.0)
    hx, hy = int(math.ceil(rx)), int(math.ceil(ry))
    y, x = np.mgrid[-hy : hy + 1, -hx : hx + 1].astype(np.float32)
    u, v = x / rx, y / ry
    if obj.shape == "ellipse":
        return u * u + v * v < 1.0  # strict: no one-pixel spikes at the axis ends
    if obj.shape == "rounded_rect":
        return u**4 + v**4 < 1.0  # superellipse: a box with rounded corners
    if obj.shape == "blob":
        # Radius wobbles with angle (two low harmonics), normalised to stay within the patch.
        p1, p2 = rng.uniform(0, 2 * math.pi, size=2)
        theta = np.arctan2(v, u)
        radius = (1.0 + 0.12 * np.sin(2 * theta + p1) + 0.08 * np.sin(3 * theta + p2)) / 1.2
        return np.sqrt(u * u + v * v) <= radius
    raise ValueError(f"unknown synthetic shape {obj.shape!r}")


def _texture(obj: SyntheticObject, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    noise = _smooth_noise(rng, h, w, obj.texture_scale)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    r2 = ((x - cx) / max(cx, 1.0)) ** 2 + ((y - cy) / max(cy, 1.0)) ** 2
    shading = 1.0 - 0.25 * np.clip(r2, 0.0, 1.0)  # darker towards the rim: reads as a volume
    gain = (1.0 + obj.texture_contrast * noise) * shading
    srgb = np.clip(np.asarray(obj.colour, dtype=np.float32) * gain[..., None], 0.0, 1.0)
    linear = srgb_to_linear(srgb)
    if obj.highlight > 0:
        # A specular spot up and left of centre; scene-linear values above 1.0.
        hx, hy = cx - 0.35 * cx, cy - 0.4 * cy
        sigma = 0.06 * min(h, w)
        spot = np.exp(-((x - hx) ** 2 + (y - hy) ** 2) / (2 * sigma * sigma))
        linear = linear + (obj.highlight * spot)[..., None].astype(np.float32)
    return linear.astype(np.float32)


def _placement(
    shot: SyntheticShot, obj: SyntheticObject, patch_shape: tuple[int, int], index: float
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Frame and patch slices where the object's patch lands (None when fully outside).
    Positions snap to whole pixels so the texture moves rigidly with the object; with a
    camera path, object positions are in world pixels and the view moves over them."""
    ph, pw = patch_shape
    cx, cy = obj.position(index)
    vx, vy = _view_origin(shot, index)
    x0 = int(math.floor(cx + 0.5)) - pw // 2 - vx
    y0 = int(math.floor(cy + 0.5)) - ph // 2 - vy
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + pw, shot.width), min(y0 + ph, shot.height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1)), (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))


def _view_origin(shot: SyntheticShot, index: float) -> tuple[int, int]:
    """World position of the view's top-left, whole pixels ((0, 0) locked off)."""
    if not shot.camera:
        return 0, 0
    x, y = _interpolate(sorted(shot.camera), index)
    return int(math.floor(x + 0.5)), int(math.floor(y + 0.5))


def _paint(shot: SyntheticShot, prepared: _Prepared, index: float, image: np.ndarray | None) -> np.ndarray:
    """Draw objects back to front into `image` (if given); return the owner map
    (uint8, 0 = background, k + 1 = object k), which is what visibility is read from."""
    owner = np.zeros((shot.height, shot.width), dtype=np.uint8)
    for k in prepared.draw_order:
        shape = prepared.shapes[k]
        placed = _placement(shot, prepared.order[k], shape.shape, index)
        if placed is None:
            continue
        (fy, fx), (py, px) = placed
        sil = shape[py, px]
        owner[fy, fx][sil] = k + 1
        if image is not None:
            image[fy, fx][sil] = prepared.textures[k][py, px][sil]
    return owner
