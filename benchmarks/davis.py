"""DAVIS-2016 semi-supervised protocol through the real CLI and graph.

    python benchmarks/davis.py [--sequences blackswan,dog] [--frames N] [--data DIR] [--keep DIR]

Per sequence, in a fresh project (one `matte` process per command, as a user runs them):

    matte init P
    shows/davis.yaml: backends.detector none (roto keyframes only), plate.max_side 854
    matte shot add davis/<seq> --plate <seq>/plate/plate.####.jpg --roto 1001=<seq>/gt/object.1001.png
    matte run davis/<seq>                      (timed: the whole process)

then the delivered EXRs (full resolution, `<layer>.A` > 0.5) are scored against the
ground truth with the pipeline's own eval code (`evaluation.evaluate_delivery`: J and
F, DAVIS conventions) over the frames after the given one. Prints a table (J, F,
seconds per frame of the whole `matte run` process) and the means; `--json` also
writes the rows. `--frames N` limits each sequence to its first N frames.
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

REPO = Path(__file__).resolve().parent.parent
# ../shared/data beside the repo (a worktree one level deeper finds it one level up).
DEFAULT_DATA = next(
    (p for p in (REPO.parent / "shared/data/davis2016-dev", REPO.parent.parent / "shared/data/davis2016-dev") if p.is_dir()),
    REPO.parent / "shared/data/davis2016-dev",
)
FIRST = 1001
# Tuning half (looked at while developing the tracker) and held-out half (not looked at).
TUNE = ("blackswan", "bmx-trees", "breakdance", "cows", "dog")
HELD_OUT = ("car-shadow", "drift-straight", "horsejump-high", "libby", "parkour")


def _matte(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)}
    cmd = [sys.executable, "-m", "matte_assets.cli", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"matte {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def run_sequence(seq_dir: Path, root: Path, frames: int | None) -> dict:
    from matte_assets.tuning.evaluation import evaluate_delivery

    name = seq_dir.name
    plates = sorted((seq_dir / "plate").glob("plate.*.jpg"))
    last = FIRST + len(plates) - 1 if frames is None else min(FIRST + frames - 1, FIRST + len(plates) - 1)
    root.mkdir(parents=True, exist_ok=True)
    _matte(["init", str(root)], root)
    show = {"backends": {"detector": "none"}, "plate": {"max_side": 854, "frames": [FIRST, last]}, "prompt": "object"}
    (root / "shows" / "davis.yaml").write_text(json.dumps(show))  # JSON is YAML
    _matte(["shot", "add", f"davis/{name}", "--plate", str(seq_dir / "plate" / "plate.####.jpg"),
            "--roto", f"{FIRST}={seq_dir / 'gt' / f'object.{FIRST}.png'}", "--project", str(root)], root)
    started = time.perf_counter()
    _matte(["run", f"davis/{name}", "--project", str(root)], root)
    seconds = time.perf_counter() - started
    n = last - FIRST + 1
    version = sorted((root / "deliveries" / "davis" / name).glob("v*"))[-1]
    files = []
    for path in sorted(version.glob("*.exr")):
        frame = int(path.name.rsplit(".", 2)[-2])
        if frame > FIRST:  # DAVIS: the given frame is not scored
            files.append((frame, path))
    report = evaluate_delivery(files, seq_dir / "gt", source=str(version))
    return {"sequence": name, "frames": n, "j": report.mean_j, "f": report.mean_f,
            "s_per_frame": seconds / n, "seconds": seconds, "layers": len(report.layers)}


def _table(rows: list[dict]) -> str:
    lines = [f"{'sequence':<16} {'frames':>6} {'J':>6} {'F':>6} {'s/frame':>8}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['sequence']:<16} FAILED: {r['error']}")
            continue
        lines.append(f"{r['sequence']:<16} {r['frames']:>6} {r['j']:6.3f} {r['f']:6.3f} {r['s_per_frame']:8.2f}")
    for label, names in (("mean (tune)", TUNE), ("mean (held out)", HELD_OUT), ("mean (all)", None)):
        ok = [r for r in rows if "error" not in r and (names is None or r["sequence"] in names)]
        if ok:
            lines.append(
                f"{label:<16} {len(ok):>6} {sum(r['j'] for r in ok) / len(ok):6.3f} "
                f"{sum(r['f'] for r in ok) / len(ok):6.3f} {sum(r['s_per_frame'] for r in ok) / len(ok):8.2f}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="davis2016-dev folder")
    parser.add_argument("--sequences", default="", help="comma-separated subset; 'tune' or 'held-out' for a half")
    parser.add_argument("--frames", type=int, default=None, help="first N frames of each sequence only")
    parser.add_argument("--keep", type=Path, default=None, help="folder for the projects (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"davis: {args.data}: no such folder", file=sys.stderr)
        return 1
    available = sorted(p.name for p in args.data.iterdir() if (p / "plate").is_dir())
    wanted = {"tune": list(TUNE), "held-out": list(HELD_OUT)}.get(args.sequences) or (
        [s for s in args.sequences.split(",") if s] or available
    )
    unknown = [s for s in wanted if s not in available]
    if unknown:
        print(f"davis: unknown sequence(s) {', '.join(unknown)} (have: {', '.join(available)})", file=sys.stderr)
        return 1
    work = args.keep or Path(tempfile.mkdtemp(prefix="matte-davis-"))
    rows = []
    for name in wanted:
        try:
            row = run_sequence(args.data / name, work / name, args.frames)
        except Exception as exc:  # a failed sequence is a finding: report it, go on
            row = {"sequence": name, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        print(_table([row]).splitlines()[1], flush=True)
    print()
    print(_table(rows))
    print(f"projects: {work}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
