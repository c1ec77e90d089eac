"""Plate colour (OpenColorIO) and plate reading (OpenImageIO), end to end through the CLI.

Plates are synthesised here: scene-linear frames of `small_shot` converted with OCIO's
own processors (ACEScg, ARRI LogC4), a 10-bit DPX sequence written with OpenImageIO, an
anamorphic (pixel aspect 2.0) EXR; bad inputs must fail with one line naming the file
or key, exit non-zero and deliver nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest
import yaml

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.cli import main
from matte_assets.config import Project, init_project
from matte_assets.errors import ConfigError, PlateError
from matte_assets.media.exr import read_exr, read_exr_header, write_exr, write_rgb_exr
from matte_assets.media.image_read import read_image
from matte_assets.media.ocio_colour import colour_spec, display_transform, exact_display
from matte_assets.tuning.synthetic import render_display, render_frame, small_shot

ACESCG_RED = (0.6, 0.05, 0.02)
SDR_VIEW = "ACES 2.0 - SDR 100 nits (Rec.709)"
SHOW = "show1"
N_FRAMES = 8


def _convert(config: str, src: str, dst: str, rgb: np.ndarray) -> np.ndarray:
    cfg = ocio.Config.CreateFromFile(config)
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    cpu = cfg.getProcessor(src, dst).getDefaultCPUProcessor()
    cpu.apply(ocio.PackedImageDesc(out, out.shape[1], out.shape[0], 3))
    return out


def _to_display(config: str, src: str, rgb: np.ndarray, view: str = SDR_VIEW) -> np.ndarray:
    cfg = ocio.Config.CreateFromFile(config)
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    cpu = cfg.getProcessor(src, "sRGB - Display", view, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor()
    cpu.apply(ocio.PackedImageDesc(out, out.shape[1], out.shape[0], 3))
    return np.rint(np.clip(out, 0, 1) * 255).astype(int)


def _acescg_frames(shot) -> list[np.ndarray]:
    """The shot's linear Rec.709 frames in ACEScg, with a static ACEScg-red patch."""
    frames = []
    for index in range(shot.n_frames):
        rgb, _ = render_frame(shot, index)
        aces = _convert("ocio://cg-config-latest", "Linear Rec.709 (sRGB)", "ACEScg", rgb)
        aces[:8, :8] = ACESCG_RED
        frames.append(aces)
    return frames


def _project(tmp_path: Path, shot_entry: dict, show_extra: dict | None = None, project_extra: dict | None = None) -> Path:
    root = tmp_path / "proj"
    init_project(root)
    if project_extra:
        data = yaml.safe_load((root / "matte.yaml").read_text())
        (root / "matte.yaml").write_text(yaml.safe_dump({**data, **project_extra}))
    show = {"prompt": "moving", "track": {"window": 4, "prompt_step": 2}, **(show_extra or {}), "shots": {"sh010": shot_entry}}
    (root / "shows" / f"{SHOW}.yaml").write_text(yaml.safe_dump(show, sort_keys=False))
    return root


def _run(capsys, root: Path) -> tuple[int, str, str]:
    code = main(["run", f"{SHOW}/sh010", "--project", str(root)])
    out, err = capsys.readouterr()
    return code, out, err


def _plate(root: Path):
    project = Project(root)
    store = ZarrStore(project.store_url)
    return open_stage(store, f"{SHOW}__sh010", "plate")


def _delivered(root: Path) -> list[Path]:
    return sorted((root / "deliveries").rglob("*.exr"))


# --- colour settings ----------------------------------------------------------------


def test_default_config_and_identity() -> None:
    spec = colour_spec(None, None)
    ident = spec.identity()
    assert ident["config"].startswith("cg-config") and ident["ocio"] == ocio.GetVersion()
    assert ident["config_cache_id"] and ident["display"] == "sRGB - Display"
    # Float pixels default to the scene_linear role, integer pixels to sRGB texture.
    assert spec.colourspace_for(True) == "ACEScg"
    assert spec.colourspace_for(False) == "sRGB Encoded Rec.709 (sRGB)"
    rec709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
    assert spec.colourspace_for(True, rec709) == "Linear Rec.709 (sRGB)"
    # Aliases resolve to the config's name; it enters the identity.
    assert colour_spec("sRGB - Texture", None).identity()["colorspace"] == "sRGB Encoded Rec.709 (sRGB)"


def test_acescg_red_matches_ocio_and_highlights_are_not_clipped() -> None:
    spec = colour_spec("ACEScg", None)
    transform = display_transform(spec, True)
    assert transform.view == SDR_VIEW
    pixels = np.array([[ACESCG_RED, (1, 1, 1), (4, 4, 4), (16, 16, 16)]], np.float32)
    got = transform.apply(pixels).astype(int)
    expected = _to_display("ocio://cg-config-latest", "ACEScg", pixels)
    assert np.abs(got - expected).max() <= 1, (got, expected)
    assert got[0, 0, 0] > 150 and got[0, 0, 1] < 40  # red stays red (not (203, 63, 39))
    greys = got[0, 1:, 0]
    assert greys[0] < greys[1] < greys[2] < 255  # tone-mapped: 1, 4, 16 stay distinct


def test_baked_lut_stays_close_to_the_exact_processor() -> None:
    spec = colour_spec("ACEScg", None)
    transform = display_transform(spec, True)
    rng = np.random.default_rng(1)
    pixels = (rng.random((1, 4000, 3)) * 1.2).astype(np.float32)
    got = transform.apply(pixels).astype(int)
    exact = np.rint(np.clip(exact_display(spec, "ACEScg", pixels), 0, 1) * 255).astype(int)
    diff = np.abs(got - exact)
    assert np.percentile(diff, 99) <= 2 and diff.mean() < 0.5


def test_display_referred_png_is_shown_unchanged() -> None:
    transform = display_transform(colour_spec(None, None), False)
    assert transform.identity_transform and transform.view == "Un-tone-mapped"
    pixels = np.random.default_rng(2).random((4, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(transform.apply(pixels), np.rint(pixels * 255).astype(np.uint8))


def test_unknown_colourspace_names_closest() -> None:
    with pytest.raises(ConfigError, match=r"plate\.colorspace: unknown colourspace 'ACEScgg'.*closest: ACEScg"):
        colour_spec("ACEScgg", None)
    with pytest.raises(ConfigError, match=r"'ARRI LogC4'.*it is in ocio://studio-config-latest"):
        colour_spec("ARRI LogC4", None)


def test_config_from_env_and_missing_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OCIO", str(tmp_path / "nope" / "config.ocio"))
    with pytest.raises(ConfigError, match=r"\$OCIO: OCIO config .*nope/config.ocio not found"):
        colour_spec(None, None)
    monkeypatch.setenv("OCIO", "ocio://studio-config-latest")
    assert colour_spec("ARRI LogC4", None).identity()["config"].startswith("studio-config")
    # The project's setting wins over the environment.
    assert colour_spec(None, "ocio://cg-config-latest").identity()["config"].startswith("cg-config")


# --- reading --------------------------------------------------------------------------


def test_layered_exr_needs_plate_layer(tmp_path: Path) -> None:
    y = np.full((4, 6), 0.5, np.float32)
    zero = np.zeros_like(y)
    path = write_exr(tmp_path / "l.exr", {"beauty.R": y, "beauty.G": y, "beauty.B": y,
                                          "aov.R": zero, "aov.G": zero, "aov.B": zero})
    with pytest.raises(PlateError, match=r"l\.exr: no plain R,G,B channels; set plate\.layer to one of: aov, beauty"):
        read_image(path)
    image = read_image(path, "beauty")
    assert image.layer == "beauty" and float(image.pixels.min()) == 0.5
    with pytest.raises(PlateError, match=r"plate\.layer 'diffuse' is not in the file \(layers with R,G,B: aov, beauty\)"):
        read_image(path, "diffuse")


def test_multipart_exr_layers_by_part_name(tmp_path: Path) -> None:
    path = tmp_path / "mp.exr"
    parts = []
    for name, value in (("aov", 0.0), ("beauty", 0.25)):
        spec = oiio.ImageSpec(6, 4, 3, oiio.HALF)
        spec.attribute("oiio:subimagename", name)
        parts.append((spec, np.full((4, 6, 3), value, np.float32)))
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), [s for s, _ in parts])
    for k, (spec, pixels) in enumerate(parts):
        if k:
            assert out.open(str(path), spec, "AppendSubimage")
        assert out.write_image(pixels)
    out.close()
    with pytest.raises(PlateError, match="set plate.layer to one of: aov, beauty"):
        read_image(path)
    assert float(read_image(path, "beauty").pixels.max()) == 0.25


def test_tiff_depths_pixel_aspect_and_chromaticities(tmp_path: Path) -> None:
    rgb = np.random.default_rng(3).random((5, 7, 3)).astype(np.float32)
    for fmt, depth, tol in ((oiio.UINT8, "uint8", 1 / 255), (oiio.UINT16, "uint16", 1 / 65535), (oiio.FLOAT, "float", 0)):
        path = tmp_path / f"t_{depth}.tif"
        buf = oiio.ImageBuf(oiio.ImageSpec(7, 5, 3, fmt))
        buf.set_pixels(oiio.ROI(), rgb)
        assert buf.write(str(path))
        image = read_image(path)
        assert image.bit_depth == depth and image.linear == (depth == "float")
        np.testing.assert_allclose(image.pixels, rgb, atol=tol)
    chroma = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
    path = write_rgb_exr(tmp_path / "ana.exr", rgb, pixel_aspect_ratio=2.0, chromaticities=chroma)
    image = read_image(path)
    assert image.pixel_aspect_ratio == 2.0
    np.testing.assert_allclose(image.chromaticities, chroma, atol=1e-6)


def _write_dpx(path: Path, rgb8: np.ndarray) -> None:
    spec = oiio.ImageSpec(rgb8.shape[1], rgb8.shape[0], 3, oiio.UINT16)
    spec.attribute("oiio:BitsPerSample", 10)
    buf = oiio.ImageBuf(spec)
    buf.set_pixels(oiio.ROI(), rgb8.astype(np.float32) / 255.0)
    assert buf.write(str(path)), oiio.geterror()


def test_dpx_10_bit_reads_back(tmp_path: Path) -> None:
    rgb = (np.random.default_rng(4).random((6, 9, 3)) * 255).astype(np.uint8)
    _write_dpx(tmp_path / "f.1001.dpx", rgb)
    image = read_image(tmp_path / "f.1001.dpx")
    assert image.bit_depth == "10-bit" and not image.linear
    np.testing.assert_allclose(image.pixels * 255, rgb, atol=0.5)


# --- end to end through the CLI -------------------------------------------------------


def test_acescg_exr_plate_end_to_end(capsys, tmp_path: Path) -> None:
    shot = small_shot(n_frames=N_FRAMES)
    folder = tmp_path / "plates"
    folder.mkdir()
    for index, frame in enumerate(_acescg_frames(shot)):
        write_rgb_exr(folder / f"a.{1001 + index:04d}.exr", frame)
    root = _project(tmp_path, {"plate": {"path": str(folder / "a.####.exr"), "colorspace": "ACEScg"}})
    code, out, err = _run(capsys, root)
    assert code == 0, err
    plate = _plate(root)
    model_input = plate.frame(0)
    expected = _to_display("ocio://cg-config-latest", "ACEScg", np.array([[ACESCG_RED]], np.float32))[0, 0]
    assert np.abs(model_input[:8, :8].astype(int) - expected).max() <= 1
    colour = plate.attrs["colour"]
    assert colour["colorspace"] == "ACEScg" and colour["view"] == SDR_VIEW
    header = read_exr_header(_delivered(root)[0])
    stored = yaml.safe_load(header["matte/plate_colour"])
    assert stored["colorspace"] == "ACEScg" and stored["config"].startswith("cg-config")
    assert stored["config_cache_id"] == colour["config_cache_id"]


def test_arri_logc_plate_matches_the_linear_one(capsys, tmp_path: Path) -> None:
    """A LogC4 plate (made with OCIO's ACEScg -> ARRI LogC4, stored as 16-bit TIFF) reaches
    the models as the same picture as the scene-linear ACEScg plate it was made from."""
    shot = small_shot(n_frames=N_FRAMES)
    folder = tmp_path / "plates"
    folder.mkdir()
    studio = "ocio://studio-config-latest"
    acescg = _acescg_frames(shot)
    for index, frame in enumerate(acescg):
        log = _convert(studio, "ACEScg", "ARRI LogC4", frame)
        buf = oiio.ImageBuf(oiio.ImageSpec(shot.width, shot.height, 3, oiio.UINT16))
        buf.set_pixels(oiio.ROI(), np.clip(log, 0, 1))
        assert buf.write(str(folder / f"log.{1001 + index:04d}.tif"))
    root = _project(tmp_path, {"plate": {"path": str(folder / "log.####.tif"), "colorspace": "ARRI LogC4"}},
                    project_extra={"colour": {"config": studio}})
    code, out, err = _run(capsys, root)
    assert code == 0, err
    model_input = _plate(root).frames(0, N_FRAMES).astype(int)
    expected = np.stack([_to_display(studio, "ACEScg", f) for f in acescg])
    diff = np.abs(model_input - expected)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 3, (diff.mean(), diff.max())
    assert _delivered(root)


def test_dpx_sequence_end_to_end(capsys, tmp_path: Path) -> None:
    shot = small_shot(n_frames=N_FRAMES)
    folder = tmp_path / "plates"
    folder.mkdir()
    for index in range(shot.n_frames):
        _write_dpx(folder / f"d.{1001 + index:04d}.dpx", render_display(shot, index)[0])
    root = tmp_path / "proj"
    assert main(["init", str(root)]) == 0
    code = main(["shot", "add", f"{SHOW}/sh010", "--plate", str(folder / "d.####.dpx"), "--prompt", "moving",
                 "--project", str(root)])
    out, err = capsys.readouterr()
    assert code == 0 and f"{N_FRAMES} frames 1001-{1000 + N_FRAMES}" in out, (out, err)
    code, out, err = _run(capsys, root)
    assert code == 0, err
    plate = _plate(root)
    assert plate.attrs["original"]["bit_depth"] == "10-bit"
    # sRGB-encoded integer pixels are a picture already: shown unchanged (10-bit rounding).
    np.testing.assert_allclose(plate.frame(2), render_display(shot, 2)[0], atol=1)
    assert len(_delivered(root)) == shot.n_frames


def test_anamorphic_plate_keeps_pixel_aspect_and_chromaticities(capsys, tmp_path: Path) -> None:
    shot = small_shot(width=160, height=96, n_frames=N_FRAMES)
    folder = tmp_path / "plates"
    folder.mkdir()
    rec709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
    for index in range(shot.n_frames):
        squeezed = render_frame(shot, index)[0][:, ::2]  # 80x96 pixels, each twice as wide
        write_rgb_exr(folder / f"s.{1001 + index:04d}.exr", squeezed, data_window=(10, 4, 89, 99),
                      display_window=(0, 0, 99, 103), pixel_aspect_ratio=2.0, chromaticities=rec709)
    root = _project(tmp_path, {"plate": str(folder / "s.####.exr")})
    code, out, err = _run(capsys, root)
    assert code == 0, err
    attrs = _plate(root).attrs
    assert attrs["pixel_aspect_ratio"] == 2.0 and attrs["size"] == [160, 96]  # desqueezed for the models
    assert attrs["colour"]["colorspace"] == "Linear Rec.709 (sRGB)"  # from the chromaticities
    files = _delivered(root)
    assert len(files) == shot.n_frames
    header = read_exr_header(files[0])
    assert header["pixelAspectRatio"] == 2.0
    np.testing.assert_allclose(header["chromaticities"], rec709, atol=1e-6)
    assert header["dataWindow"] == (10, 4, 89, 99) and header["displayWindow"] == (0, 0, 99, 103)
    channels, _ = read_exr(files[0])
    assert channels["A"].shape == (96, 80)


def _fails_delivering_nothing(capsys, root: Path, *needles: str) -> str:
    code, out, err = _run(capsys, root)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("matte: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not _delivered(root)
    return lines[0]


def _small_exr_plate(folder: Path, n: int = 3) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        write_rgb_exr(folder / f"p.{1001 + index:04d}.exr", np.full((32, 48, 3), 0.2, np.float32))
    return str(folder / "p.####.exr")


def test_bad_inputs_fail_with_one_line_and_deliver_nothing(capsys, tmp_path: Path) -> None:
    pattern = _small_exr_plate(tmp_path / "plates")
    root = _project(tmp_path / "a", {"plate": {"path": pattern, "colorspace": "ACEScgg"}})
    _fails_delivering_nothing(capsys, root, "plate.colorspace", "'ACEScgg'", "ACEScg")

    root = _project(tmp_path / "b", {"plate": pattern}, project_extra={"colour": {"config": "colour/studio.ocio"}})
    _fails_delivering_nothing(capsys, root, "colour.config", str(tmp_path / "b" / "proj" / "colour" / "studio.ocio"), "not found")

    layered = tmp_path / "layered"
    layered.mkdir()
    y = np.full((8, 8), 0.3, np.float32)
    for index in range(3):
        write_exr(layered / f"l.{1001 + index:04d}.exr", {"beauty.R": y, "beauty.G": y, "beauty.B": y,
                                                          "aov.R": y, "aov.G": y, "aov.B": y})
    root = _project(tmp_path / "c", {"plate": str(layered / "l.####.exr")})
    _fails_delivering_nothing(capsys, root, "l.1001.exr", "plate.layer", "aov, beauty")

    dpx = tmp_path / "dpx"
    dpx.mkdir()
    for index in range(3):
        (dpx / f"d.{1001 + index:04d}.dpx").write_bytes(b"SDPX" + bytes(100))
    root = _project(tmp_path / "d", {"plate": str(dpx / "d.####.dpx")})
    _fails_delivering_nothing(capsys, root, "d.1001.dpx", "unreadable or corrupt DPX")
