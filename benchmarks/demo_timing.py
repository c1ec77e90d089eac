"""Times the demo per stage, then the rerun after a filter-threshold tweak.

    python benchmarks/demo_timing.py [--frames 48] [--width 1280] [--height 720]

Prints wall seconds per stage for the full `matte run`, two threshold tweaks (only
filtered_layers and mattes run; one keeps the delivered content, one changes it) with
their ratio to the full run, a no-change rerun, and the stored size of masks.
Ratios are only meaningful within one run of this script (machines are noisy).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from io_managers.zarr_store import ZarrStore
from matte_assets.config import Project, add_shot, init_project
from matte_assets.demo import SHOT, SHOW, write_synthetic_plate
from matte_assets.runner import run_shot
from matte_assets.synthetic import demo_shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        init_project(root)
        project = Project(root)
        pattern = write_synthetic_plate(demo_shot(args.width, args.height, args.frames), root / "plates" / SHOW / SHOT)
        add_shot(project, SHOW, SHOT, pattern, "moving")
        t0 = time.perf_counter()
        states = run_shot(project, SHOW, SHOT, echo=lambda line: None)
        full = time.perf_counter() - t0
        store = ZarrStore(project.store_url)
        key = f"{SHOW}__{SHOT}"
        heads = {s.stage: store.head(key, s.stage) for s in states}
        print(f"demo: {args.frames} frames {args.width}x{args.height} scene-linear EXR")
        print(f"{'stage':<16} {'seconds':>8}")
        for stage, head in heads.items():
            print(f"{stage:<16} {head['seconds']:8.2f}")
        print(f"{'matte run (wall)':<16} {full:8.2f}   (stages + planning, plate hashing, Dagster run)")
        tracked = heads["tracked_layers"]["summary"]
        w, h = (int(v) for v in heads["plate"]["summary"]["plate_size"].split("x"))
        print(f"masks stored: {tracked.get('stored_bytes_per_layer_frame')} bytes per non-empty layer-frame "
              f"(raw: {w * h} bytes as bool, {w * h // 8} bit-packed, at the {w}x{h} plate size)")

        path = project.show_path(SHOW)
        data = yaml.safe_load(path.read_text())
        data.setdefault("filter", {})["sim_merge"] = 0.5
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        t0 = time.perf_counter()
        states = run_shot(project, SHOW, SHOT, echo=lambda line: None)
        tweak = time.perf_counter() - t0
        ran = [s.stage for s in states if s.state == "ran"]
        print(f"threshold tweak (filter.sim_merge 0.6 -> 0.5): ran {ran}, {tweak:.2f} s wall = {100 * tweak / full:.1f}% of the full run")
        # A tweak that changes the delivered content: the occlusion blob is no longer a
        # false positive and merges into the object it mostly covers -> a new version.
        data["filter"]["sim_false_positive"] = 0.3
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        t0 = time.perf_counter()
        states = run_shot(project, SHOW, SHOT, echo=lambda line: None)
        tweak2 = time.perf_counter() - t0
        manifest = store.head(key, "mattes")["summary"]
        print(f"threshold tweak (filter.sim_false_positive 0.1 -> 0.3): ran {[s.stage for s in states if s.state == 'ran']}, "
              f"delivered {manifest['version']} (reused: {manifest['reused_existing_version']}), "
              f"{tweak2:.2f} s wall = {100 * tweak2 / full:.1f}% of the full run")
        t0 = time.perf_counter()
        run_shot(project, SHOW, SHOT, echo=lambda line: None)
        print(f"nothing changed: everything reused in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
