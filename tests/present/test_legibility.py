"""Maps and exports a person can read: each method's default colour rule shows something, one colour meaning on every
view, the colour rule in each export, text that is never cut and never drawn as a missing-glyph box."""
import io
import json

import numpy as np
import pytest
from PIL import Image

import core
from core.explainers import get_method
from core.present import captions, exports, render, report
from tests.helpers import make_classifier

SIGNED = [m for m in core.list_methods() if get_method(m).signed]


def _visible(tile: np.ndarray, blank: np.ndarray) -> float:
    """The share of pixels where a map visibly shows something: its tile differs from the tile of an all-zero map in
    the same colour rule (more than 24 of 255 in some channel)."""
    return float((np.abs(tile.astype(int) - blank.astype(int)).max(axis=-1) > 24).mean())


@pytest.fixture(scope="module")
def model_and_image():
    model = make_classifier(3, 3, seed=0)
    rng = np.random.default_rng(0)
    x = np.clip(0.5 + 0.25 * rng.standard_normal((3, 32, 32)), 0, 1).astype(np.float32)
    return model, x


#: a signed map "shows something" when at least this share of its pixels visibly differs from a blank map. The one
#: drawing path leaves zero transparent, so a signed map shows where it is large: measured, region methods (Occlusion,
#: LIME, SHAP Partition) mark 9% to 25% of a shapes tile (their object) and 40% to 100% of a noise tile, per-pixel
#: gradients speckle under 5% of either
VISIBLE = 0.07


@pytest.mark.parametrize("image", ["noise", "shapes"])
@pytest.mark.parametrize("method", SIGNED)
def test_each_signed_methods_declared_view_shows_something(method, image, model_and_image):
    """The registry's declared view is signed exactly when the signed map shows something at tile size (sparse pixel
    gradients do not: they are declared magnitude, which then shows more), on noise and on a shapes image."""
    model, x = model_and_image
    if image == "shapes":
        x = core.load_dataset("shapes", split="test")[3][0].numpy()
    params = {"num_samples": 80, "n_steps": 8, "max_evals": 80, "nt_samples": 4, "n_samples": 4}
    cls = get_method(method)
    kept = {p.name: v for p in cls.params for k, v in params.items() if p.name == k}
    if method == "smoothgrad":
        kept["base"] = "input_x_gradient"  # a signed base (the default, saliency, gives an unsigned map)
    e = core.explain(model, x, method, 0, **kept)
    base = render.to_rgb_uint8(x)
    tile = lambda a, v: render.draw_map(base, a, choice=v, alpha=0.6, outlier_perc=cls.outlier_perc,  # noqa: E731
                                        size=6 * base.shape[0]).image
    shown = {v: _visible(tile(e.attribution, v), tile(np.zeros_like(e.attribution), v)) for v in ("signed", "magnitude")}
    declared = render.map_view(cls.view, e.signed)
    if not e.signed:  # with these parameters the map is never negative (SmoothGrad of saliency): magnitude
        assert declared == "magnitude"
    elif declared == "signed":
        assert shown["signed"] >= VISIBLE, f"{method}'s signed map shows almost nothing: declare magnitude ({shown})"
    else:
        assert shown["signed"] < VISIBLE, f"{method}'s signed map shows enough: declare signed ({shown})"
        assert shown["magnitude"] > 2 * shown["signed"], shown


def test_unsigned_maps_are_always_magnitude_and_choices_apply_to_signed_maps():
    for m in core.list_methods():
        cls = get_method(m)
        assert cls.view in ("signed", "magnitude")
        for choice in render.VIEW_CHOICES.values():
            got = render.map_view(cls.view, cls.signed, choice)
            assert got == ("magnitude" if not cls.signed else (cls.view if choice == "auto" else choice))


def test_lime_superpixels_use_the_signed_maps_colours():
    """'for' is the same red, 'against' the same blue, on the signed map and on LIME's superpixel picture."""
    signed_for = render.colorize(np.array([[1.0]]), render.SIGNED_CMAP, -1, 1)[0, 0]
    signed_against = render.colorize(np.array([[-1.0]]), render.SIGNED_CMAP, -1, 1)[0, 0]
    assert tuple(signed_for) == render.SUPPORT_COLOUR and tuple(signed_against) == render.OPPOSE_COLOUR
    assert signed_for[0] > signed_for[2] and signed_against[2] > signed_against[0]


def test_every_character_of_every_caption_has_a_glyph_in_the_export_font():
    """Every method's caption, parameter line and the arrows and dots between them are drawn from the font, not as a
    missing-glyph box; a character the font lacks is written as its code."""
    chars = render._font_chars()
    blank = np.zeros((4, 4), np.float32)
    texts = [captions.target_label(core.Explanation(method=m, title=get_method(m).title, attribution=blank,
                                                    heatmap=blank, target=0, params={}, seconds=0.0,
                                                    signed=get_method(m).signed), ["cat → dog · 1×2 …"])
             for m in core.list_methods()]
    texts += [render.colour_rule_text(["signed", "magnitude"]), "⚠ warning", *[l for r in render.COLOUR_RULES.values()
                                                                               for l in r[1]]]
    for text in texts:
        missing = {c for c in render.drawable(text) if ord(c) not in chars}
        assert not missing, (text, missing)
    assert render.drawable("猫 →") == "<U+732B> →"


@pytest.mark.parametrize("text,width", [
    ("Integrated Gradients → a_very_long_class_name_without_spaces_at_all_in_it (the same map)", 120),
    ('GradientSHAP: {"n_samples": 20, "stdevs": 0.1, "baseline": "blur", "seed": 0, "internal_batch_size": 64}', 200),
    ("short", 300)])
def test_wrapping_keeps_every_character_and_fits_the_width(text, width):
    lines = render.wrap(text, width, 10)
    f = render.font(10)
    assert all(f.getlength(l) <= width for l in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # nothing cut
    assert len(lines) == 1 or not any(l.endswith(" ") for l in lines)


def _ink_rows(a: np.ndarray) -> int:
    return int((a.min(axis=(1, 2)) < 128).sum())


def test_the_png_carries_every_warning_and_each_maps_own_colour_bar(tiny_model):
    model, card = tiny_model
    x, _ = core.load_dataset("shapes", split="test")[3]
    results = [core.explain(model, x, "grad_cam"), core.explain(model, x, "integrated_gradients", n_steps=8)]
    base = render.upscale(render.to_rgb_uint8(x.numpy()), 2)
    tiles = [(base, "Original", None)] + [(render.draw_map(base, e.attribution, choice=v, size=base.shape[0]).image,
                                           captions.map_caption(e, card.classes), v)
                                          for e, v in zip(results, ["magnitude", "signed"])]
    doubts = ["the model is near chance level: balanced accuracy 26.0%", "This image is unlike the images ..."]
    seen = {}
    real = report.figure

    def spy(tiles_, header, footer, **kw):
        seen.update(kw, header=header, footer=footer)
        out = real(tiles_, header, footer, **kw)
        seen["image"] = out
        return out

    import core.present.report as rep
    rep.figure = spy
    try:
        png, html = exports.explain_exports(card, results, tiles, np.array([0.4, 0.3, 0.2, 0.1]), None, {"index": 3},
                                            doubts)
    finally:
        rep.figure = real
    assert list(seen["warnings"]) == doubts
    img = np.asarray(Image.open(io.BytesIO(png.data)).convert("RGB"))
    np.testing.assert_array_equal(img, seen["image"])
    # the warning band (its yellow background) is in the PNG, as tall as two wrapped lines at least
    band = (np.abs(img.astype(int) - (255, 243, 205)).sum(axis=-1) < 6).mean(axis=1) > 0.5
    assert band.sum() >= 2 * (report.TEXT + 4)
    # under the grad_cam tile, the magnitude bar's colours; under the IG tile, the signed bar's (where the layout put
    # them: the band's bottom is where the layout says)
    lay = report.layout(tiles, seen["header"], seen["footer"], warnings=doubts)
    assert lay.pages == 1 and lay.bands[0][3] + 1 == int(np.flatnonzero(band)[-1]) + 1
    under = lambda k, t: img[lay.bars[t] + 3, lay.boxes[k][0]: lay.boxes[k][0] + lay.boxes[k][2]]  # noqa: E731
    mag_row, sig_row = under(1, 1), under(2, 2)
    np.testing.assert_allclose(mag_row[-2], render.colorize(np.array([[1.0]]), render.MAGNITUDE_CMAP)[0, 0], atol=12)
    np.testing.assert_allclose(sig_row[1], render.OPPOSE_COLOUR, atol=12)
    assert lay.bars[0] is None  # the original has no bar: white under it, at the maps' bar row
    assert (under(0, 1) == 255).all()
    assert "⚠ the model is near chance level" not in html.data and "&#9888; the model is near chance level" in html.data
    assert "<svg" in html.data and "for the class" in html.data and "the brighter, the more important" in html.data
    meta = json.loads(Image.open(io.BytesIO(png.data)).text["provenance"])
    assert meta["model"] == card.id
    drawn = Image.open(io.BytesIO(png.data)).text["Description"].splitlines()  # the text drawn, as drawn
    assert drawn[2:4] == [f"⚠ {d}" for d in doubts] and "Colours: " in " ".join(drawn)
    assert not {c for line in drawn for c in line if ord(c) not in render._font_chars()}
