"""Farm throughput: N demo-sized shots on 1 vs 2 Celery workers, queue latency,
per-run overhead against `matte run`, and a projection for a whole show set.

    python benchmarks/farm.py                         # 8 shots x 48 frames, 1280x720
    python benchmarks/farm.py --shots 4 --frames 12 --width 320 --height 180   # quick

Starts Postgres/Redis/daemon/webserver/workers with deploy/services.sh (data under
--dir), submits every shot with `matte submit` semantics (submit_shots), waits, and
reads run and stage timings back from the instance and the store. Prints a Markdown
report (docs/farm.md keeps the measured one)."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from matte_assets.config import Project, init_project  # noqa: E402
from matte_assets.tuning.demo import write_synthetic_plate  # noqa: E402
from matte_assets.farm.tags import MODEL_STAGES  # noqa: E402
from matte_assets.shots.lineage import STAGES  # noqa: E402
from matte_assets.tuning.synthetic import demo_shot  # noqa: E402

SERVICES = REPO / "deploy" / "services.sh"
SHOW = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_project(root: Path, n_shots: int, frames: int, width: int, height: int) -> list[str]:
    init_project(root)
    plate = write_synthetic_plate(demo_shot(width=width, height=height, n_frames=frames), root / "plates")
    shots = {f"sh{10 * (i + 1):03d}": {"plate": str(Path(plate).relative_to(root))} for i in range(n_shots)}
    (root / "shows" / f"{SHOW}.yaml").write_text(yaml.safe_dump({"prompt": "moving", "shots": shots}, sort_keys=False))
    return list(shots)


def services(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(["bash", str(SERVICES), *args], env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"services.sh {' '.join(args)} failed: {out.stderr.strip()[-600:]}")
    return out.stdout


def stage_seconds(project: Project, shot: str) -> dict[str, float]:
    from io_managers.zarr_store import ZarrStore

    store = ZarrStore(project.store_url)
    return {s: float((store.head(f"{SHOW}__{shot}", s) or {}).get("seconds") or 0.0) for s in STAGES}


def local_run(root: Path, shot: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = f"{REPO}:{env.get('PYTHONPATH', '')}"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "matte_assets.cli", "run", f"{SHOW}/{shot}", "--project", str(root)],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"matte run failed: {out.stderr.strip()}")
    return time.perf_counter() - started


def farm_round(project: Project, env: dict[str, str], shots: list[str], from_stage: str | None) -> dict:
    import dagster as dg

    from matte_assets.farm.submit import submit_shots

    started = time.time()
    subs = submit_shots(project, [SHOW], url=env["MATTE_DAGSTER_URL"], from_stage=from_stage)
    ids = [s.run_id for s in subs if s.run_id]
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    while True:
        records = [instance.get_run_record_by_id(r) for r in ids]
        if all(r.dagster_run.status.value in ("SUCCESS", "FAILURE", "CANCELED") for r in records):
            break
        time.sleep(1)
    failed = [r.dagster_run.run_id for r in records if r.dagster_run.status.value != "SUCCESS"]
    if failed:
        raise SystemExit(f"runs failed: {failed} (see {env['MATTE_FARM_DIR']})")
    return {
        "wall": max(r.end_time for r in records) - started,
        "latency": sorted(r.start_time - r.create_timestamp.timestamp() for r in records),
        "durations": [r.end_time - r.start_time for r in records],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "matte-farm-bench")
    ap.add_argument("--project-shots", type=int, default=1241)
    ap.add_argument("--project-frames", type=int, default=100)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="matte-farm-bench-"))
    root = work / "project"
    shots = make_project(root, args.shots, args.frames, args.width, args.height)
    local_root = work / "local"
    shutil.copytree(root, local_root)
    t_local = local_run(local_root, shots[0])
    local_stages = stage_seconds(Project(local_root), shots[0])

    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MATTE_PY_BIN": bin_dir, "MATTE_FARM_DIR": str(args.dir),
           "MATTE_FARM_HOME": str(work / "home"), "MATTE_PG_DB": f"matte_bench_{uuid.uuid4().hex[:6]}",
           "MATTE_WEB_PORT": str(free_port()), "MATTE_EXECUTOR": "celery", "MATTE_GPUS": "2",
           # Celery workers serve one project: the benchmark's tasks get a Redis database of their own.
           "MATTE_CELERY_BROKER": f"redis://127.0.0.1:{os.environ.get('MATTE_REDIS_PORT', '56379')}/2"}
    env.pop("DAGSTER_HOME", None)
    for line in services(env, "env").splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        env[k] = v
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "MATTE_PG_URL", "MATTE_MAX_RUNS")})
    project = Project(root)
    rounds = {}
    try:
        services(env, "start", str(root))
        services(env, "worker", "w1", str(root))
        rounds[1] = farm_round(project, env, shots, None)
        services(env, "worker", "w2", str(root))
        time.sleep(5)  # w2 joins the broker
        rounds[2] = farm_round(project, env, shots, "plate")
    finally:
        services(env, "stop")
    farm_stages = stage_seconds(project, shots[0])

    per_frame = {s: farm_stages[s] / args.frames for s in STAGES}
    gpu = sum(per_frame[s] for s in MODEL_STAGES)
    cpu = sum(per_frame[s] for s in STAGES if s not in MODEL_STAGES)
    overhead_farm = sum(rounds[2]["durations"]) / len(shots) - sum(farm_stages.values())
    overhead_local = t_local - sum(local_stages.values())
    print(f"## Farm benchmark: {args.shots} shots x {args.frames} frames, {args.width}x{args.height}, embedded backends\n")
    print("| workers | wall (s) | shots/min | queue latency median / max (s) |\n|---|---|---|---|")
    for n, r in rounds.items():
        lat = r["latency"]
        print(f"| {n} | {r['wall']:.1f} | {60 * args.shots / r['wall']:.2f} | {lat[len(lat) // 2]:.1f} / {lat[-1]:.1f} |")
    print(f"\nthroughput ratio 2 vs 1 workers: {rounds[1]['wall'] / rounds[2]['wall']:.2f}x")
    print(f"per-run overhead (run time minus stage time): farm {overhead_farm:.1f} s, `matte run` {overhead_local:.1f} s "
          f"(whole process {t_local:.1f} s)")
    print("\n| stage | s/frame (farm) |\n|---|---|")
    for s in STAGES:
        print(f"| {s}{' (gpu pool)' if s in MODEL_STAGES else ''} | {per_frame[s]:.3f} |")
    total_frames = args.project_shots * args.project_frames
    print(f"\nprojection, {args.project_shots} shots x {args.project_frames} frames, one worker = one GPU + its CPU stages:")
    for n in (1, 4, 8, 16, 32):
        hours = (total_frames * (gpu + cpu) + args.project_shots * max(overhead_farm, 0)) / n / 3600
        print(f"  {n:2d} workers: {hours:8.1f} h")
    print(f"\n(work folder {work}; remove it when done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
