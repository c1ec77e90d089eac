"""Cryptomatte encoding of the delivered layers (Psyop's Cryptomatte specification 1.1).

Each layer's name is hashed with MurmurHash3_32 (x86, seed 0, UTF-8 bytes); the hash
becomes a float32 id by copying its bits with the exponent clamped to [1, 254] (so no
id is a NaN, inf, zero or denormal). Per pixel, the layers with non-zero coverage are
ranked by coverage (highest first) and stored as id/coverage pairs:

    CryptoObject00.R = id rank 0   .G = coverage rank 0   .B = id rank 1   .A = coverage rank 1
    CryptoObject01.R = id rank 2   ...

The coverage of a layer is exactly its delivered alpha (`<layer>.A`), so a decoder
that sums the coverage of one id gets that layer's matte back. Our layers may overlap
(they are separate mattes, not a partition of the pixel), so there are as many ranks
as layers: nothing is dropped where several overlap. The header carries
`cryptomatte/<key>/name|hash|conversion|manifest`, key = first 7 hex digits of the
hash of the type name."""

from __future__ import annotations

import json
import struct

import numpy as np

TYPE_NAME = "CryptoObject"
HASH_NAME = "MurmurHash3_32"
CONVERSION = "uint32_to_float32"

_MASK32 = 0xFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK32


def murmurhash3_32(data: bytes | str, seed: int = 0) -> int:
    """MurmurHash3_x86_32 (Austin Appleby's reference algorithm) as an unsigned int."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _MASK32
    n_blocks = len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[: n_blocks * 4]):
        k = (k * c1) & _MASK32
        k = _rotl32(k, 15)
        k = (k * c2) & _MASK32
        h ^= k
        h = _rotl32(h, 13)
        h = (h * 5 + 0xE6546B64) & _MASK32
    tail = data[n_blocks * 4 :]
    k = 0
    for i in reversed(range(len(tail))):  # little-endian tail bytes, as the reference's switch
        k = (k << 8) | tail[i]
    if tail:
        k = (k * c1) & _MASK32
        k = _rotl32(k, 15)
        k = (k * c2) & _MASK32
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    h ^= h >> 16
    return h


def hash_to_float_bits(hash32: int) -> int:
    """The spec's uint32_to_float32: keep sign and mantissa, clamp the exponent to [1, 254]."""
    exponent = min(max((hash32 >> 23) & 0xFF, 1), 254)
    return (hash32 & 0x807FFFFF) | (exponent << 23)


def name_id(name: str) -> tuple[np.float32, str]:
    """A layer name -> (float32 id as stored in the pixels, its 8-hex-digit manifest entry)."""
    bits = hash_to_float_bits(murmurhash3_32(name))
    return np.array([bits], np.uint32).view(np.float32)[0], f"{bits:08x}"


def metadata_key(type_name: str = TYPE_NAME) -> str:
    """The 7-character header key of a Cryptomatte type: stays the same across frames and shots."""
    return f"{murmurhash3_32(type_name):08x}"[:7]


def manifest(names: list[str]) -> dict[str, str]:
    return {name: name_id(name)[1] for name in names}


def header_attributes(names: list[str], type_name: str = TYPE_NAME) -> dict[str, str]:
    key = metadata_key(type_name)
    return {
        f"cryptomatte/{key}/name": type_name,
        f"cryptomatte/{key}/hash": HASH_NAME,
        f"cryptomatte/{key}/conversion": CONVERSION,
        f"cryptomatte/{key}/manifest": json.dumps(manifest(names), sort_keys=True, separators=(",", ":")),
    }


def levels_for(n_layers: int) -> int:
    """Numbered RGBA layers needed to hold every layer's coverage (2 ranks each), at least one."""
    return max(1, (n_layers + 1) // 2)


def channel_names(n_layers: int, type_name: str = TYPE_NAME) -> list[str]:
    return [f"{type_name}{level:02d}.{c}" for level in range(levels_for(n_layers)) for c in "RGBA"]


def encode(
    alphas: list[np.ndarray], names: list[str], shape: tuple[int, int], type_name: str = TYPE_NAME
) -> dict[str, np.ndarray]:
    """Per-layer coverage (H, W) = `shape` in [0, 1] -> `{type}NN.R/G/B/A` float32 channels
    (all zero, one level, when there are no layers)."""
    if len(alphas) != len(names):
        raise ValueError(f"{len(alphas)} alphas for {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError(f"layer names must be unique for Cryptomatte ids: {names}")
    levels = levels_for(len(names))
    ranks = 2 * levels
    height, width = shape
    out = {name: np.zeros((height, width), np.float32) for name in channel_names(len(names), type_name)}
    if not names:
        return out
    coverage = np.stack([np.asarray(a, np.float32) for a in alphas])  # (L, H, W)
    ids = np.array([name_id(n)[0] for n in names], np.float32)
    # Highest coverage first; a stable sort keeps ties in layer order, so files are reproducible.
    order = np.argsort(-coverage, axis=0, kind="stable")
    for rank in range(min(ranks, len(names))):
        idx = order[rank]
        cov = np.take_along_axis(coverage, idx[None], axis=0)[0]
        present = cov > 0
        level, pair = divmod(rank, 2)
        id_channel, cov_channel = ("R", "G") if pair == 0 else ("B", "A")
        out[f"{type_name}{level:02d}.{id_channel}"] = np.where(present, ids[idx], np.float32(0)).astype(np.float32)
        out[f"{type_name}{level:02d}.{cov_channel}"] = np.where(present, cov, np.float32(0)).astype(np.float32)
    return out
