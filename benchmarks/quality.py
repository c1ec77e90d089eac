"""Hard-case quality table, long-shot memory and sweep cost, with the embedded backends.

    python benchmarks/quality.py [--cases a,b,...] [--no-variants] [--no-memory] [--markdown]

Every case is a synthetic shot with ground truth (`matte_assets/tuning/hard_cases.py`) run
through `matte run`'s code path (Dagster, Zarr store, EXR delivery) in a fresh project,
then scored on the delivered EXRs: J and F (DAVIS), layers delivered vs objects,
identity switches. Variants (not guarded by tests) locate a limit next to a case.

Memory: the long shot (96x54) runs at 250 and 1,000 frames, one process each, and
reports each process's peak RSS; then again with the layer stages' mask blocks capped
at 1 MB (`stage_data.BLOCK_BYTES`, 16 MB, holds a whole 96x54 shot of up to ~1,600 frames).

Sweep: on the baseline case's project, a 3-point and a 20-point sweep of the filter
settings with the truth (decisions per point, the shared scoring pass, wall).
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

from matte_assets.tuning.hard_cases import CASE_INFO, SHOT, SHOW, VARIANT_INFO, run_case
from matte_assets.stages.stage_data import BLOCK_BYTES


def run_cases(names: list[str]) -> tuple[list[dict], Path | None]:
    rows = []
    baseline_root: Path | None = None
    keep = Path(tempfile.mkdtemp(prefix="matte-quality-"))
    for name in names:
        root = keep / name
        try:
            row = run_case(name, root)
        except Exception as exc:  # a case that fails is a finding: report it, go on
            row = {"case": name, "error": f"{type(exc).__name__}: {exc}",
                   "difficulty": {**CASE_INFO, **VARIANT_INFO}[name].difficulty}
        rows.append(row)
        print(_line(row), flush=True)
        if name == "baseline":
            baseline_root = root
    return rows, baseline_root


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['case']:<17} FAILED: {r['error']}"
    return (f"{r['case']:<17} J {r['j']:.3f}  F {r['f']:.3f}  layers {r['layers']}/{r['objects']} "
            f"(tracked {r['tracked_layers']})  switches {r['switches']}  {r['seconds']:.1f} s")


def long_memory(frames: list[int], block_bytes: int | None) -> list[dict]:
    out = []
    for n in frames:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "matte_assets.tuning.hard_cases", "long", "--root", f"{tmp}/p", "--frames", str(n), "--json"]
            if block_bytes:
                cmd += ["--block-bytes", str(block_bytes)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if proc.returncode:
                raise SystemExit(f"long shot at {n} frames failed:\n{proc.stderr[-2000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["block_bytes"] = block_bytes
            out.append(row)
            print(f"long {n:>5} frames{' (1 MB blocks)' if block_bytes else ''}: J {row['j']:.3f}, layers {row['layers']}, "
                  f"{row['seconds']:.1f} s, RSS before run {row['rss_before_run_mb']:.0f} MB, peak {row['peak_rss_mb']:.0f} MB",
                  flush=True)
    return out


def sweep_cost(root: Path) -> list[dict]:
    from matte_assets.cli.tuning import sweep_shot
    from matte_assets.config import Project

    project = Project(root)
    truth = root / "plates" / SHOW / SHOT / "truth"
    out = []
    for sets in (
        ["filter.sim_merge=0.4,0.6,0.8"],
        ["filter.sim_false_positive=0.05,0.1,0.2,0.3,0.5", "filter.sim_merge=0.4,0.5,0.6,0.8"],
    ):
        started = time.perf_counter()
        result, paths = sweep_shot(project, SHOW, SHOT, sets, truth=truth, out=root / "reports" / f"sweep-{len(out)}")
        wall = time.perf_counter() - started
        row = {
            "sets": sets, "points": len(result.rows), "distinct_plans": result.distinct_plans,
            "decide_ms_per_point": 1000 * result.decide_seconds / len(result.rows),
            "score_seconds": result.score_seconds, "wall_seconds": wall,
            "frames": result.n_frames, "tracked_layers": result.n_layers, "plot": str(paths["plot"]),
        }
        out.append(row)
        print(f"sweep {' '.join(sets)}: {row['points']} points ({row['distinct_plans']} distinct plans), "
              f"decisions {row['decide_ms_per_point']:.2f} ms/point, scoring {row['score_seconds']:.2f} s, "
              f"wall {wall:.2f} s", flush=True)
    return out


def markdown(rows: list[dict], memory: list[dict], sweeps: list[dict]) -> str:
    lines = ["| case | difficulty | J | F | layers / objects | tracked layers | switches | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['difficulty']} | failed: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['case']} | {r['difficulty']} | {r['j']:.3f} | {r['f']:.3f} | {r['layers']} / {r['objects']} | "
                     f"{r['tracked_layers']} | {r['switches']} | {r['seconds']:.1f} |")
    if memory:
        lines += ["", "| long shot (96x54) | mask blocks | J | layers | seconds | RSS before run (MB) | peak RSS (MB) |",
                  "|---|---|---|---|---|---|---|"]
        for m in memory:
            lines.append(f"| {m['frames']} frames | {'1 MB' if m['block_bytes'] else f'{BLOCK_BYTES >> 20} MB (default)'} | {m['j']:.3f} | "
                         f"{m['layers']} | {m['seconds']:.1f} | {m['rss_before_run_mb']:.0f} | {m['peak_rss_mb']:.0f} |")
    if sweeps:
        lines += ["", "| sweep | points | distinct plans | decisions per point (ms) | scoring pass (s) | wall (s) |",
                  "|---|---|---|---|---|---|"]
        for s in sweeps:
            lines.append(f"| `{' '.join('--set ' + x for x in s['sets'])}` | {s['points']} | {s['distinct_plans']} | "
                         f"{s['decide_ms_per_point']:.2f} | {s['score_seconds']:.2f} | {s['wall_seconds']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all but `long`, plus variants)")
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--no-memory", action="store_true", help="skip the long-shot memory runs")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown at the end")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    names = args.cases.split(",") if args.cases else [n for n in CASE_INFO if n != "long"] + (
        [] if args.no_variants else list(VARIANT_INFO))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU cores", flush=True)
    rows, baseline_root = run_cases(names)
    sweeps = sweep_cost(baseline_root) if baseline_root else []
    memory: list[dict] = []
    if not args.no_memory:
        memory = long_memory([250, 1000], None) + long_memory([250, 1000], 1_000_000)
    if args.markdown:
        print()
        print(markdown(rows, memory, sweeps))


if __name__ == "__main__":
    main()
