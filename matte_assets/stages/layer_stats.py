"""Per-layer summaries stored with the tracked layers, for stitching in `filtered_layers`.

`store_layer_summaries` reads the final tracked masks (in blocks) and the plate at each
layer's first and last few frames, and stores per layer: area and centroid per frame
(`stitch_track`, (L, N, 3)), the colour histograms of the plate under its first and
last `END_FRAMES` masks (`stitch_hist`, (L, 2, BINS**3)) and the frame edges its first
and last masks touch (attrs `stitch_edges`). Stitching then decides from these alone,
so a stitch threshold change reruns only filtering and delivery. Works the same for
any backend: it needs only layers and plate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..algorithms.stitching import BINS, END_FRAMES, LayerSummary, colour_histogram, frame_track, touched_edges
from .stage_data import frame_blocks


def store_layer_summaries(group: Any, plate: Any, layer_ids: list[int], n_frames: int, size: tuple[int, int]) -> None:
    width, height = size
    masks = group["masks"]
    track = np.zeros((len(layer_ids), n_frames, 3), np.float32)
    for start, stop in frame_blocks(n_frames, len(layer_ids), height, width) if layer_ids else []:
        for k, lid in enumerate(layer_ids):
            track[k, start:stop] = frame_track(masks[str(lid)][start:stop])
    hist = np.zeros((len(layer_ids), 2, BINS**3), np.float32)
    edges: dict[str, list[list[str]]] = {}
    # Frames each layer's ends need: read each plate frame once.
    wanted: dict[int, list[tuple[int, int]]] = {}
    for k, lid in enumerate(layer_ids):
        filled = np.flatnonzero(track[k, :, 0] > 0)
        if filled.size == 0:
            edges[str(lid)] = [[], []]
            continue
        for f in filled[:END_FRAMES]:
            wanted.setdefault(int(f), []).append((k, 0))
        for f in filled[-END_FRAMES:]:
            wanted.setdefault(int(f), []).append((k, 1))
        edges[str(lid)] = [
            list(touched_edges(masks[str(lid)][int(filled[0])])),
            list(touched_edges(masks[str(lid)][int(filled[-1])])),
        ]
    for f in sorted(wanted):
        frame = np.asarray(plate.frames(f, f + 1))[0]
        for k, end in wanted[f]:
            mask = np.asarray(masks[str(layer_ids[k])][f], bool)
            hist[k, end] += colour_histogram(frame[mask]).astype(np.float32)
    group.create_array("stitch_track", data=track)
    group.create_array("stitch_hist", data=hist)
    group.attrs["stitch_edges"] = edges
    group.attrs["stitch_ids"] = [int(i) for i in layer_ids]


def load_layer_summaries(group: Any, layer_ids: list[int], labels: list[str]) -> list[LayerSummary] | None:
    """The stored summaries of `layer_ids` (None for results stored before stitching)."""
    if "stitch_track" not in group or "stitch_hist" not in group:
        return None
    stored_ids = [int(i) for i in group.attrs.get("stitch_ids", [])]
    row = {lid: k for k, lid in enumerate(stored_ids)}
    track = np.asarray(group["stitch_track"][...], np.float64)
    hist = np.asarray(group["stitch_hist"][...], np.float64)
    edges = dict(group.attrs.get("stitch_edges", {}))
    out = []
    for lid, label in zip(layer_ids, labels):
        k = row.get(lid)
        if k is None:
            return None
        head, tail = edges.get(str(lid), [[], []])
        out.append(LayerSummary(lid, str(label), track[k], tuple(head), tuple(tail), hist[k, 0], hist[k, 1]))
    return out
