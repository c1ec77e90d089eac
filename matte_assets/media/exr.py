"""Reading and writing scanline OpenEXR files with the OpenEXR 3.x `File` API.

Windows are plain `(x0, y0, x1, y1)` tuples, inclusive, as OpenEXR stores them; channel
arrays hold the DATA window's pixels. Writes are atomic (temporary name in the same
folder, then rename) and never replace an existing file unless asked to.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR

from matte_assets.errors import DeliveryError, MatteError

Window = tuple[int, int, int, int]

COMPRESSIONS: dict[str, Any] = {
    "none": OpenEXR.NO_COMPRESSION,
    "rle": OpenEXR.RLE_COMPRESSION,
    "zips": OpenEXR.ZIPS_COMPRESSION,
    "zip": OpenEXR.ZIP_COMPRESSION,
    "piz": OpenEXR.PIZ_COMPRESSION,
    "pxr24": OpenEXR.PXR24_COMPRESSION,
    "b44": OpenEXR.B44_COMPRESSION,
    "b44a": OpenEXR.B44A_COMPRESSION,
    "dwaa": OpenEXR.DWAA_COMPRESSION,
    "dwab": OpenEXR.DWAB_COMPRESSION,
}
_COMPRESSION_NAMES = {value.name: key for key, value in COMPRESSIONS.items()}

PIXEL_TYPES: dict[str, type] = {"half": np.float16, "float": np.float32}

# Attributes the library manages itself. "version" and "chunkCount" are silently
# DROPPED by OpenEXR 3.x on write (they are multi-part/deep bookkeeping), so a caller
# must namespace provenance keys (e.g. "matte/version") rather than lose them.
RESERVED_ATTRIBUTES = frozenset(
    {
        "channels", "compression", "dataWindow", "displayWindow", "lineOrder",
        "pixelAspectRatio", "screenWindowCenter", "screenWindowWidth", "type",
        "version", "chunkCount", "tiles",
    }
)


def _box(window: Window) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = (int(v) for v in window)
    return np.array([x0, y0], dtype=np.int32), np.array([x1, y1], dtype=np.int32)


def box_to_window(box: Any) -> Window:
    """OpenEXR box ((x0, y0), (x1, y1)) arrays -> (x0, y0, x1, y1) ints."""
    lo, hi = box
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def window_size(window: Window) -> tuple[int, int]:
    """(width, height) of an inclusive window."""
    x0, y0, x1, y1 = window
    return x1 - x0 + 1, y1 - y0 + 1


def _plain(value: Any) -> Any:
    """Header value -> plain python (lists, numbers, strings) for JSON/metadata."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "name") and isinstance(getattr(value, "name"), str):
        return value.name  # pybind enums (lineOrder, type) and Channel objects
    return str(value)


def header_to_plain(header: dict) -> dict:
    """OpenEXR header dict -> plain python values; windows as (x0, y0, x1, y1),
    compression as its short name ("zip"), channels as a sorted list of names."""
    out: dict[str, Any] = {}
    for key, value in header.items():
        if key in ("dataWindow", "displayWindow"):
            out[key] = box_to_window(value)
        elif key == "compression":
            out[key] = _COMPRESSION_NAMES.get(value.name, value.name)
        elif key == "channels":
            out[key] = sorted(c.name for c in value)
        else:
            out[key] = _plain(value)
    return out


def open_exr(path: str | os.PathLike, *, header_only: bool = False,
             error: type[MatteError] = DeliveryError) -> OpenEXR.File:
    """Open an EXR, raising `error` (naming the file) if it is missing or corrupt.

    OpenEXR 3.x does not raise on truncated pixel data: it prints a warning and
    returns a File with zero parts, so that case is checked explicitly here."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        exr = OpenEXR.File(str(path), separate_channels=True, header_only=header_only)
    except Exception as exc:  # the bindings raise RuntimeError/ValueError variously
        raise error(f"{path}: not a readable OpenEXR file ({exc})") from exc
    if len(exr.parts) == 0:
        raise error(f"{path}: corrupt or truncated EXR (pixel data could not be read)")
    return exr


def read_exr_header(path: str | os.PathLike) -> dict:
    """The first part's header as plain python values, without decoding pixels."""
    return header_to_plain(open_exr(path, header_only=True).header())


def read_exr(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """All channels of the first part as float32 (data window pixels) + plain header."""
    exr = open_exr(path)
    channels = {name: np.asarray(ch.pixels, dtype=np.float32) for name, ch in exr.channels().items()}
    return channels, header_to_plain(exr.header())


def _check_channels(path: Path, channels: dict[str, np.ndarray]) -> tuple[int, int]:
    if not channels:
        raise DeliveryError(f"{path}: no channels to write")
    shapes = {name: np.shape(arr) for name, arr in channels.items()}
    for name, shape in shapes.items():
        if not isinstance(name, str) or not name:
            raise DeliveryError(f"{path}: channel name {name!r} must be a non-empty string")
        if len(shape) != 2 or 0 in shape:
            raise DeliveryError(f"{path}: channel {name!r} must be a non-empty (H, W) array, got {shape}")
    if len(set(shapes.values())) != 1:
        raise DeliveryError(f"{path}: channels differ in shape: {shapes}")
    height, width = next(iter(shapes.values()))
    return width, height


def _check_attributes(path: Path, attributes: dict[str, str]) -> None:
    for key, value in attributes.items():
        if key in RESERVED_ATTRIBUTES:
            raise DeliveryError(f"{path}: header attribute {key!r} is reserved by OpenEXR; use a prefixed name")
        if not isinstance(key, str) or not isinstance(value, str):
            raise DeliveryError(f"{path}: header attribute {key!r} must be a string (got {type(value).__name__})")


def _place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished temporary file to its delivered name."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        # A hard link fails if `path` exists, so no race can replace another file.
        os.link(tmp, path)
    except FileExistsError:
        raise DeliveryError(f"{path}: already exists; refusing to overwrite") from None
    except OSError:
        # Filesystem without hard links: best effort check, then rename.
        if path.exists():
            raise DeliveryError(f"{path}: already exists; refusing to overwrite") from None
        os.replace(tmp, path)


def write_exr(
    path: str | os.PathLike,
    channels: dict[str, np.ndarray],
    *,
    data_window: Window | None = None,
    display_window: Window | None = None,
    compression: str = "zip",
    attributes: dict[str, str] | None = None,
    pixel_type: str = "half",
    overwrite: bool = False,
    channel_types: dict[str, str] | None = None,
    pixel_aspect_ratio: float | None = None,
    chromaticities: tuple[float, ...] | list[float] | None = None,
) -> Path:
    """Write a single-part scanline EXR atomically and return its path.

    Each channel is an (H, W) array of the data window's pixels. The data window
    defaults to (0, 0, W-1, H-1); the display window defaults to the data window.
    `channel_types` overrides `pixel_type` per channel (Cryptomatte ids must be float
    beside half mattes)."""
    path = Path(path)
    if compression not in COMPRESSIONS:
        raise DeliveryError(f"{path}: unknown compression {compression!r}; valid: {', '.join(COMPRESSIONS)}")
    channel_types = dict(channel_types or {})
    for kind in (pixel_type, *channel_types.values()):
        if kind not in PIXEL_TYPES:
            raise DeliveryError(f"{path}: unknown pixel type {kind!r}; valid: {', '.join(PIXEL_TYPES)}")
    width, height = _check_channels(path, channels)
    data_window = tuple(data_window) if data_window is not None else (0, 0, width - 1, height - 1)
    display_window = tuple(display_window) if display_window is not None else data_window
    if window_size(data_window) != (width, height):
        raise DeliveryError(
            f"{path}: data window {data_window} is {window_size(data_window)}, pixels are {(width, height)}"
        )
    if min(window_size(display_window)) < 1:
        raise DeliveryError(f"{path}: empty display window {display_window}")
    attributes = dict(attributes or {})
    _check_attributes(path, attributes)
    if path.exists() and not overwrite:
        raise DeliveryError(f"{path}: already exists; refusing to overwrite")
    if not path.parent.is_dir():
        raise DeliveryError(f"{path}: folder {path.parent} does not exist")

    header = {
        "type": OpenEXR.scanlineimage,
        "compression": COMPRESSIONS[compression],
        "dataWindow": _box(data_window),
        "displayWindow": _box(display_window),
        **attributes,
    }
    if pixel_aspect_ratio is not None:
        header["pixelAspectRatio"] = float(pixel_aspect_ratio)
    if chromaticities is not None:
        if len(chromaticities) != 8:
            raise DeliveryError(f"{path}: chromaticities need 8 values, got {len(chromaticities)}")
        header["chromaticities"] = tuple(float(v) for v in chromaticities)
    pixels = {
        name: np.ascontiguousarray(arr, dtype=PIXEL_TYPES[channel_types.get(name, pixel_type)])
        for name, arr in channels.items()
    }
    tmp = path.parent / f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        with OpenEXR.File(header, pixels) as exr:
            exr.write(str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename must never publish a file whose bytes are not on disk
        finally:
            os.close(fd)
        _place(tmp, path, overwrite)
    except DeliveryError:
        raise
    except Exception as exc:
        raise DeliveryError(f"{path}: writing EXR failed ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_rgb_exr(path: str | os.PathLike, rgb: np.ndarray, **kwargs: Any) -> Path:
    """Write an (H, W, 3) float image as channels R, G, B (used for synthetic plates)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DeliveryError(f"{path}: expected an (H, W, 3) image, got shape {rgb.shape}")
    return write_exr(path, {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2]}, **kwargs)
