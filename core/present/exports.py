"""The files a page offers for download, built here so every face exports the same thing: Explain's figure (PNG)
and report (HTML), Compare's grid (PNG) and raw maps (.npz), and the Quality page's per-image values (CSV). Each
carries what reproduces it (model digest, parameters with seeds, library versions, date)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from core.explainers import Explanation, get_method
from core.explainers.agreement import maps_npz
from core.present import captions, report


@dataclass(frozen=True)
class Export:
    data: bytes | str
    file_name: str
    mime: str


def explain_exports(card: Any, results: Sequence[Explanation], tiles: Sequence[report.Tile],
                    proba: np.ndarray, label: int | None, image_ref: dict[str, Any],
                    doubts: Sequence[str], quality: dict[str, str] | None = None) -> tuple[Export, Export]:
    """Explain's figure (16:9 slides in one PNG with the provenance inside: the prediction as its title, then the
    model) and one-page report (HTML); both carry every warning (``doubts``: the model's and this input's), the
    parameters each map used (the provenance keeps every parameter) and each map's colour rule, in words and marked
    for machines: the PNG's ``rules`` chunk, the report's ``data-rule`` (:func:`report.drawn_rules`)."""
    prov = report.provenance(card, results, image_ref)
    header = [captions.prediction_line(card, proba, label, prov["created"]), captions.model_line(card)]
    footer = [captions.params_line(e, card.classes) for e in results]
    footer += [f"{e.title}: {note}" for e in results if (note := captions.stability_caption(e.extras))]
    name = f"xai_{card.id}_{image_ref.get('index', 'upload')}"
    png = report.png_with_provenance(report.figure(tiles, header, footer, warnings=doubts), prov,
                                     report.figure_text(tiles, header, footer, doubts),
                                     report.drawn_rules(tiles, results, card.classes))
    html = report.report_html(card, tiles, proba, label, results, prov, list(doubts), quality)
    return Export(png, f"{name}.png", "image/png"), Export(html, f"{name}.html", "text/html")


def compare_exports(card: Any, dataset: str, split: str, indices: Sequence[int], methods: Sequence[str],
                    params: dict[str, dict], target_mode: str, colours: str, shared: bool,
                    results: dict[tuple[int, str], Explanation], tiles: Sequence[report.Tile],
                    images: dict[int, np.ndarray], folder: str | None = None,
                    warnings: Sequence[str] = ()) -> tuple[Export, Export]:
    """Compare's grid (16:9 slides in one PNG with the provenance, the model's warnings and each map's colour rule
    inside; its rows, an image and its maps, may be drawn as columns when that draws the tiles larger) and its raw
    maps (.npz with the images and a JSON meta)."""
    ordered = [results[(i, m)] for i in indices for m in methods if (i, m) in results]
    prov = report.provenance(card, ordered, {"dataset": dataset, "split": split, "indices": [int(i) for i in indices],
                                             "folder": folder})
    head = captions.compare_header(card, dataset, split, target_mode, colours, shared, prov["created"])
    foot = [captions.method_params_line(m, params[m]) for m in methods]
    columns = ["Original", *(get_method(m).title for m in methods)]
    png = report.png_with_provenance(report.figure(tiles, head, foot, per_row=len(methods) + 1, warnings=warnings,
                                                   columns=columns),
                                     prov, report.figure_text(tiles, head, foot, warnings, columns),
                                     report.drawn_rules(tiles, ordered, card.classes))
    meta = {"model": card.id, "dataset": dataset, "split": split, "classes": list(card.classes),
            "methods": {m: params[m] for m in methods}, "provenance": prov,
            "targets": {f"{i}_{m}": e.target for (i, m), e in results.items()}}
    npz = maps_npz({k: e.attribution for k, e in results.items()}, images, meta)
    return Export(png, "xai_compare.png", "image/png"), Export(npz, "xai_maps.npz", "application/octet-stream")


def quality_csv(report_: Any) -> Export:
    """The per-image values of a quality report (one row per image, method and metric)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["image", "method", "metric", "value"])
    w.writeheader()
    w.writerows(report_.rows)
    return Export(buf.getvalue(), f"quality_{report_.model_id}.csv", "text/csv")
