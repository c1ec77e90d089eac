"""Soft alpha vs hard alpha against a plate with KNOWN soft alpha (matte_assets/tuning/soft_plate.py).

Renders the plate (anti-aliased and motion-blurred edges, a hairy object, true alpha per
object), runs the pipeline as a user does (`moving` prompt, embedded backends) with
`deliver.edges: hard`, then switches to `soft` (only `mattes` reruns) and scores both
deliveries against the truth:

- SAD: sum of |alpha - truth| over every pixel of every frame, in thousands;
- Grad: sum of squared differences of the Gaussian (sigma 1.4) gradients of alpha and
  truth, in thousands (the gradient error of Rhemann et al.'s matting benchmark);
- J: mean IoU of (alpha >= 0.5) with (truth >= 0.5) per object over the frames
  (objects matched to delivered layers by summed IoU).

    PYTHONPATH=. python benchmarks/soft_alpha.py [--max-side 480] [--frames 24] [--seed 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matte_assets.config import Project, init_project  # noqa: E402
from matte_assets.media.exr import read_exr  # noqa: E402
from matte_assets.tuning.soft_plate import NAMES, SoftShot, true_alpha, write_plate  # noqa: E402

SHOW, SHOT = "bench", "soft"


def _grad(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = cv2.GaussianBlur(a, (0, 0), 1.4)
    return cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0, cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0


def score(shot: SoftShot, files: list[tuple[int, Path]]) -> dict:
    """SAD, Grad and J of a delivery (per object and in total)."""
    frames = {frame: read_exr(path)[0] for frame, path in files}
    layers = sorted({c[:-2] for ch in frames.values() for c in ch if c.endswith(".A")})
    truth = {i: true_alpha(shot, i) for i in range(shot.n_frames)}
    # IoU (>= 0.5) summed over frames, object x layer, to match objects to layers.
    iou = np.zeros((len(NAMES), len(layers)))
    for i, frame in enumerate(shot.first_frame + k for k in range(shot.n_frames)):
        for o, name in enumerate(NAMES):
            t = truth[i][name] >= 0.5
            for l_, layer in enumerate(layers):
                a = frames[frame][f"{layer}.A"] >= 0.5
                union = (t | a).sum()
                iou[o, l_] += 1.0 if union == 0 else (t & a).sum() / union
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-iou)
    match = {NAMES[r]: layers[c] for r, c in zip(rows, cols)}
    out: dict = {"layers": layers, "match": match, "objects": {}}
    for o, name in enumerate(NAMES):
        sad = grad = 0.0
        for i in range(shot.n_frames):
            t = truth[i][name]
            layer = match.get(name)
            a = frames[shot.first_frame + i][f"{layer}.A"] if layer else np.zeros_like(t)
            sad += float(np.abs(a - t).sum())
            (ax, ay), (tx, ty) = _grad(a), _grad(t)
            grad += float(((ax - tx) ** 2 + (ay - ty) ** 2).sum())
        j = iou[o, layers.index(match[name])] / shot.n_frames if name in match else 0.0
        out["objects"][name] = {"sad": sad / 1e3, "grad": grad / 1e3, "j": j}
    out["sad"] = sum(v["sad"] for v in out["objects"].values())
    out["grad"] = sum(v["grad"] for v in out["objects"].values())
    out["j"] = float(np.mean([v["j"] for v in out["objects"].values()]))
    return out


def run(max_side: int, n_frames: int, root: Path, seed: int = SoftShot.seed) -> dict:
    from io_managers.zarr_io_manager import open_stage
    from io_managers.zarr_store import ZarrStore
    from matte_assets.shots.runner import run_shot

    shot = SoftShot(n_frames=n_frames, seed=seed)
    init_project(root)
    pattern = write_plate(shot, root / "plates")
    show = {"prompt": "moving", "plate": {"max_side": max_side}, "deliver": {"edges": "hard"},
            "shots": {SHOT: {"plate": pattern}}}
    show_file = root / "shows" / f"{SHOW}.yaml"
    results = {}
    for edges in ("hard", "soft"):
        show["deliver"]["edges"] = edges
        show_file.write_text(yaml.safe_dump(show, sort_keys=False))
        project = Project(root)
        started = time.perf_counter()
        states = run_shot(project, SHOW, SHOT, echo=lambda line: None)
        seconds = time.perf_counter() - started
        manifest = open_stage(ZarrStore(project.store_url), f"{SHOW}__{SHOT}", "mattes")
        results[edges] = {
            **score(shot, [(f["frame"], Path(f["path"])) for f in manifest["files"]]),
            "ran": [s.stage for s in states if s.state == "ran"],
            "mattes_seconds": next(s.seconds for s in states if s.stage == "mattes"),
            "seconds": seconds,
        }
    return {"size": f"{shot.width}x{shot.height}", "max_side": max_side, "frames": n_frames, "seed": seed,
            "ideal": ideal_score(shot, max_side), **results}


def ideal_score(shot: SoftShot, max_side: int) -> dict:
    """SAD hard vs soft (x1000) and soft seconds per frame from "ideal" coarse masks: the
    truth downscaled to the plate's working size, thresholded at 0.5 and upscaled (a
    perfect plate-resolution segmentation); isolates the refinement from the tracker."""
    from matte_assets.algorithms.soft_alpha import auto_band, guide_image, refine_alpha
    from matte_assets.media.scale import upscale_mask
    from matte_assets.tuning.soft_plate import render

    full = (shot.width, shot.height)
    scale = max_side / max(full)
    plate = (round(full[0] * scale), round(full[1] * scale))
    band = auto_band(full, plate)
    hard = soft = seconds = 0.0
    for i in range(shot.n_frames):
        image, truth = render(shot, i)
        started = time.perf_counter()
        guide = guide_image(image, True)
        for a in truth.values():
            coarse = upscale_mask(cv2.resize(a, plate, interpolation=cv2.INTER_AREA) >= 0.5, full)
            hard += float(np.abs(coarse - a).sum())
            soft += float(np.abs(refine_alpha(coarse, guide, band) - a).sum())
        seconds += time.perf_counter() - started
    return {"sad_hard": hard / 1e3, "sad_soft": soft / 1e3, "seconds_per_frame": seconds / shot.n_frames}


def table(result: dict) -> str:
    hard, soft = result["hard"], result["soft"]
    lines = [
        f"plate {result['size']} (seed {result['seed']}), {result['frames']} frames, plate.max_side {result['max_side']}",
        "",
        "| object | SAD hard | SAD soft | soft/hard | Grad hard | Grad soft | J hard | J soft |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in NAMES:
        h, s = hard["objects"][name], soft["objects"][name]
        lines.append(f"| {name} | {h['sad']:.1f} | {s['sad']:.1f} | {s['sad'] / max(h['sad'], 1e-9):.2f} | "
                     f"{h['grad']:.2f} | {s['grad']:.2f} | {h['j']:.3f} | {s['j']:.3f} |")
    lines.append(f"| **all** | {hard['sad']:.1f} | {soft['sad']:.1f} | {soft['sad'] / max(hard['sad'], 1e-9):.2f} | "
                 f"{hard['grad']:.2f} | {soft['grad']:.2f} | {hard['j']:.3f} | {soft['j']:.3f} |")
    lines.append("")
    lines.append(f"soft run reran: {', '.join(soft['ran'])}; mattes stage {hard['mattes_seconds']:.1f} s hard, "
                 f"{soft['mattes_seconds']:.1f} s soft")
    ideal = result["ideal"]
    lines.append(f"ideal coarse masks: SAD {ideal['sad_hard']:.1f} hard, {ideal['sad_soft']:.1f} soft "
                 f"({ideal['sad_soft'] / max(ideal['sad_hard'], 1e-9):.2f}); refinement {ideal['seconds_per_frame']:.2f} s/frame")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-side", type=int, nargs="+", default=[480])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--out", type=Path, default=None, help="keep the projects here (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=SoftShot.seed, help="the plate's random seed (hair strands, noise)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        for max_side in args.max_side:
            result = run(max_side, args.frames, base / f"soft_{max_side}_{args.seed}", args.seed)
            print(json.dumps(result, indent=2, default=str) if args.json else table(result))
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
