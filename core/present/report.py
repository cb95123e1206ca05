"""Exports that reproduce: a figure (PNG) and a one-page report (self-contained HTML) of explanations.

Every export carries its provenance: the model id and weights digest, each method's full parameters with
its seed and target, the library versions and the date, in the PNG as a ``provenance`` text chunk and in
the report as a JSON block, so anyone holding the file can recompute the same maps.
"""
from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

from core.present import captions, render
from core.version import LIBRARIES, library_versions  # noqa: F401  (re-exported)
from core.explainers import Explanation



def provenance(card: Any, results: Sequence[Explanation], image: dict[str, Any] | None = None) -> dict[str, Any]:
    """What reproduces these maps: model, weights digest, image reference, each method's parameters (seed
    included) and target, library versions and the time (UTC)."""
    return {
        "model": card.id, "weights_sha256": card.weights_sha256, "dataset": card.dataset, "arch": card.arch,
        "input_size": card.input_size, "image": image or {},
        **({"imported_from": {k: card.source.get(k) for k in ("format", "name", "sha256")},
            "preprocessing": {"mean": card.mean, "std": card.std, "channel_order": card.channel_order,
                              "pixel_range": card.pixel_range, "resize_size": card.resize_size, "output": card.output}}
           if getattr(card, "imported", False) else {}),
        "methods": [{"method": e.method, "target": e.target, "target_name": card.classes[e.target],
                     "params": e.params} for e in results],
        "libraries": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def png_with_provenance(image: np.ndarray, prov: dict[str, Any], text: Sequence[str] = (),
                        rules: Sequence[dict[str, Any]] = ()) -> bytes:
    """PNG bytes with the provenance JSON in a ``provenance`` text chunk (``Image.open(f).text["provenance"]``), the
    text drawn in the image, as drawn, in a ``Description`` chunk (screen readers, search, checks), and the colour
    rule each map is drawn in (:func:`drawn_rules`) as JSON in a ``rules`` chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("provenance", json.dumps(prov, default=str))
    if text:
        info.add_itxt("Description", "\n".join(text))
    if rules:
        info.add_text("rules", json.dumps(list(rules)))
    buf = io.BytesIO()
    Image.fromarray(render.to_rgb_uint8(image)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


#: a tile: the image, its caption, and its colour rule ("signed", "magnitude", or None for an original); a map's
#: caption begins with its result's :func:`captions.target_label` (as the pages caption them: :func:`map_methods`)
Tile = tuple  # (np.ndarray, str) or (np.ndarray, str, str | None)


def map_methods(tiles: Sequence[Tile], results: Sequence[Explanation], classes: Sequence[str]) -> list[str | None]:
    """The method each tile draws a map of (``None``: an original, a picture such as LIME's superpixels, or a tile
    whose caption names no result): in order, each result's map is the next tile with a colour rule whose caption
    begins with the result's label (:func:`captions.target_label`), as the pages caption their maps."""
    pending, out = list(results), []
    for tile in tiles:
        match = bool(pending) and bool(_view(tile)) and tile[1].startswith(captions.target_label(pending[0], classes))
        out.append(pending.pop(0).method if match else None)
    return out


def drawn_rules(tiles: Sequence[Tile], results: Sequence[Explanation], classes: Sequence[str]) -> list[dict[str, Any]]:
    """What each tile with a colour rule is drawn in, for the exports to record: ``{"tile", "caption", "method",
    "rule"}`` (``method`` ``None`` for a picture), in the tiles' order."""
    return [{"tile": k, "caption": t[1], "method": m, "rule": _view(t)}
            for k, (t, m) in enumerate(zip(tiles, map_methods(tiles, results, classes))) if _view(t)]


# --- the figure: 16:9 slides --------------------------------------------------------------------------------------
#: a slide of the figure at scale 1: full HD (16:9). Twice that (3840 x 2160) when many tiles would otherwise be
#: drawn much smaller than their own pixels; every length below is at scale 1 and grows with the frame
FRAME = (1920, 1080)
#: font sizes (px at 1920 px wide): the first header line, the other header lines and the warnings, and everything
#: else (captions, colour-bar labels, the footer). 24 px is the smallest text a room reads on a 1920-wide slide
TITLE, TEXT, SMALL = 34, 28, 24
MARGIN, GAP = 36, 20  # px: around the frame; between blocks and between tiles
LINE = 1.25  # a line's step, in font sizes (DejaVu Sans's ascent + descent is 1.17: lines never touch)
BAR = 16  # px: a colour bar's height under a tile
#: below this side (px at scale 1) a tile's own bar loses its labels when that makes the tiles larger; the labelled
#: bars of the rules shown then stand once in the footer
COMPACT_BELOW = 200
#: the share of the frame's width the footer takes when it stands beside the grid (tried when the grid's rows, not
#: its width, limit the tiles, as in a grid of several images)
SIDE = 0.34
#: the smallest tile (px high at 1920 px wide: 7.5% of the slide's width, 7.5 cm on a screen a metre wide, where a
#: map's regions still read from the back of a room) a figure draws on one slide when more slides would draw it
#: larger. More tiles than a slide holds at that size go on more slides, stacked in the one PNG (6 images x 8 methods:
#: two slides)
MIN_SIDE = 144
WARNING_INK, WARNING_BAND = "#7a4b00", "#fff3cd"


@functools.lru_cache(maxsize=4096)
def bar_labels(view: str, width: int, size: int) -> tuple[tuple[str, int, int], ...]:
    """Where a colour bar's two end labels go under a bar ``width`` px wide, in the export font at ``size``: a list of
    ``(text, x, y)`` (y from the top of the labels). Both on one line, at the two ends, when they fit with one em
    between them; else the low end's label left-aligned on its own line(s) and the high end's right-aligned on the
    line(s) below, each wrapped to the width if it is wider. Their boxes never intersect."""
    f, step = render.font(size), round(size * LINE)
    lo, hi = (render.drawable(t) for t in render.COLOUR_RULES[view][1])
    if f.getlength(lo) + size + f.getlength(hi) <= width:
        return (lo, 0, 0), (hi, max(0, width - int(np.ceil(f.getlength(hi)))), 0)
    placed = [(line, 0) for line in render.wrap(lo, width, size)]
    placed += [(line, max(0, width - int(np.ceil(f.getlength(line))))) for line in render.wrap(hi, width, size)]
    return tuple((text, x, k * step) for k, (text, x) in enumerate(placed))


def label_boxes(placed: Sequence[tuple[str, int, int]], size: int) -> list[tuple[int, int, int, int]]:
    """The ink boxes ``(left, top, right, bottom)`` of placed labels (:func:`bar_labels`), from the font's metrics."""
    f = render.font(size)
    return [(x + l, y + t, x + r, y + b) for text, x, y in placed for l, t, r, b in [f.getbbox(text)]]


@functools.lru_cache(maxsize=65536)
def _bar_height(view: str | None, width: int, k: int, compact: bool) -> int:
    """The height under a tile taken by its colour bar (and its labels, unless ``compact``), gaps included."""
    if not view:
        return 0
    if compact:
        return (BAR // 2 + 8) * k
    rows = len({y for _, _, y in bar_labels(view, width, SMALL * k)})
    return (BAR + 4 + 6) * k + rows * round(SMALL * k * LINE)


def _draw_bar(draw: ImageDraw.ImageDraw, canvas: Image.Image, view: str, x: int, y: int, width: int, k: int,
              labels: bool = True) -> None:
    height = (BAR // 2 if not labels else BAR) * k
    ramp = render.colorize(np.tile(np.linspace(0, 1, width), (height, 1)), render.COLOUR_RULES[view][0])
    canvas.paste(Image.fromarray(ramp), (x, y))
    if labels:
        for text, dx, dy in bar_labels(view, width, SMALL * k):
            draw.text((x + dx, y + height + 4 * k + dy), text, fill="black", font=render.font(SMALL * k))


@dataclass(frozen=True)
class Layout:
    """Where everything of a :func:`figure` goes (px, in the figure): its ``pages`` slides of :data:`FRAME` times
    ``scale`` (1 or 2), stacked top to bottom; the text blocks ``(x, y, lines, colour)``, each line ``(text, size)``;
    the warning bands ``(left, top, right, bottom)``; each tile's image box ``(x, y, w, h)``, its bar's top (``None``:
    no bar) and whether that bar carries its labels (not when tiles are small: the labelled bar of each rule then
    stands once in the slide's footer, in ``legend`` as ``(rule, x, y, width)``); each caption and, in a table, each
    column heading as ``(column x, column width, top, lines)``, centred in its column (in a table a row's first
    tile's caption is the row's label, in a column of its own, and the other tiles' captions are not drawn)."""

    width: int
    height: int
    scale: int
    pages: int
    texts: list[tuple[int, int, list[tuple[str, int]], str]]
    bands: list[tuple[int, int, int, int]]
    boxes: list[tuple[int, int, int, int]]
    bars: list[int | None]
    labelled: list[bool]
    captions: list[tuple[int, int, int, tuple[str, ...]]]
    headings: list[tuple[int, int, int, tuple[str, ...]]]
    legend: list[tuple[str, int, int, int]]

    @property
    def side(self) -> float:
        """The smallest tile's height (px; infinite on a figure of text only)."""
        return min((h for *_, h in self.boxes), default=float("inf"))


def _lines(texts: Sequence[str], width: int, size: int) -> list[tuple[str, int]]:
    return [(line, size) for text in texts for line in _wrap(text, width, size)]


def _height(lines: Sequence[tuple[str, int]]) -> int:
    return sum(round(size * LINE) for _, size in lines)


def _arrangements(n: int, per_row: int | None) -> list[list[list[int]]]:
    """The grids the tiles may take, as rows of tile indices: any number of columns (in reading order), or, for
    tiles given in rows of ``per_row`` (an image and its maps), those rows as given or turned into columns."""
    if per_row is None:
        return [[list(range(r, min(n, r + c))) for r in range(0, n, c)] for c in range(1, n + 1)]
    rows = [list(range(r, min(n, r + per_row))) for r in range(0, n, per_row)]
    cols = [[row[j] for row in rows if j < len(row)] for j in range(per_row)]
    return [rows, cols]


@dataclass(frozen=True)
class _Room:
    """The region the tiles may take once the header and the footer are placed (the footer under it or beside it;
    with the legend of unlabelled bars when ``compact``)."""

    compact: bool
    x: int
    y: int
    width: int
    height: int
    foot: list[tuple[str, int]]
    footer_at: tuple[int, int]
    legend: list[tuple[str, int, int, int]]


def _rooms(k: int, top: int, views: Sequence[str], texts: Sequence[str]) -> list[_Room]:
    width, height = FRAME[0] * k, FRAME[1] * k
    margin, gap, inner = MARGIN * k, GAP * k, width - 2 * MARGIN * k
    out = []
    for compact in (False, True):
        for side in (False, True):
            panel = int(inner * SIDE) if side else inner  # the footer's width
            foot = _lines(texts, panel, SMALL * k)
            legend_w = min(panel if side or len(views) < 2 else (panel - gap) // 2, 640 * k)
            one = max((_bar_height(v, legend_w, k, False) for v in views), default=0) if compact else 0
            if side:  # the legend's bars one under the other, then the footer's lines, beside the grid
                fx, fy = width - margin - panel, top
                legend = [(v, fx, fy + j * one, legend_w) for j, v in enumerate(views)] if compact else []
                footer_at = (fx, fy + len(legend) * one)
                if footer_at[1] + _height(foot) <= height - margin:
                    out.append(_Room(compact, margin, top, inner - panel - 2 * gap, height - margin - top, foot,
                                     footer_at, legend))
            else:  # the legend's bars side by side, then the footer's lines, under the grid
                footer_at = (margin, height - margin - _height(foot))
                legend = [(v, margin + j * (legend_w + gap), footer_at[1] - one, legend_w)
                          for j, v in enumerate(views)] if compact else []
                out.append(_Room(compact, margin, top, inner, footer_at[1] - one - gap - top, foot, footer_at, legend))
    return out


def _fit(tiles: Sequence[Tile], grid: list[list[int]], aspect: float, room: _Room, k: int):
    """The largest tile height (px) with which ``grid`` fits the room: each row as tall as its tiles, its tallest
    colour bar (as wide as a tile) and its tallest caption (as wide as a column); and those text heights per row.
    ``None``: it does not fit."""
    ncols, gap, step = max(len(r) for r in grid), GAP * k, round(SMALL * k * LINE)
    col = (room.width - (ncols - 1) * gap) // ncols
    if col < 2 * SMALL * k:
        return None
    captions_h = [max(step * len(_wrap(tiles[i][1], col, SMALL * k)) for i in row) for row in grid]
    rules = [set(_views([tiles[i] for i in row])) for row in grid]

    def under(tw: int) -> list[int]:
        return [max((_bar_height(v, tw, k, room.compact) for v in vs), default=0) + c + 6 * k
                for vs, c in zip(rules, captions_h)]

    th = int(min(col / aspect, room.height / len(grid)))
    while th >= 8 * k:
        text = under(int(th * aspect))
        if len(grid) * th + sum(text) + (len(grid) - 1) * gap <= room.height:
            return th, text
        th -= max(1, th // 60)
    return None


def _place_grid(tiles: Sequence[Tile], grid: list[list[int]], th: int, under: list[int], aspect: float, room: _Room,
                k: int) -> tuple[list, list, list]:
    gap, tw, ncols = GAP * k, int(th * aspect), max(len(r) for r in grid)
    col = (room.width - (ncols - 1) * gap) // ncols
    y = room.y + (room.height - (len(grid) * th + sum(under) + (len(grid) - 1) * gap)) // 2
    boxes, bars, caps = [None] * len(tiles), [None] * len(tiles), [None] * len(tiles)
    for row, text_h in zip(grid, under):
        row_bar = max(_bar_height(_view(tiles[i]), tw, k, room.compact) for i in row)
        for j, i in enumerate(row):
            x = room.x + j * (col + gap)
            boxes[i] = (x + (col - tw) // 2, y, tw, th)  # each tile centred in its column
            bars[i] = y + th + 6 * k if _view(tiles[i]) else None
            caps[i] = (x, col, y + th + 6 * k + row_bar, _wrap(tiles[i][1], col, SMALL * k))
        y += th + text_h + gap
    return boxes, bars, caps


def _table(tiles: Sequence[Tile], per_row: int, columns: Sequence[str], aspect: float, room: _Room, k: int):
    """A dense grid as a table: a heading over each column, each row labelled by its first tile's caption (in a
    column of its own, as wide as draws the tiles largest) and the other captions not repeated under every tile;
    thin bars, rows closer together. Returns the tile height, each row's height, the headings' height, the label
    column's width and a column's width; ``None``: no fit."""
    rows = [list(range(r, min(len(tiles), r + per_row))) for r in range(0, len(tiles), per_row)]
    gap, step, size = GAP * k, round(SMALL * k * LINE), SMALL * k
    best = None
    for label_w in (room.width * f // 12 for f in (2, 3, 4)):
        col = (room.width - label_w - gap - (per_row - 1) * gap) // per_row
        if col < 2 * size:
            continue
        head_h = max(len(_wrap(c, col, size)) for c in columns) * step + 6 * k
        labels = [len(_wrap(tiles[row[0]][1], label_w, size)) * step for row in rows]
        bar = [max(_bar_height(_view(tiles[i]), col, k, True) for i in row) for row in rows]
        th = int(min(col / aspect, (room.height - head_h) / len(rows)))
        while th >= 8 * k and (best is None or th > best[0]):
            heights = [max(th + b, lab) for b, lab in zip(bar, labels)]
            if head_h + sum(heights) + (len(rows) - 1) * gap // 2 <= room.height:
                best = th, heights, head_h, label_w, col
                break
            th -= max(1, th // 60)
    return best


def _place_table(tiles: Sequence[Tile], per_row: int, columns: Sequence[str], fit: tuple, aspect: float,
                 room: _Room, k: int) -> tuple[list, list, list, list]:
    th, heights, head_h, label_w, col = fit
    gap, size, tw = GAP * k, SMALL * k, int(th * aspect)
    x0 = room.x + label_w + gap
    y = room.y + (room.height - (head_h + sum(heights) + (len(heights) - 1) * gap // 2)) // 2
    headings = [(x0 + j * (col + gap), col, y, _wrap(c, col, size)) for j, c in enumerate(columns)]
    y += head_h
    boxes, bars, caps = [None] * len(tiles), [None] * len(tiles), [None] * len(tiles)
    for r, height in enumerate(heights):
        row = list(range(r * per_row, min(len(tiles), (r + 1) * per_row)))
        label = _wrap(tiles[row[0]][1], label_w, size)
        for j, i in enumerate(row):
            x = x0 + j * (col + gap)
            boxes[i] = (x + (col - tw) // 2, y, tw, th)
            bars[i] = y + th + 6 * k if _view(tiles[i]) else None
            caps[i] = (x, col, y, ())
        caps[row[0]] = (room.x, label_w, y + (th - len(label) * round(size * LINE)) // 2, label)
        y += height + gap // 2
    return boxes, bars, caps, headings


def _head(header: Sequence[str], warnings: Sequence[str], k: int) -> tuple[list, list, int]:
    """A slide's header (the first line larger) and its warnings on their band: the text blocks, the band and the
    top of what comes under them."""
    width, margin, gap = FRAME[0] * k, MARGIN * k, GAP * k
    inner = width - 2 * margin
    head = _lines(header[:1], inner, TITLE * k) + _lines(header[1:], inner, TEXT * k)
    texts, bands, top = [(margin, margin, head, "black")], [], margin + _height(head) + gap
    if warnings:
        warn = _lines([f"⚠ {w}" for w in warnings], inner - 2 * gap, TEXT * k)
        bottom = top + gap + _height(warn)
        texts.append((margin + gap, top + gap // 2, warn, WARNING_INK))
        bands.append((margin, top, width - margin - 1, bottom - 1))
        top = bottom + gap
    return texts, bands, top


def _slide(tiles: Sequence[Tile], header: Sequence[str], footer: Sequence[str], per_row: int | None,
           warnings: Sequence[str], columns: Sequence[str] | None, k: int) -> Layout | None:
    """One slide of tiles: of the grids the tiles may take (:func:`_arrangements`), with the footer under the grid or
    beside it, the one that draws the tiles largest; only when they are small (under :data:`COMPACT_BELOW`),
    unlabelled bars under the tiles (the labelled ones in the footer), and, for tiles in rows of ``per_row`` with
    ``columns`` headings, a table (:func:`_table`), when that draws them larger by a sixth or more. ``None``: no grid
    fits."""
    texts, bands, top = _head(header, warnings, k)
    views = list(dict.fromkeys(_views(tiles)))
    rule = render.colour_rule_text(views)
    rooms = _rooms(k, top, views, ([f"Colours: {rule}"] if rule else []) + list(footer))
    aspect = tiles[0][0].shape[1] / tiles[0][0].shape[0]
    found = []  # (preference, tile height, room, "grid" or "table", fit, grid)
    for room in rooms:
        for grid in _arrangements(len(tiles), per_row):
            if fit := _fit(tiles, grid, aspect, room, k):
                found.append((fit[0] * (1 if room.compact else 1.15), fit[0], room, "grid", fit, grid))
        if room.compact and per_row and columns and (fit := _table(tiles, per_row, columns, aspect, room, k)):
            found.append((fit[0] / 1.15, fit[0], room, "table", fit, None))
    if not found:
        return None
    plain = [f for f in found if not f[2].compact]
    if plain and max(f[1] for f in plain) >= COMPACT_BELOW * k:
        found = plain
    _, th, room, kind, fit, grid = max(found, key=lambda f: f[0])
    if kind == "table":
        boxes, bars, caps, headings = _place_table(tiles, per_row, columns, fit, aspect, room, k)
    else:
        (boxes, bars, caps), headings = _place_grid(tiles, grid, th, fit[1], aspect, room, k), []
    texts.append((*room.footer_at, room.foot, "black"))
    return Layout(FRAME[0] * k, FRAME[1] * k, k, 1, texts, bands, boxes, bars, [not room.compact] * len(tiles), caps,
                  headings, room.legend)


def _text_slides(footer: Sequence[str], header: Sequence[str], warnings: Sequence[str], k: int) -> list[Layout]:
    """The footer's lines on slides of their own, under each slide's header and warnings, as many as they take."""
    texts, bands, top = _head(header, warnings, k)
    margin = MARGIN * k
    lines, step = _lines(footer, FRAME[0] * k - 2 * margin, SMALL * k), round(SMALL * k * LINE)
    per = (FRAME[1] * k - margin - top) // step
    if per < 1:
        raise ValueError("the header and the warnings fill a whole slide")
    return [Layout(FRAME[0] * k, FRAME[1] * k, k, 1, [*texts, (margin, top, lines[i: i + per], "black")], bands,
                   [], [], [], [], [], []) for i in range(0, len(lines), per)]


def _stack(slides: Sequence[Layout]) -> Layout:
    """Slides one under the other, as one figure: each slide's places moved down by the slides above it."""
    parts: dict[str, list] = {f: [] for f in ("texts", "bands", "boxes", "bars", "labelled", "captions", "headings",
                                              "legend")}
    for n, s in enumerate(slides):
        dy = n * s.height
        parts["texts"] += [(x, y + dy, lines, ink) for x, y, lines, ink in s.texts]
        parts["bands"] += [(x0, y0 + dy, x1, y1 + dy) for x0, y0, x1, y1 in s.bands]
        parts["boxes"] += [(x, y + dy, w, h) for x, y, w, h in s.boxes]
        parts["bars"] += [None if b is None else b + dy for b in s.bars]
        parts["labelled"] += s.labelled
        parts["captions"] += [(x, w, y + dy, lines) for x, w, y, lines in s.captions]
        parts["headings"] += [(x, w, y + dy, lines) for x, w, y, lines in s.headings]
        parts["legend"] += [(v, x, y + dy, w) for v, x, y, w in s.legend]
    return Layout(slides[0].width, slides[0].height * len(slides), slides[0].scale, len(slides), **parts)


def _split(n: int, per_row: int | None, parts: int) -> list[range]:
    """Tile indices in ``parts`` runs as even as can be, in order; tiles given in rows (``per_row``) split between
    rows, so that an image and its maps stay on one slide."""
    unit = per_row or 1
    rows = -(-n // unit)
    cuts = [min(n, round(rows * j / parts) * unit) for j in range(parts + 1)]
    return [range(a, b) for a, b in zip(cuts, cuts[1:]) if a < b]


def _slides(tiles: Sequence[Tile], header: Sequence[str], footer: Sequence[str], per_row: int | None,
            warnings: Sequence[str], columns: Sequence[str] | None, k: int) -> list[Layout]:
    """One slide if its tiles are drawn at least :data:`MIN_SIDE` px high; else the fewest slides that draw them so,
    each with the header and every warning (a slide shown alone still says what it shows and what to doubt): the
    tiles in even runs (:func:`_split`), the footer under the last run's tiles or on slides of its own (23 methods'
    parameters fill a slide), whichever draws the tiles larger. Where no number of slides reaches that size, the
    plan that draws the tiles largest."""
    one = _slide(tiles, header, footer, per_row, warnings, columns, k)
    if one and one.side >= MIN_SIDE * k:
        return [one]
    text = _text_slides(footer, header, warnings, k) if footer else []
    best = ([one], one.side) if one else None
    plans: dict[int, list[tuple[int, bool]]] = {}  # slides in all -> (runs of tiles, footer apart)
    for parts in range(1, -(-len(tiles) // (per_row or 1)) + 1):
        for apart in (False, True) if text else (False,):
            if parts > 1 or apart:
                plans.setdefault(parts + (len(text) if apart else 0), []).append((parts, apart))
    for total in sorted(plans):
        for parts, apart in plans[total]:
            runs = _split(len(tiles), per_row, parts)
            drawn = [_slide([tiles[i] for i in run], header, [] if apart or run is not runs[-1] else footer, per_row,
                            warnings, columns, k) for run in runs]
            if all(drawn) and (best is None or min(s.side for s in drawn) > best[1]):
                best = drawn + (text if apart else []), min(s.side for s in drawn)
        if best and best[1] >= MIN_SIDE * k:
            break
    if best is None:
        raise ValueError(f"{len(tiles)} tiles and this much text fit no {FRAME[0] * k}x{FRAME[1] * k} slides")
    return best[0]


def layout(tiles: Sequence[Tile], header: Sequence[str], footer: Sequence[str], per_row: int | None = None,
           warnings: Sequence[str] = (), columns: Sequence[str] | None = None, scale: int | None = None) -> Layout:
    """The figure's layout (see :func:`figure`): one 16:9 slide, or several stacked when one would draw the tiles
    under :data:`MIN_SIDE` (:func:`_slides`; each slide laid out by :func:`_slide`). ``scale`` 1 or 2, else chosen:
    2 when at 1 the tiles would be drawn at under half their own size and under 256 px. Tiles given as one row
    (one image and its maps) are laid out as any tiles are: in rows of any length, not one long strip."""
    if per_row is not None and len(tiles) <= per_row:
        per_row, columns = None, None
    if scale is None:
        one = layout(tiles, header, footer, per_row, warnings, columns, scale=1)
        own = min(tiles[0][0].shape[:2])
        return one if one.side >= min(own / 2, 256) else layout(tiles, header, footer, per_row, warnings, columns,
                                                                scale=2)
    return _stack(_slides(tiles, header, footer, per_row, warnings, columns, scale))


def _fitted(image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[Image.Image, int, int]:
    """A tile's image resized to fit its box (its own aspect kept, centred): the image and its top-left corner."""
    x, y, bw, bh = box
    img = Image.fromarray(render.to_rgb_uint8(image))
    k = min(bw / img.width, bh / img.height)
    size = (max(1, round(img.width * k)), max(1, round(img.height * k)))
    if size != img.size:
        img = img.resize(size, Image.LANCZOS)
    return img, x + (bw - img.width) // 2, y + (bh - img.height) // 2


def _view(tile: Tile) -> str | None:
    return tile[2] if len(tile) > 2 else None


def _views(tiles: Sequence[Tile]) -> list[str]:
    return [v for t in tiles if (v := _view(t))]


@functools.lru_cache(maxsize=4096)
def _wrap(text: str, width: int, size: int) -> tuple[str, ...]:
    return tuple(render.wrap(text, width, size))


def figure_text(tiles: Sequence[Tile], header: Sequence[str], footer: Sequence[str],
                warnings: Sequence[str] = (), columns: Sequence[str] = ()) -> list[str]:
    """Every text :func:`figure` may draw, as drawn (characters the font lacks written as their code), unwrapped:
    header, warnings, captions, column headings (a table's), the colour rule, footer and the bars' labels."""
    rule = render.colour_rule_text(_views(tiles))
    lines = [*header, *(f"⚠ {w}" for w in warnings), *(t[1] for t in tiles), *(columns or ()),
             *([f"Colours: {rule}"] if rule else []),
             *footer, *(label for v in dict.fromkeys(_views(tiles)) for label in render.COLOUR_RULES[v][1])]
    return [render.drawable(line) for line in lines]


def figure(tiles: Sequence[Tile], header: Sequence[str], footer: Sequence[str], per_row: int | None = None,
           warnings: Sequence[str] = (), columns: Sequence[str] | None = None) -> np.ndarray:
    """One image of 16:9 slides (:data:`FRAME`, or twice it for many tiles; one slide unless the tiles would be drawn
    small, :func:`layout`), each with the header lines (the first larger) and every warning shown on screen on its
    band; the captioned tiles in the grid that draws them largest (``per_row``: tiles given in rows, e.g. an image
    and its maps, kept in rows or turned into columns), each map's own colour bar and caption under it, then the
    colour rule in words and the footer lines (e.g. the parameters each map used). Text is wrapped, never cut, in a
    font that has every character used, and never smaller than :data:`SMALL` px at 1920 px wide; a colour bar's
    labels never overlap (:func:`bar_labels`)."""
    lay = layout(tiles, header, footer, per_row, warnings, columns)
    k = lay.scale
    canvas = Image.new("RGB", (lay.width, lay.height), "white")
    draw = ImageDraw.Draw(canvas)
    for band in lay.bands:
        draw.rectangle(band, fill=WARNING_BAND)
    for x, y, block, ink in lay.texts:
        for text, size in block:
            draw.text((x, y), text, fill=ink, font=render.font(size))
            y += round(size * LINE)
    for tile, box, bar, labelled in zip(tiles, lay.boxes, lay.bars, lay.labelled):
        img, x, y = _fitted(tile[0], box)
        canvas.paste(img, (x, y))
        if bar is not None:
            _draw_bar(draw, canvas, tile[2], box[0], bar, box[2], k, labels=labelled)
    small = render.font(SMALL * k)
    for col_x, col_w, top, text in [*lay.captions, *lay.headings]:  # each line centred in its column
        for n, line in enumerate(text):
            draw.text((col_x + (col_w - small.getlength(line)) / 2, top + n * round(SMALL * k * LINE)), line,
                      fill="black", font=small)
    for view, x, y, w in lay.legend:
        _draw_bar(draw, canvas, view, x, y, w, k)
    return np.asarray(canvas)


def _img_tag(image: np.ndarray, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(render.png_bytes(image)).decode()
    style = f' style="width:{width}px;image-rendering:pixelated"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{style}>'


def _figure_tag(tile: Tile, method: str | None) -> str:
    """One tile of the report: a map's figure says its colour rule (``data-rule``) and method (``data-method``), and
    its text alternative names the rule and its colours' ends."""
    view, esc = _view(tile), html.escape
    alt = tile[1] + (f", drawn in the {view} colour rule ({' to '.join(render.COLOUR_RULES[view][1])})" if view else "")
    marks = (f' data-rule="{view}"' if view else "") + (f' data-method="{esc(method)}"' if method else "")
    return f"<figure{marks}>{_img_tag(tile[0], alt, 192)}<figcaption>{esc(tile[1])}</figcaption></figure>"


def report_html(card: Any, tiles: Sequence[Tile], proba: np.ndarray, label: int | None,
                results: Sequence[Explanation], prov: dict[str, Any],
                warnings: Sequence[str] = (), quality: dict[str, str] | None = None) -> str:
    """A one-page, self-contained HTML report: image and maps with the colour scale, the prediction with its
    probabilities, the parameters each map used (:func:`captions.params_text`), the model card's summary and test
    metrics, and the provenance (every parameter, for reproducing)."""
    esc = html.escape
    order = np.argsort(proba)[::-1][:5]
    pred = int(order[0])
    verdict = "" if label is None else (" (correct)" if pred == label else f" (wrong; true class {esc(card.classes[label])})")
    m = card.metrics or {}
    metric_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.3f}</td></tr>" for k, v in
                          (("accuracy", m.get("accuracy")), ("balanced accuracy", m.get("balanced_accuracy")),
                           ("macro F1", m.get("macro_f1")), ("ROC AUC", m.get("roc_auc")), ("ECE", m.get("ece")))
                          if isinstance(v, (int, float)))
    figures = "".join(_figure_tag(t, m) for t, m in zip(tiles, map_methods(tiles, results, card.classes)))
    views = list(dict.fromkeys(_views(tiles)))
    bars = "".join(f"<p>{render.colorbar_svg(v)}</p>" for v in views)
    rule = esc(render.colour_rule_text(views))
    probs = "".join(f"<tr><td>{esc(card.classes[i])}</td><td>{proba[i]:.1%}</td></tr>" for i in order)
    params = "".join(f"<tr><td>{esc(e.title)}</td><td>{esc(card.classes[e.target])}</td>"
                     f"<td>{esc(captions.params_text(e.method, e.params))}</td><td>{e.seconds:.3f} s</td>"
                     f"<td>{esc(captions.extras_caption(e.extras))}</td></tr>"
                     for e in results)
    versions = ", ".join(f"{k} {v}" for k, v in prov["libraries"].items())
    quality_html = ""
    if quality:
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in quality.items())
        quality_html = (f"<h2>Explanation quality (this model, from the Quality page)</h2><table><tr><th>method</th>"
                        f"<th>numbers</th></tr>{rows}</table>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Explanation report: {esc(card.id)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}}
figure{{display:inline-block;margin:4px;text-align:center;width:200px;vertical-align:top}}
figcaption{{font-size:12px}} table{{border-collapse:collapse;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px}}
code{{font-size:11px}} .warning{{background:#fff3cd;border:1px solid #e0b000;padding:4px 8px}}</style></head><body>
<h1>Explanation report</h1>
<p><b>Prediction:</b> {esc(card.classes[pred])} ({proba[pred]:.1%}){verdict} &middot; <b>Model:</b> {esc(card.id)}
({esc(card.arch)}, {card.input_size} px, {esc(captions.origin(card))}) &middot; {esc(prov["created"])}</p>
{"".join(f'<p class="warning">&#9888; {esc(w)}</p>' for w in warnings)}
<div>{figures}</div>
{bars}<p><small>{rule} Each map is scaled on its own.</small></p>
<h2>Class probabilities (top 5)</h2><table><tr><th>class</th><th>probability</th></tr>{probs}</table>
<h2>Methods</h2><table><tr><th>method</th><th>explained class</th><th>parameters used (every one, with seeds, under Reproduce)</th><th>time</th><th>notes (LIME: samples and stability)</th></tr>{params}</table>
{quality_html}
<h2>Model</h2>{f'<table><tr><th>test metric</th><th>value</th></tr>{metric_rows}</table>' if metric_rows else
 '<p>No test metrics: not measured here (python -m core evaluate measures them).</p>'}
<p><small>{esc(f"Test split of {m.get('dataset', card.dataset)}: n = {m.get('n', '?')}. " if metric_rows else "")}Weights SHA-256 <code>{esc(card.weights_sha256)}</code>.
{esc(captions.origin(card)).capitalize() + "." if getattr(card, "imported", False) else ""}</small></p>
<h2>Reproduce</h2><p><small>Libraries: {esc(versions)}.</small></p>
<pre><code id="provenance">{esc(json.dumps(prov, indent=1, default=str))}</code></pre>
</body></html>
"""
