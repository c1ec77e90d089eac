"""EXR writing/reading: windows, precision, compression, attributes, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from matte_assets.errors import DeliveryError
from matte_assets.media.exr import (
    COMPRESSIONS,
    read_exr,
    read_exr_header,
    write_exr,
    write_rgb_exr,
)


def _ramp(h: int, w: int, offset: float = 0.0) -> np.ndarray:
    return (np.arange(h * w, dtype=np.float32).reshape(h, w) / (h * w) + offset).astype(np.float32)


def test_round_trip_offset_data_window(tmp_path):
    # data window (10,20)-(73,59) = 64x40 inside a 100x80 display window
    a = _ramp(40, 64)
    path = write_exr(
        tmp_path / "m.exr",
        {"person1.A": a, "car2.A": a * 0.5, "A": np.maximum(a, a * 0.5)},
        data_window=(10, 20, 73, 59),
        display_window=(0, 0, 99, 79),
        attributes={"matte/shot": "sh010", "matte/run_id": "abc123"},
    )
    channels, header = read_exr(path)
    assert set(channels) == {"person1.A", "car2.A", "A"}
    assert header["dataWindow"] == (10, 20, 73, 59)
    assert header["displayWindow"] == (0, 0, 99, 79)
    assert header["compression"] == "zip"
    assert header["matte/shot"] == "sh010" and header["matte/run_id"] == "abc123"
    for name in channels:
        assert channels[name].dtype == np.float32 and channels[name].shape == (40, 64)
    # half precision: exactly the float16 rounding of the input
    np.testing.assert_array_equal(channels["person1.A"], a.astype(np.float16).astype(np.float32))


def test_header_only_read(tmp_path):
    path = write_exr(tmp_path / "h.exr", {"A": np.zeros((4, 6), np.float32)}, attributes={"note": "x"})
    header = read_exr_header(path)
    assert header["channels"] == ["A"]
    assert header["dataWindow"] == (0, 0, 5, 3) == header["displayWindow"]
    assert header["note"] == "x"


def test_float_pixel_type_is_exact(tmp_path):
    a = _ramp(8, 8, offset=1e-4)
    channels, _ = read_exr(write_exr(tmp_path / "f.exr", {"A": a}, pixel_type="float"))
    np.testing.assert_array_equal(channels["A"], a)


@pytest.mark.parametrize("name", sorted(COMPRESSIONS))
def test_every_compression_round_trips(tmp_path, name):
    a = _ramp(16, 32)
    channels, header = read_exr(write_exr(tmp_path / f"{name}.exr", {"A": a}, compression=name))
    assert header["compression"] == name
    tol = 0.02 if name in ("b44", "b44a", "dwaa", "dwab", "pxr24") else 1e-3  # lossy codecs
    np.testing.assert_allclose(channels["A"], a, atol=tol)


def test_unknown_compression_lists_valid_names(tmp_path):
    with pytest.raises(DeliveryError, match="lzw.*valid: none, rle, zips, zip"):
        write_exr(tmp_path / "x.exr", {"A": np.zeros((2, 2))}, compression="lzw")


def test_refuses_to_overwrite_and_leaves_no_temp(tmp_path):
    path = write_exr(tmp_path / "a.exr", {"A": np.zeros((2, 2))})
    before = path.read_bytes()
    with pytest.raises(DeliveryError, match="a.exr.*refusing to overwrite"):
        write_exr(path, {"A": np.ones((2, 2))})
    assert path.read_bytes() == before
    write_exr(path, {"A": np.ones((2, 2))}, overwrite=True)
    assert read_exr(path)[0]["A"].min() == 1.0
    assert sorted(os.listdir(tmp_path)) == ["a.exr"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import matte_assets.media.exr as exr

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(exr, "_place", boom)
    with pytest.raises(DeliveryError, match="b.exr.*disk full"):
        write_exr(tmp_path / "b.exr", {"A": np.zeros((2, 2))})
    assert os.listdir(tmp_path) == []


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(DeliveryError, match="data window"):
        write_exr(tmp_path / "w.exr", {"A": np.zeros((4, 4))}, data_window=(0, 0, 9, 9))
    with pytest.raises(DeliveryError, match="differ in shape"):
        write_exr(tmp_path / "s.exr", {"A": np.zeros((4, 4)), "B": np.zeros((4, 5))})
    # OpenEXR silently drops an attribute called "version": refuse it instead
    with pytest.raises(DeliveryError, match="'version' is reserved"):
        write_exr(tmp_path / "v.exr", {"A": np.zeros((2, 2))}, attributes={"version": "v001"})
    with pytest.raises(DeliveryError, match="must be a string"):
        write_exr(tmp_path / "i.exr", {"A": np.zeros((2, 2))}, attributes={"n": 3})
    with pytest.raises(DeliveryError, match="does not exist"):
        write_exr(tmp_path / "nope" / "x.exr", {"A": np.zeros((2, 2))})
    assert os.listdir(tmp_path) == []


def test_write_rgb_exr(tmp_path):
    rgb = np.stack([_ramp(6, 5), _ramp(6, 5, 0.25), _ramp(6, 5, 0.5)], axis=-1)
    channels, _ = read_exr(write_rgb_exr(tmp_path / "p.exr", rgb, pixel_type="float"))
    np.testing.assert_array_equal(np.stack([channels[c] for c in "RGB"], axis=-1), rgb)


def test_corrupt_exr_names_file(tmp_path):
    good = write_exr(tmp_path / "good.exr", {"A": np.random.default_rng(0).random((64, 64))})
    bad = tmp_path / "bad.exr"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DeliveryError, match="bad.exr"):
        read_exr(bad)
