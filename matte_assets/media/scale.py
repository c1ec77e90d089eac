"""Resizing between plate resolution (longest side <= max_side) and full resolution."""

from __future__ import annotations

import cv2
import numpy as np


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longest side is `max_side`, aspect kept (rounded, at
    least 1); unchanged when already within `max_side`."""
    if width < 1 or height < 1 or max_side < 1:
        raise ValueError(f"fit_within needs positive sizes, got {width}x{height} into {max_side}")
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = int(size[0]), int(size[1])
    if w < 1 or h < 1:
        raise ValueError(f"target size must be positive, got {size}")
    return w, h


def resize_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8/uint16/float image to `size` = (w, h), same dtype.

    INTER_AREA when shrinking (averages, no aliasing), INTER_LINEAR when growing."""
    w, h = _check_size(size)
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"resize_rgb expects an (H, W, 3) image, got {img.shape}")
    if (img.shape[1], img.shape[0]) == (w, h):
        return img.copy()
    dtype = img.dtype
    work = img if dtype in (np.uint8, np.uint16, np.float32) else img.astype(np.float32)
    shrinking = w <= img.shape[1] and h <= img.shape[0]
    out = cv2.resize(work, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return out.astype(dtype, copy=False)


def upscale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) bool or float mask resized to `size` = (W, H) as float32 in [0, 1].

    Bilinear (cv2.INTER_LINEAR maps pixel centres to pixel centres), so a mask made
    at plate resolution lines up with the full-resolution frame; soft edges result."""
    W, H = _check_size(size)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"upscale_mask expects an (h, w) mask, got {mask.shape}")
    work = mask.astype(np.float32)
    if (mask.shape[1], mask.shape[0]) != (W, H):
        shrinking = W <= mask.shape[1] and H <= mask.shape[0]
        work = cv2.resize(work, (W, H), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.clip(work, 0.0, 1.0)
