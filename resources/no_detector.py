"""`backends.detector: none`: a shot started from artist roto keyframes only.

Detects nothing on any frame, for any label, so the shot's layers are exactly the
roto keyframes (`matte shot add --roto`, `matte correct --new-layer`) propagated by the
tracker. A shot with this detector and no keyframes is refused before it runs
(`matte_assets.shots.roto.check_roto_shot`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .backends import Detection, Detector


class NoDetector(Detector):
    def identity(self) -> dict[str, str]:
        return {"backend": "none", "detector": "none"}

    def supported_labels(self) -> frozenset[str] | None:
        return None  # any label names the artist's layers; none is ever detected

    def begin_shot(self, sample_frames: np.ndarray) -> None:
        return None

    def detect(
        self,
        frames: Sequence[np.ndarray],
        labels: Sequence[str],
        box_threshold: float,
        text_threshold: float,
    ) -> list[list[Detection]]:
        return [[] for _ in frames]
