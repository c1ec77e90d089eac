"""Scores against ground truth (the demo's report), streamed frame by frame.

J is the DAVIS region similarity: per frame the IoU of an object's ground-truth mask
and a layer, 1 on a frame where both are empty (nothing to find, nothing found), then
averaged over the frames. Objects are matched one-to-one to layers maximising the
summed (equivalently mean) J; an object left without a layer scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .geometry import areas, pairwise_intersections


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
            rows, cols = linear_sum_assignment(j, maximize=True)
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
