"""The three small interfaces every backend implements.

Embedded OpenCV backends (`resources.embedded`) and the model backends
(`resources.grounding_dino`, `resources.sam2`) plug in behind these, so a show file
switches backends with `backends:` and nothing else changes.

Conventions shared by all backends:
- frames are display-referred RGB `uint8` arrays of shape (H, W, 3) at plate resolution;
- boxes are float `x0, y0, x1, y1` in plate pixels (x right, y down, x1/y1 exclusive);
- masks are `bool` arrays of shape (H, W) at plate resolution;
- results are deterministic for the same inputs on the same device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in plate pixels
    # (H, W) bool at plate size when the detector segments as it detects (SAM 3); stored
    # with the detections so a segmenter with `reuses_detector_masks` takes it as is.
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PointPrompt:
    """An artist click in plate pixels: positive (inside the object) or negative."""

    x: float
    y: float
    positive: bool = True


class Backend(ABC):
    """Common part: a stable identity for lineage and fingerprints."""

    @abstractmethod
    def identity(self) -> dict[str, str]:
        """What produced the results: backend name, library versions, weights identity
        (hub id + revision, or sha256 of the weight files), device and dtype.
        Recorded in stage metadata, fingerprints and EXR headers."""


class Detector(Backend):
    @abstractmethod
    def supported_labels(self) -> frozenset[str] | None:
        """The prompt labels this detector can serve; None means open vocabulary."""

    def begin_shot(self, sample_frames: np.ndarray) -> None:
        """Called once per shot with up to a few dozen frames sampled evenly over the
        shot, (N, H, W, 3) uint8. Shot-level state (a background model) is built here.
        Default: nothing."""

    @abstractmethod
    def detect(
        self,
        frames: Sequence[np.ndarray],
        labels: Sequence[str],
        box_threshold: float,
        text_threshold: float,
    ) -> list[list[Detection]]:
        """Detect `labels` on a batch of frames; one list of detections per frame,
        each sorted by descending score. Labels outside `supported_labels()` raise
        `BackendError` naming the labels the backend can serve."""


class Segmenter(Backend):
    # True: frame_masks takes the masks the detector stored with its detections (SAM 3's
    # one-pass detect + segment) and calls `segment` only for detections without one.
    reuses_detector_masks: bool = False

    @abstractmethod
    def segment(
        self,
        frame: np.ndarray,
        boxes: np.ndarray,
        points: Sequence[Sequence[PointPrompt]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One mask per box on one frame.

        boxes: (N, 4) float32. points: optional per-box click lists (artist refinements).
        Returns masks (N, H, W) bool and quality (N,) float32 in [0, 1] (SAM2: the
        predicted IoU). N == 0 returns empty arrays of the right shapes."""


class TrackerSession(ABC):
    """Tracking state over one window of frames (frames indexed 0..T-1 locally).

    The driver (`matte_assets.algorithms.tracking`) calls `add_mask` for objects at
    prompt frames and `propagate` to advance. A backward pass is run by opening a
    session on the window's frames in reverse order, so sessions only go forward."""

    @abstractmethod
    def add_mask(self, frame_index: int, object_id: int, mask: np.ndarray) -> None:
        """Condition `object_id` on `mask` at local `frame_index` (new or existing object)."""

    @abstractmethod
    def propagate(self, start: int, stop: int) -> dict[int, dict[int, np.ndarray]]:
        """Track every object known so far over local frames start..stop-1 (forward).

        Returns {frame_index: {object_id: mask}}. For a frame where an object was just
        prompted, its mask is the prompt mask (or the model's refinement of it). Objects
        first prompted after `start` are absent from the earlier frames."""

    def close(self) -> None:
        """Release per-window memory (GPU caches). Default: nothing."""


class Tracker(Backend):
    @abstractmethod
    def open_session(self, frames: np.ndarray) -> TrackerSession:
        """A session over one window: frames (T, H, W, 3) uint8 in tracking order."""
