"""Hard-case suite: synthetic shots that each isolate one difficulty, with ground truth.

Each case is a `SyntheticShot` at 320x180 (the long shot: 96x54, 1,000 frames) run
through the real pipeline (`runner.run_shot`, embedded backends, the show defaults with
prompt `moving`) and scored with `evaluation.evaluate_delivery` against its truth. No
case overrides a setting: the table measures what the defaults do on each difficulty.

    python -m matte_assets.tuning.hard_cases CASE --root DIR [--frames N] [--json]

runs one case in a fresh project at DIR (used by `benchmarks/quality.py` to measure
peak memory per process). `benchmarks/quality.py` runs them all and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from .synthetic import (
    Keyframe,
    SyntheticObject,
    SyntheticShot,
    demo_shot,
    render_frame,
    truth_masks,
)

SHOW, SHOT = "hard", "case"
W, H = 320, 180  # case size: small enough to run every case in CI


def _obj(name: str, shape: str, half: tuple[float, float], colour: tuple[float, float, float],
         keys: list[Keyframe], *, z: int = 0, seed: int = 1, texture: float = 3.0) -> SyntheticObject:
    return SyntheticObject(
        name=name, shape=shape, half_size=half, colour=colour, keyframes=tuple(keys),  # type: ignore[arg-type]
        z=z, texture_scale=texture, seed=seed,
    )


def _shot(n_frames: int, objects: tuple[SyntheticObject, ...], *, seed: int, **extra: Any) -> SyntheticShot:
    return SyntheticShot(
        width=extra.pop("width", W), height=extra.pop("height", H), n_frames=n_frames, objects=objects,
        seed=seed, background_scale=extra.pop("background_scale", 6.0), **extra,
    )


RED, GREEN, BLUE = (0.86, 0.18, 0.12), (0.16, 0.72, 0.24), (0.14, 0.30, 0.90)
ORANGE, PURPLE, YELLOW = (0.92, 0.55, 0.10), (0.55, 0.18, 0.75), (0.90, 0.82, 0.15)


def baseline() -> SyntheticShot:
    """The demo's story (late entry, occlusion, exit) at case size: the reference row."""
    return demo_shot(W, H, 36)


def late_entry() -> SyntheticShot:
    """One object comes in from beyond the right edge, first visible at index 12 of 36:
    the layer's earlier frames come only from the backward pass."""
    return _shot(36, (_obj("runner", "blob", (18, 18), BLUE, [(0, 430, 95), (35, 430 - 7.5 * 35, 95)], seed=3),), seed=11)


def exit_reentry() -> SyntheticShot:
    """One object leaves on the right (gone from index 13), stays out for ~13 frames and
    comes back: one object, so ideally one layer."""
    keys = [(0, 170, 90), (14, 360, 90), (24, 360, 90), (39, 200, 90)]
    return _shot(40, (_obj("dog", "ellipse", (16, 20), ORANGE, keys, seed=4),), seed=12)


def crossing() -> SyntheticShot:
    """Two objects cross; the nearer one hides the other almost completely mid-shot."""
    near = _obj("near", "blob", (20, 20), BLUE, [(0, 40, 92), (35, 285, 92)], z=1, seed=5)
    far = _obj("far", "ellipse", (16, 18), GREEN, [(0, 280, 96), (35, 35, 96)], z=0, seed=6)
    return _shot(36, (near, far), seed=13)


def part_whole() -> SyntheticShot:
    """A walker carrying a bag that swings: touching the body in some frames (one
    detection, the whole) and a few pixels away in others (two detections, the body and
    the bag, parts of the whole). The truth is one object, body and bag together."""
    body_keys: list[Keyframe] = []
    bag_keys: list[Keyframe] = []
    for t in range(0, 36, 3):
        x = 60 + 5.0 * t
        body_keys.append((t, x, 92))
        gap = -20 if (t // 6) % 2 == 0 else -27  # -20: bag touches the body; -27: 6 px apart
        bag_keys.append((t, x + gap, 104))
    body = _obj("body", "rounded_rect", (14, 22), ORANGE, body_keys, z=1, seed=7)
    bag = _obj("bag", "ellipse", (7, 8), PURPLE, bag_keys, z=0, seed=8)
    return _shot(36, (body, bag), seed=14, groups=(("walker", ("body", "bag")),))


def small_far(half: tuple[float, float] = (6, 5)) -> SyntheticShot:
    """A small object far away (12x10 px, 0.15% of the frame) drifting slowly."""
    bird = _obj("bird", "ellipse", half, YELLOW, [(0, 100, 40), (35, 170, 44)], seed=9, texture=2.0)
    return _shot(36, (bird,), seed=15)


def tiny_far() -> SyntheticShot:
    """Variant of `small_far` at 8x6 px (0.06% of the frame, below the `moving`
    detector's minimum component of 0.1%)."""
    return small_far((4, 3))


# Static set dressing for the pan: saturated things that stay put in the world (a locked-
# off shot's temporal median absorbs them; a pan moves them through the frame).
PROPS = (
    _obj("sign", "rounded_rect", (10, 14), YELLOW, [(0, 30, 40)], seed=31),
    _obj("bin", "ellipse", (12, 12), (0.10, 0.62, 0.62), [(0, 150, 150)], seed=32),
    _obj("door", "rounded_rect", (14, 24), (0.75, 0.15, 0.55), [(0, 250, 60)], seed=33),
    _obj("poster", "rounded_rect", (16, 10), (0.85, 0.85, 0.85), [(0, 350, 130)], seed=34),
)


def camera_pan(props: bool = True) -> SyntheticShot:
    """A slow pan (2 px/frame) following an object past static set dressing: the props
    move through the frame, so the `moving` detector's locked-off assumption (a
    temporal-median background) fails. `props=False`: the same pan over the bare,
    low-contrast background (a variant, to show what the props change)."""
    obj = _obj("cyclist", "blob", (18, 18), RED, [(0, 60, 95), (35, 270, 95)], seed=10)
    return _shot(36, (obj,), seed=16, camera=((0, 0, 0), (35, 70, 0)), props=PROPS if props else ())


def motion_blur() -> SyntheticShot:
    """A fast object (~18 px/frame) shot with a 180-degree shutter (~9 px smear); the
    truth is where the object covers at least half the shutter interval."""
    keys = [(0, 30, 90), (14, 290, 90), (29, 30, 90)]
    return _shot(30, (_obj("ball", "ellipse", (16, 16), RED, keys, seed=11),), seed=17, shutter=0.5)


def lighting_change(gain: float = 0.5) -> SyntheticShot:
    """A lamp goes off: the light halves (scene-linear gain 1.0 -> 0.5) over indices
    22-24 and stays down for the last third of the shot."""
    a = _obj("left", "blob", (18, 18), BLUE, [(0, 40, 70), (35, 250, 70)], seed=12)
    b = _obj("right", "ellipse", (15, 18), GREEN, [(0, 280, 125), (35, 80, 125)], seed=13)
    return _shot(36, (a, b), seed=18, lighting=((0, 1.0), (22, 1.0), (24, gain), (35, gain)))


def long_shot(n_frames: int = 1000, scale: int = 1) -> SyntheticShot:
    """96x54 (x `scale`), two objects bouncing back and forth inside the frame for
    `n_frames` frames: shows whether memory grows with the shot (`benchmarks/quality.py`)."""

    def bounce(x0: float, x1: float, y: float, period: int, phase: int) -> list[Keyframe]:
        keys: list[Keyframe] = []
        for k, t in enumerate(range(-phase, n_frames + period, period // 2)):
            keys.append((float(t), scale * (x0 if k % 2 == 0 else x1), scale * y))
        return keys

    # Both stay inside the frame: the layer count stays constant, so memory measures
    # the shot's length alone (leaving and coming back is `exit_reentry`'s difficulty).
    a = _obj("a", "ellipse", (7 * scale, 7 * scale), RED, bounce(10, 86, 17, 64, 0), seed=21, texture=2.0 * scale)
    b = _obj("b", "blob", (7 * scale, 7 * scale), BLUE, bounce(86, 10, 37, 80, 10), seed=22, texture=2.0 * scale)
    return _shot(n_frames, (a, b), seed=19, width=96 * scale, height=54 * scale, background_scale=4.0 * scale)


@dataclass(frozen=True)
class HardCase:
    build: Callable[[], SyntheticShot]
    difficulty: str


CASE_INFO: dict[str, HardCase] = {
    "baseline": HardCase(baseline, "demo story at 320x180: late entry, occlusion, exit"),
    "late_entry": HardCase(late_entry, "object enters at frame 12 of 36"),
    "exit_reentry": HardCase(exit_reentry, "object leaves for 13 frames and comes back"),
    "crossing": HardCase(crossing, "two objects cross, one hides the other"),
    "part_whole": HardCase(part_whole, "one object detected as whole and as parts"),
    "small_far": HardCase(small_far, "12x10 px object, slow"),
    "camera_pan": HardCase(camera_pan, "camera pans 2 px/frame past static props"),
    "motion_blur": HardCase(motion_blur, "18 px/frame, 180-degree shutter"),
    "lighting_change": HardCase(lighting_change, "light halves at frame 22 of 36"),
    "long": HardCase(long_shot, "1,000 frames at 96x54"),
}
# Variants that locate a limit (run by benchmarks/quality.py, not guarded in CI).
VARIANT_INFO: dict[str, HardCase] = {
    "camera_pan_plain": HardCase(lambda: camera_pan(props=False), "the same pan, no props"),
    "tiny_far": HardCase(tiny_far, "8x6 px object (0.06% of the frame)"),
    "lighting_30": HardCase(lambda: lighting_change(0.7), "light drops 30% instead of 50%"),
}
CASES: dict[str, Callable[[], SyntheticShot]] = {name: case.build for name, case in CASE_INFO.items()}
VARIANTS: dict[str, Callable[[], SyntheticShot]] = {name: case.build for name, case in VARIANT_INFO.items()}


def write_case(shot: SyntheticShot, folder: Path) -> tuple[str, Path]:
    """Plate EXRs (scene-linear) and truth PNGs (`truth/<object>.<frame>.png`, groups
    joined) into `folder`. Returns (plate pattern, truth folder)."""
    from ..media.exr import write_rgb_exr
    from ..media.ocio_colour import REC709_CHROMATICITIES

    truth = folder / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    for index in range(shot.n_frames):
        frame = shot.first_frame + index
        rgb, _ = render_frame(shot, index)
        write_rgb_exr(folder / f"{SHOT}.{frame:04d}.exr", rgb, compression="zip", chromaticities=REC709_CHROMATICITIES)
        for name, mask in truth_masks(shot, index).items():
            cv2.imwrite(str(truth / f"{name}.{frame:04d}.png"), mask.astype(np.uint8) * 255)
    return str(folder / f"{SHOT}.####.exr"), truth


def make_case_project(shot: SyntheticShot, root: Path, settings: dict[str, Any] | None = None) -> tuple[Any, Path]:
    """A project at `root` with the case as SHOW/SHOT = hard/case (show defaults, prompt
    `moving`, plus `settings`). Returns (Project, truth folder)."""
    from ..config import Project, init_project

    root = Path(root)
    init_project(root)
    pattern, truth = write_case(shot, root / "plates" / SHOW / SHOT)
    show = {"prompt": "moving", **(settings or {})}
    show["shots"] = {SHOT: {"plate": str(Path(pattern).relative_to(root))}}
    (root / "shows" / f"{SHOW}.yaml").write_text(yaml.safe_dump(show, sort_keys=False))
    return Project(root), truth


def run_case(
    name: str, root: Path, *, n_frames: int | None = None, scale: int = 1, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build case `name` as a project at `root`, run the pipeline, score the delivery.
    `n_frames` and `scale` resize the long shot (the memory figure); other cases have a
    fixed story."""
    from ..shots.shot import Shot

    from .evaluation import evaluate_delivery
    from ..shots.runner import run_shot

    builders = {**CASES, **VARIANTS}
    if name not in builders:
        raise KeyError(f"unknown hard case {name!r} (cases: {', '.join(builders)})")
    if name == "long":
        shot = long_shot(n_frames or 1000, scale)
    else:
        shot = builders[name]()
    project, truth = make_case_project(shot, Path(root), settings)
    rss_before = _current_rss_mb()
    started = time.perf_counter()
    states = run_shot(project, SHOW, SHOT, echo=lambda line: None)
    seconds = time.perf_counter() - started
    handle = Shot(project, SHOW, SHOT)
    manifest = handle.open("mattes")
    report = evaluate_delivery([(f["frame"], Path(f["path"])) for f in manifest["files"]], truth)
    tracked = handle.open("tracked_layers")
    data = report.as_dict()
    return {
        "case": name,
        "difficulty": {**CASE_INFO, **VARIANT_INFO}[name].difficulty,
        "frames": shot.n_frames,
        "size": f"{shot.width}x{shot.height}",
        "j": report.mean_j,
        "f": report.mean_f,
        "layers": len(report.layers),
        "tracked_layers": len(tracked.layer_ids),
        "objects": len(report.objects),
        "switches": report.result.total_switches,
        "layer_precision": report.result.layer_precision,
        "object_recall": report.result.object_recall,
        "per_object": data["objects"],
        "seconds": seconds,
        "stage_seconds": {s.stage: s.seconds for s in states},
        "rss_before_run_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
        "truth": str(truth),
        "delivery": manifest["folder"],
    }


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _current_rss_mb() -> float:
    value = _proc_status_mb("VmRSS")
    return float("nan") if value is None else value


def _peak_rss_mb() -> float:
    """Peak RSS of this process. Linux: VmHWM, the high-water mark of this process's own
    memory map. Not ru_maxrss: a child started by vfork + exec (Python's subprocess)
    inherits the parent's high-water mark in ru_maxrss, so a large parent (a benchmark,
    pytest) would hide the child's own figure."""
    value = _proc_status_mb("VmHWM")
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one hard case in a fresh project and score it.")
    parser.add_argument("case", choices=sorted({**CASES, **VARIANTS}))
    parser.add_argument("--root", type=Path, required=True, help="folder for the case's project (must not exist)")
    parser.add_argument("--frames", type=int, default=None, help="length of the long shot")
    parser.add_argument("--scale", type=int, default=1, help="frame size of the long shot, x 96x54")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument(
        "--block-bytes", type=int, default=None,
        help="cap on the mask blocks the layer stages read at once (stage_data.BLOCK_BYTES); for memory measurements",
    )
    args = parser.parse_args(argv)
    if args.block_bytes:
        from ..stages import stage_data

        stage_data.BLOCK_BYTES = args.block_bytes  # read by frame_blocks at call time
    if args.root.exists() and any(args.root.iterdir()):
        parser.error(f"{args.root}: exists and is not empty")
    os.environ.setdefault("TQDM_DISABLE", "1")
    result = run_case(args.case, args.root, n_frames=args.frames, scale=args.scale)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['case']}: J {result['j']:.3f} F {result['f']:.3f} layers {result['layers']}/{result['objects']} "
              f"switches {result['switches']} in {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
