"""`matte demo`: a self-contained project with a synthetic plate, run end to end.

The plate is scene-linear EXR, larger than 1024 px on its long side, frames from 1001,
with objects entering late, occluding each other and leaving the frame; the ground
truth (visible masks) is written beside it as `truth/<object>.<frame>.png`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..config import Project, add_shot, init_project
from .evaluation import score_delivery
from ..media.exr import write_rgb_exr
from ..media.ocio_colour import REC709_CHROMATICITIES
from .synthetic import demo_shot, render_frame

SHOW, SHOT = "demo", "sh010"


def write_synthetic_plate(shot, folder: Path) -> str:
    """Write the plate EXRs and truth PNGs (skipping files already there, so a rerun of
    the demo finds identical plate hashes and reuses every stage)."""
    truth = folder / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    for index in range(shot.n_frames):
        frame = shot.first_frame + index
        exr = folder / f"{SHOT}.{frame:04d}.exr"
        if exr.exists():
            continue
        rgb, masks = render_frame(shot, index)
        for name, mask in masks.items():
            cv2.imwrite(str(truth / f"{name}.{frame:04d}.png"), mask.astype(np.uint8) * 255)
        # Linear Rec.709 (the colours are designed in sRGB): the header says so, and the
        # plate stage picks the matching OCIO colourspace from it.
        write_rgb_exr(exr, rgb, compression="zip", chromaticities=REC709_CHROMATICITIES)
    return str(folder / f"{SHOT}.####.exr")


def run_demo(out: Path, n_frames: int = 48, width: int = 1280, height: int = 720, echo: Callable[[str], None] = print) -> dict:
    from ..shots.runner import run_shot

    out = Path(out).resolve()
    if not (out / "matte.yaml").exists():
        init_project(out)
    project = Project(out)
    shot = demo_shot(width=width, height=height, n_frames=n_frames)
    started = time.perf_counter()
    pattern = write_synthetic_plate(shot, out / "plates" / SHOW / SHOT)
    echo(f"synthetic plate: {pattern} ({n_frames} frames, {width}x{height}, scene-linear EXR) in {time.perf_counter() - started:.1f} s")
    add_shot(project, SHOW, SHOT, str(Path(pattern).relative_to(out)), "moving")

    states = run_shot(project, SHOW, SHOT, echo=echo)
    from ..shots.shot import Shot

    manifest = Shot(project, SHOW, SHOT).open("mattes")
    files = [(f["frame"], Path(f["path"])) for f in manifest["files"]]
    result, objects, layers = score_delivery(files, out / "plates" / SHOW / SHOT / "truth")
    echo(f"delivered: {manifest['folder']}")
    echo(f"layers: {len(layers)} ({', '.join(layers)}) for {len(objects)} objects")
    for k, name in enumerate(objects):
        match = result.assignment.get(k)
        echo(f"  {name:<10} -> {layers[match] if match is not None else '(none)':<10} J = {result.per_object_j[k]:.3f}")
    echo(f"J (mean IoU per object, one-to-one) = {result.mean_j:.3f}")
    return {"states": states, "j": result.mean_j, "layers": layers, "objects": objects, "folder": manifest["folder"]}
