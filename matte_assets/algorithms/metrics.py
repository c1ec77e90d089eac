"""Scores against ground truth (the demo's report, `matte eval`), streamed frame by frame.

J is the DAVIS region similarity: per frame the IoU of an object's ground-truth mask
and a layer, 1 on a frame where both are empty (nothing to find, nothing found), then
averaged over the frames. Objects are matched one-to-one to layers maximising the
summed (equivalently mean) J; an object left without a layer scores 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import areas, pairwise_intersections


def _assignment():
    # scipy costs ~0.4 s to import; only scoring needs it, not every CLI call.
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment


@dataclass
class MatchResult:
    j_matrix: np.ndarray  # (O, L) mean J over the frames for every (object, layer)
    assignment: dict[int, int]  # object index -> layer index
    per_object_j: np.ndarray  # (O,) J of each object's layer, 0 when unmatched
    mean_j: float  # mean of per_object_j
    unmatched_objects: list[int]
    unmatched_layers: list[int]
    n_frames: int


class JAccumulator:
    """Memory is (O, L) whatever the shot length."""

    def __init__(self, n_objects: int, n_layers: int) -> None:
        if n_objects < 1:
            raise ValueError(f"n_objects must be >= 1 (the mean J is over objects), got {n_objects}")
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        self.n_objects = n_objects
        self.n_layers = n_layers
        self._j_sum = np.zeros((n_objects, n_layers), dtype=np.float64)
        self.n_frames = 0

    def add_frame(self, gt: np.ndarray, layers: np.ndarray) -> None:
        g = np.asarray(gt, dtype=bool)
        la = np.asarray(layers, dtype=bool)
        if g.ndim != 3 or g.shape[0] != self.n_objects:
            raise ValueError(f"expected ground truth ({self.n_objects}, H, W), got {g.shape}")
        if la.ndim != 3 or la.shape[0] != self.n_layers:
            if self.n_layers == 0 and la.size == 0:
                la = np.zeros((0, *g.shape[1:]), dtype=bool)
            else:
                raise ValueError(f"expected layers ({self.n_layers}, H, W), got {la.shape}")
        if la.shape[1:] != g.shape[1:]:
            raise ValueError(f"ground truth {g.shape[1:]} and layers {la.shape[1:]} differ in size")
        inter = pairwise_intersections(g, la)
        union = areas(g)[:, None] + areas(la)[None, :] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            self._j_sum += np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        self.n_frames += 1

    def result(self) -> MatchResult:
        if self.n_frames == 0:
            raise ValueError("no frames were added")
        j = self._j_sum / self.n_frames
        assignment: dict[int, int] = {}
        if self.n_layers:
            rows, cols = _assignment()(j, maximize=True)
            assignment = {int(r): int(c) for r, c in zip(rows, cols)}
        per_object = np.array([j[o, assignment[o]] if o in assignment else 0.0 for o in range(self.n_objects)])
        return MatchResult(
            j_matrix=j,
            assignment=assignment,
            per_object_j=per_object,
            mean_j=float(per_object.mean()),
            unmatched_objects=[o for o in range(self.n_objects) if o not in assignment],
            unmatched_layers=sorted(set(range(self.n_layers)) - set(assignment.values())),
            n_frames=self.n_frames,
        )


# --- F: boundary F-measure (DAVIS) -------------------------------------------------------
#
# Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object
# Segmentation" (CVPR 2016), contour accuracy F, as in the DAVIS toolkit (`f_boundary`):
# - boundaries by `seg2bmap` (D. Martin, BSDS 2003): a pixel is on the boundary when it
#   differs from its east, south or south-east neighbour; one pixel wide, half a pixel
#   towards the origin; the last row compares east only, the last column south only,
#   the bottom-right pixel is never a boundary;
# - tolerance: a boundary pixel is matched when the other boundary lies within a disk of
#   radius ceil(bound_th x image diagonal) (bound_th = 0.008; >= 1 means pixels), the
#   disk being {x^2 + y^2 <= r^2} (MATLAB's `strel(disk)` / skimage `disk`);
# - precision = matched predicted boundary / predicted boundary, recall = matched truth
#   boundary / truth boundary, F = 2PR / (P + R) (0 when P + R = 0). Empty cases as the
#   toolkit: both boundaries empty P = R = 1 (F = 1); prediction empty P = 1, R = 0
#   (F = 0); truth empty P = 0, R = 1 (F = 0).
DAVIS_BOUND_TH = 0.008


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """DAVIS/BSDS boundary map of an (H, W) mask (bool, same shape)."""
    seg = np.asarray(mask, dtype=bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap expects an (H, W) mask, got {seg.shape}")
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_radius(shape: tuple[int, int], bound_th: float = DAVIS_BOUND_TH) -> int:
    """Tolerance in pixels: `bound_th` itself when >= 1, else ceil(bound_th x diagonal)."""
    if bound_th <= 0:
        raise ValueError(f"bound_th must be > 0, got {bound_th}")
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def disk(radius: int) -> np.ndarray:
    """uint8 structuring element {x^2 + y^2 <= r^2}, (2r+1, 2r+1)."""
    r = int(radius)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y <= r * r).astype(np.uint8)


def _dilate(boundary: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # Dilating only the boundary's bounding box (grown by the radius) gives the same
    # result as the whole frame and is much cheaper for small objects on large frames.
    ys = np.flatnonzero(boundary.any(axis=1))
    if ys.size == 0:
        return np.zeros_like(boundary)
    xs = np.flatnonzero(boundary.any(axis=0))
    r = kernel.shape[0] // 2
    h, w = boundary.shape
    y0, y1 = max(0, ys[0] - r), min(h, ys[-1] + 1 + r)
    x0, x1 = max(0, xs[0] - r), min(w, xs[-1] + 1 + r)
    out = np.zeros_like(boundary)
    sub = boundary[y0:y1, x0:x1].astype(np.uint8)
    out[y0:y1, x0:x1] = cv2.dilate(sub, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return out


def _prf(n_pred: np.ndarray, n_gt: np.ndarray, pred_match: np.ndarray, gt_match: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elementwise precision, recall, F with the toolkit's empty-boundary cases."""
    n_pred = np.asarray(n_pred, np.float64)
    n_gt = np.asarray(n_gt, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, pred_match / np.maximum(n_pred, 1), 1.0)
        recall = np.where(n_gt > 0, gt_match / np.maximum(n_gt, 1), 1.0)
    precision = np.where((n_pred > 0) & (n_gt == 0), 0.0, precision)
    recall = np.where((n_pred == 0) & (n_gt > 0), 0.0, recall)
    total = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
    return f, precision, recall


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = DAVIS_BOUND_TH) -> tuple[float, float, float]:
    """(F, precision, recall) of one predicted mask against one truth mask (DAVIS)."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"expected two (H, W) masks of the same shape, got {p.shape} and {g.shape}")
    f, prec, rec = pairwise_f(g[None], p[None], bound_th)
    return float(f[0, 0]), float(prec[0, 0]), float(rec[0, 0])


def pairwise_f(gt: np.ndarray, layers: np.ndarray, bound_th: float = DAVIS_BOUND_TH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, precision, recall), each (O, L), for every (truth object, layer) pair of one
    frame. Each mask's boundary is found and dilated once (O + L dilations, not O x L)."""
    g = np.asarray(gt, dtype=bool)
    la = np.asarray(layers, dtype=bool)
    if g.ndim != 3 or la.ndim != 3 or g.shape[1:] != la.shape[1:]:
        raise ValueError(f"expected truth (O, H, W) and layers (L, H, W) of one size, got {g.shape} and {la.shape}")
    kernel = disk(boundary_radius(g.shape[1:], bound_th))  # the tolerance follows the full frame
    # Every boundary pixel lies on a mask pixel or one pixel above / left of one, so the
    # masks' joint bounding box grown by one pixel holds all of them; the crop's last
    # row / column is the frame's own or empty, so seg2bmap's edge rules are unchanged.
    # Matches are counted on boundary pixels only, so clipping dilations to the crop
    # loses nothing: same counts as on the whole frame, at the cost of the objects' area.
    union = g.any(axis=0) | la.any(axis=0) if len(g) + len(la) else np.zeros(g.shape[1:], bool)
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size:
        cols = np.flatnonzero(union.any(axis=0))
        y0, y1 = max(0, rows[0] - 1), min(union.shape[0], rows[-1] + 2)
        x0, x1 = max(0, cols[0] - 1), min(union.shape[1], cols[-1] + 2)
        g, la = g[:, y0:y1, x0:x1], la[:, y0:y1, x0:x1]
    shape = g.shape[1:]
    gb = np.stack([seg2bmap(m) for m in g]) if len(g) else np.zeros((0, *shape), bool)
    lb = np.stack([seg2bmap(m) for m in la]) if len(la) else np.zeros((0, *shape), bool)
    gd = np.stack([_dilate(b, kernel) for b in gb]) if len(gb) else gb
    ld = np.stack([_dilate(b, kernel) for b in lb]) if len(lb) else lb
    n_gt = areas(gb)[:, None] if len(gb) else np.zeros((0, 1), np.int64)
    n_pred = areas(lb)[None, :] if len(lb) else np.zeros((1, 0), np.int64)
    gt_match = pairwise_intersections(gb, ld)  # truth boundary near the layer's boundary
    pred_match = pairwise_intersections(gd, lb).astype(np.float64)  # layer boundary near the truth's
    n_gt_b = np.broadcast_to(n_gt, gt_match.shape)
    n_pred_b = np.broadcast_to(n_pred, gt_match.shape)
    return _prf(n_pred_b, n_gt_b, pred_match, gt_match.astype(np.float64))


# --- J, F, identity switches and layer precision / recall over a shot --------------------

SWITCH_IOU = 0.5  # a layer "is" an object in a frame when their IoU reaches this (as MOT matching)
MATCH_J = 0.5  # an object/layer pair counts as found when its shot J reaches this


@dataclass
class QualityResult:
    """J (as `JAccumulator`, same matching), F of the same pairs, identity switches and
    layer precision / recall."""

    match: MatchResult
    f_matrix: np.ndarray  # (O, L) mean F over the frames
    per_object_f: np.ndarray  # (O,) F of each object's matched layer, 0 when unmatched
    mean_f: float
    found: list[tuple[int, int]]  # matched (object, layer) pairs with J >= match_j
    layer_precision: float  # found / layers (1.0 with no layers: nothing wrong delivered)
    object_recall: float  # found / objects
    spurious_layers: list[int]  # layers matching no object (not in `found`)
    missed_objects: list[int]  # objects no layer covers (not in `found`)
    switches: list[int]  # (O,) identity switches per object
    switch_frames: list[list[int]]  # per object: frame labels where its best layer changed
    match_j: float
    switch_iou: float
    bound_th: float

    @property
    def mean_j(self) -> float:
        return self.match.mean_j

    @property
    def per_object_j(self) -> np.ndarray:
        return self.match.per_object_j

    @property
    def total_switches(self) -> int:
        return int(sum(self.switches))


class QualityAccumulator:
    """Streams a shot frame by frame: J and F for every (object, layer) pair, and each
    object's best layer per frame for identity switches. Memory is (O, L).

    Identity switch: in a frame where an object's truth is non-empty, its *best layer*
    is the layer with the highest IoU, if that IoU >= `switch_iou`; a switch is a frame
    whose best layer differs from the object's previous best layer (frames without one,
    e.g. the object hidden or nothing close, neither count nor reset)."""

    def __init__(
        self,
        n_objects: int,
        n_layers: int,
        *,
        bound_th: float = DAVIS_BOUND_TH,
        match_j: float = MATCH_J,
        switch_iou: float = SWITCH_IOU,
    ) -> None:
        self._j = JAccumulator(n_objects, n_layers)
        self.n_objects, self.n_layers = n_objects, n_layers
        self.bound_th, self.match_j, self.switch_iou = bound_th, match_j, switch_iou
        self._f_sum = np.zeros((n_objects, n_layers), np.float64)
        self._best: list[int | None] = [None] * n_objects
        self._switch_frames: list[list[int]] = [[] for _ in range(n_objects)]

    @property
    def n_frames(self) -> int:
        return self._j.n_frames

    def add_frame(self, gt: np.ndarray, layers: np.ndarray, frame: int | None = None) -> None:
        """`frame` labels switches (default: the 0-based count of frames added so far)."""
        label = self._j.n_frames if frame is None else int(frame)
        g = np.asarray(gt, dtype=bool)
        la = np.asarray(layers, dtype=bool)
        if la.size == 0 and self.n_layers == 0:
            la = np.zeros((0, *g.shape[1:]), bool)
        self._j.add_frame(g, la)  # validates shapes
        if self.n_layers == 0:
            return
        f, _, _ = pairwise_f(g, la, self.bound_th)
        self._f_sum += f
        inter = pairwise_intersections(g, la)
        union = areas(g)[:, None] + areas(la)[None, :] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        present = areas(g) > 0
        for o in np.flatnonzero(present):
            best = int(np.argmax(iou[o]))
            if iou[o, best] < self.switch_iou:
                continue
            if self._best[o] is not None and self._best[o] != best:
                self._switch_frames[o].append(label)
            self._best[o] = best

    def result(self) -> QualityResult:
        match = self._j.result()
        f = self._f_sum / match.n_frames
        per_object_f = np.array(
            [f[o, match.assignment[o]] if o in match.assignment else 0.0 for o in range(self.n_objects)]
        )
        found = sorted(
            (o, lay) for o, lay in match.assignment.items() if match.j_matrix[o, lay] >= self.match_j
        )
        found_layers = {lay for _, lay in found}
        found_objects = {o for o, _ in found}
        return QualityResult(
            match=match,
            f_matrix=f,
            per_object_f=per_object_f,
            mean_f=float(per_object_f.mean()),
            found=found,
            layer_precision=len(found) / self.n_layers if self.n_layers else 1.0,
            object_recall=len(found) / self.n_objects,
            spurious_layers=[lay for lay in range(self.n_layers) if lay not in found_layers],
            missed_objects=[o for o in range(self.n_objects) if o not in found_objects],
            switches=[len(s) for s in self._switch_frames],
            switch_frames=[list(s) for s in self._switch_frames],
            match_j=self.match_j,
            switch_iou=self.switch_iou,
            bound_th=self.bound_th,
        )
