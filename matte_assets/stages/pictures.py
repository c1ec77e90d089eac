"""Pictures of a shot's layers: a contact sheet (PNG) and a short preview (animated WebP).

Every layer gets its own colour (stable: by its position in the layer table), drawn as
a translucent fill with a solid outline and labelled with its name; each tile is
labelled with its frame number. Frames and masks are read from the stored plate and
layers (plate resolution), a frame at a time, so memory stays per frame.

`dagster_image_metadata` wraps an image as Markdown with a base64 data URI, which the
Dagster UI renders inline in a materialisation's metadata.
"""

from __future__ import annotations

import base64
import io
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .stage_data import LayersData, PlateData

# Distinct, saturated colours (RGB) that read over a plate; cycled past ten layers.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 80), (255, 80, 220),
    (0, 255, 200), (255, 140, 40), (160, 120, 255), (200, 255, 0), (255, 255, 255),
)
FILL_ALPHA = 0.4


def layer_colour(k: int) -> tuple[int, int, int]:
    return PALETTE[k % len(PALETTE)]


def layer_labels(layers: LayersData) -> list[str]:
    """Delivery names for filtered layers (`moving1`), `<label>#<id>` for tracked ones
    (as `matte eval` names them)."""
    from ..tuning.evaluation import layer_display_names

    return layer_display_names(layers)


def sample_indices(n_frames: int, count: int) -> list[int]:
    """Up to `count` frame indices spread evenly from the first to the last frame."""
    if n_frames <= 0:
        return []
    return [int(i) for i in np.unique(np.linspace(0, n_frames - 1, num=min(count, n_frames)).round().astype(int))]


def overlay(frame: np.ndarray, masks: np.ndarray, names: Sequence[str], *, scale: float = 1.0, labels: bool = True) -> np.ndarray:
    """An RGB uint8 frame with every mask filled translucently in its layer's colour,
    outlined, and labelled with its name at the top of the mask. `scale` resizes the
    frame first (masks resized to match, nearest) so outlines and text stay crisp."""
    img = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    if scale != 1.0:
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = img.astype(np.float32)
    h, w = img.shape[:2]
    resized: list[np.ndarray] = []
    for k, mask in enumerate(masks):
        m = mask.astype(np.uint8)
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
        resized.append(m)
        if m.any():
            colour = np.asarray(layer_colour(k), np.float32)
            sel = m.astype(bool)
            out[sel] = (1 - FILL_ALPHA) * out[sel] + FILL_ALPHA * colour
    canvas = np.clip(out, 0, 255).astype(np.uint8)
    thickness = max(1, round(min(h, w) / 300))
    for k, m in enumerate(resized):
        if not m.any():
            continue
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, layer_colour(k), thickness, lineType=cv2.LINE_AA)
    if labels:
        taken: list[tuple[int, int, int, int]] = []
        for k, m in enumerate(resized):
            ys, xs = np.nonzero(m)
            if ys.size == 0:
                continue
            top = int(ys.min())
            x = int(np.median(xs[ys <= top + 2]))
            text = names[k] if k < len(names) else str(k)
            _label(canvas, text, (x, max(top - 4, 0)), layer_colour(k), anchor="bottom-centre", avoid=taken)
    return canvas


def _label(
    img: np.ndarray,
    text: str,
    at: tuple[int, int],
    colour: tuple[int, int, int],
    *,
    anchor: str = "top-left",
    avoid: list[tuple[int, int, int, int]] | None = None,
) -> None:
    """Text on a dark box, kept inside the image; moved down past boxes in `avoid`
    (labels already placed), to which it is added."""
    h, w = img.shape[:2]
    font_scale = max(0.35, min(h, w) / 500)
    thick = 1
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
    bw, bh = tw + 4, th + base + 4
    x, y = at
    if anchor == "bottom-centre":
        x, y = x - tw // 2, y - th - base
    x = int(np.clip(x, 0, max(0, w - bw)))
    y = int(np.clip(y, 0, max(0, h - bh)))
    if avoid is not None:
        for _ in range(len(avoid) + 1):
            hit = next((b for b in avoid if x < b[2] and b[0] < x + bw and y < b[3] and b[1] < y + bh), None)
            if hit is None:
                break
            y = hit[3] + 1 if hit[3] + 1 + bh <= h else max(0, hit[1] - bh - 1)
        avoid.append((x, y, x + bw, y + bh))
    cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 0, 0), thickness=-1)
    cv2.putText(img, text, (x + 2, y + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thick, cv2.LINE_AA)


def _png(img: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def _jpeg(img: np.ndarray, quality: int = 85) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def _check(plate: PlateData, layers: LayersData) -> None:
    if plate.n_frames != layers.n_frames or plate.size != layers.size:
        raise ValueError(
            f"plate ({plate.n_frames} frames, {plate.size[0]}x{plate.size[1]}) and layers "
            f"({layers.n_frames} frames, {layers.size[0]}x{layers.size[1]}) do not belong together"
        )


def contact_sheet(
    plate: PlateData,
    layers: LayersData,
    *,
    n_frames: int = 8,
    columns: int = 4,
    tile_width: int = 360,
    title: str | None = None,
    format: str = "png",
) -> bytes:
    """PNG bytes (JPEG with `format="jpeg"`): `n_frames` frames sampled evenly over the
    shot in a grid, every layer overlaid in its colour and labelled, each tile labelled
    with its frame number; a header with the title and a legend of the layers."""
    _check(plate, layers)
    names = layer_labels(layers)
    ids = layers.layer_ids
    numbers = plate.frame_numbers
    width, height = plate.size
    scale = tile_width / width
    tiles = []
    for index in sample_indices(plate.n_frames, n_frames):
        tile = overlay(plate.frame(index), layers.masks_at(index, ids), names, scale=scale)
        _label(tile, str(numbers[index]), (4, 4), (255, 255, 255))
        tiles.append(tile)
    th, tw = tiles[0].shape[:2] if tiles else (round(height * scale), tile_width)
    cols = max(1, min(columns, len(tiles) or 1))
    rows = max(1, -(-len(tiles) // cols))
    gap = 4
    header = _header(title, names, cols * tw + (cols - 1) * gap)
    sheet = np.full((header.shape[0] + rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), 24, np.uint8)
    sheet[: header.shape[0]] = header
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = header.shape[0] + r * (th + gap), c * (tw + gap)
        sheet[y : y + th, x : x + tw] = tile
    return _jpeg(sheet) if format == "jpeg" else _png(sheet)


def _header(title: str | None, names: Sequence[str], width: int) -> np.ndarray:
    """A strip with the title and one coloured swatch + name per layer (wrapping)."""
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    line_h = 22
    lines: list[list[tuple[str, tuple[int, int, int]]]] = [[]]
    x = 0
    items = [(n, layer_colour(k)) for k, n in enumerate(names)] or [("(no layers)", (200, 200, 200))]
    for name, colour in items:
        (tw, _), _ = cv2.getTextSize(name, font, scale, thick)
        need = 18 + tw + 14
        if x + need > width - 8 and lines[-1]:
            lines.append([])
            x = 0
        lines[-1].append((name, colour))
        x += need
    top = line_h if title else 0
    strip = np.full((top + line_h * len(lines) + 6, width, 3), 24, np.uint8)
    if title:
        cv2.putText(strip, title, (6, 16), font, scale, (235, 235, 235), thick, cv2.LINE_AA)
    for r, items_row in enumerate(lines):
        x = 6
        y = top + r * line_h + 16
        for name, colour in items_row:
            cv2.rectangle(strip, (x, y - 11), (x + 12, y + 1), colour, thickness=-1)
            cv2.putText(strip, name, (x + 18, y), font, scale, colour, thick, cv2.LINE_AA)
            (tw, _), _ = cv2.getTextSize(name, font, scale, thick)
            x += 18 + tw + 14
    return strip


def preview(
    plate: PlateData,
    layers: LayersData,
    *,
    max_frames: int = 48,
    width: int = 320,
    fps: float = 12.0,
    format: str = "webp",
) -> bytes:
    """Animated image bytes: up to `max_frames` frames sampled evenly over the shot,
    resized to `width`, layers overlaid (fill + outline, names on), frame number in the
    corner; loops forever. WebP by default (lossy: ~20x smaller than GIF on grainy
    plates, shown by browsers and the Dagster UI); `format="gif"` for tools without it."""
    _check(plate, layers)
    if format not in ("webp", "gif"):
        raise ValueError(f"preview format must be webp or gif, got {format!r}")
    names = layer_labels(layers)
    ids = layers.layer_ids
    numbers = plate.frame_numbers
    scale = width / plate.size[0]
    images: list[Image.Image] = []
    for index in sample_indices(plate.n_frames, max_frames):
        img = overlay(plate.frame(index), layers.masks_at(index, ids), names, scale=scale)
        _label(img, str(numbers[index]), (2, 2), (255, 255, 255))
        images.append(Image.fromarray(img))
    if not images:
        raise ValueError("no frames to preview")
    buf = io.BytesIO()
    duration = round(1000 / fps)
    if format == "webp":
        images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], duration=duration, loop=0, quality=75, method=4)
    else:
        # One adaptive palette per frame, no dithering: flat fills stay flat.
        frames = [im.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for im in images]
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)
    return buf.getvalue()


def dagster_image_metadata(png: bytes, title: str):
    """A `dagster.MetadataValue.md` showing the image inline as a base64 data URI. `png`
    may also hold JPEG, GIF or WebP bytes (the type is read from the bytes)."""
    import dagster as dg

    mime = _mime(png)
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:{mime};base64,{encoded})")


def _mime(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError("not a PNG, GIF, JPEG or WebP image")


METADATA_BUDGET = 256 << 10  # bytes of images per materialisation (they live in the event log)


def metadata_pictures(plate: PlateData, layers: LayersData, title: str, *, budget: int = METADATA_BUDGET) -> dict[str, bytes]:
    """The small inline images for a materialisation: the contact sheet as JPEG with
    240 px tiles, the preview at 240 px and at most 24 frames, fewer if the two together
    exceed `budget` (then no preview). Metadata lives in the Dagster event log (a row
    per event; MySQL's TEXT column holds 64 KB, Dagster+ rejects large requests). The
    full-size PNG / WebP are the files `write_pictures` writes."""
    sheet = contact_sheet(plate, layers, n_frames=8, columns=4, tile_width=240, title=title, format="jpeg")
    frames = 24
    anim = preview(plate, layers, max_frames=frames, width=240)
    while len(sheet) + len(anim) > budget and frames > 6:
        frames //= 2
        anim = preview(plate, layers, max_frames=frames, width=240)
    out = {"contact_sheet": sheet}
    if len(sheet) + len(anim) <= budget:
        out["preview"] = anim
    return out


def pictures_metadata_from(images: dict[str, bytes], title: str) -> dict:
    return {name: dagster_image_metadata(data, f"{title}: {name.replace('_', ' ')}") for name, data in images.items()}


def pictures_metadata(plate: PlateData, layers: LayersData, title: str, *, budget: int = METADATA_BUDGET) -> dict:
    """Metadata for a `filtered_layers` / `mattes` materialisation: contact sheet and
    preview inline (see `metadata_pictures`)."""
    return pictures_metadata_from(metadata_pictures(plate, layers, title, budget=budget), title)


def write_pictures(folder: Path, stem: str, plate: PlateData, layers: LayersData, *, title: str | None = None) -> dict[str, Path]:
    """`<stem>_contact.png` and `<stem>_preview.webp` into `folder`, each written under a
    temporary name and renamed (never a half-written picture). Returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {
        "contact_sheet": folder / f"{stem}_contact.png",
        "preview": folder / f"{stem}_preview.webp",
    }
    data = {
        "contact_sheet": contact_sheet(plate, layers, title=title or stem),
        "preview": preview(plate, layers),
    }
    for key, path in out.items():
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data[key])
        os.replace(tmp, path)
    return out


def picture_stem(shot: str, version: int) -> str:
    """`sh010_matte_v003`: pictures named like the version's EXRs, without the frame."""
    return f"{shot}_matte_v{version:03d}"


def find_pictures(folder: Path) -> dict[str, Path]:
    """The contact sheet and preview in a folder (a delivered version), if any; what
    `matte status` points at."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for key, pattern in (("contact_sheet", "*_contact.png"), ("preview", "*_preview.webp")):
        hits = sorted(folder.glob(pattern))
        if hits:
            found[key] = hits[-1]
    return found
