"""The `moving` detector beyond locked-off, evenly lit plates: exposure changes and
camera motion are compensated before background subtraction (resources/embedded.py)."""

from __future__ import annotations

import numpy as np

from matte_assets.tuning.hard_cases import camera_pan, lighting_change
from matte_assets.tuning.synthetic import render_display, small_shot, truth_masks
from resources.embedded import OpenCVDetector, _camera_moves


def _frames(shot):
    return np.stack([render_display(shot, i)[0] for i in range(shot.n_frames)])


def _box_hits(shot, index, dets):
    """For each truth object visible at `index`, whether a box covers its centre; and
    the boxes that cover no object's pixels (false detections)."""
    truth = {k: m for k, m in truth_masks(shot, index).items() if m.sum() > 50}
    found, spurious = set(), 0
    for d in dets:
        x0, y0, x1, y1 = (int(round(v)) for v in d.box)
        hit = [k for k, m in truth.items() if m[y0:y1, x0:x1].sum() > 0.5 * m.sum()]
        found |= set(hit)
        spurious += not any(m[y0:y1, x0:x1].any() for m in truth.values())
    return set(truth), found, spurious


def test_locked_off_plate_takes_the_plain_median_path() -> None:
    frames = _frames(small_shot())
    assert not _camera_moves(frames)
    det = OpenCVDetector()
    det.begin_shot(frames)
    assert det._moving_camera is None and det._background_linear is None
    np.testing.assert_array_equal(det._background, np.median(frames, axis=0).astype(np.float32))


def test_lighting_drop_is_normalised() -> None:
    shot = lighting_change()
    frames = _frames(shot)
    det = OpenCVDetector()
    det.begin_shot(frames[np.linspace(0, shot.n_frames - 1, 32).round().astype(int)])
    assert det._moving_camera is None and det._background_linear is not None
    for index in (26, 30, 34):  # after the light halved
        dets = det.detect([frames[index]], ["moving"], 0.35, 0.25)[0]
        visible, found, spurious = _box_hits(shot, index, dets)
        assert found == visible and spurious == 0, (index, dets)
        assert all(d.box != (0.0, 0.0, float(shot.width), float(shot.height)) for d in dets)


def test_camera_pan_is_compensated() -> None:
    shot = camera_pan()
    frames = _frames(shot)
    assert _camera_moves(frames[::3])
    det = OpenCVDetector()
    det.begin_shot(frames[np.linspace(0, shot.n_frames - 1, 32).round().astype(int)])
    assert det._moving_camera is not None
    for index in (5, 18, 30):
        dets = det.detect([frames[index]], ["moving"], 0.35, 0.25)[0]
        visible, found, spurious = _box_hits(shot, index, dets)
        # The cyclist is found; the props the pan moves through the frame are not.
        assert found == visible == {"cyclist"} and spurious == 0, (index, dets)
