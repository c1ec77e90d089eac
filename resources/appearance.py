"""Per-object appearance model for the embedded flow tracker (no weights, classical).

Flow alone drifts on real footage: limbs move faster than DIS can follow, blur breaks
the brightness constancy the colour check relies on, and a mask that loses pixels
frame after frame never gets them back. So each frame the warped mask is only a shape
prior, and the object is segmented again inside a band around it:

- colour: quantised-RGB histograms of the object and of a band of background around
  it (local background: what the object has to be told apart from), learnt from the
  object's prompt (the artist's keyframe) and updated slowly from each frame's result;
  the prompt's histograms are kept as an anchor so the model cannot drift onto the
  background (memory of the keyframe, not only of the previous frame);
- shape: a signed distance to the warped mask, scaled by how far the object moved
  (a fast object has a wider band and a weaker shape prior);
- the two log-odds are added and the cut made by GrabCut on the band (graph cut on
  colour GMMs with contrast-sensitive smoothness, so the edge snaps to the image),
  seeded with pixels both cues agree on.

Plain numpy / OpenCV functions on arrays; `resources.embedded.FlowSession` calls them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

BINS = 16  # per RGB channel: 4096 colour cells
_SHIFT = 8 - int(math.log2(BINS))


def _cells(rgb: np.ndarray) -> np.ndarray:
    q = (rgb >> _SHIFT).astype(np.int32)
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def _hist(cells: np.ndarray) -> np.ndarray:
    h = np.bincount(cells.ravel(), minlength=BINS**3).astype(np.float64)
    # Spread each count over neighbouring cells: a colour the keyframe did not hold
    # exactly (lighting, blur) still scores like its neighbours.
    h = np.maximum(ndimage.uniform_filter(h.reshape(BINS, BINS, BINS), size=3, mode="nearest").ravel(), 0.0)
    return h / max(h.sum(), 1e-9)


def ring(mask: np.ndarray, width: int) -> np.ndarray:
    """Background band of `width` px around a mask (the mask's local background)."""
    grown = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,) * 2))
    return grown.astype(bool) & ~mask


@dataclass
class ColourModel:
    """Object vs. local-background colour histograms: the prompt's (anchor) and a
    running estimate updated from tracked frames."""

    fg_anchor: np.ndarray
    bg_anchor: np.ndarray
    fg: np.ndarray
    bg: np.ndarray

    @classmethod
    def learn(cls, frame: np.ndarray, mask: np.ndarray) -> ColourModel | None:
        area = int(mask.sum())
        if area < 16:
            return None
        band = ring(mask, max(6, int(0.25 * math.sqrt(area))))
        if int(band.sum()) < 16:
            return None
        cells = _cells(frame)
        fg, bg = _hist(cells[mask]), _hist(cells[band])
        return cls(fg, bg, fg.copy(), bg.copy())

    def update(self, frame: np.ndarray, mask: np.ndarray, rate: float) -> None:
        new = ColourModel.learn(frame, mask)
        if new is None:
            return
        self.fg = (1 - rate) * self.fg + rate * new.fg
        self.bg = (1 - rate) * self.bg + rate * new.bg

    def log_odds(self, rgb: np.ndarray, anchor_weight: float = 0.5) -> np.ndarray:
        """log p(colour | object) - log p(colour | background) per pixel."""
        fg = anchor_weight * self.fg_anchor + (1 - anchor_weight) * self.fg
        bg = anchor_weight * self.bg_anchor + (1 - anchor_weight) * self.bg
        eps = 1e-6
        table = np.log(fg + eps) - np.log(bg + eps)
        return table[_cells(rgb)].astype(np.float32)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance to the mask's edge in px, positive inside, negative outside."""
    m = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    return inside - outside


def segment_band(
    frame: np.ndarray,
    prior: np.ndarray,
    model: ColourModel,
    *,
    radius: int,
    colour_weight: float = 1.0,
    outside_bias: float = 2.0,
    colour_clip: float = 3.0,
    motion: np.ndarray | None = None,
    sure: float = 1.0,
    grow: bool = True,
    iterations: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Re-segment an object within `radius` px of its prior mask (the warped one).

    Log-odds per pixel = colour_weight x colour log-odds + signed distance / (radius/2)
    (shape: deep inside the prior counts as object whatever its colour, far outside
    as background). Pixels where the sum is confidently positive / negative seed
    GrabCut's definite object / background; the rest of the band is probable, by its
    sign; beyond the band is background. Returns the cleaned mask (components that
    overlap the prior, holes filled)."""
    if not prior.any():
        return prior
    h, w = prior.shape
    ys = np.flatnonzero(prior.any(axis=1))
    xs = np.flatnonzero(prior.any(axis=0))
    pad = radius + 4
    y0, y1 = max(0, ys[0] - pad), min(h, ys[-1] + 1 + pad)
    x0, x1 = max(0, xs[0] - pad), min(w, xs[-1] + 1 + pad)
    sub = prior[y0:y1, x0:x1]
    crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
    dist = signed_distance(sub)
    # Outside the prior a pixel starts as background (-outside_bias): only colour that
    # clearly belongs to the object moves the edge out, so a band of similar colour
    # cannot be swallowed a little more every frame.
    shape = np.clip(np.where(dist > 0, dist, dist - outside_bias) / max(1.0, radius / 3.0), -4.0, 4.0)
    colour = np.clip(model.log_odds(crop), -colour_clip, colour_clip)
    score = cv2.GaussianBlur(colour_weight * colour, (5, 5), 0) + shape
    if motion is not None:
        score += motion[y0:y1, x0:x1]
    init = np.full(sub.shape, cv2.GC_BGD, np.uint8)
    inband = dist > -radius
    init[inband] = np.where(score[inband] > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    # GrabCut decides only where the cues are unsure: it cannot swallow a region both
    # cues call background, however alike its colours (dark water by a black swan).
    init[inband & (score > sure)] = cv2.GC_FGD
    init[inband & (score < -sure)] = cv2.GC_BGD
    if not grow:
        init[dist <= 0] = cv2.GC_BGD
        score = np.where(dist > 0, score, -1.0)
    fg_n = int(np.count_nonzero((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)))
    bg_n = int(np.count_nonzero((init == cv2.GC_BGD) | (init == cv2.GC_PR_BGD)))
    cut = score > 0
    if fg_n >= 5 and bg_n >= 5 and iterations > 0:
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(seed)
        mask = init.copy()
        try:
            cv2.grabCut(crop, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
            cut = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        except cv2.error:
            pass  # flat colours: keep the thresholded score
    cut = _keep_overlapping(cut, sub)
    out = np.zeros_like(prior)
    out[y0:y1, x0:x1] = cut
    return out


def _keep_overlapping(cut: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Drop components that do not touch the prior mask (background specks of the
    object's colour in the band); fill enclosed holes."""
    labels, n = ndimage.label(cut, structure=np.ones((3, 3), bool))
    if n == 0:
        return cut
    hit = np.unique(labels[prior & cut])
    keep = np.zeros(n + 1, bool)
    keep[hit[hit > 0]] = True
    out = keep[labels]
    return ndimage.binary_fill_holes(out)


def motion_log_odds(
    back: np.ndarray, prior: np.ndarray, radius: int, *, sigma: float = 1.0, clip: float = 2.0
) -> np.ndarray | None:
    """Does each pixel move with the object or with its surroundings? Flow `back`
    (t -> t-1) compared with the object's median flow and the median flow of a band of
    background around it: log-odds (|f - v_bg|^2 - |f - v_obj|^2) / (2 (sigma + spread)^2),
    clipped. None when the two motions are too alike to tell anything (< 1.5 px apart):
    a still object on a still background, or a camera following the object with a
    background moving the same way."""
    band = ring(prior, max(radius, 4))
    if not prior.any() or int(band.sum()) < 16:
        return None
    v_obj = np.median(back[prior], axis=0)
    v_bg = np.median(back[band], axis=0)
    gap = float(np.hypot(*(v_obj - v_bg)))
    if gap < 1.5:
        return None
    d_obj = ((back - v_obj) ** 2).sum(axis=-1)
    d_bg = ((back - v_bg) ** 2).sum(axis=-1)
    s = sigma + 0.25 * gap  # the faster the relative motion, the blurrier the flow's edge
    return np.clip((d_bg - d_obj) / (2 * s * s), -clip, clip).astype(np.float32)
