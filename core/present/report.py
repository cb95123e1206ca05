"""Exports that reproduce: a figure (PNG) and a one-page report (self-contained HTML) of explanations.

Every export carries its provenance: the model id and weights digest, each method's full parameters with
its seed and target, the library versions and the date, in the PNG as a ``provenance`` text chunk and in
the report as a JSON block, so anyone holding the file can recompute the same maps.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
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


def png_with_provenance(image: np.ndarray, prov: dict[str, Any], text: Sequence[str] = ()) -> bytes:
    """PNG bytes with the provenance JSON in a ``provenance`` text chunk (``Image.open(f).text["provenance"]``) and
    the text drawn in the image, as drawn, in a ``Description`` chunk (screen readers, search, checks)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("provenance", json.dumps(prov, default=str))
    if text:
        info.add_itxt("Description", "\n".join(text))
    buf = io.BytesIO()
    Image.fromarray(render.to_rgb_uint8(image)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


#: a tile: the image, its caption, and its colour rule ("signed", "magnitude", or None for an original / a picture)
Tile = tuple  # (np.ndarray, str) or (np.ndarray, str, str | None)

TEXT, SMALL = 12, 10  # font sizes (px)


def _text_block(lines: Sequence[str], width: int, size: int = TEXT, fill: str = "black",
                background: str = "white") -> np.ndarray:
    """Lines wrapped to ``width`` (nothing cut), in the export font."""
    wrapped = [part for line in lines for part in render.wrap(line, width - 8, size)]
    step = size + 4
    canvas = Image.new("RGB", (width, 4 + step * len(wrapped)), background)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(wrapped):
        draw.text((4, 2 + i * step), line, fill=fill, font=render.font(size))
    return np.asarray(canvas)


def _views(tiles: Sequence[Tile]) -> list[str]:
    return [t[2] for t in tiles if len(t) > 2 and t[2]]


def figure_text(tiles: Sequence[Tile], header: Sequence[str], footer: Sequence[str],
                warnings: Sequence[str] = ()) -> list[str]:
    """Every text :func:`figure` draws, as drawn (characters the font lacks written as their code)."""
    rule = render.colour_rule_text(_views(tiles))
    lines = [*header, *(f"⚠ {w}" for w in warnings), *(t[1] for t in tiles), *([f"Colours: {rule}"] if rule else []),
             *footer, *(label for v in dict.fromkeys(_views(tiles)) for label in render.COLOUR_RULES[v][1])]
    return [render.drawable(line) for line in lines]


def figure(tiles: Sequence[Tile], header: Sequence[str], footer: Sequence[str], per_row: int = 6,
           warnings: Sequence[str] = ()) -> np.ndarray:
    """One image: header lines, every warning shown on screen, the captioned tiles (equal sizes) in rows of
    ``per_row`` with each map's own colour bar under it, the colour rule in words, then footer lines (e.g. each
    method's parameters). Text is wrapped, never cut, in a font that has every character used."""
    h, w = tiles[0][0].shape[:2]
    pad, step = 6, SMALL + 3
    ncols, nrows = min(per_row, len(tiles)), -(-len(tiles) // per_row)
    width = max(pad + ncols * (w + pad), 480)
    captions_ = [render.wrap(t[1], w, SMALL) for t in tiles]
    cap_h = step * max(len(c) for c in captions_)
    bar_h = 14 + SMALL + 4 if _views(tiles) else 0
    cell_h = h + bar_h + cap_h + pad
    grid = Image.new("RGB", (width, pad + nrows * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, per_row)
        x, y = pad + c * (w + pad), pad + r * cell_h
        grid.paste(Image.fromarray(render.to_rgb_uint8(tile[0])), (x, y))
        y += h + 2
        view = tile[2] if len(tile) > 2 else None
        if view:
            grid.paste(Image.fromarray(render.rule_colorbar(view, width=w, height=8, size=SMALL - 1)), (x, y))
        y += bar_h
        for i, line in enumerate(captions_[k]):
            draw.text((x, y + step * i), line, fill="black", font=render.font(SMALL))
    blocks = [_text_block(header, width)]
    if warnings:
        blocks.append(_text_block([f"⚠ {w_}" for w_ in warnings], width, fill="#7a4b00", background="#fff3cd"))
    blocks.append(np.asarray(grid))
    rule = render.colour_rule_text(_views(tiles))
    blocks.append(_text_block(([f"Colours: {rule}"] if rule else []) + list(footer), width))
    return np.concatenate(blocks, axis=0)


def _img_tag(image: np.ndarray, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(render.png_bytes(image)).decode()
    style = f' style="width:{width}px;image-rendering:pixelated"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{style}>'


def report_html(card: Any, tiles: Sequence[Tile], proba: np.ndarray, label: int | None,
                results: Sequence[Explanation], prov: dict[str, Any],
                warnings: Sequence[str] = (), quality: dict[str, str] | None = None) -> str:
    """A one-page, self-contained HTML report: image and maps with the colour scale, the prediction with its
    probabilities, each method's parameters, the model card's summary and test metrics, and provenance."""
    esc = html.escape
    order = np.argsort(proba)[::-1][:5]
    pred = int(order[0])
    verdict = "" if label is None else (" (correct)" if pred == label else f" (wrong; true class {esc(card.classes[label])})")
    m = card.metrics or {}
    metric_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.3f}</td></tr>" for k, v in
                          (("accuracy", m.get("accuracy")), ("balanced accuracy", m.get("balanced_accuracy")),
                           ("macro F1", m.get("macro_f1")), ("ROC AUC", m.get("roc_auc")), ("ECE", m.get("ece")))
                          if isinstance(v, (int, float)))
    figures = "".join(f"<figure>{_img_tag(t[0], t[1], 192)}<figcaption>{esc(t[1])}</figcaption></figure>" for t in tiles)
    views = list(dict.fromkeys(_views(tiles)))
    bars = "".join(f"<p>{render.colorbar_svg(v)}</p>" for v in views)
    rule = esc(render.colour_rule_text(views))
    probs = "".join(f"<tr><td>{esc(card.classes[i])}</td><td>{proba[i]:.1%}</td></tr>" for i in order)
    params = "".join(f"<tr><td>{esc(e.title)}</td><td>{esc(card.classes[e.target])}</td>"
                     f"<td><code>{esc(json.dumps(e.params, default=str))}</code></td><td>{e.seconds:.3f} s</td>"
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
<h2>Methods</h2><table><tr><th>method</th><th>explained class</th><th>parameters (seed included)</th><th>time</th><th>notes (LIME: samples and stability)</th></tr>{params}</table>
{quality_html}
<h2>Model</h2>{f'<table><tr><th>test metric</th><th>value</th></tr>{metric_rows}</table>' if metric_rows else
 '<p>No test metrics: not measured here (python -m core evaluate measures them).</p>'}
<p><small>{esc(f"Test split of {m.get('dataset', card.dataset)}: n = {m.get('n', '?')}. " if metric_rows else "")}Weights SHA-256 <code>{esc(card.weights_sha256)}</code>.
{esc(captions.origin(card)).capitalize() + "." if getattr(card, "imported", False) else ""}</small></p>
<h2>Reproduce</h2><p><small>Libraries: {esc(versions)}.</small></p>
<pre><code id="provenance">{esc(json.dumps(prov, indent=1, default=str))}</code></pre>
</body></html>
"""
