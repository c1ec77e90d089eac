"""What each stage stores in its Zarr group, and the lazy readers downstream stages get.

Readers never load a whole shot: frames and masks are read per frame or per window
straight from Zarr chunks (one chunk = one frame), so memory is bounded by the window
and frame size whatever the shot length.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from io_managers.zarr_store import IMAGE_CODECS, MASK_CODECS


# -- small columnar tables -----------------------------------------------------------
def write_table(group: zarr.Group, name: str, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
    """Columns of equal length; string columns are stored as int codes + categories."""
    sub = group.create_group(name)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"table {name}: columns have different lengths {sorted(lengths)}")
    meta: dict[str, Any] = {}
    for col, values in columns.items():
        as_array = np.asarray(values)
        if as_array.dtype.kind in "USO":  # strings (pass np.array([], str) for empty ones)
            categories = sorted({str(v) for v in values})
            codes = np.array([categories.index(str(v)) for v in values], dtype=np.int32)
            meta[col] = {"categories": categories}
            data = codes
        else:
            data = as_array
            meta[col] = {}
        sub.create_array(col, data=data if data.size else np.zeros(0, data.dtype), chunks=(max(1, data.size),))
    sub.attrs["columns"] = meta


def read_table(group: zarr.Group, name: str) -> dict[str, np.ndarray | list[str]]:
    sub = group[name]
    out: dict[str, np.ndarray | list[str]] = {}
    for col, meta in sub.attrs["columns"].items():
        data = sub[col][...]
        if "categories" in meta:
            cats = meta["categories"]
            out[col] = [cats[int(i)] for i in data]
        else:
            out[col] = data
    return out


def create_mask_array(group: zarr.Group, name: str, shape: tuple[int, ...]) -> zarr.Array:
    """Bool masks chunked one frame (H, W) per chunk, compressed, empty frames unwritten."""
    return group.create_array(
        name, shape=shape, chunks=(1,) * (len(shape) - 2) + tuple(shape[-2:]), dtype=bool,
        fill_value=False, compressors=MASK_CODECS,
    )


def stored_bytes(array: zarr.Array) -> int:
    try:
        return int(array.nbytes_stored())
    except Exception:  # some stores cannot report sizes; metadata only then
        return 0


# -- plate --------------------------------------------------------------------------
@dataclass
class PlateData:
    group: zarr.Group
    record: dict[str, Any]

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def frames_array(self) -> zarr.Array:
        return self.group["frames"]

    @property
    def n_frames(self) -> int:
        return int(self.frames_array.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the downscaled plate."""
        return int(self.frames_array.shape[2]), int(self.frames_array.shape[1])

    @property
    def frame_numbers(self) -> list[int]:
        return [int(f) for f in self.group.attrs["frame_numbers"]]

    def frames(self, start: int, stop: int) -> np.ndarray:
        return self.frames_array[start:stop]

    def frame(self, index: int) -> np.ndarray:
        return self.frames_array[index]

    def sample(self, count: int) -> np.ndarray:
        """Up to `count` frames spread evenly over the shot (background models)."""
        idx = np.unique(np.linspace(0, self.n_frames - 1, num=min(count, self.n_frames)).round().astype(int))
        return np.stack([self.frames_array[int(i)] for i in idx])


def create_plate_arrays(group: zarr.Group, n_frames: int, width: int, height: int) -> zarr.Array:
    return group.create_array(
        "frames", shape=(n_frames, height, width, 3), chunks=(1, height, width, 3), dtype=np.uint8,
        compressors=IMAGE_CODECS,
    )


# -- detections -----------------------------------------------------------------------
DETECTION_COLUMNS = ("frame_index", "frame", "label", "score", "x0", "y0", "x1", "y1")


@dataclass
class DetectionTable:
    columns: dict[str, Any]
    record: dict[str, Any]
    masks: Any = None  # (N, H, W) bool zarr array when the detector stored masks (SAM 3)

    def __len__(self) -> int:
        return len(self.columns["frame_index"])

    def rows_at(self, frame_index: int) -> list[int]:
        return [int(i) for i in np.flatnonzero(np.asarray(self.columns["frame_index"]) == frame_index)]

    def boxes(self, rows: Sequence[int]) -> np.ndarray:
        if not rows:
            return np.zeros((0, 4), np.float32)
        cols = [np.asarray(self.columns[c])[list(rows)] for c in ("x0", "y0", "x1", "y1")]
        return np.stack(cols, axis=1).astype(np.float32)

    def labels(self, rows: Sequence[int]) -> list[str]:
        return [self.columns["label"][i] for i in rows]

    def stored_masks(self, rows: Sequence[int]) -> np.ndarray | None:
        """The detector's own masks for `rows`, or None when it stored none."""
        if self.masks is None:
            return None
        h, w = self.masks.shape[1:]
        if not rows:
            return np.zeros((0, h, w), bool)
        return np.stack([self.masks[int(r)] for r in rows])


# -- frame masks ---------------------------------------------------------------------
@dataclass
class FrameMasksData:
    group: zarr.Group
    record: dict[str, Any]
    table: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.table = read_table(self.group, "table")
        fi = np.asarray(self.table["frame_index"], dtype=np.int64)
        self._rows_by_frame: dict[int, list[int]] = {}
        for row, f in enumerate(fi):
            self._rows_by_frame.setdefault(int(f), []).append(row)

    def __len__(self) -> int:
        return len(self.table["frame_index"])

    def masks_at(self, frame_index: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        rows = self._rows_by_frame.get(frame_index, [])
        masks_arr = self.group["masks"]
        h, w = masks_arr.shape[1:]
        if not rows:
            return np.zeros((0, h, w), bool), np.zeros(0, np.float32), []
        masks = np.stack([masks_arr[r] for r in rows])
        quality = np.asarray(self.table["quality"], dtype=np.float32)[rows]
        labels = [self.table["label"][r] for r in rows]
        return masks, quality, labels


# -- layers (tracked and filtered) -------------------------------------------------------
BLOCK_BYTES = 16 << 20  # one block of masks (all layers) stays under this; a stage holds a few copies


def frame_blocks(n_frames: int, n_layers: int, height: int, width: int) -> list[tuple[int, int]]:
    """[start, stop) blocks of frames whose masks (all layers) fit in BLOCK_BYTES."""
    per_frame = max(1, n_layers * height * width)
    size = max(1, min(n_frames, BLOCK_BYTES // per_frame))
    return [(t, min(t + size, n_frames)) for t in range(0, n_frames, size)]

class LayerMaskWriter:
    """Writes one (T, H, W) bool array per layer, created on first write (the number of
    layers is only known once tracking has run). Implements the tracking LayerSink."""

    def __init__(self, group: zarr.Group, n_frames: int, height: int, width: int):
        self.masks = group.require_group("masks")
        self.shape = (n_frames, height, width)
        self._arrays: dict[int, zarr.Array] = {}
        self.frames_written: dict[int, int] = {}

    def array(self, layer_id: int) -> zarr.Array:
        if layer_id not in self._arrays:
            self._arrays[layer_id] = create_mask_array(self.masks, str(layer_id), self.shape)
        return self._arrays[layer_id]

    def write(self, layer_id: int, frame_index: int, mask: np.ndarray) -> None:
        arr = self.array(layer_id)  # created even when empty, so every layer has an array
        if mask.any():
            arr[frame_index] = mask
            self.frames_written[layer_id] = self.frames_written.get(layer_id, 0) + 1

    def clear(self, layer_id: int, first: int, last: int) -> None:
        """Empty frames first..last of a layer (their chunks are deleted), before a
        correction re-tracks them."""
        self.array(layer_id)[first : last + 1] = False

    def adopt(self, layer_id: int) -> None:
        """Register an array copied into the group by the store (a reused layer)."""
        self._arrays[layer_id] = self.masks[str(layer_id)]

    def write_block(self, layer_id: int, start: int, masks: np.ndarray) -> None:
        """Frames start..start+len(masks)-1 in one call (zarr writes the chunks
        concurrently and skips empty frames)."""
        arr = self.array(layer_id)
        filled = int(masks.reshape(len(masks), -1).any(axis=1).sum())
        if filled:
            arr[start : start + len(masks)] = masks
            self.frames_written[layer_id] = self.frames_written.get(layer_id, 0) + filled

    def bytes_per_frame_per_layer(self) -> float:
        """Stored bytes per non-empty (layer, frame) — the figure the docs report.
        Empty frames have no chunk, so stored chunks = non-empty frames."""
        chunks = sum(int(a.nchunks_initialized) for a in self._arrays.values())
        total = sum(stored_bytes(a) for a in self._arrays.values())
        return total / chunks if chunks else 0.0


@dataclass
class LayersData:
    group: zarr.Group
    record: dict[str, Any]
    table: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.table = read_table(self.group, "layers")

    @property
    def layer_ids(self) -> list[int]:
        return [int(i) for i in self.table["layer_id"]]

    @property
    def n_frames(self) -> int:
        return int(self.group.attrs["n_frames"])

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.group.attrs["size"]
        return int(w), int(h)

    def names(self) -> list[str]:
        return list(self.table.get("name", [str(i) for i in self.layer_ids]))

    def masks_at(self, frame_index: int, layer_ids: Iterable[int] | None = None) -> np.ndarray:
        ids = self.layer_ids if layer_ids is None else list(layer_ids)
        w, h = self.size
        out = np.zeros((len(ids), h, w), bool)
        masks = self.group["masks"]
        for k, lid in enumerate(ids):
            out[k] = masks[str(lid)][frame_index]
        return out

    def masks_block(self, start: int, stop: int, layer_ids: Sequence[int] | None = None) -> np.ndarray:
        """(L, stop-start, H, W) for a block of frames, one zarr call per layer."""
        ids = self.layer_ids if layer_ids is None else list(layer_ids)
        w, h = self.size
        out = np.zeros((len(ids), stop - start, h, w), bool)
        masks = self.group["masks"]
        for k, lid in enumerate(ids):
            out[k] = masks[str(lid)][start:stop]
        return out

    def overlap_stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Whole-shot (areas, intersections) stored by tracked_layers, if present."""
        if "overlap_areas" not in self.group:
            return None
        return self.group["overlap_areas"][...], self.group["overlap_intersections"][...]

    def decisions(self) -> list[dict[str, Any]]:
        return list(self.group.attrs.get("decisions", []))
