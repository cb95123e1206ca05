"""The one drawing path: colours that cannot be mistaken for the image (CIEDE2000 on red, magenta and blue objects),
a shared scale that keeps every map's structure, and every face drawing every method in the rule it declares or the
one the user chose, and saying which."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

import core
from core.explainers import get_method
from core.present import render

#: a pixel a map marks must differ from the same object unmarked on the tile (can one tell them apart?) and from the
#: object's own colour (can the map's colour be taken for the object's?), in CIEDE2000 units (2.3 is a just noticeable
#: difference); the old overlay over the colour image reached 11.5 on a blue object
MARKED_VS_UNMARKED, MARKED_VS_OBJECT = 20.0, 15.0
OBJECTS = {"red": (255, 0, 0), "magenta": (255, 0, 255), "blue": (0, 0, 255)}


def delta_e(p: np.ndarray, q: np.ndarray) -> float:
    lab = lambda c: rgb2lab((np.asarray(c, dtype=float) / 255)[None, None])  # noqa: E731
    return float(deltaE_ciede2000(lab(p), lab(q))[0, 0])


def object_image(colour) -> np.ndarray:
    img = np.full((32, 32, 3), 128, np.uint8)
    img[8:24, 8:24] = colour
    return img


@pytest.mark.parametrize("name", OBJECTS)
@pytest.mark.parametrize("sign", [1, -1], ids=["for", "against"])
@pytest.mark.parametrize("rule", ["signed", "magnitude"])
def test_a_maps_colours_cannot_be_taken_for_the_objects(name, sign, rule):
    """Half of the object marked "for" (or "against") at full value; the tile drawn as the pages, exports, CLI and
    API draw it."""
    a = np.zeros((32, 32), np.float32)
    a[8:16, 8:24] = sign
    tile = render.draw_map(object_image(OBJECTS[name]), a, choice=rule, outlier_perc=0.0).image
    k = tile.shape[0] // 32  # the tile is smoothed up to at least MIN_TILE: sample the middles of the regions
    marked, unmarked = tile[11 * k, 16 * k], tile[20 * k, 16 * k]
    assert delta_e(marked, unmarked) >= MARKED_VS_UNMARKED, (marked, unmarked)
    assert delta_e(marked, OBJECTS[name]) >= MARKED_VS_OBJECT, marked


@pytest.mark.parametrize("rule", ["signed", "magnitude"])
def test_a_maps_colours_cannot_be_taken_for_the_objects_in_the_exported_figure(rule):
    """The same tiles in the exported figure (resized into the slide's grid): the marked half of each object still
    differs from its unmarked half and from the object's own colour by the same CIEDE2000 distances."""
    from core.present import report

    tiles = []
    for sign in (1, -1):
        for colour in OBJECTS.values():
            a = np.zeros((32, 32), np.float32)
            a[8:16, 8:24] = sign
            tiles.append((render.draw_map(object_image(colour), a, choice=rule, outlier_perc=0.0).image,
                          f"{rule} {sign}", rule))
    fig = report.figure(tiles, ["Colours on objects"], [])
    lay = report.layout(tiles, ["Colours on objects"], [])
    for (x, y, w, h), colour in zip(lay.boxes, [*OBJECTS.values()] * 2):
        at = lambda row, col: fig[y + round(row / 32 * h), x + round(col / 32 * w)]  # noqa: E731
        marked, unmarked = at(11.5, 16), at(20.5, 16)
        assert delta_e(marked, unmarked) >= MARKED_VS_UNMARKED, (marked, unmarked)
        assert delta_e(marked, colour) >= MARKED_VS_OBJECT, marked


def visible(tile: np.ndarray, blank: np.ndarray) -> float:
    return float((np.abs(tile.astype(int) - blank.astype(int)).max(axis=-1) > 24).mean())


def test_a_shared_scale_keeps_the_structure_of_maps_whose_maxima_differ_100x():
    rng = np.random.default_rng(0)
    structure = np.clip(rng.normal(0.3, 0.2, (32, 32)), 0, None).astype(np.float32)
    structure[8:24, 8:24] += 1.0
    quiet, loud = structure.copy(), structure.copy()
    loud[0, 0] = 100 * structure.max()  # one outlier: the maxima differ 100x, the maps do not
    img = np.full((32, 32, 3), 128, np.uint8)
    scale = render.shared_scales({"logit": [quiet, loud]})["logit"]
    blank = render.draw_map(img, np.zeros((32, 32), np.float32), choice="magnitude", size=32).image
    for m in (quiet, loud):
        tile = render.draw_map(img, m, choice="magnitude", scale=scale, size=32).image
        inside, outside = tile[8:24, 8:24].astype(int).sum(), tile[:8, 8:].astype(int).sum()
        assert visible(tile, blank) > 0.5 and inside / 256 > outside / (8 * 24) + 60  # the square stands out
    by_max = max(float(np.abs(quiet).max()), float(np.abs(loud).max()))  # what a maximum would have done
    flat = render.draw_map(img, quiet, choice="magnitude", scale=by_max, size=32).image
    assert visible(flat, blank) < 0.1


def test_occlusion_and_per_pixel_contributions_never_share_a_scale():
    assert get_method("occlusion").units != get_method("integrated_gradients").units


@pytest.fixture(scope="module")
def maps(tiny_model):
    """One map of every method that applies to the demo architecture, on one shapes image (cheap settings)."""
    model, card = tiny_model
    x, _ = core.load_dataset("shapes", split="test")[5]
    cheap = {"lime": {"num_samples": 60, "mode": "fixed"}, "shap_partition": {"max_evals": 60},
             "integrated_gradients": {"n_steps": 8}, "smoothgrad": {"n_samples": 3}, "smoothgrad_sq": {"n_samples": 3},
             "gradient_shap": {"n_samples": 4}, "shap_gradient": {"n_samples": 4}, "score_cam": {}}
    out = {}
    for m in core.list_methods(model):
        takes = {p.name for p in get_method(m).params}
        out[m] = core.explain(model, x, m, **{k: v for k, v in cheap.get(m, {}).items() if k in takes})
    return model, card, x, out


def expected(e, choice: str) -> str:
    return render.map_view(get_method(e.method).view, e.signed, choice)


@pytest.mark.parametrize("choice", ["auto", "signed", "magnitude"])
def test_the_cli_draws_every_method_in_its_rule_and_says_which(maps, tiny_model_dir, tmp_path, choice):
    from core.faces.cli import main

    model, card, x, got = maps
    out = tmp_path / "o"
    methods = ",".join(got)
    params = ["--param", "integrated_gradients.n_steps=8", "--param", "lime.num_samples=60", "--param",
              "lime.mode=fixed", "--param", "shap_partition.max_evals=60"]
    for m, kv in (("smoothgrad", "n_samples=3"), ("smoothgrad_sq", "n_samples=3"), ("gradient_shap", "n_samples=4"),
                  ("shap_gradient", "n_samples=4")):
        params += ["--param", f"{m}.{kv}"]
    assert main(["explain", "--model", str(tiny_model_dir), "--index", "5", "--methods", methods, "--view", choice,
                 *params, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    image = core.load_dataset("shapes", split="test").image(5)
    for m, e in got.items():
        assert summary["methods"][m]["rule"] == expected(e, choice), m
        cls = get_method(m)  # the PNG is the one drawing path's picture of the saved map, in that rule
        want = render.draw_map(image, np.load(out / f"{m}.npy"), method_view=cls.view, signed=e.signed, choice=choice,
                               outlier_perc=cls.outlier_perc).image
        assert np.array_equal(np.asarray(Image.open(out / f"{m}.png").convert("RGB")), want), m


@pytest.mark.parametrize("choice", ["auto", "signed", "magnitude"])
def test_the_api_draws_every_method_in_its_rule_and_says_which(maps, tiny_model_dir, choice):
    from fastapi.testclient import TestClient

    from core.faces.api import create_app

    model, card, x, got = maps
    image = core.load_dataset("shapes", split="test").image(5)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    params = {"integrated_gradients": {"n_steps": 8}, "lime": {"num_samples": 60, "mode": "fixed"},
              "shap_partition": {"max_evals": 60}, "smoothgrad": {"n_samples": 3}, "smoothgrad_sq": {"n_samples": 3},
              "gradient_shap": {"n_samples": 4}, "shap_gradient": {"n_samples": 4}}
    with TestClient(create_app()) as c:
        r = c.post("/explain", data={"model": card.id, "methods": ",".join(got), "view": choice,
                                     "params": json.dumps({k: v for k, v in params.items() if k in got})},
                   files={"image": ("x.png", buf.getvalue(), "image/png")})
        assert r.status_code == 200, r.text
        for res in r.json()["results"]:
            e = got[res["method"]]
            assert res["rule"] == expected(e, choice), res["method"]
            overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(res["overlay_png_base64"]))).convert("RGB"))
            assert overlay.shape[:2] == (render.MIN_TILE, render.MIN_TILE)
        listed = {m["name"]: m["view"] for m in c.get("/methods").json()}
        assert all(listed[m] == render.map_view(get_method(m).view, get_method(m).signed) for m in listed)
