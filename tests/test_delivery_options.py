"""deliver.edges / deliver.cryptomatte through the pipeline, and the Nuke script."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.media.exr import read_exr
from matte_assets.shots.runner import plan_shot, run_shot

from .conftest import SHOT, SHOW, edit_show
from .delivery_readers import crypto_layers, decode_coverage, parse_nuke

KEY = f"{SHOW}__{SHOT}"


def quiet(line: str) -> None:
    pass


def _manifest(project):
    return open_stage(ZarrStore(project.store_url), KEY, "mattes")


def test_nuke_script_reads_the_sequence_and_shuffles_each_layer(project_copy) -> None:
    manifest = _manifest(project_copy)
    folder = Path(manifest["folder"])
    scripts = sorted(folder.glob("*.nk"))
    assert [s.name for s in scripts] == [f"{SHOT}_matte_v001.nk"]
    nodes = parse_nuke(scripts[0].read_text())
    root, read = nodes[0], nodes[1]
    frames = [f["frame"] for f in manifest["files"]]
    assert root["class"] == "Root" and int(root["first_frame"]) == frames[0] and int(root["last_frame"]) == frames[-1]
    assert read["class"] == "Read" and int(read["first"]) == frames[0] and int(read["last"]) == frames[-1]
    # the path is relative to the script; resolved, it names every delivered file
    path = read["file"].replace("[file dirname [value root.name]]", str(folder))
    assert all(Path(path % f).is_file() for f in frames)
    _, header = read_exr(folder / manifest["files"][0]["name"])
    x0, y0, x1, y1 = header["displayWindow"]
    w, h, *_rest, aspect, _name = read["format"].split()
    assert (int(w), int(h), float(aspect)) == (x1 - x0 + 1, y1 - y0 + 1, 1.0)
    shuffles = [n for n in nodes if n["class"] == "Shuffle"]
    layers = [c[:-2] for c in manifest["channels"] if c.endswith(".A")]
    assert [s["name"] for s in shuffles] == layers and [s["in"] for s in shuffles] == layers
    assert all(s["input"] == 1 and s["alpha"] == "alpha" and s["red"] == "alpha" for s in shuffles)


def test_soft_edges_and_cryptomatte_rerun_only_mattes_and_decode(project_copy) -> None:
    before = _manifest(project_copy)
    edit_show(project_copy, lambda d: d.setdefault("deliver", {}).update(edges="soft", cryptomatte=True))
    plan = {s.stage: s.state for s in plan_shot(project_copy, SHOW, SHOT)}
    assert plan == {"plate": "fresh", "detections": "fresh", "frame_masks": "fresh", "tracked_layers": "fresh",
                    "filtered_layers": "fresh", "mattes": "stale"}
    states = {s.stage: s.state for s in run_shot(project_copy, SHOW, SHOT, echo=quiet)}
    assert [s for s, v in states.items() if v == "ran"] == ["mattes"]
    after = _manifest(project_copy)
    assert after["version"] == before["version"] + 1
    names = list(after["layer_ids"])
    assert after["layer_ids"] == before["layer_ids"]  # same names for the same layers
    assert "CryptoObject00.R" in after["channels"]
    soft_values = 0
    for f in after["files"]:
        channels, header = read_exr(f["path"])
        meta = crypto_layers(header)["CryptoObject"]
        assert set(meta) >= {"name", "hash", "conversion", "manifest"}
        for name in names:
            alpha = channels[f"{name}.A"]
            decoded = decode_coverage(channels, "CryptoObject", name)
            assert np.abs(decoded - alpha).max() < 1e-3, (f["frame"], name)
            soft_values += int(((alpha > 0.05) & (alpha < 0.95)).sum())
        assert np.allclose(channels["A"], np.max([channels[f"{n}.A"] for n in names], axis=0), atol=1e-3)
    assert soft_values > 0
