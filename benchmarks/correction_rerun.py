"""Cost of a one-layer artist correction against a full tracking run (demo shot).

    python benchmarks/correction_rerun.py [--frames 48] [--width 1280] [--height 720]

Runs the demo, then `matte run --from tracked_layers` (a full tracking run), then draws
one layer's ground-truth mask on one frame with `matte correct` and reruns. Prints the
tracked_layers seconds of both, their ratio, tracker work (frames propagated), the
stages that ran, the delivered versions and the corrected object's J before/after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.config import Project, add_shot, init_project
from matte_assets.shots.corrections import record_correction
from matte_assets.tuning.demo import SHOT, SHOW, write_synthetic_plate
from matte_assets.tuning.evaluation import score_delivery
from matte_assets.shots.runner import run_shot
from matte_assets.tuning.synthetic import demo_shot

KEY = f"{SHOW}__{SHOT}"


def score(project: Project, truth: Path) -> dict[str, float]:
    manifest = open_stage(ZarrStore(project.store_url), KEY, "mattes")
    result, objects, _ = score_delivery([(f["frame"], Path(f["path"])) for f in manifest["files"]], truth)
    return {name: float(result.per_object_j[k]) for k, name in enumerate(objects)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--object", default="green", help="object whose layer gets the drawn mask")
    parser.add_argument("--frame", type=int, default=1039, help="frame the mask is drawn on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        init_project(root)
        project = Project(root)
        folder = root / "plates" / SHOW / SHOT
        add_shot(project, SHOW, SHOT, write_synthetic_plate(demo_shot(args.width, args.height, args.frames), folder), "moving")
        run_shot(project, SHOW, SHOT, echo=lambda line: None)
        store = ZarrStore(project.store_url)
        t0 = time.perf_counter()
        run_shot(project, SHOW, SHOT, from_stage="tracked_layers", echo=lambda line: None)
        full_wall = time.perf_counter() - t0
        full = store.head(KEY, "tracked_layers")
        full_calls = open_stage(store, KEY, "tracked_layers").group.attrs["tracker_calls"]
        before = score(project, folder / "truth")

        manifest = open_stage(store, KEY, "mattes")
        result, objects, layers = score_delivery([(f["frame"], Path(f["path"])) for f in manifest["files"]], folder / "truth")
        layer = layers[result.assignment[objects.index(args.object)]]
        record_correction(project, SHOW, SHOT, layer=layer, frame=args.frame,
                          mask=folder / "truth" / f"{args.object}.{args.frame}.png")
        t0 = time.perf_counter()
        states = run_shot(project, SHOW, SHOT, echo=lambda line: None)
        corr_wall = time.perf_counter() - t0
        corr = store.head(KEY, "tracked_layers")
        corr_calls = open_stage(store, KEY, "tracked_layers").group.attrs["tracker_calls"]
        after = score(project, folder / "truth")

        full_frames = sum(v for k, v in full_calls.items() if k.endswith("propagated_frames"))
        corr_frames = sum(v for k, v in corr_calls.items() if k.endswith("propagated_frames"))
        print(f"demo {args.frames} frames {args.width}x{args.height}; drawn mask: {args.object} ({layer}) at frame {args.frame}")
        print(f"full tracked_layers run:        {full['seconds']:6.2f} s  ({full_frames} object-frames propagated; matte run {full_wall:.2f} s)")
        print(f"one-layer correction rerun:     {corr['seconds']:6.2f} s  ({corr_frames} object-frames propagated; matte run {corr_wall:.2f} s)")
        print(f"ratio (tracked_layers seconds): {corr['seconds'] / full['seconds']:.2f}; re-tracked layers {corr.get('retracked_layers')}")
        print(f"stages that ran: {[s.stage for s in states if s.state == 'ran']}; delivered v{open_stage(store, KEY, 'mattes')['version']:03d}")
        print(f"J {args.object}: {before[args.object]:.3f} -> {after[args.object]:.3f}; mean {sum(before.values()) / len(before):.3f} -> {sum(after.values()) / len(after):.3f}")


if __name__ == "__main__":
    main()
