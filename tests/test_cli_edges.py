"""Edges of the command line: usage errors, --version, name limits, config shapes,
Ctrl-C, MATTE_DEBUG, warnings on the terminal, corrections outside the project,
`matte shot remove`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from io_managers.zarr_store import ZarrStore
from matte_assets import __version__
from matte_assets.cli import main
from matte_assets.media.exr import write_rgb_exr
from matte_assets.tuning.synthetic import render_frame, small_shot

from .conftest import SHOT, SHOW, make_project

KEY = f"{SHOW}__{SHOT}"


def matte(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, usage, message",
    [
        ([], "Usage: matte [OPTIONS] COMMAND", "missing command"),
        (["run"], "Usage: matte run [OPTIONS]", "Missing argument 'SHOW/SHOT'"),
        (["--bogus"], "Usage: matte [OPTIONS]", "No such option: --bogus"),
        (["run", "demo/sh010", "--bogus"], "Usage: matte run", "No such option: --bogus"),
        (["shot"], "Usage: matte shot", "missing command"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_line(capsys, argv, usage, message) -> None:
    code, _, err = matte(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-2].startswith(usage) and lines[-1].startswith("matte: ") and message in lines[-1]
    assert "internal error" not in err


def test_version(capsys) -> None:
    code, out, _ = matte(capsys, "--version")
    assert code == 0 and out.strip() == f"matte {__version__}"


def test_names_are_limited_at_every_entry_point(capsys, project_copy) -> None:
    root = str(project_copy.root)
    long = "s" * 65
    pattern = str(next((project_copy.root / "plates" / SHOW / SHOT).glob("*.exr"))).rsplit(".", 2)[0] + ".####.exr"
    code, _, err = matte(capsys, "shot", "add", f"{SHOW}/{long}", "--plate", pattern, "--project", root)
    assert code == 1 and "65 characters, at most 64" in err
    assert long not in project_copy.show_path(SHOW).read_text()
    code, _, err = matte(capsys, "run", f"{SHOW}/{long}", "--project", root)
    assert code == 1 and "at most 64" in err
    assert matte(capsys, "shot", "add", f"{SHOW}/{'s' * 64}", "--plate", pattern, "--project", root)[0] == 0
    # A hand-edited show file with a long name fails on load, naming the file.
    data = yaml.safe_load(project_copy.show_path(SHOW).read_text())
    data["shots"][long] = data["shots"][SHOT]
    project_copy.show_path(SHOW).write_text(yaml.safe_dump(data))
    code, _, err = matte(capsys, "status", f"{SHOW}/{SHOT}", "--project", root)
    assert code == 1 and str(project_copy.show_path(SHOW)) in err and "at most 64" in err
    code, _, err = matte(capsys, "gc", "--project", root)
    assert code == 1 and "at most 64" in err


def test_shot_entry_as_a_string_is_the_plate_pattern(capsys, project_copy) -> None:
    data = yaml.safe_load(project_copy.show_path(SHOW).read_text())
    data["shots"][SHOT] = data["shots"][SHOT]["plate"]  # `sh010: plates/demo/sh010/sh010.####.exr`
    project_copy.show_path(SHOW).write_text(yaml.safe_dump(data))
    code, out, err = matte(capsys, "status", f"{SHOW}/{SHOT}", "--project", str(project_copy.root))
    assert code == 0, err
    assert "plate            fresh" in out


@pytest.mark.parametrize("entry, shown", [([1, 2], "list"), (3, "int")])
def test_bad_shot_entry_names_file_and_key(capsys, project_copy, entry, shown) -> None:
    data = yaml.safe_load(project_copy.show_path(SHOW).read_text())
    data["shots"][SHOT] = entry
    project_copy.show_path(SHOW).write_text(yaml.safe_dump(data))
    code, _, err = matte(capsys, "status", f"{SHOW}/{SHOT}", "--project", str(project_copy.root))
    assert code == 1 and err.count("\n") == 1
    assert str(project_copy.show_path(SHOW)) in err and f"shots.{SHOT}" in err and shown in err


def test_ctrl_c_prints_interrupted_exits_130_and_commits_nothing(capsys, project_copy, monkeypatch) -> None:
    from resources.embedded import GrabCutSegmenter

    store = ZarrStore(project_copy.store_url)
    before = {s: store.head(KEY, s)["version"] for s in ("frame_masks", "tracked_layers", "mattes")}
    calls = {"n": 0}
    original = GrabCutSegmenter.segment

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GrabCutSegmenter, "segment", interrupted)
    code, _, err = matte(capsys, "run", f"{SHOW}/{SHOT}", "--from", "frame_masks", "--project", str(project_copy.root))
    assert code == 130, (code, err)
    assert err.strip().splitlines()[-1] == "matte: interrupted"
    assert calls["n"] == 2
    assert {s: store.head(KEY, s)["version"] for s in before} == before  # nothing half-written became current
    assert sorted(p.name for p in (project_copy.deliveries / SHOW / SHOT).iterdir()) == ["v001"]


def test_matte_debug_prints_the_failing_stage_traceback(capsys, project_copy, monkeypatch) -> None:
    from resources.embedded import GrabCutSegmenter

    def broken_segmenter(self, *args, **kwargs):
        raise RuntimeError("segmenter exploded")

    monkeypatch.setattr(GrabCutSegmenter, "segment", broken_segmenter)
    argv = ("run", f"{SHOW}/{SHOT}", "--from", "frame_masks", "--project", str(project_copy.root))
    code, _, err = matte(capsys, *argv)
    assert code == 1 and err.count("\n") == 1 and "segmenter exploded" in err and "File \"" not in err
    monkeypatch.setenv("MATTE_DEBUG", "1")
    code, _, err = matte(capsys, *argv)
    assert code == 1 and "File \"" in err and "in broken_segmenter" in err and "segmenter exploded" in err


def test_warnings_that_change_results_reach_the_terminal(capsys, tmp_path: Path) -> None:
    shot = small_shot(n_frames=1)
    project = make_project(tmp_path / "p", shot=shot)
    rgb, _ = render_frame(shot, 0)
    rgb[0, :3] = np.nan
    path = project.root / "plates" / SHOW / SHOT / f"{SHOT}.{shot.first_frame:04d}.exr"
    path.unlink()
    write_rgb_exr(path, rgb, pixel_type="float")
    code, out, err = matte(capsys, "run", f"{SHOW}/{SHOT}", "--project", str(project.root))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("matte: warning: ")]
    assert any("NaN/inf values replaced by 0" in w and path.name in w for w in warnings), err
    assert any("no layers to deliver" in w for w in warnings), err
    assert all(line.startswith("matte: warning: ") for line in err.splitlines() if line.strip())


def test_correction_mask_outside_the_project_is_an_error(capsys, project_copy, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"not read")
    folder = project_copy.root / "corrections" / SHOW
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{SHOT}.yaml").write_text(yaml.safe_dump(
        {"corrections": [{"kind": "mask", "layer": 1, "frame": 1003, "mask": str(outside)}]}
    ))
    code, _, err = matte(capsys, "run", f"{SHOW}/{SHOT}", "--project", str(project_copy.root))
    assert code == 1 and "corrections[0].mask" in err and "outside the project's corrections folder" in err
    (folder / f"{SHOT}.yaml").write_text(yaml.safe_dump(
        {"corrections": [{"kind": "mask", "layer": 1, "frame": 1003, "mask": "../../../x.png"}]}
    ))
    code, _, err = matte(capsys, "status", f"{SHOW}/{SHOT}", "--project", str(project_copy.root))
    assert code == 1 and "corrections[0].mask" in err


@pytest.mark.parametrize("with_deliveries", [False, True])
def test_shot_remove(capsys, project_copy, with_deliveries) -> None:
    root = str(project_copy.root)
    store_dir = Path(ZarrStore(project_copy.store_url).stage_location(KEY, "plate")).parent
    assert store_dir.is_dir()
    argv = ["shot", "remove", f"{SHOW}/{SHOT}", "--project", root] + (["--deliveries"] if with_deliveries else [])
    code, out, err = matte(capsys, *argv)
    assert code == 0, err
    assert SHOT not in (yaml.safe_load(project_copy.show_path(SHOW).read_text()).get("shots") or {})
    assert not store_dir.exists()
    assert (project_copy.deliveries / SHOW / SHOT / "v001").is_dir() != with_deliveries
    code, _, err = matte(capsys, "status", f"{SHOW}/{SHOT}", "--project", root)
    assert code == 1 and f"no shot '{SHOT}'" in err
    code, _, err = matte(capsys, "shot", "remove", f"{SHOW}/{SHOT}", "--project", root)
    assert code == 1 and f"no shot '{SHOT}'" in err
