"""The `matte` command line (spec §5): verbs, output words, exit codes, one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from matte_assets.cli import main
from matte_assets.media.exr import read_exr
from matte_assets.tuning.synthetic import render_display, small_shot

from .conftest import SHOT, SHOW, edit_show


def matte(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_png_plate(folder: Path, shot) -> str:
    folder.mkdir(parents=True)
    for index in range(shot.n_frames):
        rgb, _ = render_display(shot, index)
        bgr = cv2.cvtColor(rgb.astype(np.uint16) * 257, cv2.COLOR_RGB2BGR)  # display uint8 -> 16 bit
        cv2.imwrite(str(folder / f"plate.{shot.first_frame + index:04d}.png"), bgr)  # 16-bit PNG
    return str(folder / "plate.%04d.png")


def test_own_png_plate_init_add_run_status(capsys, tmp_path: Path) -> None:
    shot = small_shot()
    root = tmp_path / "proj"
    code, out, _ = matte(capsys, "init", str(root))
    assert code == 0 and (root / "matte.yaml").exists() and (root / "shows").is_dir()

    pattern = write_png_plate(tmp_path / "plates", shot)
    code, out, err = matte(capsys, "shot", "add", "show1/sh020", "--plate", pattern, "--prompt", "moving", "--project", str(root))
    assert code == 0, err
    assert "12 frames 1001-1012" in out
    data = yaml.safe_load((root / "shows" / "show1.yaml").read_text())
    assert data["shots"]["sh020"] == {"plate": pattern, "prompt": "moving"}

    # Small windows so the 12-frame shot re-prompts and seeds windows.
    path = root / "shows" / "show1.yaml"
    data["track"] = {"window": 6, "prompt_step": 3}
    path.write_text(yaml.safe_dump(data))

    code, out, err = matte(capsys, "run", "show1/sh020", "--project", str(root))
    assert code == 0, err
    words = [line.split()[:2] for line in out.splitlines()[:6]]
    assert words == [[s, "ran"] for s in ("plate", "detections", "frame_masks", "tracked_layers", "filtered_layers", "mattes")]
    files = sorted((root / "deliveries" / "show1" / "sh020" / "v001").glob("*.exr"))
    assert len(files) == shot.n_frames
    channels, _ = read_exr(files[0])
    assert channels["A"].shape == (shot.height, shot.width)
    assert len([c for c in channels if c.endswith(".A")]) == len(shot.objects)  # one layer per moving object

    code, out, _ = matte(capsys, "status", "show1/sh020", "--project", str(root))
    assert code == 0 and all(line.split()[1] == "fresh" for line in out.splitlines()[:6])


def test_status_explains_a_threshold_change(capsys, project_copy) -> None:
    edit_show(project_copy, lambda d: d.setdefault("filter", {}).update(sim_false_positive=0.2))
    code, out, _ = matte(capsys, "status", f"{SHOW}/{SHOT}", "--project", str(project_copy.root))
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines()[:6])
    assert lines["tracked_layers"] == "fresh"
    assert lines["filtered_layers"].startswith("stale") and "sim_false_positive 0.1 -> 0.2" in lines["filtered_layers"]
    assert "upstream filtered_layers is stale" in lines["mattes"]

    code, out, _ = matte(capsys, "run", f"{SHOW}/{SHOT}", "--project", str(project_copy.root))
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()[:6]] == ["reused"] * 4 + ["ran"] * 2


def test_project_from_environment(capsys, project_copy, monkeypatch) -> None:
    monkeypatch.setenv("MATTE_PROJECT", str(project_copy.root))
    code, out, _ = matte(capsys, "status", f"{SHOW}/{SHOT}")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["plate", "fresh"]


def test_lineage_reads_the_header(capsys, project_copy) -> None:
    exr = sorted((project_copy.deliveries / SHOW / SHOT / "v001").glob("*.exr"))[2]
    shutil.rmtree(project_copy.root / "store")  # works from the header alone
    code, out, _ = matte(capsys, "lineage", str(exr))
    assert code == 0
    assert f"show      {SHOW}   shot {SHOT}   version v001   frame 1003" in out
    assert "sh010.1003.exr" in out and "sha256" in out
    for stage in ("plate", "detections", "frame_masks", "tracked_layers", "filtered_layers", "mattes"):
        assert f"  {stage} " in out
    code, out, _ = matte(capsys, "lineage", str(exr), "--json")
    info = yaml.safe_load(out)
    assert info["frame"] == "1003" and set(info["data_versions"]) >= {"plate", "mattes"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "demo"], "bad shot reference 'demo'"),
        (["run", "demo/sh 010"], "bad shot name"),
        (["run", "nope/sh010"], "no such show file"),
        (["run", "demo/sh999"], "no shot 'sh999'"),
        (["run", "demo/sh010", "--from", "tracking"], "--from 'tracking': not a stage"),
        (["lineage", "/nonexistent.exr"], "no such file"),
        (["shot", "add", "demo/sh020", "--plate", "/nowhere/x.####.exr"], "x.####.exr"),
    ],
)
def test_errors_are_one_line_and_non_zero(capsys, project_copy, argv, message) -> None:
    code, out, err = matte(capsys, *argv, "--project", str(project_copy.root))
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("matte: ")
    assert message in err


def test_unknown_prompt_names_what_the_backend_serves(capsys, project_copy) -> None:
    edit_show(project_copy, lambda d: d.update(prompt="car"))
    code, _, err = matte(capsys, "run", f"{SHOW}/{SHOT}", "--project", str(project_copy.root))
    assert code != 0 and "'car'" in err and "moving, person" in err


def test_not_a_project(capsys, tmp_path: Path) -> None:
    code, _, err = matte(capsys, "status", "a/b", "--project", str(tmp_path))
    assert code == 1 and "not a matte project" in err


def test_demo_small(capsys, tmp_path: Path) -> None:
    code, out, err = matte(capsys, "demo", "--out", str(tmp_path / "d"), "--frames", "12", "--width", "320", "--height", "180")
    assert code == 0, err
    assert f"delivered: {tmp_path / 'd' / 'deliveries' / 'demo' / 'sh010' / 'v001'}" in out
    assert "J (mean IoU per object, one-to-one) = " in out
    for stage in ("plate", "detections", "frame_masks", "tracked_layers", "filtered_layers", "mattes"):
        assert any(line.startswith(stage) and " s" in line for line in out.splitlines())
