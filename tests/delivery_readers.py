"""Readers written independently of the writers, from the published formats, so the
tests check the files against the specifications rather than against our own code:

- a Cryptomatte decoder following Psyop's Cryptomatte specification 1.1 (MurmurHash3
  x86_32 from Austin Appleby's reference description, the uint32_to_float32 conversion,
  ranked id/coverage pairs);
- a parser of Nuke's script syntax (Tcl words: bare, "quoted", {braced}; nodes are
  `Class { knob value ... }`; `set VAR [stack 0]` / `push $VAR` manage the stack)."""

from __future__ import annotations

import json
import re
import struct

import numpy as np


# -- Cryptomatte --------------------------------------------------------------------
def mmh3_x86_32(key: bytes, seed: int = 0) -> int:
    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF

    def mix(k: int) -> int:
        k = (k * 0xCC9E2D51) & 0xFFFFFFFF
        return (rotl(k, 15) * 0x1B873593) & 0xFFFFFFFF

    h = seed
    body = len(key) - len(key) % 4
    for i in range(0, body, 4):
        h ^= mix(int.from_bytes(key[i : i + 4], "little"))
        h = (rotl(h, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    rest = key[body:]
    if rest:
        h ^= mix(int.from_bytes(rest, "little"))
    h ^= len(key)
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = ((h ^ (h >> shift)) * mult) & 0xFFFFFFFF
    return h ^ (h >> 16)


def spec_float_id(name: str) -> float:
    """The spec's Python sample, restated: clamp the exponent to [1, 254], keep the rest."""
    h = mmh3_x86_32(name.encode("utf-8"))
    exp = min(max((h >> 23) & 0xFF, 1), 254)
    bits = (h >> 31) << 31 | exp << 23 | (h & 0x7FFFFF)
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def crypto_layers(header: dict) -> dict[str, dict[str, str]]:
    """{type name: {name, hash, conversion, manifest, key}} from `cryptomatte/<key>/...` attributes."""
    out: dict[str, dict[str, str]] = {}
    for attr, value in header.items():
        m = re.fullmatch(r"cryptomatte/([0-9a-f]{1,7})/(\w+)", attr)
        if m:
            out.setdefault(m.group(1), {"key": m.group(1)})[m.group(2)] = value
    return {meta["name"]: meta for meta in out.values()}


def decode_coverage(channels: dict[str, np.ndarray], type_name: str, name: str) -> np.ndarray:
    """Coverage of one name: the sum over every rank whose id equals the name's id."""
    want = np.float32(spec_float_id(name))
    levels = sorted({int(m.group(1)) for c in channels if (m := re.fullmatch(type_name + r"(\d\d)\.[RGBA]", c))})
    total = None
    for level in levels:
        for id_c, cov_c in (("R", "G"), ("B", "A")):
            ids = channels[f"{type_name}{level:02d}.{id_c}"].astype(np.float32)
            cov = channels[f"{type_name}{level:02d}.{cov_c}"].astype(np.float32)
            part = np.where(ids == want, cov, 0.0)
            total = part if total is None else total + part
    return total


def manifest_of(meta: dict[str, str]) -> dict[str, str]:
    return json.loads(meta["manifest"])


# -- Nuke scripts ---------------------------------------------------------------------
def _words(text: str) -> list[str]:
    words, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{}":
            words.append(c)
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    j += 1
                buf.append(text[j])
                j += 1
            words.append("".join(buf))
            i = j + 1
        else:
            j = i
            depth = 0
            while j < n and (depth or not (text[j].isspace() or text[j] in "{}")):
                depth += {"[": 1, "]": -1}.get(text[j], 0)
                j += 1
            words.append(text[i:j])
            i = j
    return words


def parse_nuke(text: str) -> list[dict]:
    """Nodes in order: {"class", knobs..., "input": index of the node feeding it or None}."""
    words = _words(text)
    nodes: list[dict] = []
    stack: list[int | None] = []
    variables: dict[str, int | None] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w == "set" and words[i + 2] == "[stack 0]":
            variables[words[i + 1]] = stack[-1]
            i += 3
        elif w == "push":
            stack.append(variables[words[i + 1].lstrip("$")])
            i += 2
        elif w == "version":
            i += 2
        elif i + 1 < len(words) and words[i + 1] == "{":
            j, knobs = i + 2, {}
            while words[j] != "}":
                knobs[words[j]] = words[j + 1]
                j += 2
            node = {"class": w, **knobs}
            n_inputs = int(knobs.get("inputs", 1)) if w != "Root" else 0
            node["input"] = stack.pop() if n_inputs and stack else None
            if w != "Root":
                stack.append(len(nodes))
            nodes.append(node)
            i = j + 1
        else:
            raise ValueError(f"unexpected word {w!r} in Nuke script")
    return nodes
