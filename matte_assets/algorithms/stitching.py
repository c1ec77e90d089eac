"""Stitching: join time-disjoint fragments of one object into one layer.

A tracker loses an object when it leaves the frame, hides behind another or when the
detector misses it for a while; when it is found again it starts a new layer. This
step decides, from per-layer summaries only (no mask is read), which layers are
fragments of one object, and records every pair it considered with its numbers:

- **time**: B starts after A ends (`gap` = B.first - A.last - 1 frames, at most
  `stitch_max_gap`), or overlaps A's end by at most `stitch_max_overlap` frames;
  layers that coexist longer are different objects.
- **appearance**: Bhattacharyya coefficient of the plate's colour histograms under A's
  last frames and B's first frames (1 = same colours) at least `stitch_similarity`.
- **motion continuity at the hand-off**, one of:
  - *edge*: A's last mask touches a frame edge, B's first mask touches the same edge
    (the object went out and came back the way it left);
  - *path*: A's position extrapolated at its last velocity to B's first frame (and B's
    extrapolated back to A's last frame) lands within `stitch_motion` object sizes
    (sqrt of the mean area) of where B (A) is, the tolerance growing by half an object
    size per 10 frames of gap (speed estimates are uncertain).
- **label**: the same detection label.

Pairs that pass are linked best first (highest similarity, then smallest motion error),
each layer with at most one predecessor and one successor, so each object is a chain of
fragments in time order; the chain keeps the id of its first fragment.

Everything here is plain numpy on `LayerSummary` values; `layer_summaries` builds them
from masks and frames (the tracked_layers stage stores them with the layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 8  # per RGB channel: a 512-bin joint histogram
END_FRAMES = 3  # frames at each end of a layer its appearance is measured on
EDGES = ("left", "top", "right", "bottom")


@dataclass(frozen=True)
class StitchParams:
    stitch_max_gap: int = 30  # frames between fragments (0 disables stitching)
    stitch_max_overlap: int = 2  # frames two fragments of one object may both be non-empty
    stitch_similarity: float = 0.6  # Bhattacharyya coefficient of the colour histograms
    stitch_motion: float = 1.5  # hand-off position error, in object sizes

    def __post_init__(self) -> None:
        if int(self.stitch_max_gap) != self.stitch_max_gap or self.stitch_max_gap < 0:
            raise ValueError(f"stitch_max_gap must be an integer >= 0, got {self.stitch_max_gap!r}")
        if int(self.stitch_max_overlap) != self.stitch_max_overlap or self.stitch_max_overlap < 0:
            raise ValueError(f"stitch_max_overlap must be an integer >= 0, got {self.stitch_max_overlap!r}")
        if not 0.0 <= float(self.stitch_similarity) <= 1.0:
            raise ValueError(f"stitch_similarity must be in [0, 1], got {self.stitch_similarity!r}")
        if not float(self.stitch_motion) > 0.0:
            raise ValueError(f"stitch_motion must be > 0, got {self.stitch_motion!r}")


@dataclass(frozen=True)
class LayerSummary:
    """What stitching knows of a layer: per frame its area and centroid, which frame
    edges its first and last masks touch, and its colour at both ends."""

    layer_id: int
    label: str
    track: np.ndarray  # (N, 3) float: area, centroid x, centroid y per frame (area 0: empty)
    head_edges: tuple[str, ...]
    tail_edges: tuple[str, ...]
    head_hist: np.ndarray  # (BINS**3,) normalised colour histogram over the first END_FRAMES frames
    tail_hist: np.ndarray  # same, over the last END_FRAMES frames

    @property
    def frames(self) -> np.ndarray:
        return np.flatnonzero(self.track[:, 0] > 0)

    @property
    def first(self) -> int:
        f = self.frames
        return int(f[0]) if f.size else -1

    @property
    def last(self) -> int:
        f = self.frames
        return int(f[-1]) if f.size else -1

    @property
    def size(self) -> float:
        """Object size: sqrt of the mean non-empty area (pixels)."""
        f = self.frames
        return float(np.sqrt(self.track[f, 0].mean())) if f.size else 0.0


# --- summaries --------------------------------------------------------------------------


def colour_histogram(pixels: np.ndarray) -> np.ndarray:
    """(BINS**3,) joint RGB histogram of uint8 pixels (K, 3), counts (not normalised)."""
    p = np.asarray(pixels, np.uint8).reshape(-1, 3).astype(np.int64) * BINS // 256
    idx = (p[:, 0] * BINS + p[:, 1]) * BINS + p[:, 2]
    return np.bincount(idx, minlength=BINS**3).astype(np.float64)


def bhattacharyya(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two histograms (normalised here): 1 identical, 0 disjoint."""
    sa, sb = float(np.sum(a)), float(np.sum(b))
    if sa <= 0 or sb <= 0:
        return 0.0
    return float(np.sum(np.sqrt((np.asarray(a) / sa) * (np.asarray(b) / sb))))


def touched_edges(mask: np.ndarray) -> tuple[str, ...]:
    m = np.asarray(mask, bool)
    if not m.any():
        return ()
    out = []
    for name, line in zip(EDGES, (m[:, 0], m[0, :], m[:, -1], m[-1, :])):
        if line.any():
            out.append(name)
    return tuple(out)


def frame_track(masks: np.ndarray) -> np.ndarray:
    """(N, 3) area, centroid x, centroid y of masks (N, H, W) (centroid 0 where empty)."""
    m = np.asarray(masks, bool)
    n, h, w = m.shape
    area = m.reshape(n, -1).sum(axis=1).astype(np.float64)
    xs = (m.sum(axis=1) * np.arange(w)[None, :]).sum(axis=1)
    ys = (m.sum(axis=2) * np.arange(h)[None, :]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cx = np.where(area > 0, xs / np.maximum(area, 1), 0.0)
        cy = np.where(area > 0, ys / np.maximum(area, 1), 0.0)
    return np.stack([area, cx, cy], axis=1)


# --- decisions --------------------------------------------------------------------------


def _velocity(s: LayerSummary, at_end: bool, span: int = 4) -> np.ndarray:
    """Centroid velocity (px/frame) over the last (or first) `span` non-empty frames."""
    f = s.frames
    pick = f[-span:] if at_end else f[:span]
    if pick.size < 2 or pick[-1] == pick[0]:
        return np.zeros(2)
    c = s.track[pick, 1:3]
    return (c[-1] - c[0]) / float(pick[-1] - pick[0])


def pair_values(a: LayerSummary, b: LayerSummary, n_frames: int) -> dict[str, Any]:
    """The numbers that decide whether B continues A (A ends first)."""
    both = int(np.sum((a.track[:, 0] > 0) & (b.track[:, 0] > 0)))
    gap = b.first - a.last - 1
    size = max(0.5 * (a.size + b.size), 1.0)
    shared_edges = sorted(set(a.tail_edges) & set(b.head_edges))
    if gap >= 0:
        # Extrapolate each across the gap, both ways; the better direction counts.
        pa = a.track[a.last, 1:3] + _velocity(a, True) * (b.first - a.last)
        pb = b.track[b.first, 1:3] - _velocity(b, False) * (b.first - a.last)
        err = min(float(np.hypot(*(pa - b.track[b.first, 1:3]))), float(np.hypot(*(pb - a.track[a.last, 1:3]))))
    else:
        # Overlapping ends: compare where both are in the shared frames.
        shared = np.flatnonzero((a.track[:, 0] > 0) & (b.track[:, 0] > 0))
        err = float(np.mean(np.hypot(*(a.track[shared, 1:3] - b.track[shared, 1:3]).T))) if shared.size else float("inf")
    return {
        "gap": int(gap),
        "overlap_frames": both,
        "similarity": round(bhattacharyya(a.tail_hist, b.head_hist), 6),
        "motion_error": round(err / size, 6),  # in object sizes
        "edge": ",".join(shared_edges),
        "size": round(size, 3),
    }


def decide_stitches(
    summaries: Sequence[LayerSummary], params: StitchParams, n_frames: int
) -> tuple[dict[int, int], list[dict[str, Any]]]:
    """Which layers continue which: ({layer id: id of the chain's first layer} for every
    stitched layer, decision rows for every pair considered). A row: `a`, `b`, the
    values of `pair_values`, `decision` (link | reject) and `reason`."""
    rows: list[dict[str, Any]] = []
    candidates: list[tuple[float, float, int, int]] = []
    items = [s for s in summaries if s.first >= 0]
    if params.stitch_max_gap <= 0:
        return {}, rows
    for a in items:
        for b in items:
            if a.layer_id == b.layer_id or a.label != b.label:
                continue
            # B continues A: B starts after A starts and ends after A ends.
            if not (b.first > a.first and b.last > a.last):
                continue
            v = pair_values(a, b, n_frames)
            reason = ""
            if v["gap"] > params.stitch_max_gap:
                reason = f"gap {v['gap']} > stitch_max_gap {params.stitch_max_gap}"
            elif v["overlap_frames"] > params.stitch_max_overlap:
                reason = f"both present in {v['overlap_frames']} frames > stitch_max_overlap {params.stitch_max_overlap}"
            elif v["similarity"] < params.stitch_similarity:
                reason = f"colour similarity {v['similarity']:.3f} < stitch_similarity {params.stitch_similarity}"
            else:
                allowed = params.stitch_motion + 0.05 * max(v["gap"], 0)
                if v["edge"] and v["gap"] > 0:
                    pass  # left by an edge and came back by it: position along the edge is free
                elif v["motion_error"] > allowed:
                    reason = f"hand-off off the path by {v['motion_error']:.2f} object sizes > {allowed:.2f}"
            if reason:
                rows.append({"a": a.layer_id, "b": b.layer_id, **v, "decision": "reject", "reason": reason})
            else:
                candidates.append((-v["similarity"], v["motion_error"], a.layer_id, b.layer_id))
                rows.append({"a": a.layer_id, "b": b.layer_id, **v, "decision": "candidate", "reason": ""})
    successor: dict[int, int] = {}
    predecessor: dict[int, int] = {}
    for _, _, a_id, b_id in sorted(candidates):
        row = next(r for r in rows if r["a"] == a_id and r["b"] == b_id)
        if a_id in successor:
            row.update(decision="reject", reason=f"{a_id} already continues as {successor[a_id]} (a better match)")
        elif b_id in predecessor:
            row.update(decision="reject", reason=f"{b_id} already continues {predecessor[b_id]} (a better match)")
        elif _chain_root(a_id, predecessor) == b_id:
            row.update(decision="reject", reason="would close a loop")
        else:
            successor[a_id], predecessor[b_id] = b_id, a_id
            how = "edge exit and re-entry" if row["edge"] and row["gap"] > 0 else "on the path"
            row.update(decision="link", reason=f"{b_id} continues {a_id}: similarity {row['similarity']:.3f}, {how}")
    root = {lid: _chain_root(lid, predecessor) for lid in predecessor}
    return root, rows


def _chain_root(lid: int, predecessor: dict[int, int]) -> int:
    seen = {lid}
    while lid in predecessor:
        lid = predecessor[lid]
        if lid in seen:
            break
        seen.add(lid)
    return lid
