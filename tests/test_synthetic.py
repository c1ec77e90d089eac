"""Synthetic shots: determinism, ground truth, and the story `demo_shot` promises."""

from __future__ import annotations

import time

import numpy as np
import pytest

from matte_assets.tuning import synthetic
from matte_assets.tuning.synthetic import (
    SyntheticObject,
    SyntheticShot,
    demo_shot,
    ground_truth_masks,
    mask_box,
    render_display,
    render_frame,
    small_shot,
)


def test_render_is_bit_identical_across_calls_and_cache_rebuilds() -> None:
    shot = small_shot()
    a, ma = render_frame(shot, 5)
    b, mb = render_frame(shot, 5)
    synthetic._prepare.cache_clear()  # rebuilding the textures must give the same pixels
    c, mc = render_frame(shot, 5)
    assert a.tobytes() == b.tobytes() == c.tobytes()
    for name in ma:
        assert np.array_equal(ma[name], mb[name]) and np.array_equal(ma[name], mc[name])


def test_frames_differ_by_noise_and_seed() -> None:
    shot = small_shot()
    a, _ = render_frame(shot, 0)
    b, _ = render_frame(small_shot(seed=4), 0)
    assert not np.array_equal(a, b)
    # Sensor noise is per frame: the static background is not bit-identical over time.
    f0, m0 = render_frame(shot, 0)
    f1, m1 = render_frame(shot, 1)
    still = ~(np.logical_or.reduce(list(m0.values())) | np.logical_or.reduce(list(m1.values())))
    diff = np.abs(f0 - f1)[still]
    assert 0 < float(diff.mean()) < 0.02


def test_small_shot_shapes_and_types() -> None:
    shot = small_shot()
    assert (shot.width, shot.height, shot.n_frames, len(shot.objects)) == (160, 96, 12, 2)
    assert shot.frame_numbers[0] == 1001 and len(shot.frame_numbers) == 12
    image, masks = render_frame(shot, 3)
    assert image.dtype == np.float32 and image.shape == (96, 160, 3)
    assert np.isfinite(image).all()
    assert set(masks) == {o.name for o in shot.objects}
    for mask in masks.values():
        assert mask.dtype == bool and mask.shape == (96, 160) and mask.any()
    display, _ = render_display(shot, 3)
    assert display.dtype == np.uint8 and display.shape == (96, 160, 3)
    with pytest.raises(IndexError):
        render_frame(shot, 12)


def test_visible_masks_are_disjoint_and_match_painted_colours() -> None:
    shot = demo_shot(320, 180)
    image, masks = render_display(shot, 28)
    total = sum(m.astype(int) for m in masks.values())
    assert total.max() <= 1
    # Objects are saturated, the background is not: the masks sit on the colourful pixels.
    rgb = image.astype(np.float32)
    sat = (rgb.max(axis=-1) - rgb.min(axis=-1)) / np.maximum(rgb.max(axis=-1), 1)
    background = total == 0
    assert float(np.median(sat[background])) < 0.2
    for mask in masks.values():
        if mask.any():
            assert float(np.median(sat[mask])) > 0.5


def test_demo_late_entry_exit_and_occlusion_hold() -> None:
    shot = demo_shot()
    n = shot.n_frames
    visible = [ground_truth_masks(shot, i) for i in range(n)]
    amodal = [ground_truth_masks(shot, i, visible=False) for i in range(n)]
    area = {name: np.array([int(v[name].sum()) for v in visible]) for name in visible[0]}
    full = {name: np.array([int(a[name].sum()) for a in amodal]) for name in amodal[0]}

    # Late entry: blue first appears at index 10, at the right edge of the frame.
    first = int(np.flatnonzero(area["blue"])[0])
    assert first == 10
    assert area["blue"][first:].min() > 0
    assert mask_box(visible[first]["blue"])[2] == shot.width

    # Exit: red starts in frame and is gone for the last frames, leaving on the left.
    assert area["red"][0] > 0
    last = int(np.flatnonzero(area["red"])[-1])
    assert last <= n - 6 and not area["red"][last + 1 :].any()
    assert mask_box(visible[last]["red"])[0] == 0.0

    # Occlusion: green (slower) is partly hidden behind blue for several consecutive
    # frames, never fully, and is whole again afterwards.
    hidden = np.flatnonzero(area["green"] < 0.9 * full["green"])
    assert len(hidden) >= 5 and np.all(np.diff(hidden) == 1)
    assert area["green"].min() > 0
    assert area["green"][-1] == full["green"][-1]
    for i in hidden:
        assert (amodal[i]["blue"] & amodal[i]["green"]).any()
        assert not (visible[i]["green"] & amodal[i]["blue"]).any()  # blue is in front
    speeds = {}
    for obj in shot.objects:
        (x0, y0), (x1, y1) = obj.position(0), obj.position(n - 1)
        speeds[obj.name] = float(np.hypot(x1 - x0, y1 - y0)) / (n - 1)
    assert speeds["green"] < speeds["blue"]
    assert all(2.0 <= v <= 14.0 for v in speeds.values())  # plausible plate motion at 1280 px


def test_demo_has_highlights_above_one() -> None:
    image, masks = render_frame(demo_shot(320, 180), 30)
    assert image[masks["blue"]].max() > 1.0
    assert image[~masks["blue"]].max() < 1.1  # elsewhere: ordinary scene-linear values


def test_keyframes_interpolate_and_hold() -> None:
    obj = SyntheticObject(
        name="o", shape="ellipse", half_size=(5, 5), colour=(1, 0, 0),
        keyframes=((2, 10.0, 20.0), (6, 30.0, 40.0)),
    )
    assert obj.position(0) == (10.0, 20.0)
    assert obj.position(4) == (20.0, 30.0)
    assert obj.position(9) == (30.0, 40.0)
    shot = SyntheticShot(width=64, height=48, n_frames=8, objects=(obj,), noise_sigma=0.0)
    # Centre on pixel (20, 30); the strict ellipse test leaves the axis-end pixels out.
    assert mask_box(render_frame(shot, 4)[1]["o"]) == (16.0, 26.0, 25.0, 35.0)
    assert mask_box(np.zeros((4, 4), bool)) is None
