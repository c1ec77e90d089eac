"""The plate stage (read + downscale + OCIO view transform + store) against the bare
EXR decode of the same files.

    python benchmarks/plate_colour.py [--frames 12] [--width 4096] [--height 2160]

Writes a synthetic scene-linear EXR plate (half, ZIP), then times, each in its own
process as a user would run it:
  1. the bare decode: every frame read to float32 RGB with OpenImageIO (and, for
     reference, with the OpenEXR bindings);
  2. `matte run --from plate`: the plate stage's own seconds (recorded in the store)
     and the whole command's wall time.
Prints the ratio plate stage / bare decode (target <= 2x). Machines are noisy: compare
numbers from one run of this script only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DECODE = r"""
import glob, json, sys, time
import numpy as np
files = sorted(glob.glob(sys.argv[1]))
if sys.argv[2] == "oiio":
    import OpenImageIO as oiio
    t0 = time.perf_counter()
    for f in files:
        inp = oiio.ImageInput.open(f)
        px = inp.read_image(0, 0, 0, 3, oiio.FLOAT)
        inp.close()
else:
    import OpenEXR
    t0 = time.perf_counter()
    for f in files:
        ch = OpenEXR.File(f, separate_channels=True).channels()
        px = np.dstack([ch[c].pixels.astype(np.float32) for c in "RGB"])
print(json.dumps({"seconds": time.perf_counter() - t0, "frames": len(files)}))
"""


def _python(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True, env=env, cwd=REPO).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--keep", type=Path, help="project folder to (re)use and keep (the plate is written once)")
    args = parser.parse_args()

    from io_managers.zarr_store import ZarrStore
    from matte_assets.config import Project, add_shot, init_project
    from matte_assets.tuning.demo import SHOT, SHOW, write_synthetic_plate
    from matte_assets.tuning.synthetic import demo_shot

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "bench"
        if not (root / "matte.yaml").exists():
            init_project(root)
        project = Project(root)
        t0 = time.perf_counter()
        pattern = write_synthetic_plate(demo_shot(args.width, args.height, args.frames), root / "plates" / SHOW / SHOT)
        print(f"plate: {args.frames} frames {args.width}x{args.height} half EXR (ZIP), written in {time.perf_counter() - t0:.1f} s")
        add_shot(project, SHOW, SHOT, pattern, "moving")
        files = pattern.replace("####", "[0-9]" * 4)

        decode = {lib: json.loads(_python("-c", DECODE, files, lib)) for lib in ("oiio", "openexr")}
        t0 = time.perf_counter()
        # --from plate: the plate stage runs even when a kept project has it already.
        _python("-m", "matte_assets.cli", "run", f"{SHOW}/{SHOT}", "--project", str(root), "--from", "plate")
        wall = time.perf_counter() - t0
        head = ZarrStore(project.store_url).head(f"{SHOW}__{SHOT}", "plate")
        plate = float(head["seconds"])

        n = args.frames
        print(f"{'':<34} {'seconds':>8} {'per frame':>10}")
        print(f"{'bare decode, OpenImageIO float':<34} {decode['oiio']['seconds']:8.2f} {decode['oiio']['seconds'] / n:10.3f}")
        print(f"{'bare decode, OpenEXR bindings':<34} {decode['openexr']['seconds']:8.2f} {decode['openexr']['seconds'] / n:10.3f}")
        print(f"{'plate stage (matte run)':<34} {plate:8.2f} {plate / n:10.3f}")
        print(f"{'whole matte run (all stages)':<34} {wall:8.2f}")
        print(f"plate stage / bare OIIO decode: {plate / decode['oiio']['seconds']:.2f}x (target <= 2x)")
        print(f"colour: {json.dumps(head['settings']['colour'])}")


if __name__ == "__main__":
    main()
