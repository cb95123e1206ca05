import numpy as np

from core.present import render


def test_draw_map_known_answers():
    """A map with one full-value pixel: opacity 0 leaves the grey backdrop; full opacity gives the rule's colour there
    (magnitude: the top of inferno; signed: red for, blue against, zero transparent); the tile is the asked size."""
    img = np.full((4, 4, 3), 200, np.uint8)
    a = np.zeros((4, 4), np.float32)
    a[0, 0], a[3, 3] = 1.0, -1.0
    grey = render.backdrop(img)
    np.testing.assert_array_equal(render.draw_map(img, a, choice="magnitude", alpha=0.0, size=4).image, grey)
    mag = render.draw_map(img, a, choice="magnitude", alpha=1.0, size=4, outlier_perc=0.0).image
    np.testing.assert_array_equal(mag[0, 0], render.colorize(np.array([[1.0]]))[0, 0])
    np.testing.assert_array_equal(mag[3, 3], mag[0, 0])  # |value|: the sign does not matter
    signed = render.draw_map(img, a, choice="signed", alpha=1.0, size=4, outlier_perc=0.0)
    assert signed.rule == "signed" and signed.scale == 1.0
    assert signed.image[0, 0, 0] > signed.image[0, 0, 2] and signed.image[3, 3, 2] > signed.image[3, 3, 0]
    np.testing.assert_array_equal(signed.image[1, 2], grey[1, 2])  # zero: the backdrop shows through
    assert render.draw_map(img, a, size=12).image.shape == (12, 12, 3)
    unsigned = render.draw_map(img, np.abs(a), signed=False, choice="signed", size=4)
    assert unsigned.rule == "magnitude"  # a map that cannot be negative is never drawn signed


def test_to_rgb_handles_gray_chw_and_float():
    assert render.to_rgb_uint8(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert render.to_rgb_uint8(np.ones((1, 5, 6), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert render.to_rgb_uint8(np.zeros((5, 6, 1), np.uint8)).shape == (5, 6, 3)


def test_colorbar_and_png():
    bar = render.colorbar(width=100)
    assert bar.shape[1] == 100 and bar.dtype == np.uint8
    assert not np.array_equal(bar[0, 0], bar[0, -1])  # low and high ends differ
    assert render.png_bytes(bar)[:4] == b"\x89PNG"


def test_signed_maps_leave_zero_transparent_over_the_grey_backdrop_and_colour_by_sign():
    img = np.full((4, 4, 3), 120, np.uint8)
    a = np.zeros((4, 4), np.float32)
    a[0, 0], a[3, 3] = 2.0, -2.0
    d = render.draw_map(img, a, choice="signed", alpha=0.8, outlier_perc=0.0, size=4)
    out, grey = d.image, render.backdrop(img)
    assert d.rule == "signed" and d.scale == 2.0
    np.testing.assert_array_equal(out[1:3, 1:3], grey[1:3, 1:3])  # zero: the backdrop itself, no haze
    assert out[0, 0, 0] > out[0, 0, 2] and out[3, 3, 2] > out[3, 3, 0]  # positive red, negative blue
    half = np.where(a > 0, 1.0, 0.0).astype(np.float32)
    half[0, 1] = 0.5
    o = render.draw_map(img, half, choice="signed", alpha=1.0, outlier_perc=0.0, size=4).image
    # opacity grows with |value|: the half-strength pixel is between the backdrop and the full colour
    assert abs(int(o[0, 1, 2]) - int(grey[0, 1, 2])) < abs(int(o[0, 0, 2]) - int(grey[0, 0, 2]))


def test_the_backdrop_is_the_images_brightness_in_light_greys():
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0], img[0, 1], img[0, 2] = (255, 0, 0), (0, 0, 255), (255, 255, 255)
    grey = render.backdrop(img)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()  # no hue left
    lo, hi = (round(v * 255) for v in render.BACKDROP)
    assert grey[1, 0, 0] == lo and grey[0, 2, 0] == hi and lo < grey[0, 1, 0] < grey[0, 0, 0] < hi


def test_a_map_is_shown_at_the_image_resolution_and_small_inputs_smoothed_up():
    img = np.zeros((400, 600, 3), np.uint8)  # e.g. an upload's crop at its own resolution
    a = np.zeros((4, 6), np.float32)
    a[:, 3:] = 1.0
    out = render.draw_map(img, a, choice="signed", alpha=1.0, outlier_perc=0.0).image
    grey = render.backdrop(img)
    assert out.shape == (400, 600, 3)
    assert (out[200, 50] == grey[200, 50]).all() and (out[200, 550] != grey[200, 550]).any()  # left half untouched
    np.testing.assert_allclose(render.resize_map(np.ones((3, 3)), (7, 5)), 1.0)
    tiny = render.draw_map(np.zeros((28, 28, 3), np.uint8), np.random.default_rng(0).random((28, 28))).image
    assert tiny.shape == (render.MIN_TILE, render.MIN_TILE, 3)
    steps = np.abs(np.diff(tiny.astype(int), axis=1)).max(axis=-1)
    assert np.median(steps[steps > 0]) < 40  # bilinear: smooth steps, not 14-px blocks


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
    # beyond the two shown: the image's grey backdrop, untinted, as under every map
    assert tuple(view[5, 1]) == tuple(render.backdrop(np.full((8, 8, 3), 100, np.uint8))[5, 1])
    assert len(set(view[5, 1].tolist())) == 1
