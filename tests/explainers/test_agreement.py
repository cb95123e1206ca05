import io
import json

import numpy as np
import pytest

from core.present import render
from core.explainers.agreement import agreement_matrix, maps_npz, spearman


def test_spearman_and_agreement_matrix():
    rng = np.random.default_rng(0)
    a = rng.random((16, 16))
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(1.0)  # ranks of importance (magnitude), not sign
    assert spearman(a, a ** 3) == pytest.approx(1.0)  # monotone transforms keep ranks
    assert abs(spearman(a, rng.random((16, 16)))) < 0.2
    assert np.isnan(spearman(a, np.ones((16, 16))))
    b = rng.random((16, 16))
    names, m = agreement_matrix({"x": [a, b], "y": [a * 2, b ** 2], "z": [1 - a, rng.random((16, 16))]})
    assert names == ["x", "y", "z"] and m.shape == (3, 3)
    assert np.allclose(np.diag(m), 1) and np.allclose(m, m.T)
    assert m[0, 1] == pytest.approx(1.0) and m[0, 2] < 0.5


def test_draw_map_modes():
    img = np.full((8, 8, 3), 128, np.uint8)
    a = np.zeros((8, 8), np.float32)
    a[0, 0], a[7, 7] = 1.0, -1.0
    signed = render.draw_map(img, a, choice="signed", alpha=1.0, outlier_perc=0, size=8).image
    assert signed[0, 0, 0] > signed[0, 0, 2] and signed[7, 7, 2] > signed[7, 7, 0]  # red positive, blue negative
    mag = render.draw_map(img, a, choice="magnitude", alpha=1.0, outlier_perc=0, size=8).image
    np.testing.assert_array_equal(mag[0, 0], mag[7, 7])  # magnitude ignores the sign
    top = render.draw_map(img, np.arange(64, dtype=np.float32).reshape(8, 8), alpha=1.0, top_percent=10, size=8).image
    untouched = (top == render.backdrop(img)).all(axis=-1)
    assert untouched.sum() >= 56 and not untouched[7, 7]  # only the top ~10 % pixels are coloured
    half = render.draw_map(img, a * 0.5, alpha=1.0, outlier_perc=0, size=8).image
    shared = render.draw_map(img, a * 0.5, alpha=1.0, scale=1.0, size=8).image
    assert not np.array_equal(half[0, 0], shared[0, 0])  # a shared scale of 1 shows 0.5 as half intensity


def test_grid_and_npz_exports():
    tiles = [[np.zeros((10, 10, 3), np.uint8)] * 3, [np.ones((10, 10, 3), np.uint8)] * 3]
    grid = render.grid_image(tiles, ["#1", "#2"], ["Original", "A", "B"])
    assert grid.shape[1] >= 30 and grid.shape[0] >= 20
    data = maps_npz({(1, "grad_cam"): np.ones((4, 4)), (2, "lime"): np.zeros((4, 4))}, {1: np.zeros((4, 4, 3), np.uint8)},
                    {"model": "m"})
    z = np.load(io.BytesIO(data))
    assert set(z.files) == {"map_1_grad_cam", "map_2_lime", "image_1", "meta"}
    assert json.loads(str(z["meta"]))["model"] == "m" and z["map_1_grad_cam"].dtype == np.float32
