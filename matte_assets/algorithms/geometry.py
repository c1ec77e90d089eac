"""Mask and box geometry shared by the identity rule, the layer filter and the metrics.

Conventions (as in `resources.backends`): masks are `bool` arrays (H, W) or stacks
(N, H, W); boxes are `x0, y0, x1, y1` with x1/y1 exclusive.

Empty-set convention: two empty masks are the same (empty) set, so their IoU is 1.0
(the DAVIS convention the metrics use too). Callers that must not match empty masks
(the identity rule) filter them out first. Boxes are different: a zero-area box
covers nothing, so `box_iou` of two zero-area boxes is 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[int, int, int, int]

# float32 sums of 0/1 products are exact integers while every partial sum stays
# below 2**24; chunking the pixel axis keeps each chunk under that and also bounds the
# temporary float copies (~64 MB) whatever the frame size.
_EXACT_F32 = 1 << 24
_CHUNK_ELEMENTS = 1 << 24


def _as_stack(masks: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected a stack of masks (N, H, W), got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def mask_to_box(mask: np.ndarray) -> Box | None:
    """Tight integer box around the True pixels, x1/y1 exclusive; None for an empty mask."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask: expected (H, W), got shape {m.shape}")
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes; 0.0 when the union has no area (degenerate boxes overlap nothing)."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    area_a = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0)
    area_b = max(0.0, bx1 - bx0) * max(0.0, by1 - by0)
    union = area_a + area_b - inter
    return inter / union if union > 0.0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two masks of the same shape; 1.0 when both are empty (same empty set)."""
    ma = np.asarray(a, dtype=bool)
    mb = np.asarray(b, dtype=bool)
    if ma.shape != mb.shape:
        raise ValueError(f"mask shapes differ: {ma.shape} vs {mb.shape}")
    union = int(np.count_nonzero(ma | mb))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(ma & mb)) / union


def areas(masks: np.ndarray) -> np.ndarray:
    """Pixel count per mask of a stack (N, ...) -> (N,) int64."""
    m = _as_stack(masks, "masks")
    return np.count_nonzero(m.reshape(m.shape[0], int(np.prod(m.shape[1:]))), axis=1).astype(np.int64)


def pairwise_intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i ∩ b_j| for all pairs: (N, ...) x (M, ...) -> (N, M) int64, exact.

    One matrix product of the flattened masks (BLAS float32) instead of N*M logical
    ands; exact because the pixel axis is chunked below float32's integer range."""
    sa = _as_stack(a, "a")
    sb = _as_stack(b, "b")
    if sa.shape[1:] != sb.shape[1:]:
        raise ValueError(f"mask shapes differ: {sa.shape[1:]} vs {sb.shape[1:]}")
    n, m = sa.shape[0], sb.shape[0]
    out = np.zeros((n, m), dtype=np.int64)
    pixels = int(np.prod(sa.shape[1:]))
    if n == 0 or m == 0 or pixels == 0:
        return out
    fa = sa.reshape(n, pixels)
    fb = sb.reshape(m, pixels)
    step = max(1, min(_EXACT_F32 - 1, _CHUNK_ELEMENTS // (n + m)))
    for lo in range(0, pixels, step):
        hi = min(pixels, lo + step)
        ca = fa[:, lo:hi].astype(np.float32)
        cb = fb[:, lo:hi].astype(np.float32)
        out += np.rint(ca @ cb.T).astype(np.int64)
    return out


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU for all pairs: (N, ...) x (M, ...) -> (N, M) float64; 1.0 where both are empty."""
    inter = pairwise_intersections(a, b)
    union = areas(a)[:, None] + areas(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return iou.astype(np.float64)
