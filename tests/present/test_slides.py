"""Exports a room can read: the figures are 16:9 slides (several, stacked, when one would draw the tiles small) with no
text under 24 px at 1920 px wide, a colour bar's labels never overlap at any width an export draws them, the footer
lists only the parameters each map used, and each export records the colour rule each map is drawn in."""
from __future__ import annotations

import functools
import io
import itertools
import json
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

import core
from core.explainers import get_method
from core.present import captions, exports, render, report

#: every colour rule each registered method's maps can be drawn in: its declared one and, where its maps are signed,
#: the user's choice of either
METHOD_RULES = {m: {render.map_view(get_method(m).view, get_method(m).signed_for(get_method(m).defaults()), c)
                    for c in render.VIEW_CHOICES.values()} for m in core.list_methods()}
RULES = sorted(set().union(*METHOD_RULES.values()))
LONG_FOOTER = [captions.method_params_line("lime", get_method("lime").defaults()),
               "LIME: 2,000 samples (adaptive, stopped at its maximum before it was stable): another run would agree "
               "ρ ≈ 0.74, its top 5 superpixels with their signs 72%; not yet stable (target 0.90)"]
WARNINGS = ["the model is near chance level: balanced accuracy 26.0% on the test split",
            "This image is unlike the images the model was trained on"]
HEADER = ["Prediction: triangle (97.2%) · true class triangle · 2026-01-01T00:00:00+00:00",
          "Model shapes-small_cnn (small_cnn, 64 px, trained here on shapes) · weights 11e993983d01c6c6…"]


def _tile(side: int = 384, seed: int = 0) -> np.ndarray:
    """A smooth picture (a noise tile would make every figure a slow, large PNG)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    return np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (side, 1)), np.full((side, side), 40.0 * seed % 255)],
                    axis=-1).astype(np.uint8)


def _explain_tiles(n: int) -> list[tuple]:
    """An original and ``n - 1`` maps, with the Explain page's captions, alternating the two rules."""
    return [(_tile(), "Original", None)] + [
        (_tile(seed=k), f"Integrated Gradients → triangle · 1.{k:03d} s · {RULES[k % 2]}", RULES[k % 2])
        for k in range(1, n)]


def _compare_tiles(images: int, methods: int) -> tuple[list[tuple], list[str]]:
    """Compare's rows (an original and its maps) and its column headings."""
    titles = [get_method(m).title for m in core.list_methods()[:methods]]
    tiles = []
    for i in range(images):
        tiles.append((_tile(seed=i), f"#{i} · true circle · predicted triangle · wrong", None))
        tiles += [(_tile(seed=i + j), f"{t} → triangle", RULES[j % 2]) for j, t in enumerate(titles)]
    return tiles, ["Original", *titles]


#: every kind of figure the two exports draw: Explain's 1 to 30 tiles (every registered method at once is 23, with
#: LIME's superpixels 24), Compare's 1 to 8 images (its most) by 1 to 8 methods; with warnings and a long footer (the
#: parameter lines of as many methods as there are maps)
CASES = ([("explain", n) for n in range(1, 31)]
         + [("compare", (i, m)) for i, m in itertools.product((1, 2, 3, 5, 6, 8), (1, 3, 6, 8))])


def _args(kind: str, size) -> tuple:
    """What the export passes to :func:`report.figure` for this case: tiles, header, footer, per_row, warnings,
    columns."""
    if kind == "explain":
        tiles, per_row, columns = _explain_tiles(size), None, None
        methods = size - 1
    else:
        (tiles, columns), per_row = _compare_tiles(*size), size[1] + 1
        methods = size[1]
    footer = [*LONG_FOOTER, *(captions.method_params_line(m, get_method(m).defaults())
                              for m in (core.list_methods() * 2)[:methods])]
    return tiles, HEADER, footer, per_row, WARNINGS, columns


@functools.lru_cache(maxsize=None)
def _layout(kind: str, size) -> report.Layout:
    return report.layout(*_args(kind, size))


def _intersect(a, b) -> bool:
    """Whether two boxes ``(left, top, right, bottom)`` share any area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _text_boxes(lay: report.Layout) -> list[tuple[int, int, int, int]]:
    """The box of every line of text the layout places (blocks, captions, headings), from the font's metrics."""
    out = []
    for x, y, block, _ in lay.texts:
        for text, size in block:
            out.append((x, y, x + render.font(size).getlength(text), y + size * report.LINE))
            y += round(size * report.LINE)
    size = report.SMALL * lay.scale
    for col_x, col_w, top, lines in [*lay.captions, *lay.headings]:
        for n, line in enumerate(lines):
            w = render.font(size).getlength(line)
            y = top + n * round(size * report.LINE)
            out.append((col_x + (col_w - w) / 2, y, col_x + (col_w + w) / 2, y + size * report.LINE))
    return out


@pytest.mark.parametrize("kind,size", CASES)
def test_every_figure_is_16_9_slides_with_every_tile_and_no_text_under_24_px_at_1920(kind, size, monkeypatch):
    """Any number of tiles lays out (the Explain page's every method at once, Compare's 8 images by 8 methods): one
    slide, or several stacked, each 16:9; every tile on one slide, none over another or over any text; tiles at least
    :data:`report.MIN_SIDE` high whenever the figure took more than one slide; every text drawn at 24 px or more at
    1920 px wide."""
    sizes = []
    real = ImageDraw.ImageDraw.text

    def recording(self, xy, text, *args, **kw):
        sizes.append(kw["font"].size)  # the size of every text drawn
        return real(self, xy, text, *args, **kw)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", recording)
    args = _args(kind, size)
    fig, lay = report.figure(*args), _layout(kind, size)
    h, w = fig.shape[:2]
    slide = w * 9 // 16
    assert w in (1920, 3840) and h == lay.pages * slide and (lay.width, lay.height) == (w, h)
    assert len(sizes) > 5 and min(sizes) * 1920 / w >= 24, (min(sizes), w)
    assert len(lay.boxes) == len(args[0])
    boxes = [(x, y, x + bw, y + bh) for x, y, bw, bh in lay.boxes]
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 and x1 <= w and (y0 // slide) == ((y1 - 1) // slide), (x0, y0, x1, y1)  # on one slide
    texts = _text_boxes(lay)
    for a, b in itertools.combinations(boxes, 2):
        assert not _intersect(a, b), (a, b)
    for box, text in itertools.product(boxes, texts):
        assert not _intersect(box, text), (box, text)
    assert lay.pages == 1 or lay.side >= report.MIN_SIDE * lay.scale, (lay.pages, lay.side)
    drawn = " ".join(text for _, _, block, _ in lay.texts for text, _ in block)
    assert all(word in drawn for line in args[2] for word in line.split()), "a footer line is missing"


def test_many_tiles_go_on_more_slides_not_smaller_tiles():
    """Every registered method at once on Explain (24 tiles) and 6 images by 8 methods on Compare: more than one
    slide, each repeating the header and every warning; one slide while the tiles are large enough."""
    for kind, size in (("explain", 24), ("compare", (6, 8))):
        lay = _layout(kind, size)
        assert lay.pages > 1 and lay.side >= report.MIN_SIDE * lay.scale
        heads = [y for x, y, block, _ in lay.texts if block and block[0][0] == HEADER[0]]
        assert len(heads) == lay.pages and len(lay.bands) == lay.pages
    assert _layout("explain", 4).pages == 1 and _layout("compare", (2, 3)).pages == 1


def test_a_drawn_glyph_is_at_least_24_px_tall_at_1920():
    """The measure behind the font sizes: at the smallest size the figure uses, a capital's ink is as tall as the
    font's cap height (about 0.73 em), so 24 px text reads as 24 px text."""
    f = render.font(report.SMALL)
    left, top, right, bottom = f.getbbox("Hg")  # ascender to descender
    assert report.SMALL >= 24 and bottom - top >= 0.9 * report.SMALL


def _bar_widths() -> set[tuple[int, int]]:
    """(width, scale) of every colour bar the exports draw with its labels, read from their layouts: a tile's own
    bar (wide, narrow, in the compact table and grids of Compare) and the legend's."""
    found = set()
    for kind, size in CASES:
        lay = _layout(kind, size)
        found.update((w, lay.scale) for _, _, _, w in lay.legend)
        found.update((bw, lay.scale) for (_, _, bw, _), bar, labelled in zip(lay.boxes, lay.bars, lay.labelled)
                     if bar is not None and labelled)
    return found


def _drawn_labels(view: str, width: int, k: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Each label text a bar draws, with its ink box relative to the bar's left end: the bar rendered as the figure
    renders it (:func:`report._draw_bar`), the box of every text it draws read from Pillow."""
    canvas = Image.new("RGB", (width + 40 * k, 400 * k), "white")
    draw = ImageDraw.Draw(canvas)
    seen = []
    real = draw.text

    def recording(xy, text, *args, **kw):
        box = draw.textbbox(xy, text, font=kw["font"])
        seen.append((text, (box[0] - 20 * k, box[1], box[2] - 20 * k, box[3])))
        return real(xy, text, *args, **kw)

    draw.text = recording
    report._draw_bar(draw, canvas, view, 20 * k, 0, width, k)
    return seen


def test_colour_bar_labels_never_overlap_at_any_width_an_export_uses():
    """Every registered method's bar, in each rule its maps can be drawn in (its declared one; signed and magnitude
    where its map is signed), rendered at every width the exports draw a labelled bar (Explain's and Compare's
    tiles, wide, narrow and compact, and the legend) and at every width from 40 to 900 px besides: no two labels'
    ink boxes intersect, none runs outside the bar's width, and nothing is cut."""
    assert {"signed", "magnitude"} <= set(RULES) and all(METHOD_RULES.values())
    widths = _bar_widths() | {(w, 1) for w in range(40, 900, 3)}
    assert len(widths) > 280 and min(w for w, _ in widths) <= 60
    for view, (width, k) in itertools.product(RULES, sorted(widths)):
        labels = _drawn_labels(view, width, k)
        assert "".join(t for t, _ in labels).replace(" ", "") == "".join(
            render.COLOUR_RULES[view][1]).replace(" ", ""), (view, width)  # nothing cut
        for _, (left, top, right, bottom) in labels:
            assert left >= 0 and right <= width + 1, (view, width, labels)
        for (_, a), (_, b) in itertools.combinations(labels, 2):
            assert not _intersect(a, b), (view, width, labels)


def test_the_reports_vector_bar_has_room_for_its_labels():
    """The HTML report's SVG bar (320 px, 12 px labels at its two ends): an em between them, in the export font."""
    f = render.font(12)
    for view in RULES:
        lo, hi = render.COLOUR_RULES[view][1]
        assert f.getlength(lo) + 12 + f.getlength(hi) <= 320 and 'width="320"' in render.colorbar_svg(view)


def test_the_compare_bug_is_gone_labels_on_one_line_only_when_they_fit():
    """"against the classfor the class" under a narrow tile: now the low end's label on its line(s), the high end's
    right-aligned on the line(s) below; on one line, at the two ends, where they fit."""
    size = report.SMALL
    placed = report.bar_labels("signed", 200, size)
    assert placed[0][:3:2] == ("against the", 0) and placed[-1][0] == "for the class"
    assert placed[-1][2] > max(y for _, _, y in placed[:-1]) and placed[-1][1] > 0  # below, right-aligned
    wide = report.bar_labels("signed", 600, size)
    assert {y for _, _, y in wide} == {0} and wide[1][1] > wide[0][1]


def test_a_grid_of_many_images_is_a_table_on_slides_not_a_failure():
    tiles, columns = _compare_tiles(8, 8)
    lay = report.layout(tiles, ["m"], ["p"], 9, (), columns)
    assert lay.headings and [c for *_, c in lay.captions if c]  # headings and the rows' labels
    fig = report.figure(tiles, ["m"], ["p"], 9, (), columns)
    assert fig.shape[0] == lay.pages * fig.shape[1] * 9 // 16


# --- only the parameters a map used ---------------------------------------------------------------------------------

def test_used_params_follow_the_declared_when_conditions():
    lime = get_method("lime").defaults()
    used = captions.used_params("lime", {**lime, "segmentation": "slic", "mode": "adaptive"})
    assert {"n_segments", "compactness", "max_samples", "stability_target"} <= set(used)
    assert not {"kernel_size", "max_dist", "scale", "num_samples"} & set(used)
    used = captions.used_params("lime", {**lime, "segmentation": "quickshift", "mode": "fixed"})
    assert {"kernel_size", "max_dist", "num_samples"} <= set(used) and not {"n_segments", "max_samples"} & set(used)
    for m in core.list_methods():  # a parameter without a condition is always used
        defaults = get_method(m).defaults()
        kept = captions.used_params(m, defaults)
        assert {p.name for p in get_method(m).params if p.when is None} <= set(kept) <= set(defaults)


def test_the_params_line_is_words_from_the_declared_labels():
    line = captions.method_params_line("integrated_gradients", {"n_steps": 64, "baseline": "zeros", "seed": 0})
    assert line == "Integrated Gradients: Steps = 64, Baseline = zeros, Seed = 0"
    assert captions.method_params_line("saliency", {}) == "Saliency: no parameters"
    assert "{" not in captions.method_params_line("lime", get_method("lime").defaults())  # no raw JSON


def test_the_exports_list_only_the_parameters_each_map_used(tiny_model, monkeypatch):
    """LIME with SLIC: its figure's footer, the text drawn, and the report's methods table name no quickshift or
    Felzenszwalb setting (the provenance keeps every parameter, for reproducing)."""
    model, card = tiny_model
    x, _ = core.load_dataset("shapes", split="test")[3]
    e = core.explain(model, x, "lime", num_samples=40, segmentation="slic")
    seen = {}
    real = report.figure

    def spy(tiles, header, footer, **kw):
        seen["footer"] = list(footer)
        return real(tiles, header, footer, **kw)

    monkeypatch.setattr(report, "figure", spy)
    image = render.to_rgb_uint8(x.numpy())
    tiles = [(image, "Original", None), (image, captions.map_caption(e, card.classes), "signed")]
    png, html = exports.explain_exports(card, [e], tiles, np.array([0.4, 0.3, 0.2, 0.1]), None, {"index": 3}, [])
    footer = " ".join(seen["footer"])
    assert "SLIC segments = 50" in footer and "Samples (fixed) = 40" in footer
    for unused in ("Quickshift", "kernel_size", "Felzenszwalb", "At most", "{"):
        assert unused not in footer
    drawn = Image.open(io.BytesIO(png.data)).text
    assert "Quickshift" not in drawn["Description"] and '"kernel_size": 2.0' in drawn["provenance"]
    table = html.data.split("<h2>Methods</h2>")[1].split("<h2>")[0]
    assert "SLIC segments = 50" in table and "Quickshift" not in table and "kernel_size" not in table
    assert "kernel_size" in html.data.split('id="provenance"')[1]  # the provenance block keeps every parameter


# --- the rule drawn is the rule declared, or the one the user chose: the PNG export's and the HTML report's faces --

@pytest.fixture(scope="module")
def every_map(tiny_model):
    """One map of every registered method, as its method would give it (signed where its defaults give a signed
    map, else |values|; its default parameters), on a shapes image: no method run, so every method is here."""
    _, card = tiny_model
    x, _ = core.load_dataset("shapes", split="test")[5]
    image = render.to_rgb_uint8(x.numpy())
    rng = np.random.default_rng(0)
    results = []
    for m in core.list_methods():
        cls = get_method(m)
        signed = cls.signed_for(cls.defaults())
        a = rng.standard_normal(image.shape[:2]).astype(np.float32)
        a = a if signed else np.abs(a)
        results.append(core.Explanation(method=m, title=cls.title, attribution=a, heatmap=np.abs(a) / np.abs(a).max(),
                                        target=1, params=cls.defaults(), seconds=0.01, signed=signed))
    return card, image, results


def _declared(e, choice: str) -> str:
    return render.map_view(get_method(e.method).view, e.signed, choice)


def _bars_say(png: bytes, layouts: list, tiles) -> list[str | None]:
    """The rule of the bar drawn under each tile in the PNG, read from its colours (its low end), where the layout
    the export drew put it."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    lay = layouts[-1]
    ends = {v: render.colorize(np.array([[0.0]]), render.COLOUR_RULES[v][0])[0, 0] for v in RULES}
    said = []
    for (x, _, _, _), bar in zip(lay.boxes, lay.bars):
        if bar is None:
            said.append(None)
            continue
        pixel = img[bar + 2, x + 1]
        said.append(min(ends, key=lambda v: np.abs(pixel - ends[v]).sum()))
    return said


@pytest.mark.parametrize("choice", list(render.VIEW_CHOICES.values()))
def test_the_exports_record_and_draw_each_maps_rule_as_declared_or_chosen(every_map, choice, monkeypatch):
    """Every registered method, each colour choice, tiles built as the pages build them (the one drawing path,
    :func:`render.draw_explanation`; Explain's LIME also gets its superpixel picture): Explain's PNG (its ``rules``
    chunk and the bar drawn under each map), its HTML report (each map's ``data-rule`` and text alternative) and
    Compare's PNG all give each map the rule its method declares, or the one chosen where its map is signed."""
    card, image, results = every_map
    layouts = []
    real = report.layout
    monkeypatch.setattr(report, "layout", lambda *a, **kw: layouts.append(real(*a, **kw)) or layouts[-1])
    tiles = [(image, "Original", None)]
    for e in results:
        drawn = render.draw_explanation(image, e, choice, size=96)
        tiles.append((drawn.image, f"{captions.map_caption(e, card.classes)} · {drawn.rule}", drawn.rule))
        if e.method == "lime":  # a picture in a rule, which is no method's map
            tiles.append((drawn.image, f"LIME superpixels → {card.classes[1]} (red for, blue against)", "signed"))
    want = {e.method: _declared(e, choice) for e in results}
    assert choice == "auto" or set(want.values()) == {"magnitude", choice}  # the choice changes what it may

    png, html = exports.explain_exports(card, results, tiles, np.array([0.1, 0.7, 0.1, 0.1]), 1, {"index": 5}, [])
    recorded = json.loads(Image.open(io.BytesIO(png.data)).text["rules"])
    assert {r["method"]: r["rule"] for r in recorded if r["method"]} == want
    pictures = [k for k, t in enumerate(tiles) if t[1].startswith("LIME superpixels")]
    assert [r["tile"] for r in recorded if r["method"] is None] == pictures and len(pictures) == 1
    assert _bars_say(png.data, layouts, tiles) == [t[2] for t in tiles]  # the bar drawn is the rule recorded
    figures = re.findall(r'<figure data-rule="(\w+)" data-method="(\w+)"><img alt="([^"]*)"', html.data)
    assert {m: r for r, m, _ in figures} == want and len(figures) == len(results)
    assert all(f"drawn in the {r} colour rule" in alt for r, _, alt in figures)

    indices = [0, 1]
    by_key = {(i, e.method): e for i in indices for e in results}
    grid = []
    for i in indices:
        grid.append((image, f"#{i} · true a · predicted b · right", None))
        for e in results:
            drawn = render.draw_explanation(image, e, choice, size=96)
            grid.append((drawn.image, captions.target_label(e, card.classes), drawn.rule))
    methods = [e.method for e in results]
    png, _ = exports.compare_exports(card, "shapes", "test", indices, methods, {e.method: e.params for e in results},
                                     "Predicted", "Per method", False, by_key, grid, {i: image for i in indices})
    recorded = json.loads(Image.open(io.BytesIO(png.data)).text["rules"])
    assert [(r["method"], r["rule"]) for r in recorded] == [(m, want[m]) for _ in indices for m in methods]
    assert _bars_say(png.data, layouts, grid) == [t[2] for t in grid]
