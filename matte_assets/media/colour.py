"""Colour transfer functions: scene-linear (EXR) <-> display-referred sRGB.

The plate stage feeds the detectors display-referred 8-bit images, as the models were
trained on; EXR plates are scene-linear, so they go through the sRGB transfer
function (IEC 61966-2-1) after clipping to [0, 1]. No OCIO config is assumed.
"""

from __future__ import annotations

import numpy as np

COLOUR_HANDLING = "scene-linear -> sRGB OETF (IEC 61966-2-1), clipped to [0,1]"


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Scene-linear float -> sRGB-encoded float in [0, 1] (values clipped first)."""
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded float in [0, 1] -> scene-linear float."""
    x = np.asarray(encoded, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def to_display_uint8(pixels: np.ndarray, linear: bool) -> np.ndarray:
    """Float RGB -> display-referred uint8. `linear` says whether `pixels` are
    scene-linear (apply the sRGB OETF) or already display-encoded in [0, 1]."""
    encoded = linear_to_srgb(pixels) if linear else np.clip(pixels, 0.0, 1.0)
    return np.round(encoded * 255.0).astype(np.uint8)
