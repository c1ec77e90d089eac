"""Cryptomatte channels checked with an independent decoder (tests/delivery_readers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from matte_assets.media import cryptomatte
from matte_assets.media.exr import read_exr, write_exr

from .delivery_readers import crypto_layers, decode_coverage, manifest_of, mmh3_x86_32, spec_float_id

# Published MurmurHash3_x86_32 vectors (SMHasher's verification strings, as widely
# tabulated) and the two manifest entries of the Cryptomatte specification's example.
VECTORS = [
    (b"", 0, 0x00000000),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"a", 0x9747B28C, 0x7FA09EA6),
    (b"abc", 0, 0xB3DD93FA),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]


@pytest.mark.parametrize("data,seed,expected", VECTORS)
def test_murmurhash3_matches_published_vectors(data, seed, expected):
    assert cryptomatte.murmurhash3_32(data, seed) == expected
    assert mmh3_x86_32(data, seed) == expected  # the test's own decoder agrees too


def test_ids_match_the_specifications_manifest_example():
    assert cryptomatte.manifest(["bunny", "default"]) == {"bunny": "13851a76", "default": "42c9679f"}


def test_exponent_is_clamped():
    # exponent 0 (would be zero/denormal) -> 1; exponent 255 (inf/NaN) -> 254
    assert cryptomatte.hash_to_float_bits(0x00000001) == 0x00800001
    assert cryptomatte.hash_to_float_bits(0x7FFFFFFF) == 0x7F7FFFFF
    assert cryptomatte.hash_to_float_bits(0xFF800000) == 0xFF000000
    for name in ("moving1", "person12", "car_3", "x"):
        value = np.float32(cryptomatte.name_id(name)[0])
        assert np.isfinite(value) and value != 0 and abs(value) >= np.finfo(np.float32).tiny
        assert value == np.float32(spec_float_id(name))


def _soft_layers(h=40, w=60):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.clip((30 - xs) / 8.0, 0, 1)  # soft ramp on the left
    b = np.clip(1 - np.hypot(xs - 35, ys - 20) / 12.0, 0, 1) ** 0.5  # soft disc overlapping a
    c = np.zeros((h, w), np.float32)
    c[5:9, 50:58] = 0.3  # a faint patch
    return {"moving1": a, "moving2": b, "person3": c}


def test_written_file_decodes_to_every_layer_alpha(tmp_path):
    layers = _soft_layers()
    names = list(layers)
    half = {f"{n}.A": a.astype(np.float16) for n, a in layers.items()}
    crypto = cryptomatte.encode([half[f"{n}.A"].astype(np.float32) for n in names], names, (40, 60))
    path = write_exr(tmp_path / "c.exr", {**half, **crypto}, attributes=cryptomatte.header_attributes(names),
                     channel_types=dict.fromkeys(crypto, "float"))
    channels, header = read_exr(path)
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        types = {n: c.pixels.dtype for n, c in f.channels().items()}
    assert all(types[c] == np.float32 for c in crypto) and types["moving1.A"] == np.float16
    meta = crypto_layers(header)["CryptoObject"]
    assert meta["hash"] == "MurmurHash3_32" and meta["conversion"] == "uint32_to_float32"
    assert meta["key"] == f"{mmh3_x86_32(b'CryptoObject'):08x}"[:7]
    manifest = manifest_of(meta)
    assert set(manifest) == set(names)
    for name in names:
        assert struct_float(manifest[name]) == np.float32(spec_float_id(name))
        decoded = decode_coverage(channels, "CryptoObject", name)
        assert np.abs(decoded - channels[f"{name}.A"]).max() < 1e-3
    # ranked: coverage of rank 0 >= rank 1 >= rank 2 everywhere
    c0, c1, c2 = channels["CryptoObject00.G"], channels["CryptoObject00.A"], channels["CryptoObject01.G"]
    assert (c0 >= c1).all() and (c1 >= c2).all()
    assert (channels["CryptoObject00.R"][c0 == 0] == 0).all()  # no object: id 0


def struct_float(hex8: str) -> np.float32:
    return np.frombuffer(bytes.fromhex(hex8)[::-1], "<f4")[0]


def test_no_layers_gives_one_empty_level():
    out = cryptomatte.encode([], [], (4, 5))
    assert sorted(out) == ["CryptoObject00.A", "CryptoObject00.B", "CryptoObject00.G", "CryptoObject00.R"]
    assert all((v == 0).all() and v.shape == (4, 5) for v in out.values())
