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
        "methods": [{"method": e.method, "target": e.target, "target_name": card.classes[e.target],
                     "params": e.params} for e in results],
        "libraries": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def png_with_provenance(image: np.ndarray, prov: dict[str, Any]) -> bytes:
    """PNG bytes with the provenance JSON in a ``provenance`` text chunk (``Image.open(f).text["provenance"]``)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("provenance", json.dumps(prov, default=str))
    buf = io.BytesIO()
    Image.fromarray(render.to_rgb_uint8(image)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _text_block(lines: Sequence[str], width: int, line_height: int = 14) -> np.ndarray:
    canvas = Image.new("RGB", (width, 4 + line_height * len(lines)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, 2 + i * line_height), line, fill="black")
    return np.asarray(canvas)


def figure(tiles: Sequence[tuple[np.ndarray, str]], header: Sequence[str], footer: Sequence[str],
           colorbar: np.ndarray, per_row: int = 6) -> np.ndarray:
    """One image: header lines, the captioned tiles (equal sizes) in rows of ``per_row``, the colour bar,
    footer lines (e.g. each method's parameters)."""
    h, w = tiles[0][0].shape[:2]
    pad, cap_h = 4, 28
    ncols, nrows = min(per_row, len(tiles)), -(-len(tiles) // per_row)
    width = max(pad + ncols * (w + pad), colorbar.shape[1] + 2 * pad, 480)
    grid = Image.new("RGB", (width, pad + nrows * (h + cap_h + pad)), "white")
    draw = ImageDraw.Draw(grid)
    chars = max(8, w // 6)
    for k, (tile, caption) in enumerate(tiles):
        r, c = divmod(k, per_row)
        x, y = pad + c * (w + pad), pad + r * (h + cap_h + pad)
        grid.paste(Image.fromarray(render.to_rgb_uint8(tile)), (x, y))
        for i, part in enumerate((caption[:chars], caption[chars : 2 * chars])):
            draw.text((x, y + h + 2 + 12 * i), part, fill="black")
    bar = Image.new("RGB", (width, colorbar.shape[0] + 2 * pad), "white")
    bar.paste(Image.fromarray(render.to_rgb_uint8(colorbar)), (pad, pad))
    return np.concatenate([_text_block(header, width), np.asarray(grid), np.asarray(bar),
                           _text_block(footer, width)], axis=0)


def _img_tag(image: np.ndarray, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(render.png_bytes(image)).decode()
    style = f' style="width:{width}px;image-rendering:pixelated"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{style}>'


def report_html(card: Any, tiles: Sequence[tuple[np.ndarray, str]], proba: np.ndarray, label: int | None,
                results: Sequence[Explanation], colorbar: np.ndarray, prov: dict[str, Any],
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
    figures = "".join(f"<figure>{_img_tag(t, c, 192)}<figcaption>{esc(c)}</figcaption></figure>" for t, c in tiles)
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
({esc(card.arch)}, {card.input_size} px, trained on {esc(card.dataset)}) &middot; {esc(prov["created"])}</p>
{"".join(f'<p class="warning">&#9888; {esc(w)}</p>' for w in warnings)}
<div>{figures}</div>
<p>{_img_tag(colorbar, "colour scale")}<br><small>Colour scale of the maps (each map scaled on its own).</small></p>
<h2>Class probabilities (top 5)</h2><table><tr><th>class</th><th>probability</th></tr>{probs}</table>
<h2>Methods</h2><table><tr><th>method</th><th>explained class</th><th>parameters (seed included)</th><th>time</th><th>notes (LIME: samples and stability)</th></tr>{params}</table>
{quality_html}
<h2>Model</h2><table><tr><th>test metric</th><th>value</th></tr>{metric_rows}</table>
<p><small>Test split of {esc(card.dataset)}: n = {m.get("n", "?")}. Weights SHA-256 <code>{esc(card.weights_sha256)}</code>.</small></p>
<h2>Reproduce</h2><p><small>Libraries: {esc(versions)}.</small></p>
<pre><code id="provenance">{esc(json.dumps(prov, indent=1, default=str))}</code></pre>
</body></html>
"""
