"""Stitching fragments of one object (algorithms/stitching.py), the layer summaries it
decides from, and the random-plate generator the automatic-mode benchmark uses."""

from __future__ import annotations

import numpy as np
import pytest

from matte_assets.algorithms.stitching import (
    BINS,
    LayerSummary,
    StitchParams,
    bhattacharyya,
    colour_histogram,
    decide_stitches,
    frame_track,
    touched_edges,
)
from matte_assets.tuning.random_plates import MAX_COVER, cover_fraction, random_plate

N = 40


def _hist(rgb: tuple[int, int, int], spread: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    px = np.clip(np.asarray(rgb)[None, :] + rng.integers(-spread, spread + 1, size=(400, 3)), 0, 255)
    return colour_histogram(px.astype(np.uint8))


def _layer(lid: int, frames: range, x0: float, vx: float, colour=(200, 40, 30), head=(), tail=(), label="moving",
           area: float = 400.0, seed: int = 0) -> LayerSummary:
    track = np.zeros((N, 3))
    for f in frames:
        track[f] = (area, x0 + vx * (f - frames[0]), 90.0)
    h = _hist(colour, seed=seed)
    return LayerSummary(lid, label, track, tuple(head), tuple(tail), h, _hist(colour, seed=seed + 1))


def _decision(rows, a, b):
    return next(r for r in rows if r["a"] == a and r["b"] == b)


def test_histograms_and_edges() -> None:
    red, red2, blue = _hist((200, 40, 30)), _hist((200, 40, 30), seed=3), _hist((30, 60, 210))
    assert colour_histogram(np.zeros((5, 3), np.uint8)).shape == (BINS**3,)
    assert bhattacharyya(red, red2) > 0.8 and bhattacharyya(red, blue) < 0.05
    assert bhattacharyya(red, np.zeros_like(red)) == 0.0
    m = np.zeros((10, 20), bool)
    m[3:6, 15:20] = True
    assert touched_edges(m) == ("right",) and touched_edges(np.zeros((4, 4), bool)) == ()
    masks = np.zeros((2, 10, 20), bool)
    masks[1, 2:4, 4:8] = True
    t = frame_track(masks)
    assert t[0].tolist() == [0, 0, 0] and t[1].tolist() == [8, 5.5, 2.5]


def test_exit_and_reentry_by_the_same_edge_is_stitched() -> None:
    a = _layer(1, range(0, 14), 170, 14, tail=("right",))
    b = _layer(2, range(27, 40), 300, -7, head=("right",), seed=5)
    root, rows = decide_stitches([a, b], StitchParams(), N)
    assert root == {2: 1}
    r = _decision(rows, 1, 2)
    assert r["decision"] == "link" and r["gap"] == 13 and r["edge"] == "right" and r["similarity"] > 0.8


def test_occlusion_gap_on_the_path_is_stitched_and_off_the_path_is_not() -> None:
    a = _layer(1, range(0, 15), 20, 5)  # at x = 90 by frame 14, 5 px/frame
    b_on = _layer(2, range(20, 40), 20 + 5 * 20, 5, seed=7)  # where a would be
    b_off = _layer(3, range(20, 40), 300, 5, seed=8)  # 185 px off the path (20 px objects)
    root, rows = decide_stitches([a, b_on, b_off], StitchParams(), N)
    assert root == {2: 1}
    assert _decision(rows, 1, 2)["decision"] == "link"
    off = _decision(rows, 1, 3)
    assert off["decision"] == "reject" and "off the path" in off["reason"] and off["motion_error"] > 5


def test_different_colour_coexisting_or_other_label_is_never_stitched() -> None:
    a = _layer(1, range(0, 15), 20, 5)
    other_colour = _layer(2, range(16, 40), 100, 5, colour=(30, 60, 210))
    coexisting = _layer(3, range(5, 40), 45, 5, seed=9)
    other_label = _layer(4, range(16, 40), 100, 5, label="person", seed=10)
    root, rows = decide_stitches([a, other_colour, coexisting, other_label], StitchParams(), N)
    assert root == {}
    assert "colour similarity" in _decision(rows, 1, 2)["reason"]
    assert "both present" in _decision(rows, 1, 3)["reason"]
    assert not any(r["b"] == 4 or r["a"] == 4 for r in rows)  # labels never compared
    # Thresholds are settings: a lower similarity bar joins the blue fragment.
    root, _ = decide_stitches([a, other_colour], StitchParams(stitch_similarity=0.0, stitch_motion=5.0), N)
    assert root == {2: 1}
    assert decide_stitches([a, _layer(5, range(20, 40), 120, 5)], StitchParams(stitch_max_gap=0), N)[0] == {}


def test_chains_link_each_fragment_once_best_match_first() -> None:
    a = _layer(1, range(0, 10), 20, 5)
    b = _layer(2, range(14, 24), 90, 5, seed=3)
    c = _layer(3, range(28, 40), 160, 5, seed=4)
    root, rows = decide_stitches([a, b, c], StitchParams(), N)
    assert root == {2: 1, 3: 1}
    # a -> c was a candidate too, but a already continues as b
    assert _decision(rows, 1, 3)["decision"] == "reject"
    with pytest.raises(ValueError, match="stitch_similarity"):
        StitchParams(stitch_similarity=1.5)


def test_random_plates_are_seeded_varied_and_fair() -> None:
    a, a2, b = random_plate(3), random_plate(3), random_plate(4)
    assert a == a2 and a != b
    shots = [random_plate(s) for s in range(6)]
    assert len({len(s.objects) for s in shots}) > 1  # object counts vary
    assert len({o.shape for s in shots for o in s.objects}) == 3
    for shot in shots[:3]:
        assert (shot.width, shot.height, shot.n_frames) == (320, 180, 40)
        assert cover_fraction(shot) < MAX_COVER  # a temporal median can model the background
        # The first two objects cross: opposite directions on overlapping rows.
        (x0, _), (x1, _) = shot.objects[0].position(0), shot.objects[0].position(39)
        assert x1 > x0
    small = random_plate(5, 160, 90, 24)
    assert (small.width, small.height, small.n_frames) == (160, 90, 24)


def test_stitch_settings_enter_filtering_only() -> None:
    # A stitch threshold is a filter setting: changing it reruns filtering and delivery,
    # never tracking (the summaries it decides from are stored with the tracked layers).
    from matte_assets.config import ShotSettings
    from matte_assets.shots.lineage import STAGES, stage_settings

    base = ShotSettings.model_validate({"plate": {"path": "p.####.exr"}, "prompt": "moving"})
    tweaked = ShotSettings.model_validate(
        {"plate": {"path": "p.####.exr"}, "prompt": "moving", "filter": {"stitch_similarity": 0.4}}
    )
    changed = [s for s in STAGES if stage_settings(base, s) != stage_settings(tweaked, s)]
    assert changed == ["filtered_layers"]
