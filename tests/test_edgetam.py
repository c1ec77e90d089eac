"""`tracker: edgetam` end to end through `matte run`, on a tiny random EdgeTAM with the
real timm backbone. Runs in a subprocess whose path holds a torchvision import stub
(tests/shims, see its header): timm imports torchvision at import time, and no CPU build
of torchvision exists. Skipped where timm is not installed (`make test` installs it)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm not installed")

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tests.conftest import make_project
    from tests.model_fixtures import write_tiny_edgetam
    from matte_assets.cli import main
    from matte_assets.tuning.synthetic import small_shot

    root = Path(sys.argv[1])
    weights = write_tiny_edgetam(root / "edgetam")
    project = make_project(root / "p", shot=small_shot(n_frames=6), show_settings={
        "backends": {"tracker": "edgetam"}, "models": {"edgetam": str(weights)}, "device": "cpu"})
    code = main(["run", "demo/sh010", "--project", str(project.root)])
    files = sorted((project.deliveries / "demo" / "sh010" / "v001").glob("*.exr"))
    print("EXR", len(files))
    from io_managers.zarr_store import ZarrStore
    head = ZarrStore(project.store_url).head("demo__sh010", "tracked_layers")
    print("TRACKER", head["settings"]["backend"]["model_class"])
    sys.exit(code)
    """
)


def test_edgetam_tracker_end_to_end(tmp_path: Path) -> None:
    script = tmp_path / "run_edgetam.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "shims"), str(REPO)])}
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:6]] == [
        ["plate", "ran"], ["detections", "ran"], ["frame_masks", "ran"],
        ["tracked_layers", "ran"], ["filtered_layers", "ran"], ["mattes", "ran"],
    ]
    assert "EXR 6" in lines
    assert "TRACKER EdgeTamVideoModel" in lines
