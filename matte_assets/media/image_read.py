"""Reading plate frames with OpenImageIO: EXR (single/multi-part, layered), DPX,
Cineon, TIFF (8/16 bit, float), PNG, JPEG and whatever else the OIIO build reads.

A frame is decoded to float32 RGB of its DATA window, with its display window,
pixel aspect ratio and chromaticities (EXR), so deliveries can be written back with
the same geometry. Which channels are the picture: un-prefixed R,G,B (or a layer
named `rgba`/`rgb`, or a grey Y); otherwise the layer named by `plate.layer`. A file
with only named layers and no `plate.layer` is an error listing them: picking one
alphabetically once delivered a black `aov` plate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from matte_assets.errors import PlateError

Window = tuple[int, int, int, int]

# Layer names that mean "the plain picture" (besides no prefix at all).
PLAIN_LAYERS = ("", "rgba", "rgb")
_ALIASES = {"red": "r", "green": "g", "blue": "b"}
_BIT_DEPTHS = {"uint8": "uint8", "uint16": "uint16", "half": "half", "float": "float", "uint32": "uint32",
               "int8": "int8", "int16": "int16", "double": "double"}


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """One decoded frame. `pixels` are the data window's pixels, float32 (H, W, 3).
    `linear` is True for float/half samples (scene-linear by convention) and False for
    integer samples (an encoded signal normalised to [0, 1])."""

    pixels: np.ndarray
    linear: bool
    data_window: Window
    display_window: Window
    bit_depth: str
    nonfinite: int
    pixel_aspect_ratio: float = 1.0
    chromaticities: tuple[float, ...] | None = None
    layer: str = ""

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def _is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


def _check_jpeg_complete(path: Path) -> None:
    # Decoders hand back a truncated JPEG with only a warning (grey bottom rows), so
    # require the end-of-image marker, ignoring trailing padding bytes.
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        tail = fh.read().rstrip(b"\x00\r\n \t")
    if not tail.endswith(b"\xff\xd9"):
        raise PlateError(f"{path}: truncated or corrupt JPEG (no end-of-image marker)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


@dataclass(frozen=True)
class _Channel:
    subimage: int
    index: int
    name: str


def _layers(path: Path, inp: oiio.ImageInput) -> dict[str, dict[str, _Channel]]:
    """{layer: {component (lower-case r/g/b/y/...): channel}} over every subimage (part).
    In a multi-part file, un-prefixed channels of a part belong to a layer named
    after the part."""
    layers: dict[str, dict[str, _Channel]] = {}
    multipart = inp.spec().get_int_attribute("oiio:subimages", 1) > 1
    sub = 0
    while True:
        if not inp.seek_subimage(sub, 0):
            inp.geterror()  # past the last part: clear the error it leaves behind
            break
        spec = inp.spec()
        part = spec.get_string_attribute("oiio:subimagename", "") if multipart else ""
        for index, name in enumerate(spec.channelnames):
            prefix, _, comp = name.rpartition(".")
            layer = prefix or part
            comps = layers.setdefault(layer, {})
            comp = comp.lower()
            comps.setdefault(comp, _Channel(sub, index, name))
        sub += 1
    for comps in layers.values():
        for long, short in _ALIASES.items():
            if long in comps and short not in comps:
                comps[short] = comps[long]
    return layers


def _picture(comps: dict[str, _Channel]) -> list[_Channel] | None:
    if all(c in comps for c in "rgb"):
        return [comps["r"], comps["g"], comps["b"]]
    if "y" in comps:
        return [comps["y"]] * 3
    return None


def _pick(path: Path, layers: dict[str, dict[str, _Channel]], layer: str | None) -> tuple[str, list[_Channel]]:
    pictures = {name: _picture(comps) for name, comps in layers.items()}
    named = sorted(name for name, pic in pictures.items() if pic is not None and name)
    if layer:
        if layer not in layers:
            raise PlateError(
                f"{path}: plate.layer {layer!r} is not in the file (layers with R,G,B: {', '.join(named) or 'none'})"
            )
        if pictures[layer] is None:
            raise PlateError(f"{path}: plate.layer {layer!r} has no R,G,B or Y channels")
        return layer, pictures[layer]  # type: ignore[return-value]
    for plain in sorted(layers, key=lambda n: (n != "", n)):
        if plain.lower() in PLAIN_LAYERS and pictures[plain] is not None:
            return plain, pictures[plain]  # type: ignore[return-value]
    if named:
        raise PlateError(
            f"{path}: no plain R,G,B channels; set plate.layer to one of: {', '.join(named)}"
        )
    channels = sorted({c.name for comps in layers.values() for c in comps.values()})
    raise PlateError(f"{path}: no R,G,B or Y channels (has {', '.join(channels)})")


def _read_channels(path: Path, inp: oiio.ImageInput, picked: list[_Channel]) -> tuple[np.ndarray, str]:
    """The picked channels (data window, float32 (H, W, 3)) and the sample format."""
    subimages = {c.subimage for c in picked}
    if len(subimages) != 1:
        raise PlateError(f"{path}: R,G,B of the layer are split across parts; cannot read")
    sub = subimages.pop()
    if not inp.seek_subimage(sub, 0):
        raise PlateError(f"{path}: cannot seek to part {sub} ({_one_line(inp.geterror())})")
    spec = inp.spec()
    lo = min(c.index for c in picked)
    hi = max(c.index for c in picked) + 1
    data = inp.read_image(sub, 0, lo, hi, oiio.FLOAT)
    if data is None or inp.has_error:
        raise PlateError(f"{path}: reading failed ({_one_line(inp.geterror())})")
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim == 4:  # volumetric (z) images: not a plate
        raise PlateError(f"{path}: 3D (deep/volume) images are not plates")
    formats = spec.channelformats or ()
    fmt_of = [str(formats[c.index]) if formats else str(spec.format) for c in picked]
    fmt = "float" if "float" in fmt_of else fmt_of[0]
    if [c.index for c in picked] == list(range(lo, hi)) and hi - lo == 3:
        pixels = data  # R, G, B already in order: no copy of a full-resolution frame
    else:
        pixels = np.stack([data[..., c.index - lo] for c in picked], axis=-1)
    return np.ascontiguousarray(pixels, dtype=np.float32), fmt


def read_image(path: str | os.PathLike, layer: str | None = None) -> LoadedImage:
    """Decode one plate frame to float32 RGB (data window) with its geometry.

    NaN/inf values are replaced by 0 and counted in `nonfinite` rather than raised, so
    one bad pixel does not stop a shot; unreadable files raise PlateError naming them."""
    path = Path(path)
    if not path.is_file():
        raise PlateError(f"{path}: no such file")
    if _is_jpeg(path):
        _check_jpeg_complete(path)
    # Plates are pictures, not premultiplied layers: keep colour as stored where there
    # is an alpha (OIIO would otherwise associate it for PNG/TIFF).
    hints = oiio.ImageSpec()
    hints.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(str(path), hints)
    if inp is None:
        kind = path.suffix.lstrip(".").upper() or "image"
        raise PlateError(f"{path}: unreadable or corrupt {kind} file ({_one_line(oiio.geterror())})")
    try:
        spec = inp.spec()
        if spec.deep:
            raise PlateError(f"{path}: deep images are not plates")
        layer_name, picked = _pick(path, _layers(path, inp), layer)
        pixels, fmt = _read_channels(path, inp, picked)
        spec = inp.spec()  # the picked part's spec
    except PlateError:
        raise
    except Exception as exc:  # decoder errors, MemoryError, ...
        raise PlateError(f"{path}: reading failed ({_one_line(str(exc))})") from exc
    finally:
        inp.close()
    # Counted per stored value, before Y is copied to three channels. A sum is one pass
    # without temporaries and is finite when every value is (a huge float frame whose
    # sum overflows just takes the exact count), so clean frames skip the per-pixel count.
    bad = 0
    if not np.isfinite(pixels.sum()):
        distinct = {c.name: i for i, c in enumerate(picked)}
        bad = sum(int(np.count_nonzero(~np.isfinite(pixels[..., i]))) for i in distinct.values())
    if bad:
        pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
    bits = spec.get_int_attribute("oiio:BitsPerSample", 0)
    depth = _BIT_DEPTHS.get(fmt, fmt)
    if depth in ("uint8", "uint16") and bits and bits not in (8, 16):
        depth = f"{bits}-bit"  # e.g. 10-bit DPX, stored in uint16
    chroma = spec.getattribute("chromaticities")
    data_window = (spec.x, spec.y, spec.x + spec.width - 1, spec.y + spec.height - 1)
    display_window = (
        spec.full_x, spec.full_y, spec.full_x + spec.full_width - 1, spec.full_y + spec.full_height - 1,
    )
    return LoadedImage(
        pixels=pixels,
        linear=fmt in ("half", "float", "double"),
        data_window=data_window,
        display_window=display_window,
        bit_depth=depth,
        nonfinite=bad,
        pixel_aspect_ratio=float(spec.get_float_attribute("PixelAspectRatio", 1.0)) or 1.0,
        chromaticities=tuple(float(v) for v in chroma) if chroma else None,
        layer=layer_name,
    )
