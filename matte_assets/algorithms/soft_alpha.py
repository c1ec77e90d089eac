"""Soft alpha at full resolution: a coarse layer mask refined by the full-resolution plate.

The layers are decided at plate resolution as binary masks; upscaled, their edges are a
bilinear ramp a few pixels wide wherever the object really is, and a hard step where
the plate was not downscaled. Real edges are anti-aliased, motion-blurred or made of
hair. Here the upscaled mask is refined in a narrow band around its edge with He et
al.'s colour guided filter (*Guided Image Filtering*, TPAMI 2013): inside the band the
alpha becomes a locally linear function of the plate's colour (alpha ~ a . I + b over
each window), so it follows the colour transition between object and background at
full resolution; outside the band the mask is kept as it is (0 or 1). Where the alpha
has not settled to 0 or 1 at the band's border the true edge lies beyond it (a mask
that lags a fast object, hair reaching past it): there the band is widened and the
refinement redone, locally; then one damped iteration re-centres the band on the
refined edge (`refine_alpha`). The filter needs box filters only (cv2.boxFilter), a few
per pixel of the band's bounding box.

Measured against rendered truth in benchmarks/soft_alpha.py (docs/quality.md)."""

from __future__ import annotations

import math

import cv2
import numpy as np

# Regularisation of the guided filter on a guide in [0, 1]: small enough that a colour
# step of a few percent moves the alpha, large enough that sensor noise does not.
GUIDED_EPS = 1e-4
# Window radius as a multiple of the band. Wide windows fit alpha ~ a . I + b over a
# good part of the object and its surroundings (a local colour model), which places the
# edge where the colours change even when the coarse mask is off by a few pixels; too
# wide and neighbouring objects' colours leak in. Chosen for the best worst case over
# pipeline and ideal coarse masks at 2x and 4x downscale (docs/quality.md#soft-alpha).
RADIUS_PER_BAND = 4


def auto_band(full_size: tuple[int, int], plate_size: tuple[int, int]) -> int:
    """Default band half-width in full-resolution pixels: the coarse mask can be off by
    about one plate pixel, i.e. `scale` full pixels, plus the edge's own width."""
    scale = max(full_size[0] / max(plate_size[0], 1), full_size[1] / max(plate_size[1], 1), 1.0)
    return int(math.ceil(2.0 * scale)) + 2


def guide_image(pixels: np.ndarray, linear: bool) -> np.ndarray:
    """Full-resolution RGB (float32) -> guide in [0, 1]. Scene-linear values are
    compressed (x / (1 + x), then a square root) so highlights keep their edges and dark
    areas are not flattened; display-referred values are only clipped."""
    rgb = np.asarray(pixels, np.float32)
    if linear:
        rgb = np.maximum(rgb, 0.0)
        return np.sqrt(rgb / (1.0 + rgb)).astype(np.float32)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    k = 2 * radius + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float = GUIDED_EPS) -> np.ndarray:
    """He et al.'s colour guided filter: `guide` (H, W, 3) float32, `p` (H, W) float32."""
    I = np.asarray(guide, np.float32)
    p = np.asarray(p, np.float32)
    mean_I = _box(I, radius)  # (H, W, 3)
    mean_p = _box(p, radius)
    cov_Ip = _box(I * p[..., None], radius) - mean_I * mean_p[..., None]
    # Covariance of the guide per window, 3x3 symmetric, + eps on the diagonal.
    r, g, b = I[..., 0], I[..., 1], I[..., 2]
    mr, mg, mb = mean_I[..., 0], mean_I[..., 1], mean_I[..., 2]
    vrr = _box(r * r, radius) - mr * mr + eps
    vrg = _box(r * g, radius) - mr * mg
    vrb = _box(r * b, radius) - mr * mb
    vgg = _box(g * g, radius) - mg * mg + eps
    vgb = _box(g * b, radius) - mg * mb
    vbb = _box(b * b, radius) - mb * mb + eps
    # Inverse by cofactors (vectorised over pixels).
    c_rr = vgg * vbb - vgb * vgb
    c_rg = vgb * vrb - vrg * vbb
    c_rb = vrg * vgb - vgg * vrb
    c_gg = vrr * vbb - vrb * vrb
    c_gb = vrb * vrg - vrr * vgb
    c_bb = vrr * vgg - vrg * vrg
    det = vrr * c_rr + vrg * c_rg + vrb * c_rb
    cr, cg, cb = cov_Ip[..., 0], cov_Ip[..., 1], cov_Ip[..., 2]
    a_r = (c_rr * cr + c_rg * cg + c_rb * cb) / det
    a_g = (c_rg * cr + c_gg * cg + c_gb * cb) / det
    a_b = (c_rb * cr + c_gb * cg + c_bb * cb) / det
    b_ = mean_p - a_r * mr - a_g * mg - a_b * mb
    a = np.stack([a_r, a_g, a_b], axis=-1)
    return (_box(a, radius) * I).sum(axis=-1) + _box(b_, radius)


def edge_band(hard: np.ndarray, band: int) -> np.ndarray:
    """Pixels within `band` pixels of the mask's edge (either side)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    m = hard.astype(np.uint8)
    return cv2.dilate(m, kernel) != cv2.erode(m, kernel)


# Adaptive band: where the refined alpha has not settled to the coarse mask's 0 or 1 at
# the band's own border, the true edge lies beyond the band (a coarse mask that lags a
# fast object, hair reaching past it); there the band is widened GROW_FACTOR times and
# refined again, up to GROW_LEVELS times. Elsewhere the narrow band stays (a wide one
# fits one colour model across neighbouring objects). "Settled" means within
# SETTLE_TOLERANCE of the mask's value.
GROW_LEVELS = 2
GROW_FACTOR = 2
SETTLE_TOLERANCE = 0.25


def _refine_band(coarse: np.ndarray, hard: np.ndarray, guide: np.ndarray, band: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(alpha guided-filtered within `band` of the edge and the mask's 0/1 elsewhere, the
    band). Only the band's bounding box (plus the filter's reach) is filtered."""
    out = hard.astype(np.float32)
    unknown = edge_band(hard, band)
    ys, xs = np.nonzero(unknown)
    h, w = coarse.shape
    radius = RADIUS_PER_BAND * band
    pad = 2 * radius + 1
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
    q = guided_filter(guide[y0:y1, x0:x1], coarse[y0:y1, x0:x1], radius, eps)
    crop = out[y0:y1, x0:x1]
    inside = unknown[y0:y1, x0:x1]
    crop[inside] = np.clip(q[inside], 0.0, 1.0)
    return out, unknown


def _refine_grown(coarse: np.ndarray, guide: np.ndarray, band: int, eps: float, levels: int) -> np.ndarray:
    """Guided filter in the edge band, widened locally where the alpha has not settled."""
    hard = coarse >= 0.5
    out, unknown = _refine_band(coarse, hard, guide, band, eps)
    region = unknown
    ring_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for _ in range(levels):
        border = unknown & (cv2.erode(unknown.astype(np.uint8), ring_kernel) == 0)
        unsettled = border & region & (np.abs(out - hard) > SETTLE_TOLERANCE)
        if not unsettled.any():
            break
        band *= GROW_FACTOR
        wide, unknown = _refine_band(coarse, hard, guide, band, eps)
        reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        region = (cv2.dilate(unsettled.astype(np.uint8), reach) > 0) & unknown
        out[region] = wide[region]
    return out


def refine_alpha(
    coarse: np.ndarray, guide: np.ndarray, band: int, eps: float = GUIDED_EPS, levels: int = GROW_LEVELS,
    recentre: bool = True,
) -> np.ndarray:
    """A full-resolution coarse alpha (H, W) in [0, 1] (the upscaled layer mask) ->
    soft alpha: guided-filtered inside the edge band, the coarse mask's 0/1 outside.
    The band widens locally (up to `levels` times) where the alpha has not settled at
    its border (see GROW_LEVELS).

    With `recentre`, one damped iteration follows: the refinement is repeated with the
    first result as the coarse alpha (its 0.5 level, where the plate's colours put the
    edge, becomes the band's centre) and the two results are averaged. A coarse mask
    that sits a pixel or two inside or outside the object all along its edge (the
    guided filter only partly corrects such a bias) moves towards the colour edge; the
    average keeps a correct mask from drifting with the object's texture."""
    coarse = np.asarray(coarse, np.float32)
    hard = coarse >= 0.5
    if band < 1 or not hard.any() or hard.all():
        return hard.astype(np.float32)
    first = _refine_grown(coarse, guide, band, eps, levels)
    if not recentre:
        return first
    # Kept on its side of 0.5 so the second pass's mask is exactly the first's 0.5 level.
    centred = np.where(first >= 0.5, np.maximum(first, 0.5), np.minimum(first, 0.499)).astype(np.float32)
    if not (centred >= 0.5).any() or (centred >= 0.5).all():
        return first
    return 0.5 * (first + _refine_grown(centred, guide, band, eps, levels))
