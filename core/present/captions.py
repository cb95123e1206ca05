"""The words around the pictures: captions under maps, the lines that head and foot an export, the notes the pages
show beside results. Kept in the library (no Streamlit), so the pages, the exports and the CLI say the same thing."""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from core.explainers import Explanation, get_method

#: how each method-specific extra is shown under its map; an extra not listed here is simply not shown
EXTRAS_TEXT: dict[str, str] = {
    "convergence_delta": "convergence δ = {:.3g}",
    "output_difference": "f(x) − f(baseline) = {:.3g}",
    "n_superpixels": "{} superpixels",
    "score": "local fit R² = {:.2f}",
    "base_value": "f(fully masked) = {:.3g}",
    "background": "background: {}",
    "baseline": "{}",
    # the fast inference path: float32 ONNX Runtime differs from torch by float rounding only, and says so
    "inference": "model passes: {}",
}
BACKENDS = {"onnxruntime": "ONNX Runtime, float32 (equal to torch up to float rounding)", "torch": "torch"}


def _unstable(extras: dict[str, Any]) -> bool:
    return min(extras["stability"], extras["topk_agreement"]) < extras["stability_target"]


def stability_caption(extras: dict[str, Any]) -> str | None:
    """LIME's samples and how stable its answer is (``core.explainers.lime_stability``), in words; ``None`` for
    other methods."""
    if "stopped" not in extras:
        return None
    how = {"stable": "adaptive, stable", "maximum": "adaptive, stopped at its maximum before it was stable",
           "fixed": "fixed count"}[extras["stopped"]]
    text = (f"{extras['samples']:,} samples ({how}): another run would agree ρ ≈ {extras['stability']:.2f}, "
            f"its top {extras['top_k']} superpixels with their signs {extras['topk_agreement']:.0%}")
    if _unstable(extras):
        need = extras.get("samples_to_target")
        text += (f"; not yet stable (target {extras['stability_target']:.2f}): " + (f"about {need:,} samples would reach it"
                 if need else "more samples than 20,000 would be needed, or the model is not locally linear here"))
    return text


def more_samples(extras: dict[str, Any], params: dict[str, Any]) -> tuple[str, int] | None:
    """The LIME parameter to raise, and to what, for a map that is not yet stable (``None`` when it is, or when it
    is at the largest count the parameter allows): the samples the stability predicts, else double."""
    if "stopped" not in extras or not _unstable(extras):
        return None
    name = "num_samples" if params.get("mode") == "fixed" else "max_samples"
    want = min(20000, max(int(extras.get("samples_to_target") or 0), 2 * int(extras["samples"])))
    return (name, want) if want > int(params.get(name, 0)) else None


def extras_caption(extras: dict[str, Any]) -> str:
    """One line from whichever extras a method reported (methods report different ones, or none)."""
    parts = []
    stability = stability_caption(extras)
    if stability:
        parts.append(stability)
    for key, fmt in EXTRAS_TEXT.items():
        value = extras.get(key)
        if key == "inference":
            value = BACKENDS.get(value, value)
        if value is not None:
            try:
                parts.append(fmt.format(value))
            except (TypeError, ValueError):
                parts.append(f"{key} = {value}")
    return " · ".join(parts)


def target_label(e: Explanation, classes: Sequence[str]) -> str:
    """``Grad-CAM → circle``, or ``... (the same map for every class)`` for a class-agnostic method."""
    if not get_method(e.method).class_specific:
        return f"{e.title} (the same map for every class)"
    return f"{e.title} → {classes[e.target]}"


def map_caption(e: Explanation, classes: Sequence[str]) -> str:
    """The caption under a map tile: method, class, seconds, and whether it is flat."""
    return f"{target_label(e, classes)} · {e.seconds:.3f} s" + (" · flat" if e.flat else "")


def used_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that shaped a map of ``method``: every one given, except a declared parameter whose ``when``
    condition does not hold (LIME's quickshift kernel under a SLIC segmentation, its sample count in adaptive
    mode). A condition's parameter not given counts at its default; a parameter not declared is kept."""
    declared = {p.name: p for p in get_method(method).params}

    def holds(name: str, seen: frozenset[str] = frozenset()) -> bool:
        p = declared.get(name)
        if p is None or p.when is None or name in seen:
            return True
        other, value = p.when
        current = params.get(other, declared[other].default if other in declared else None)
        return str(current) == str(value) and holds(other, seen | {name})

    return {k: v for k, v in params.items() if holds(k)}


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def params_text(method: str, params: dict[str, Any]) -> str:
    """The parameters a map used, in words, from each one's declared label: ``Steps = 64, Baseline = zeros, Seed = 0``
    (``no parameters`` for a method without any). For reading; the provenance keeps every parameter."""
    declared = {p.name: p for p in get_method(method).params}
    parts = [f"{declared[k].widget_label() if k in declared else k} = {_value_text(v)}"
             for k, v in used_params(method, params).items()]
    return ", ".join(parts) or "no parameters"


def params_line(e: Explanation, classes: Sequence[str]) -> str:
    """A footer line for one map: method, class and the parameters it used (:func:`params_text`)."""
    return f"{target_label(e, classes)}: {params_text(e.method, e.params)}"


def origin(card: Any) -> str:
    """Where a model came from, in words: trained here on a dataset, torchvision's ImageNet weights, or imported from a
    file of another format (its name and digest)."""
    if getattr(card, "imported", False):
        s = card.source
        return (f"imported from {s.get('name', '?')} ({s.get('format', '?')}, SHA-256 {str(s.get('sha256', ''))[:12]}…), "
                "not trained here")
    if card.from_torchvision:
        return "torchvision's ImageNet weights"
    return f"trained here on {card.dataset}"


def model_line(card: Any) -> str:
    return (f"Model {card.id} ({card.arch}, {card.input_size} px, {origin(card)}) · weights "
            f"{card.weights_sha256[:16]}…")


def prediction_line(card: Any, proba: np.ndarray, label: int | None, created: str) -> str:
    pred = int(proba.argmax())
    truth = "uploaded image" if label is None else f"true class {card.classes[label]}"
    return f"Prediction: {card.classes[pred]} ({proba[pred]:.1%}) · {truth} · {created}"


def prediction_markdown(card: Any, proba: np.ndarray, label: int | None, top_k: int = 5) -> list[str]:
    """What Explain says above the maps: the true and predicted classes (a dataset image) or the prediction and the
    top ``top_k`` (an upload to a model with many classes), in Markdown."""
    pred = int(proba.argmax())
    if label is not None:
        verdict = ":green[correct]" if pred == label else ":red[wrong]"
        return [f"**True class:** {card.classes[label]} · **Predicted:** {card.classes[pred]} ({proba[pred]:.1%}) "
                f"{verdict}"]
    lines = [f"**Uploaded image** · **Predicted:** {card.classes[pred]} ({proba[pred]:.1%})"]
    if len(card.classes) > top_k:
        top = np.argsort(-proba)[:top_k]
        lines.append(f"**Top {top_k}:** " + " · ".join(f"{k + 1}. {card.classes[c]} ({proba[c]:.1%})"
                                                      for k, c in enumerate(top)))
    return lines


def quality_note(known: dict[str, tuple[float, int]]) -> str:
    """The quality numbers already computed for a model and method (metric -> (mean, n)), in one line."""
    from core.quality import get_metric

    return ("Quality: " + ", ".join(f"{get_metric(m).title} {v:.2f} (n={k})" for m, (v, k) in sorted(known.items()))
            if known else "")


def compare_header(card: Any, dataset: str, split: str, target_mode: str, colours: str, shared: bool,
                   created: str) -> list[str]:
    return [f"Model {card.id} ({card.arch}, {card.input_size} px, {origin(card)}) · {dataset} {split} · class explained: "
            f"{target_mode.lower()}",
            f"Colours: {colours.lower()}, {'shared' if shared else 'per-map'} scale · {created}"]


def method_params_line(method: str, params: dict[str, Any]) -> str:
    """A footer line for one method of a grid: its title and the parameters it used (:func:`params_text`)."""
    return f"{get_method(method).title}: {params_text(method, params)}"


def scale_caption(methods: Sequence[str], units: dict[str, str], shared: bool,
                  ranges: dict[str, float] | None = None) -> str:
    """What the colour bar under a grid means: per-map, or shared within each unit, with the range each shared scale
    used (``ranges``: unit -> the |value| at full colour, the 99th percentile of |map| over the unit's maps)."""
    groups = sorted(set(units.values()))
    if not shared:
        return "Per-map scale"

    def one(u: str) -> str:
        titles = ", ".join(get_method(m).title for m in methods if units[m] == u)
        full = f" at ±{ranges[u]:.3g}" if ranges and u in ranges else ""
        return f"{u}{full}: {titles}"

    return ("Shared scale within each unit, full colour at the 99th percentile of |map| over the unit's maps ("
            + "; ".join(one(u) for u in groups) + "); maps in different units are never put on one scale")


def cancelled_note(missing: dict[str, int]) -> str:
    """Cancelled work: how many cells were not computed, by method title (``{title: cells}``)."""
    n = sum(missing.values())
    return (f"Cancelled: {n} cell{'s' * (n != 1)} not computed ({', '.join(missing)}); the maps already computed "
            "are shown.")


def shortcut_note(report: Any, reveal: float) -> str:
    """Which methods' maps show that the model looks at the spurious marker (``marker_mass`` at least ``reveal``
    times the marker's area share); "" without marker-mass cells."""
    marker = [c for c in report.cells if c.metric == "marker_mass" and c.skipped is None]
    if not marker:
        return ""
    base = float(np.nanmean([np.nanmean(c.extras["random_baseline"]) for c in marker]))
    shown = [get_method(c.method).title for c in marker if c.mean >= reveal * base]
    return (f"**The shortcut.** The marker covers {base:.1%} of each image; a map that puts {reveal:g}x that share "
            "of its positive mass or more on it reveals that the model looks there: "
            + (", ".join(shown) if shown else "no method here") + ".")


def run_agreement_note(report: Any) -> str:
    cells = [c for c in report.cells if c.metric == "run_agreement" and c.skipped is None]
    if not cells:
        return ""
    return ("Run-to-run agreement of the stochastic methods: " + ", ".join(
        f"{get_method(c.method).title} ρ = {c.mean:.2f}" for c in cells) + ". LIME's agreement against its number of "
        "samples is below.")


def quality_directions(metrics: Sequence[str]) -> str:
    from core.quality import get_metric

    return ("Directions: " + ", ".join(f"{get_metric(m).title} {'higher' if get_metric(m).higher_is_better else 'lower'}"
                                       " is better" for m in metrics)
            + ". Localisation scores have the random map's score (the mask's area fraction) as a dotted line.")


def quality_cell_text(row: dict[str, Any]) -> str:
    return "n/a" if row["skipped"] else f"{row['mean']:.3f} ± {row['ci95']:.3f}"


def ranking_lines(report: Any) -> list[str]:
    """The ranking as Markdown lines, each with its reasons and the sanity-check verdict."""
    failed = set(report.sanity_failures())
    return [f"{k}. **{get_method(m).title}**{' :red[fails the sanity check]' if m in failed else ''} — {why}."
            for k, (m, _, why) in enumerate(report.ranking(), 1)]


def dataset_summary(splits: dict[str, Any]) -> str:
    """What the Data page says of a dataset's loaded splits: image format, source files (modes, sizes), layout and
    official split sizes, from what each split reported in its ``extras``."""
    first = next(iter(splits.values()))
    h, w, c = first.images.shape[1:]
    summary = [f"Model-ready images: {h}x{w}, {'grayscale' if c == 1 else 'RGB'}, uint8."]
    modes, sizes = Counter(), Counter()  # summed over the splits (each split reports its own files)
    for d in splits.values():
        modes.update(d.extras.get("modes", {}))
        sizes.update(d.extras.get("sizes", {}))
    n_files = sum(modes.values())
    if modes:
        summary.append(f"Source files: {n_files} in all splits; modes " + ", ".join(
            f"{m} {n} of {n_files}" for m, n in sorted(modes.items())) + ".")
    if sizes:
        top = sizes.most_common(6)
        summary.append("Most common source sizes: " + ", ".join(f"{s} ({n} files)" for s, n in top)
                       + (" …" if len(sizes) > 6 else "") + ".")
    if first.extras.get("layout"):
        layout = first.extras["layout"]
        if first.extras.get("split_seed") is not None:
            layout += f"; stratified split {first.extras['split_fractions']} with seed {first.extras['split_seed']}"
        summary.append(f"Layout: {layout}.")
    if "official_size" in first.extras:
        summary.append("Official split sizes: " + ", ".join(f"{s} {d.extras['official_size']:,}"
                                                           for s, d in splits.items()) + ".")
    return " ".join(summary)
