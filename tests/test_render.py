import numpy as np
import pytest

from core import render


def test_overlay_blends_and_scales():
    img = np.full((4, 4, 3), 200, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    np.testing.assert_array_equal(render.overlay(img, heat, alpha=0.0), img)
    full = render.overlay(img, heat, alpha=1.0)
    np.testing.assert_array_equal(full[0, 0], render.colorize(np.array([[1.0]]))[0, 0])
    assert not np.array_equal(full[0, 0], full[1, 1])
    assert render.overlay(img, heat, scale=3).shape == (12, 12, 3)
    with pytest.raises(ValueError, match="differ in size"):
        render.overlay(img, np.zeros((5, 5)))


def test_to_rgb_handles_gray_chw_and_float():
    assert render.to_rgb_uint8(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert render.to_rgb_uint8(np.ones((1, 5, 6), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert render.to_rgb_uint8(np.zeros((5, 6, 1), np.uint8)).shape == (5, 6, 3)


def test_colorbar_and_png():
    bar = render.colorbar(width=100)
    assert bar.shape[1] == 100 and bar.dtype == np.uint8
    assert not np.array_equal(bar[0, 0], bar[0, -1])  # low and high ends differ
    assert render.png_bytes(bar)[:4] == b"\x89PNG"
