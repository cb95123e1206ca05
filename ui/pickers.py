"""Selections shared by the Explain and Compare pages."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import streamlit as st

import core
from core.modelling.checkpoints import broken_models
from core.datasets import ArrayDataset
from core.explainers import get_method

from . import cache, data_panel, state


@dataclass
class Selection:
    dataset_name: str
    model_path: str
    card: Any
    model: Any
    ds: ArrayDataset | None  # None when the dataset's files are missing (uploads still work)
    split: str
    root: str | None = None


def model_label(card) -> str:
    """A model's name in every model list: id, architecture, test accuracy, and whether training was cut short
    (ImageNet models: the published top-1 accuracy, and whether the weights are here; imported models: that they
    were imported, in which format, and their accuracy once measured)."""
    if card.from_torchvision:
        top1 = (card.training.get("published_imagenet_1k") or {}).get("acc@1")
        title = card.training.get("title", card.arch)
        if card.training.get("published_file") is False or top1 is None:
            return f"{title} (ImageNet, NOT the published weights: accuracy unknown)"
        here = "" if card.weights_sha256 else ", weights not here yet"
        return f"{title} (ImageNet, top-1 {top1:.1f}% published{here})"
    acc = card.metrics.get("accuracy")
    if card.imported:  # made elsewhere: no training record here, only what was measured since
        measured = f"acc {acc:.1%}" if acc is not None else "not evaluated"
        return f"{card.id} (imported {card.source.get('format', 'model')}, {measured})"
    cut = "" if card.training.get("status", "complete") == "complete" else ", stopped early"
    return f"{card.id} ({card.arch}, acc {acc:.1%}{cut})" if acc is not None else f"{card.id} ({card.arch}, not evaluated)"


def trust_banner(card) -> None:
    """Reasons not to believe this model's predictions, with the numbers (core.modelling.trust decides)."""
    from core.modelling.trust import model_warnings

    st_trust_box(model_warnings(card))
    if card.training.get("status", "complete") != "complete":
        st.caption(f"Training {card.training['status']}.")


def st_trust_box(reasons: Sequence[str], who: str = "this model") -> None:
    """One warning box with every reason not to trust ``who``'s predictions (in presentation mode, the first reason
    and how many more, so that the maps fit the screen)."""
    reasons = list(dict.fromkeys(reasons))
    if len(reasons) > 1 and st.session_state.get(state.PRESENT):  # a room sees the maps; the warning stays, shorter
        st.warning(f"**Do not trust {who}'s predictions blindly:** {reasons[0]} (and {len(reasons) - 1} more "
                   "reason(s): presentation mode off shows them).", icon=":material/warning:")
    elif len(reasons) == 1:
        st.warning(f"**Do not trust {who}'s predictions blindly:** {reasons[0]}.", icon=":material/warning:")
    elif reasons:
        st.warning(f"**Do not trust {who}'s predictions blindly:**\n" + "\n".join(f"- {r}" for r in reasons),
                   icon=":material/warning:")


def weights_panel(arch: str, problem: Exception) -> None:
    """An ImageNet model whose weights are missing or unusable: exactly how to get them, and a box for a file the
    user already has (checked, then remembered; nothing is copied)."""
    from core.modelling.pretrained import cache_path, use_weights_file, weights_enum

    st.warning(str(problem), icon=":material/download:")
    if weights_enum(arch).url not in str(problem):  # a file that is there but unusable: how to get the right one
        st.markdown(f"With internet access: `python -m core fetch-weights {arch}` (progress bar, checksum), or download "
                    f"[{weights_enum(arch).url}]({weights_enum(arch).url}) and save it as `{cache_path(arch)}`.")
    with st.form(key=f"weights_form_{arch}"):
        path = st.text_input("…or the path of the weights file you have", key=f"weights_path_{arch}")
        if st.form_submit_button("Use this file"):
            if not path.strip():
                st.error("Type the path of the weights file first")
                return
            try:
                use_weights_file(arch, path.strip())  # a file that is not the published one: the card says so
            except core.XaiError as exc:
                st.error(str(exc))
                return
            cache.clear_all()
            st.rerun()


def import_link() -> None:
    """The link beside *Train* wherever a model list is empty."""
    st.page_link("pages/import_model.py", label="Import a model trained elsewhere", icon=":material/upload_file:")


def dataset_models(key: str) -> tuple[str, dict[str, Any]] | None:
    """A dataset selector and its models ``{path: card}``; with no model yet, says so with links to Train and
    Import and returns None (the Performance and Quality pages)."""
    name = st.selectbox("Dataset", core.list_datasets(labelled=True), key=key, format_func=data_panel.label)
    models = cache.models_for(name)
    if not models:
        st.info("No trained model for this dataset yet.")
        c1, c2 = st.columns(2)
        with c1:
            st.page_link("pages/train.py", label="Train one", icon=":material/model_training:")
        with c2:
            import_link()
        return None
    return name, dict(models)


def pick_model(on_missing: Callable[[str], None]) -> Selection | None:
    """Dataset, model and split selectors; calls ``on_missing(dataset)`` when no model exists for it."""
    c1, c2, c3 = st.columns([2, 3, 1])  # the model's name is the longest: its box has the room
    dataset_name = c1.selectbox("Dataset", core.list_datasets(), key=state.DATASET, format_func=data_panel.label)
    c1.caption(data_panel.state_caption(dataset_name))
    models = cache.models_for(dataset_name)
    broken = broken_models()
    if broken:
        with c2.expander(f"{len(broken)} model folder{'s' * (len(broken) != 1)} cannot be used"):
            for path, reason in broken:
                st.markdown(f"- `{Path(path).name}`: {reason}")
    if not models:
        on_missing(dataset_name)
        return None
    cards = dict(models)
    model_path = c2.selectbox("Model", list(cards), key=state.MODEL, format_func=lambda p: model_label(cards[p]))
    photos_only = data_panel.get_source(dataset_name).photos_only
    split = c3.selectbox("Split", ["test", "val", "train"], key=state.SPLIT, disabled=photos_only,
                         help="These models take photos you upload: there are no dataset images" if photos_only else None)
    try:
        model, card = cache.model(model_path, cards[model_path].weights_sha256)
    except core.XaiError as exc:
        if cards[model_path].from_torchvision:
            weights_panel(cards[model_path].arch, exc)
        else:
            st.error(str(exc))
        return None
    trust_banner(card)
    if card.from_torchvision:
        from core.modelling.pretrained import published_accuracy

        c2.caption(f"{published_accuracy(card)}; {card.training.get('gflops', 0):.1f} GFLOPs per image, "
                   f"{(card.training.get('num_params') or 0) / 1e6:.1f} M parameters")
    root, status = data_panel.resolve(dataset_name, card)
    ds = None
    if status.ready:
        try:
            ds = fitted_dataset(dataset_name, split, card, root)
        except core.XaiError as exc:
            st.error(str(exc))
    return Selection(dataset_name, model_path, card, model, ds, split, root)


def fitted_dataset(name: str, split: str, card, root: str | None) -> ArrayDataset:
    """The split as ``card``'s model sees it (:func:`core.modelling.cards.fit_dataset`: an imported model's class
    order mapped by name, grey images repeated over a colour model's channels), with a caption saying so."""
    ds = cache.fitted_dataset(name, split, card.input_size, root, tuple(card.classes), card.channels, card)
    mapping = ds.extras.get("class_mapping")
    if mapping:
        st.caption(f"{card.id} names this dataset's classes in another order, matched by name: {mapping}.")
    if cache.dataset(name, split, card.input_size, root).images.shape[-1] != ds.images.shape[-1]:
        st.caption(f"This dataset's grey images are repeated over {card.id}'s three colour channels.")
    return ds


def pick_methods(model, key: str, default: Sequence[str]) -> list[str]:
    """The methods multiselect, offering only the methods that apply to this model; the others are named with the
    reason each method declares (e.g. DeepLIFT on a Vision Transformer)."""
    from core.explainers import hidden_methods

    offered = core.list_methods(model)
    state.restore(key)  # a run that did not draw the picker (an upload not chosen yet) keeps the choice
    if key in st.session_state:  # a choice made for another model keeps what still applies
        st.session_state[key] = [m for m in st.session_state[key] if m in offered]
    methods = st.multiselect("Methods", offered, default=[m for m in default if m in offered], key=key,
                             format_func=lambda m: get_method(m).title)
    state.remember(key)
    hidden = hidden_methods(model)
    if hidden:
        with st.expander(f"{len(hidden)} method{'s' * (len(hidden) != 1)} not offered for this model"):
            for m, why in hidden.items():
                st.markdown(f"- **{get_method(m).title}**: {why}")
    return methods


def explain_cached(sel: Selection, images: Sequence[np.ndarray], method: str, params: dict, targets: Sequence[int],
                   progress: Callable[[int, int], None] | None = None, compute: bool = True,
                   cancel=None) -> list[core.Explanation | None]:
    """Explanations of ``images`` for ``targets`` (class indices) through the shared result store
    (raises :class:`core.XaiError` on bad input)."""
    bg, bg_key = None, ""
    if get_method(method).needs_background and sel.ds is not None:
        bg = cache.background(sel.dataset_name, sel.card.input_size, sel.root)
        if bg.shape[1] != sel.card.channels:  # grey images for a colour model (fit_dataset refuses the reverse)
            bg = bg.expand(-1, sel.card.channels, -1, -1)
        bg_key = cache.background_key(sel.dataset_name, sel.card.input_size, sel.root)
    return cache.explanations(sel.model_path, sel.card.weights_sha256, images, method, params, targets, bg_key, bg,
                              progress, compute, cancel)


#: chosen methods estimated slower than this (seconds per image) are named under their parameters
SLOW_SECONDS = 1.0


def slow_methods_note(sel: Selection, params: dict[str, dict]) -> str:
    """"Slow on this model (estimated per image): LIME ~3 s, ..." for the chosen methods (the keys of ``params``,
    with their chosen parameters) that take at least :data:`SLOW_SECONDS` per image: each method's rate measured on
    this model once, after a warm-up (:func:`ui.cache.estimator`), times the model images it is expected to take
    (adaptive LIME: its expected samples, not its maximum)."""
    est = cache.estimator(sel.model_path, sel.card.weights_sha256)
    slow = []
    for m, p in params.items():
        try:
            s = est.seconds(m, images=1, **p)
        except core.XaiError:
            continue
        if s >= SLOW_SECONDS:
            slow.append((s, get_method(m).title))
    if not slow:
        return ""
    return "Slow on this model (estimated, per image): " + ", ".join(
        f"{t} ~{s:.0f} s" if s >= 2 else f"{t} ~{s:.1f} s" for s, t in sorted(slow, reverse=True))
