import numpy as np
import pytest

from core.present import render


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


def test_signed_overlay_leaves_zero_transparent_and_colours_by_sign():
    img = np.full((4, 4, 3), 120, np.uint8)
    a = np.zeros((4, 4), np.float32)
    a[0, 0], a[3, 3] = 2.0, -2.0
    out = render.attribution_overlay(img, a, signed=True, alpha=0.8, outlier_perc=0.0)
    np.testing.assert_array_equal(out[1:3, 1:3], img[1:3, 1:3])  # zero: the image itself, no haze
    assert out[0, 0, 0] > out[0, 0, 2] and out[3, 3, 2] > out[3, 3, 0]  # positive red, negative blue
    half = np.where(a > 0, 1.0, 0.0).astype(np.float32)
    half[0, 1] = 0.5
    o = render.attribution_overlay(img, half, signed=True, alpha=1.0, outlier_perc=0.0)
    # opacity grows with |value|: the half-strength pixel is between the image and the full colour
    assert abs(int(o[0, 1, 2]) - 120) < abs(int(o[0, 0, 2]) - 120)


def test_a_map_is_shown_at_the_image_resolution():
    img = np.zeros((40, 60, 3), np.uint8)  # e.g. an upload's crop at its own resolution
    a = np.zeros((4, 6), np.float32)
    a[:, 3:] = 1.0
    out = render.attribution_overlay(img, a, signed=True, alpha=1.0, outlier_perc=0.0)
    assert out.shape == (40, 60, 3)
    assert out[20, 5].sum() == 0 and out[20, 55].sum() > 0  # left half untouched, right half coloured
    np.testing.assert_allclose(render.resize_map(np.ones((3, 3)), (7, 5)), 1.0)


def test_outline_and_superpixel_view():
    img = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    out = render.outline(img, mask)  # a 4x4 mask drawn on an 8x8 image
    assert out.shape == (8, 8, 3) and (out == (0, 255, 255)).all(axis=-1).sum() > 0
    assert (out[0] == 0).all()  # nothing outside the object
    seg = np.repeat(np.arange(4).reshape(2, 2), 4, axis=0).repeat(4, axis=1)  # four 4x4 superpixels
    view = render.superpixel_view(np.full((8, 8, 3), 100, np.uint8), seg, {0: 0.5, 1: -0.3, 2: 0.01, 3: 0.0}, n_show=2)
    assert view[1, 1, 0] > view[1, 1, 2]  # superpixel 0 supports: red, as on the signed maps
    assert view[1, 5, 2] > view[1, 5, 0]  # superpixel 1 opposes: blue
    assert tuple(view[5, 1]) == (100, 100, 100)  # beyond the two shown: untouched
