"""Automatic mode on random seeded locked-off plates, through the real `matte` CLI.

    python benchmarks/random_plates.py [--seeds 0-9] [--size 320x180] [--frames 40] [--objects N]
                                       [--root DIR] [--json] [--markdown]

Per seed: `matte_assets.tuning.random_plates.random_plate(seed)` is rendered to scene-linear
EXRs plus truth PNGs, then, as a user would, `matte init`, `matte shot add ... --prompt
moving`, `matte run` and `matte eval --truth ... --json` run as separate processes.
The table: objects, layers delivered, tracked layers, mean J and F, identity switches
(total and per object), stitches made, seconds for `matte run`; then the means and how
many plates have layers == objects.

Seeds: `--seeds 0-9` (development), `--seeds 100-119` (held out). Ranges and lists mix:
`--seeds 0-4,7,100-102`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matte_assets.tuning.hard_cases import write_case  # noqa: E402
from matte_assets.tuning.random_plates import random_plate  # noqa: E402

SHOW, SHOT = "rand", "sh010"


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            seeds.extend(range(int(a), int(b) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def _matte(args: list[str], project: Path) -> str:
    exe = shutil.which("matte") or str(Path(sys.executable).parent / "matte")
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([exe, *args, "--project", str(project)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"matte {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return proc.stdout


def run_seed(seed: int, root: Path, width: int, height: int, frames: int, objects: int | None) -> dict:
    shot = random_plate(seed, width, height, frames, objects)
    project = root / f"seed{seed}"
    project.mkdir(parents=True)
    plates = project / "plates"
    pattern, truth = write_case(shot, plates)
    _matte(["init", str(project)], project)
    _matte(["shot", "add", f"{SHOW}/{SHOT}", "--plate", pattern, "--prompt", "moving"], project)
    started = time.perf_counter()
    _matte(["run", f"{SHOW}/{SHOT}"], project)
    seconds = time.perf_counter() - started
    report = json.loads(_matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--json"], project))
    tracked = json.loads(_matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--json", "--stage", "tracked_layers"], project))
    n_obj = len(report["objects"])
    stitched = _stitches(project)
    return {
        "seed": seed,
        "objects": n_obj,
        "layers": len(report["layers"]),
        "tracked_layers": len(tracked["layers"]),
        "j": report["mean_j"],
        "f": report["mean_f"],
        "switches": report["identity_switches"],
        "switches_per_object": report["identity_switches"] / max(n_obj, 1),
        "stitches": stitched,
        "seconds": seconds,
        "per_object": [(o["object"], o["layer"], o["j"], o["switches"]) for o in report["objects"]],
    }


def _stitches(project: Path) -> int:
    """Stitch merges recorded in the filtered_layers decision table (0 before stitching existed)."""
    sys.path.insert(0, str(ROOT))
    from io_managers.zarr_io_manager import open_stage
    from io_managers.zarr_store import ZarrStore

    from matte_assets.config import Project

    store = ZarrStore(Project(project).store_url)
    filtered = open_stage(store, f"{SHOW}__{SHOT}", "filtered_layers")
    rows = filtered.group.attrs.get("decisions", [])
    return sum(1 for r in rows if r.get("rule") == "stitch" and r.get("action") == "merge")


def table(rows: list[dict], markdown: bool) -> str:
    head = ["seed", "objects", "layers", "tracked", "J", "F", "switches", "sw/object", "stitches", "run s"]
    lines = []
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    else:
        lines.append("  ".join(f"{h:>9}" for h in head))
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['seed']} | error: {r['error']} |" if markdown else f"{r['seed']:>9}  error: {r['error']}")
            continue
        cells = [str(r["seed"]), str(r["objects"]), str(r["layers"]), str(r["tracked_layers"]), f"{r['j']:.3f}",
                 f"{r['f']:.3f}", str(r["switches"]), f"{r['switches_per_object']:.2f}", str(r["stitches"]), f"{r['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |" if markdown else "  ".join(f"{c:>9}" for c in cells))
    ok = [r for r in rows if "error" not in r]
    if ok:
        equal = sum(r["layers"] == r["objects"] for r in ok)
        mean_j = sum(r["j"] for r in ok) / len(ok)
        mean_f = sum(r["f"] for r in ok) / len(ok)
        mean_sw = sum(r["switches_per_object"] for r in ok) / len(ok)
        lines.append(
            f"\nplates {len(ok)} (errors {len(rows) - len(ok)}): layers == objects on {equal}/{len(ok)}, "
            f"mean J {mean_j:.3f}, mean F {mean_f:.3f}, mean switches per object {mean_sw:.3f}, "
            f"mean run {sum(r['seconds'] for r in ok) / len(ok):.1f} s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--objects", type=int, default=None, help="objects per plate (default: 2-4 per seed)")
    parser.add_argument("--root", type=Path, default=None, help="keep the projects here (default: a temporary folder, removed)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = args.root or Path(tempfile.mkdtemp(prefix="matte-random-"))
    rows = []
    try:
        for seed in parse_seeds(args.seeds):
            try:
                row = run_seed(seed, root, width, height, args.frames, args.objects)
            except Exception as exc:  # a failing plate is a finding: report it, go on
                row = {"seed": seed, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            if "error" in row:
                print(f"seed {seed}: error {row['error']}", file=sys.stderr, flush=True)
            else:
                print(f"seed {seed}: {row['layers']}/{row['objects']} layers, J {row['j']:.3f}, "
                      f"switches {row['switches']} {row['per_object']}", file=sys.stderr, flush=True)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(rows) if args.json else table(rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
