"""Hard-case suite: each case runs the real pipeline (embedded backends, show defaults)
and must keep its J at or above a floor set a little below the measured value
(docs/quality.md has the table); the long shot's memory must not grow with its length.
Also: the synthetic options the cases use, and that they leave the demo plates alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matte_assets.tuning import synthetic
from matte_assets.tuning.hard_cases import CASES, camera_pan, long_shot, run_case
from matte_assets.tuning.synthetic import (
    SyntheticObject,
    SyntheticShot,
    camera_offset,
    demo_shot,
    ground_truth_masks,
    lighting_gain,
    render_frame,
    small_shot,
    truth_masks,
)

# Measured J (docs/quality.md) minus a margin; the pipeline is deterministic, so the
# margin only absorbs harmless numeric drift.
J_FLOORS = {
    "baseline": 0.95,  # 0.999 (0.666 before the false-positive rule was judged iteratively)
    "late_entry": 0.97,  # 0.999
    "exit_reentry": 0.96,  # 0.998 (0.675 before stitching: the return was a second layer)
    "crossing": 0.96,  # 0.992
    "part_whole": 0.97,  # 1.000: the bag layer merges into the walker
    "small_far": 0.97,  # 1.000
    "camera_pan": 0.96,  # 1.000 (0.373 before camera-motion compensation: props became layers)
    "motion_blur": 0.80,  # 0.829
    "lighting_change": 0.95,  # 0.985 (0.007 before exposure normalisation)
}
# Floors on F likewise (DAVIS boundary measure).
F_FLOORS = {
    "baseline": 0.95, "late_entry": 0.97, "exit_reentry": 0.97, "crossing": 0.96, "part_whole": 0.97,
    "small_far": 0.97, "camera_pan": 0.97, "motion_blur": 0.81, "lighting_change": 0.96,
}


def test_every_case_has_a_floor() -> None:
    assert set(J_FLOORS) == set(F_FLOORS) == set(CASES) - {"long"}
    assert len(CASES) >= 9


@pytest.mark.parametrize("name", sorted(J_FLOORS))
def test_hard_case_quality(name: str, tmp_path: Path) -> None:
    result = run_case(name, tmp_path / "project")
    assert result["j"] >= J_FLOORS[name], result
    assert result["f"] >= F_FLOORS[name], result
    assert result["objects"] == len(CASES[name]().truth_names)
    assert result["layers"] == result["objects"], result  # one layer per object, every case


def _run_long(root: Path, frames: int) -> subprocess.Popen:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    # A 1 MB cap on the mask blocks the layer stages read at once (stage_data.BLOCK_BYTES,
    # 64 MB by default): at 96x54 the default block holds the whole shot, which is bounded
    # by design but grows with the length up to the cap; the cap lets anything else that
    # grows with the shot show.
    cmd = [sys.executable, "-m", "matte_assets.tuning.hard_cases", "long", "--root", str(root), "--frames", str(frames),
           "--block-bytes", "1000000", "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def test_long_shot_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    # Two processes at once (each is mostly one core); peak RSS is per process.
    short, long = _run_long(tmp_path / "short", 100), _run_long(tmp_path / "long", 400)
    results = []
    for proc in (short, long):
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        results.append(json.loads(out.strip().splitlines()[-1]))
    a, b = results
    assert a["frames"] == 100 and b["frames"] == 400
    assert a["j"] > 0.97 and b["j"] > 0.97 and a["layers"] == b["layers"] == 2
    print(f"long shot peak RSS: 100 frames {a['peak_rss_mb']:.1f} MB, 400 frames {b['peak_rss_mb']:.1f} MB")
    assert b["peak_rss_mb"] / a["peak_rss_mb"] < 1.5
    # Measured: +1 MB for 300 more frames (docs/quality.md); 10 MB would be ~35 KB per frame.
    assert b["peak_rss_mb"] - a["peak_rss_mb"] < 10, (a["peak_rss_mb"], b["peak_rss_mb"])


# --- synthetic options ------------------------------------------------------------------------


RENDER_REFERENCE = Path(__file__).parent / "data" / "render_reference.npz"


def _render_summary() -> dict[str, np.ndarray]:
    """8x8 block means of the rendered plates and truth masks, plus exact mask areas."""
    out: dict[str, np.ndarray] = {}
    shots = [demo_shot(320, 180, 12), small_shot(), demo_shot()]
    for s, shot in enumerate(shots):
        for i in range(shot.n_frames) if s < 2 else (0, 30):
            img, masks = render_frame(shot, i)
            truth = dict(sorted(ground_truth_masks(shot, i, visible=False).items()))
            h, w = img.shape[0] // 8 * 8, img.shape[1] // 8 * 8
            pool = lambda a: a[:h, :w].reshape(h // 8, 8, w // 8, 8, *a.shape[2:]).mean(axis=(1, 3))
            out[f"{s}/{i}/image"] = pool(img.astype(np.float32))
            for k in sorted(masks):
                out[f"{s}/{i}/mask/{k}"] = pool(masks[k].astype(np.float32))
            out[f"{s}/{i}/areas"] = np.array([m.sum() for m in (*masks.values(), *truth.values())], np.int64)
    return out


def test_demo_and_small_shots_render_as_before() -> None:
    # Stored plates, the demo's truth and other tests depend on these renders. Compared with
    # a tolerance, not a digest: OpenCV/numpy pick SIMD kernels per CPU, so the last bits of a
    # float render differ between machines; a change to the generator moves far more.
    summary = _render_summary()
    if os.environ.get("MATTE_UPDATE_GOLDEN"):
        RENDER_REFERENCE.parent.mkdir(exist_ok=True)
        np.savez_compressed(RENDER_REFERENCE, **{k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in summary.items()})
    ref = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in np.load(RENDER_REFERENCE).items()}
    assert sorted(ref) == sorted(summary)
    for key, value in summary.items():
        if key.endswith("/areas"):
            # A pixel or two of anti-aliasing may flip at the edges.
            np.testing.assert_allclose(value, ref[key], rtol=0.002, atol=3, err_msg=key)
        else:
            np.testing.assert_allclose(value, ref[key], atol=0.5 if key.endswith("/image") else 0.02, err_msg=key)


def _quiet(shot: SyntheticShot) -> SyntheticShot:
    from dataclasses import replace

    return replace(shot, noise_sigma=0.0)


def test_camera_pan_moves_the_background_and_props_but_not_the_truth_rules() -> None:
    shot = _quiet(camera_pan())
    assert camera_offset(shot, 0) == (0, 0) and camera_offset(shot, 35) == (70, 0)
    a, ma = render_frame(shot, 10)
    b, mb = render_frame(shot, 11)
    dx = camera_offset(shot, 11)[0] - camera_offset(shot, 10)[0]
    assert dx == 2
    # Away from the object, frame 11 is frame 10 shifted left by the camera step.
    still = ~(ma["cyclist"] | mb["cyclist"])
    still[:, -dx:] = False
    region = still[:, :-dx] & still[:, dx:]
    assert np.array_equal(b[:, :-dx][region], a[:, dx:][region])
    assert list(ma) == ["cyclist"]  # props are set dressing: no truth
    # The object moves in world coordinates: on screen, its speed minus the camera's.
    def cx(mask: np.ndarray) -> float:
        return float(np.nonzero(mask)[1].mean())
    assert cx(mb["cyclist"]) - cx(ma["cyclist"]) == pytest.approx(6.0 - 2.0, abs=1.0)
    # Locked-off with props: the props never move.
    still_shot = _quiet(SyntheticShot(width=80, height=40, n_frames=3, objects=(), props=camera_pan().props[:1]))
    assert np.array_equal(render_frame(still_shot, 0)[0], render_frame(still_shot, 2)[0])


def test_motion_blur_truth_is_half_coverage_and_lighting_scales_light() -> None:
    obj = SyntheticObject("o", "ellipse", (6, 6), (0.9, 0.2, 0.1), ((0, 10, 20), (9, 100, 20)), seed=1)
    sharp = _quiet(SyntheticShot(width=120, height=40, n_frames=10, objects=(obj,)))
    from dataclasses import replace

    blurred = replace(sharp, shutter=0.5, blur_samples=8)
    img_s, m_s = render_frame(sharp, 5)
    img_b, m_b = render_frame(blurred, 5)
    assert not np.array_equal(img_s, img_b)
    # 10 px/frame, half-frame shutter: a 5 px smear; the >= 50% core is about the
    # sharp silhouette (linear motion), centred on the same place.
    assert abs(int(m_b["o"].sum()) - int(m_s["o"].sum())) <= 12
    assert abs(np.nonzero(m_b["o"])[1].mean() - np.nonzero(m_s["o"])[1].mean()) <= 1.0
    assert np.array_equal(truth_masks(blurred, 5)["o"], m_b["o"])
    lit = replace(sharp, lighting=((0, 1.0), (4, 1.0), (6, 0.5)))
    assert lighting_gain(lit, 5) == pytest.approx(0.75) and lighting_gain(lit, 9) == 0.5
    np.testing.assert_allclose(render_frame(lit, 8)[0], 0.5 * render_frame(sharp, 8)[0], rtol=1e-6)


def test_groups_join_parts_into_one_truth_object() -> None:
    shot = CASES["part_whole"]()
    assert shot.truth_names == ["walker"]
    masks = render_frame(shot, 3)[1]
    joined = truth_masks(shot, 3)
    assert list(joined) == ["walker"] and np.array_equal(joined["walker"], masks["body"] | masks["bag"])
    from dataclasses import replace

    with pytest.raises(ValueError, match="no object named 'hat'"):
        truth_masks(replace(shot, groups=(("walker", ("body", "hat")),)), 0)


def test_long_shot_objects_stay_in_frame() -> None:
    shot = long_shot(300)
    for i in range(0, 300, 7):
        masks = ground_truth_masks(shot, i)
        assert all(int(m.sum()) > 100 for m in masks.values())  # never leaves, never hidden
    synthetic._prepare.cache_clear()
