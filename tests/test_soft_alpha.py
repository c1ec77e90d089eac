"""Soft alpha: the guided-filter refinement against a plate with known soft alpha."""

from __future__ import annotations

import cv2
import numpy as np

from matte_assets.algorithms.soft_alpha import auto_band, edge_band, guide_image, guided_filter, refine_alpha
from matte_assets.media.scale import upscale_mask
from matte_assets.tuning.soft_plate import SoftShot, render, true_alpha


def test_guided_filter_with_flat_guide_is_a_mean_of_window_means():
    guide = np.full((30, 30, 3), 0.5, np.float32)
    p = np.zeros((30, 30), np.float32)
    p[:, 15:] = 1
    q = guided_filter(guide, p, 2)
    # a = 0 where the guide is flat, so q = mean over windows of b = mean of p
    box = lambda x: cv2.boxFilter(x, -1, (5, 5), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    expected = box(box(p))
    assert np.allclose(q, expected, atol=1e-4)


def test_refinement_keeps_definite_regions_and_follows_a_colour_edge():
    h, w = 40, 80
    xs = np.arange(w, dtype=np.float32)
    truth = np.clip(40.3 - xs, 0, 1)[None, :].repeat(h, 0)  # anti-aliased step at x=40.3
    image = truth[..., None] * np.array([0.9, 0.1, 0.1], np.float32) + (1 - truth[..., None]) * np.array([0.2, 0.3, 0.8], np.float32)
    coarse = upscale_mask(cv2.resize(truth, (20, 10), interpolation=cv2.INTER_AREA) > 0.5, (w, h))
    soft = refine_alpha(coarse, guide_image(image, False), band=6)
    band = edge_band(coarse >= 0.5, 6)
    assert (soft[~band] == (coarse >= 0.5)[~band]).all()
    assert np.abs(soft - truth).sum() < 0.7 * np.abs(coarse - truth).sum()  # measured 0.62


def test_soft_plate_truth_is_soft_and_refinement_halves_the_error():
    shot = SoftShot(width=480, height=270, n_frames=12)
    image, alphas = render(shot, 5)
    assert set(alphas) == {"ball", "box", "hairy"}
    for a in alphas.values():
        assert ((a > 0.02) & (a < 0.98)).sum() > 100  # anti-aliased / blurred / hairy edges
    assert np.array_equal(true_alpha(shot, 5)["hairy"], alphas["hairy"])  # a pure function
    guide = guide_image(image, True)
    plate = (240, 135)
    band = auto_band((480, 270), plate)
    hard_sad = soft_sad = 0.0
    for a in alphas.values():
        coarse = upscale_mask(cv2.resize(a, plate, interpolation=cv2.INTER_AREA) > 0.5, (480, 270))
        hard_sad += np.abs(coarse - a).sum()
        soft_sad += np.abs(refine_alpha(coarse, guide, band) - a).sum()
    assert soft_sad < 0.6 * hard_sad


def test_band_widens_where_the_coarse_edge_is_off_by_more_than_the_band():
    # A textured red disc on a textured blue-grey background; the coarse mask is the disc
    # shrunk by 9 px on its right half only (a mask lagging a moving object), band 4.
    h, w = 120, 160
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = np.clip(40.5 - np.hypot(xs - 80, ys - 60), 0, 1)
    texture = 1 + 0.1 * np.sin(xs / 3.0) * np.cos(ys / 4.0)
    fg = np.array([0.8, 0.15, 0.1], np.float32) * texture[..., None]
    bg = np.array([0.3, 0.35, 0.5], np.float32) * (2 - texture)[..., None]
    image = truth[..., None] * fg + (1 - truth[..., None]) * bg
    radius = np.where(xs > 80, 31.0, 40.0)
    coarse = (np.hypot(xs - 80, ys - 60) < radius).astype(np.float32)
    guide = guide_image(image, False)
    fixed = refine_alpha(coarse, guide, 4, levels=0, recentre=False)
    grown = refine_alpha(coarse, guide, 4, recentre=False)
    hard_sad = np.abs(coarse - truth).sum()
    assert np.abs(fixed - truth).sum() > 0.85 * hard_sad  # the narrow band cannot reach the edge (0.91)
    assert np.abs(grown - truth).sum() < 0.7 * hard_sad  # measured 0.60
    # where the mask was right (left half) the narrow refinement is kept as it is
    left = xs < 60
    assert np.array_equal(grown[left], fixed[left])
    # the damped re-centring iteration moves the band onto the colour edge
    assert np.abs(refine_alpha(coarse, guide, 4) - truth).sum() < 0.5 * hard_sad  # measured 0.42
