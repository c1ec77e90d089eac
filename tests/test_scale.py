"""Plate downscaling and full-resolution mask upscaling."""

from __future__ import annotations

import numpy as np
import pytest

from matte_assets.media.scale import fit_within, resize_rgb, upscale_mask


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((1920, 1080), 1024, (1024, 576)),
        ((1080, 1920), 1024, (576, 1024)),
        ((4096, 1716), 1024, (1024, 429)),
        ((800, 600), 1024, (800, 600)),  # already small enough: unchanged
        ((1024, 1024), 1024, (1024, 1024)),
        ((5000, 2), 1000, (1000, 1)),  # never below 1 pixel
    ],
)
def test_fit_within(size, max_side, expected):
    assert fit_within(*size, max_side) == expected


def test_fit_within_rejects_nonsense():
    with pytest.raises(ValueError):
        fit_within(0, 10, 100)


def test_resize_rgb_keeps_dtype_and_averages():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, :2] = 200
    out = resize_rgb(img, (2, 2))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0, 0] == 200 and out[0, 1, 0] == 0  # INTER_AREA: exact box average
    f = resize_rgb(img.astype(np.float32) / 255, (8, 8))
    assert f.dtype == np.float32 and f.shape == (8, 8, 3)
    assert resize_rgb(img, (4, 4)) is not img


def test_upscale_mask_bool_and_centre_aligned():
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    up = upscale_mask(mask, (16, 16))
    assert up.dtype == np.float32 and up.shape == (16, 16)
    assert 0.0 <= up.min() and up.max() <= 1.0
    # pixel-centre alignment keeps the square centred: symmetric about the middle
    np.testing.assert_allclose(up, up[::-1, ::-1], atol=1e-6)
    np.testing.assert_allclose(up, up.T, atol=1e-6)
    assert up[8, 8] == 1.0 and up[0, 0] == 0.0


def test_upscale_mask_non_square_and_same_size():
    m = np.random.default_rng(1).random((9, 16)).astype(np.float32)
    assert upscale_mask(m, (1920, 1080)).shape == (1080, 1920)
    np.testing.assert_array_equal(upscale_mask(m, (16, 9)), m)
