"""Contact sheets and previews of a shot's layers, and their Dagster metadata."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pytest
from PIL import Image

from matte_assets.config import Project
from matte_assets.stages.pictures import (
    contact_sheet,
    dagster_image_metadata,
    find_pictures,
    layer_colour,
    overlay,
    picture_stem,
    pictures_metadata,
    preview,
    sample_indices,
    write_pictures,
)

from .conftest import SHOT, SHOW


def _stored(root: Path, stage: str):
    from io_managers.zarr_io_manager import open_stage
    from io_managers.zarr_store import ZarrStore

    return open_stage(ZarrStore(Project(root).store_url), f"{SHOW}__{SHOT}", stage)


def _decode_png(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_overlay_fills_outlines_and_labels_each_layer() -> None:
    frame = np.full((60, 80, 3), 100, np.uint8)
    a = np.zeros((60, 80), bool)
    a[20:40, 10:30] = True
    b = np.zeros((60, 80), bool)
    b[30:50, 50:70] = True
    out = overlay(frame, np.stack([a, b]), ["one", "two"])
    assert out.shape == frame.shape and out.dtype == np.uint8
    # Inside each mask: the frame blended towards the layer's colour.
    for k, m in enumerate((a, b)):
        colour = np.asarray(layer_colour(k), float)
        inside = out[m].astype(float).mean(axis=0)
        assert np.linalg.norm(inside - colour) < np.linalg.norm(np.full(3, 100.0) - colour)
    assert (out[45:, :40] == 100).all()  # below mask a, left of mask b, labels above them
    assert overlay(frame, np.stack([a, b]), ["one", "two"], scale=2.0).shape == (120, 160, 3)


def test_sample_indices_spread_over_the_shot() -> None:
    assert sample_indices(12, 8) == [0, 2, 3, 5, 6, 8, 9, 11]
    assert sample_indices(3, 8) == [0, 1, 2] and sample_indices(0, 8) == []


def test_contact_sheet_and_preview_of_stored_layers(ran_project: Path) -> None:
    plate = _stored(ran_project, "plate")
    layers = _stored(ran_project, "filtered_layers")
    png = contact_sheet(plate, layers, n_frames=8, columns=4, tile_width=200, title="demo/sh010")
    sheet = _decode_png(png)
    tile_h = round(plate.size[1] * 200 / plate.size[0])
    assert sheet.shape[1] == 4 * 200 + 3 * 4 and sheet.shape[0] > 2 * tile_h
    # Every layer's colour appears (fill, outline, legend).
    for k in range(len(layers.layer_ids)):
        hits = np.all(sheet == np.asarray(layer_colour(k), np.uint8), axis=-1).sum()
        assert hits > 20, f"layer {k} colour missing"
    anim = Image.open(io.BytesIO(preview(plate, layers, max_frames=6, width=120)))
    assert anim.format == "WEBP" and getattr(anim, "n_frames", 1) == 6 and anim.size[0] == 120
    gif = Image.open(io.BytesIO(preview(plate, layers, max_frames=5, width=100, format="gif")))
    assert gif.format == "GIF" and gif.n_frames == 5
    tracked = _stored(ran_project, "tracked_layers")  # tracked layers label as label#id
    assert _decode_png(contact_sheet(plate, tracked, n_frames=2)).shape[0] > 0
    with pytest.raises(ValueError, match="format"):
        preview(plate, layers, format="mov")


def test_dagster_metadata_is_an_inline_image(ran_project: Path) -> None:
    plate = _stored(ran_project, "plate")
    layers = _stored(ran_project, "filtered_layers")
    png = contact_sheet(plate, layers, n_frames=2)
    value = dagster_image_metadata(png, "sheet")
    assert isinstance(value, dg.MarkdownMetadataValue)
    m = re.search(r"!\[sheet\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", value.value)
    assert m and base64.b64decode(m.group(1)) == png
    with pytest.raises(ValueError, match="not a PNG"):
        dagster_image_metadata(b"hello", "x")
    meta = pictures_metadata(plate, layers, "demo/sh010")
    assert set(meta) == {"contact_sheet", "preview"}
    assert "data:image/jpeg;base64," in meta["contact_sheet"].value and "data:image/webp;base64," in meta["preview"].value
    assert sum(len(v.value) for v in meta.values()) < 4 / 3 * (256 << 10) + 1000
    assert set(pictures_metadata(plate, layers, "x", budget=1)) == {"contact_sheet"}  # preview left out


def test_pictures_reach_the_dagster_materialisation(ran_project: Path) -> None:
    # What the UI shows is the materialisation event's metadata: attach the pictures in
    # an asset as filtered_layers / mattes do and read them back from the instance.
    plate = _stored(ran_project, "plate")
    layers = _stored(ran_project, "filtered_layers")

    @dg.asset
    def layers_with_pictures() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=pictures_metadata(plate, layers, "demo/sh010"))

    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize([layers_with_pictures], instance=instance).success
        event = instance.get_latest_materialization_event(dg.AssetKey("layers_with_pictures"))
        assert event is not None and event.asset_materialization is not None
        stored = event.asset_materialization.metadata
    assert isinstance(stored["contact_sheet"], dg.MarkdownMetadataValue)
    assert "data:image/jpeg;base64," in stored["contact_sheet"].value


def test_write_pictures(ran_project: Path, tmp_path: Path) -> None:
    plate = _stored(ran_project, "plate")
    layers = _stored(ran_project, "filtered_layers")
    assert picture_stem("sh010", 1) == "sh010_matte_v001"
    assert find_pictures(tmp_path) == {}
    paths = write_pictures(tmp_path / "review", picture_stem("sh010", 1).replace("_matte", ""), plate, layers)
    assert find_pictures(tmp_path / "review") == paths
    assert paths["contact_sheet"].name == "sh010_v001_contact.png"
    assert paths["preview"].name == "sh010_v001_preview.webp"
    assert paths["contact_sheet"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(paths["preview"]).n_frames == 12
    assert sorted(p.name for p in (tmp_path / "review").iterdir()) == ["sh010_v001_contact.png", "sh010_v001_preview.webp"]
