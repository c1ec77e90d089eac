"""Reproduction of issue 10 item 5: N `matte run`s of different shots started at the
same moment in a fresh SQLite project. Before the instance was initialised under a
lock, 3 simultaneous first runs corrupted the Dagster database (`alembic_version` with
more than one head) in about half the trials.

    python benchmarks/concurrent_first_runs.py --trials 20 --shots 3

Each trial: a fresh project, N shots of a tiny synthetic plate, N `matte run`
processes released together; the trial passes when every run exits 0 and a later
`matte run` of each shot reuses every stage."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matte_assets.config import init_project  # noqa: E402
from matte_assets.tuning.demo import write_synthetic_plate  # noqa: E402
from matte_assets.tuning.synthetic import small_shot  # noqa: E402


def fresh_project(root: Path, n_shots: int, frames: int = 6) -> list[str]:
    init_project(root)  # no Dagster instance yet: the race is on first use
    plate = write_synthetic_plate(small_shot(n_frames=frames), root / "plates")
    shots = {f"sh{10 * (i + 1):03d}": {"plate": str(Path(plate).relative_to(root))} for i in range(n_shots)}
    show = {"prompt": "moving", "track": {"window": 4, "prompt_step": 2}, "shots": shots}
    (root / "shows" / "race.yaml").write_text(yaml.safe_dump(show, sort_keys=False))
    return [f"race/{s}" for s in shots]


VERIFY = """
import sys
from matte_assets.config import Project, split_shot_ref
from matte_assets.shots.instance import open_instance
from matte_assets.shots.runner import plan_shot
project = Project(sys.argv[1])
runs = open_instance(project).get_runs()
assert len(runs) == len(sys.argv) - 2 and all(r.is_success for r in runs), [(r.run_id, r.status) for r in runs]
for ref in sys.argv[2:]:
    stale = [s.stage for s in plan_shot(project, *split_shot_ref(ref)) if s.state != "fresh"]
    assert not stale, (ref, stale)
"""


def matte_cmd() -> list[str]:
    return [sys.executable, "-c", "import sys; from matte_assets.cli import main; sys.exit(main())"]


def trial(n_shots: int) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="matte-race-") as tmp:
        root = Path(tmp) / "project"
        refs = fresh_project(root, n_shots)
        env = {**os.environ, "PYTHONPATH": f"{REPO}:{os.environ.get('PYTHONPATH', '')}", "MATTE_PROJECT": str(root)}
        env.pop("DAGSTER_HOME", None)
        procs = [subprocess.Popen([*matte_cmd(), "run", ref], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for ref in refs]
        outs = [p.communicate() for p in procs]
        failed = [f"{ref}: {err.strip().splitlines()[-1] if err.strip() else 'exit ' + str(p.returncode)}" for ref, p, (_, err) in zip(refs, procs, outs) if p.returncode != 0]
        if failed:
            return False, "; ".join(failed)
        # The instance must still work afterwards: one process reads every run back and
        # plans every shot (all fresh).
        check = subprocess.run([sys.executable, "-c", VERIFY, str(root), *refs], env=env, capture_output=True, text=True)
        if check.returncode != 0:
            return False, f"afterwards: {(check.stderr.strip() or check.stdout.strip()).splitlines()[-1]}"
        return True, "ok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--shots", type=int, default=3)
    args = parser.parse_args()
    passed = 0
    started = time.perf_counter()
    for i in range(args.trials):
        ok, why = trial(args.shots)
        passed += ok
        print(f"trial {i + 1:2d}: {'pass' if ok else 'FAIL'}  {why if not ok else ''}", flush=True)
    print(f"{passed}/{args.trials} trials passed ({args.shots} simultaneous first runs each, {time.perf_counter() - started:.0f} s)")
    return 0 if passed == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
