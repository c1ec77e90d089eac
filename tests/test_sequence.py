"""Frame patterns, discovery, reading frames of every supported kind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from matte_assets.errors import PlateError
from matte_assets.media.exr import write_exr, write_rgb_exr
from matte_assets.media.sequence import (
    check_consistent,
    compact_ranges,
    discover_frames,
    hash_file,
    parse_pattern,
    read_image,
    resolve_pattern,
)


def _touch(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


# -- patterns -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("pattern", "padding", "frame", "name"),
    [
        ("/p/sh010.####.exr", 4, 1001, "sh010.1001.exr"),
        ("/p/sh010.##.exr", 2, 7, "sh010.07.exr"),
        ("/p/sh010.%04d.png", 4, 12, "sh010.0012.png"),
        ("/p/sh010.%d.png", 0, 12, "sh010.12.png"),
        ("/p/sh010.@@@.jpg", 3, 5, "sh010.005.jpg"),
        ("/p/sh010_v2.####.tif", 4, 10000, "sh010_v2.10000.tif"),  # wider than padding
    ],
)
def test_parse_pattern_styles(pattern, padding, frame, name):
    fp = parse_pattern(pattern)
    assert fp.padding == padding
    assert fp.path_for(frame) == Path("/p") / name
    assert fp.frame_of(name) == frame


def test_single_at_means_any_padding():
    fp = parse_pattern("/p/a.@.jpg")
    assert fp.padding is None
    with pytest.raises(PlateError, match="padding unknown"):
        fp.path_for(1)


@pytest.mark.parametrize("pattern", ["/p/sh010.exr", "/p/sh.####.%04d.exr", "/p/a.#.@.png"])
def test_pattern_needs_exactly_one_token(pattern):
    with pytest.raises(PlateError, match="exactly one frame token") as err:
        parse_pattern(pattern)
    assert pattern in str(err.value)


def test_folder_characters_are_literal(tmp_path):
    folder = tmp_path / "user@host#1"
    folder.mkdir()
    _touch(folder, ["a.0001.png"])
    assert discover_frames(str(folder / "a.####.png")) == [(1, folder / "a.0001.png")]


# -- discovery -----------------------------------------------------------------------

def test_discover_sorted_vfx_frames(tmp_path):
    _touch(tmp_path, [f"sh010.{f:04d}.exr" for f in (1003, 1001, 1002)] + ["sh010.1001.exr.bak", "other.1001.exr"])
    found = discover_frames(str(tmp_path / "sh010.####.exr"))
    assert [f for f, _ in found] == [1001, 1002, 1003]
    assert found[0][1] == tmp_path / "sh010.1001.exr"
    glob = parse_pattern(str(tmp_path / "sh010.####.exr")).glob()
    assert sorted(p.name for p in tmp_path.glob(glob)) == [f"sh010.{f}.exr" for f in (1001, 1002, 1003)]


def test_discover_ignores_other_paddings(tmp_path):
    _touch(tmp_path, ["a.0001.exr", "a.0002.exr", "a.01.exr"])
    assert [f for f, _ in discover_frames(str(tmp_path / "a.####.exr"))] == [1, 2]


def test_discover_any_padding_detected(tmp_path):
    _touch(tmp_path, ["a.098.jpg", "a.099.jpg", "a.100.jpg", "a.101.jpg"])
    assert [f for f, _ in discover_frames(str(tmp_path / "a.@.jpg"))] == [98, 99, 100, 101]
    resolved = resolve_pattern(str(tmp_path / "a.@.jpg"))
    assert resolved.padding == 3 and resolved.path_for(7) == tmp_path / "a.007.jpg"
    other = tmp_path / "u"
    other.mkdir()
    _touch(other, ["b.9.png", "b.10.png", "b.11.png"])  # unpadded
    assert [f for f, _ in discover_frames(str(other / "b.@.png"))] == [9, 10, 11]
    assert resolve_pattern(str(other / "b.@.png")).padding == 1


def test_discover_any_padding_conflict(tmp_path):
    _touch(tmp_path, ["a.0001.jpg", "a.002.jpg"])
    with pytest.raises(PlateError, match="different paddings"):
        discover_frames(str(tmp_path / "a.@.jpg"))


def test_discover_reports_gaps_compactly(tmp_path):
    present = [1001, 1002, 1003, 1007, 1008, 1009, 1011]
    _touch(tmp_path, [f"sh010.{f}.exr" for f in present])
    pattern = str(tmp_path / "sh010.####.exr")
    with pytest.raises(PlateError) as err:
        discover_frames(pattern)
    assert str(err.value) == f"missing frames 1004-1006, 1010 of {pattern}"


def test_discover_explicit_range(tmp_path):
    _touch(tmp_path, [f"s.{f:04d}.png" for f in range(1, 11)])
    pattern = str(tmp_path / "s.%04d.png")
    assert [f for f, _ in discover_frames(pattern, (3, 5))] == [3, 4, 5]
    with pytest.raises(PlateError, match=r"missing frames 11-12 of"):
        discover_frames(pattern, (8, 12))


def test_discover_no_files_names_pattern_and_folder(tmp_path):
    pattern = str(tmp_path / "nothing.####.exr")
    with pytest.raises(PlateError, match="no files match") as err:
        discover_frames(pattern)
    assert pattern in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(PlateError, match="no folder"):
        discover_frames(str(tmp_path / "missing" / "a.####.exr"))


def test_compact_ranges():
    assert compact_ranges([5, 1, 2, 3, 9]) == "1-3, 5, 9"
    assert compact_ranges(list(range(0, 100, 2)))[-20:].endswith("(50 frames in all)")


# -- reading frames --------------------------------------------------------------------

def _rgb8(h: int = 6, w: int = 8) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_read_8_bit(tmp_path, ext):
    rgb = _rgb8()
    path = tmp_path / f"f.{ext}"
    cv2.imwrite(str(path), rgb[..., ::-1])  # cv2 writes BGR
    img = read_image(path)
    assert img.bit_depth == "uint8" and not img.linear and img.nonfinite == 0
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (6, 8, 3)
    np.testing.assert_allclose(img.pixels, rgb / 255.0, atol=1e-6)
    assert img.data_window == img.display_window == (0, 0, 7, 5)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_read_16_bit(tmp_path, ext):
    rgb = np.random.default_rng(4).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    path = tmp_path / f"f.{ext}"
    cv2.imwrite(str(path), rgb[..., ::-1])
    img = read_image(path)
    assert img.bit_depth == "uint16"
    np.testing.assert_allclose(img.pixels, rgb / 65535.0, atol=1e-6)


def test_read_jpeg(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200  # flat red survives JPEG nearly exactly
    path = tmp_path / "f.jpg"
    cv2.imwrite(str(path), rgb[..., ::-1])
    img = read_image(path)
    assert img.bit_depth == "uint8"
    np.testing.assert_allclose(img.pixels[8, 8], [200 / 255, 0, 0], atol=3 / 255)


def test_read_grey_and_rgba(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    img = read_image(tmp_path / "g.png")
    assert img.pixels.shape == (3, 4, 3)
    np.testing.assert_allclose(img.pixels[..., 1], grey / 255.0, atol=1e-6)
    rgba = np.dstack([_rgb8(3, 4), np.full((3, 4), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba[..., [2, 1, 0, 3]])
    img = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(img.pixels, rgba[..., :3] / 255.0, atol=1e-6)


def test_read_exr_half_with_data_window(tmp_path):
    rgb = np.random.default_rng(5).random((40, 64, 3)).astype(np.float32) * 4  # HDR values
    path = write_rgb_exr(tmp_path / "p.exr", rgb, data_window=(10, 20, 73, 59), display_window=(0, 0, 99, 79))
    img = read_image(path)
    assert img.linear and img.bit_depth == "half" and img.nonfinite == 0
    assert img.data_window == (10, 20, 73, 59) and img.display_window == (0, 0, 99, 79)
    assert img.pixels.shape == (40, 64, 3) and img.pixels.dtype == np.float32
    np.testing.assert_array_equal(img.pixels, rgb.astype(np.float16).astype(np.float32))


def test_read_exr_float_overscan(tmp_path):
    rgb = np.random.default_rng(6).random((12, 14, 3)).astype(np.float32)
    # data window larger than the display window (overscan), negative origin
    path = write_rgb_exr(tmp_path / "o.exr", rgb, data_window=(-2, -1, 11, 10), display_window=(0, 0, 9, 8),
                         pixel_type="float")
    img = read_image(path)
    assert img.bit_depth == "float" and img.data_window == (-2, -1, 11, 10)
    np.testing.assert_array_equal(img.pixels, rgb)


def test_read_exr_luminance_and_layers(tmp_path):
    y = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    img = read_image(write_exr(tmp_path / "y.exr", {"Y": y}, pixel_type="float"))
    for c in range(3):
        np.testing.assert_array_equal(img.pixels[..., c], y)
    # RGBA: alpha dropped; un-prefixed R,G,B win over a layer's
    chans = {"R": y, "G": y * 0.5, "B": y * 0.25, "A": np.ones_like(y), "rgba.R": np.zeros_like(y),
             "rgba.G": np.zeros_like(y), "rgba.B": np.zeros_like(y)}
    img = read_image(write_exr(tmp_path / "rgba.exr", chans, pixel_type="float"))
    np.testing.assert_array_equal(img.pixels[..., 1], y * 0.5)
    # only a layer: rgba.R etc. are used
    layered = {"rgba.R": y, "rgba.G": y, "rgba.B": y * 0, "depth.Z": y}
    img = read_image(write_exr(tmp_path / "layer.exr", layered, pixel_type="float"))
    np.testing.assert_array_equal(img.pixels[..., 0], y)
    with pytest.raises(PlateError, match=r"z.exr: no R,G,B or Y channels \(has Z\)"):
        read_image(write_exr(tmp_path / "z.exr", {"Z": y}))


def test_nonfinite_sanitised_and_counted(tmp_path):
    rgb = np.full((4, 5, 3), 0.5, np.float32)
    rgb[0, 0, 0] = np.nan
    rgb[1, 2, 1] = np.inf
    rgb[3, 4, 2] = -np.inf
    img = read_image(write_rgb_exr(tmp_path / "n.exr", rgb))
    assert img.nonfinite == 3
    assert np.isfinite(img.pixels).all()
    assert img.pixels[0, 0, 0] == 0 and img.pixels[1, 2, 1] == 0 and img.pixels[2, 2, 2] == 0.5


def test_truncated_exr_names_file(tmp_path):
    good = write_rgb_exr(tmp_path / "good.exr", np.random.default_rng(7).random((64, 64, 3)))
    bad = tmp_path / "sh010.1002.exr"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    with pytest.raises(PlateError, match=r"sh010\.1002\.exr.*(corrupt|truncated)"):
        read_image(bad)
    (tmp_path / "tiny.exr").write_bytes(good.read_bytes()[:40])
    with pytest.raises(PlateError, match="tiny.exr"):
        read_image(tmp_path / "tiny.exr")


@pytest.mark.parametrize("name", ["junk.png", "junk.tif", "junk.jpg"])
def test_garbage_image_names_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not an image" * 20)
    with pytest.raises(PlateError, match=name.replace(".", r"\.")):
        read_image(path)


def test_truncated_jpeg_is_refused(tmp_path):
    path = tmp_path / "t.jpg"
    cv2.imwrite(str(path), _rgb8(32, 32))
    path.write_bytes(path.read_bytes()[:-200])  # OpenCV alone would decode this silently
    with pytest.raises(PlateError, match=r"t\.jpg: truncated"):
        read_image(path)


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(PlateError, match="gone.exr: no such file"):
        read_image(tmp_path / "gone.exr")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")  # OpenImageIO reads GIF; this one is cut short
    with pytest.raises(PlateError, match="x.gif: unreadable or corrupt GIF"):
        read_image(tmp_path / "x.gif")
    (tmp_path / "x.xyz").write_bytes(b"not an image")
    with pytest.raises(PlateError, match="x.xyz: unreadable or corrupt XYZ"):
        read_image(tmp_path / "x.xyz")


def test_hash_file(tmp_path):
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert hash_file(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()
    with pytest.raises(PlateError, match="nope.bin"):
        hash_file(tmp_path / "nope.bin")


def test_check_consistent():
    a, b = Path("/p/a.1001.exr"), Path("/p/a.1002.exr")
    hd, sd = (0, 0, 1919, 1079), (0, 0, 1279, 719)
    check_consistent([(a, hd, hd), (b, hd, hd)])
    with pytest.raises(PlateError) as err:
        check_consistent([(a, hd, hd), (b, sd, sd)])
    assert str(err.value) == f"mixed resolutions: {a} is 1920x1080, {b} is 1280x720"
    with pytest.raises(PlateError, match=r"mixed data windows.*a\.1002\.exr"):
        check_consistent([(a, (10, 10, 100, 100), hd), (b, (0, 0, 90, 90), hd)])
