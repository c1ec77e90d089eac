"""Backends by name, loaded once per process.

A show file picks backends with `backends:` (names) and `models:` (weights); this
module turns those into Detector / Segmenter / Tracker objects and caches them, so a
model is loaded once per process and reused across frames, windows and shots.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from matte_assets.config import ShotSettings
from matte_assets.errors import BackendError

from .backends import Backend, Detector, Segmenter, Tracker

_CACHE: dict[tuple[str, str, str | None, str], Backend] = {}
_LOCK = threading.Lock()

ROLES = ("detector", "segmenter", "tracker")
# backend name -> the `models:` key holding its weights (None: needs no weights)
MODEL_KEY: dict[str, str | None] = {
    "opencv": None,
    "grabcut": None,
    "flow": None,
    "grounding_dino": "grounding_dino",
    "sam2": "sam2",
    "edgetam": "edgetam",
    "sam3": "sam3",
    "none": None,
}


def _backend_name(settings: ShotSettings, role: str) -> str:
    return getattr(settings.backends, role)


def _source(settings: ShotSettings, role: str) -> str | None:
    name = _backend_name(settings, role)
    key = MODEL_KEY[name]
    if key is None:
        return None
    source = getattr(settings.models, key)
    if not source:
        raise BackendError(f"backends.{role}: {name} needs weights: set models.{key} to a folder, hub id or checkpoint")
    return source


def resolve_device(device: str) -> str:
    if device != "auto":
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BackendError("device: cuda was requested but no CUDA device is available")
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _factory(role: str, name: str) -> Callable[[str | None, str], Backend]:
    if name in ("opencv", "grabcut", "flow"):
        from . import embedded

        classes: dict[str, Any] = {
            "opencv": embedded.OpenCVDetector,
            "grabcut": embedded.GrabCutSegmenter,
            "flow": embedded.FlowTracker,
        }
        return lambda source, device: classes[name]()
    if name == "none" and role == "detector":
        from .no_detector import NoDetector

        return lambda source, device: NoDetector()
    if name == "grounding_dino":
        from .grounding_dino import load_grounding_dino

        return load_grounding_dino  # type: ignore[return-value]
    if name == "sam2" and role == "segmenter":
        from .sam2 import load_sam2_segmenter

        return load_sam2_segmenter  # type: ignore[return-value]
    if name == "sam2" and role == "tracker":
        from .sam2 import load_sam2_tracker

        return load_sam2_tracker  # type: ignore[return-value]
    if name == "edgetam":
        from .sam2 import load_edgetam_tracker

        return load_edgetam_tracker  # type: ignore[return-value]
    if name == "sam3":
        from . import sam3

        loaders = {
            "detector": sam3.load_sam3_detector,
            "segmenter": sam3.load_sam3_segmenter,
            "tracker": sam3.load_sam3_tracker,
        }
        return loaders[role]  # type: ignore[return-value]
    raise BackendError(f"backends.{role}: unknown backend {name!r}")


def load_backend(settings: ShotSettings, role: str) -> Backend:
    name = _backend_name(settings, role)
    source = _source(settings, role)
    device = "cpu" if source is None else resolve_device(settings.device)
    key = (role, name, source, device)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _factory(role, name)(source, device)
        return _CACHE[key]


def detector(settings: ShotSettings) -> Detector:
    return load_backend(settings, "detector")  # type: ignore[return-value]


def segmenter(settings: ShotSettings) -> Segmenter:
    return load_backend(settings, "segmenter")  # type: ignore[return-value]


def tracker(settings: ShotSettings) -> Tracker:
    return load_backend(settings, "tracker")  # type: ignore[return-value]


def backend_identity(settings: ShotSettings, role: str) -> dict[str, str]:
    """What will run `role` for this shot; part of the stage's data version."""
    return dict(load_backend(settings, role).identity())


def check_backends(settings: ShotSettings) -> None:
    """Fail before any stage runs when weights are missing or unreadable."""
    for role in ROLES:
        name = _backend_name(settings, role)
        source = _source(settings, role)
        if source is not None:
            from .model_loading import check_model_source

            check_model_source(MODEL_KEY[name] or name, source)


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
