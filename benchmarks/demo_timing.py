"""Times the demo per stage, then the rerun after a filter-threshold tweak.

    python benchmarks/demo_timing.py [--frames 48] [--width 1280] [--height 720]

Prints wall seconds per stage for the full run, the tweak rerun (only filtered_layers
and mattes should run) and its ratio to the full run, and the stored size of masks.
Ratios are only meaningful within one run of this script (machines are noisy).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from io_managers.zarr_store import ZarrStore
from matte_assets.config import Project
from matte_assets.demo import SHOT, SHOW, run_demo
from matte_assets.runner import run_shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        t0 = time.perf_counter()
        result = run_demo(root, n_frames=args.frames, width=args.width, height=args.height, echo=lambda line: None)
        full = time.perf_counter() - t0
        project = Project(root)
        store = ZarrStore(project.store_url)
        key = f"{SHOW}__{SHOT}"
        heads = {s.stage: store.head(key, s.stage) for s in result["states"]}
        print(f"demo: {args.frames} frames {args.width}x{args.height}, J = {result['j']:.3f}, layers {len(result['layers'])}")
        print(f"{'stage':<16} {'seconds':>8}")
        stage_total = 0.0
        for stage, head in heads.items():
            stage_total += head["seconds"]
            print(f"{stage:<16} {head['seconds']:8.2f}")
        print(f"{'stages total':<16} {stage_total:8.2f}")
        print(f"{'full run (wall)':<16} {full:8.2f}   (incl. writing the synthetic plate, Dagster run, scoring)")
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


if __name__ == "__main__":
    main()
