"""Compare page: several images x several methods in one grid, display controls, method agreement, downloads."""
from __future__ import annotations

import numpy as np
import streamlit as st

import core
from core.explainers import get_method
from core.explainers.agreement import agreement_matrix
from core.modelling.trust import model_warnings
from core.present import captions, charts, render
from core.present.exports import compare_exports
from ui import compute, state
from ui.data_panel import setup_panel
from ui.pickers import Selection, import_link, pick_methods, pick_model
from ui.router import page
from ui.widgets import colour_bar, colour_rules, method_params

DEFAULT_METHODS = ["grad_cam", "integrated_gradients", "lime"]
MAX_IMAGES = 8


def no_model(dataset_name: str) -> None:
    st.info("No trained model for this dataset yet: train one on the **Explain** page or with "
            f"`python -m core train --dataset {dataset_name}`.")
    c1, c2 = st.columns(2)
    with c1:
        st.page_link("pages/explain.py", label="Go to Explain", icon=":material/image_search:")
    with c2:
        import_link()


def pick_images(sel: Selection) -> list[int]:
    n = len(sel.ds)
    mode = st.radio("Images", ["Pick", "Random", "Misclassified only"], horizontal=True, key=state.CMP_MODE)
    if mode == "Pick":
        return st.multiselect(f"Image indices (0–{n - 1}, up to {MAX_IMAGES})", list(range(n)), default=[0, 1],
                              max_selections=MAX_IMAGES, key=state.CMP_INDICES)
    c1, c2 = st.columns(2)
    count = c1.number_input("How many", 1, MAX_IMAGES, 3, key=state.CMP_COUNT)
    seed = c2.number_input("Sample seed", 0, 10**6, 0, key=state.CMP_SEED, help="Change it for another sample")
    pool = np.arange(n)
    if mode == "Misclassified only":
        from ui import cache

        pred = cache.split_predictions(sel.model_path, sel.card.weights_sha256, sel.dataset_name, sel.split,
                                       sel.card.input_size, sel.root)
        pool = np.flatnonzero(pred != sel.ds.labels)
        st.caption(f"{len(pool)} of {n} images in this split are misclassified.")
        if len(pool) == 0:
            return []
    rng = np.random.default_rng(int(seed))
    return sorted(int(i) for i in rng.choice(pool, size=min(int(count), len(pool)), replace=False))


def display_controls() -> dict:
    return {
        "colours": st.radio("Colours", list(render.VIEW_CHOICES), key=state.CMP_COLOURS, horizontal=True,
                            help="Per method: each map in the colours that show it best (magnitude for sparse pixel "
                                 "gradients, signed for LIME, SHAP and Occlusion). Signed: red for the class, blue "
                                 "against it, transparent at zero. Unsigned maps are always magnitude."),
        "shared": st.radio("Scale", ["Per map", "Shared"], key=state.CMP_SCALE, horizontal=True,
                           help="Shared: one colour scale for all maps in the same units (CAMs are scaled per "
                                "image by their library; gradients, logit contributions and LIME's probability "
                                "weights are each their own unit)") == "Shared",
        "alpha": st.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key=state.CMP_ALPHA),
        "top": st.slider("Show top-k % pixels", 1, 100, 100, key=state.CMP_TOPK,
                         help="Colour only the most important pixels of each map"),
    }


def grid(sel: Selection, indices: list[int], methods: list[str], params: dict, results: dict, predicted, truth,
         show: dict, cancelled: bool) -> list[tuple[np.ndarray, str, str | None]]:
    """Originals and maps, one row per image, each map drawn by the one drawing path in its colour rule with its
    colour bar under it, on per-map or shared (per-unit, robust range) colour scales; the tiles (image, caption,
    rule) for the exports."""
    units = {m: get_method(m).units_for(params[m]) for m in methods}
    shared: dict[str, float] = {}  # one colour scale per unit: only maps in the same units are comparable
    if show["shared"]:
        by_unit: dict[str, list] = {}
        for e in results.values():
            by_unit.setdefault(units[e.method], []).append(e.attribution)
        shared = render.shared_scales(by_unit)
    classes = sel.card.classes
    tiles: list[tuple[np.ndarray, str, str | None]] = []
    choice = render.VIEW_CHOICES[show["colours"]]
    for col, title in zip(st.columns(len(methods) + 1), ["Original", *(get_method(m).title for m in methods)]):
        col.markdown(f"**{title}**")
    for k, i in enumerate(indices):
        image = sel.ds.image(i)
        original = render.smooth_resize(image, render.tile_side(min(image.shape[:2])))
        label = (f"#{i} · true {classes[truth[k]]} · predicted {classes[predicted[k]]} · "
                 f"{'right' if predicted[k] == truth[k] else 'wrong'}")
        cols = st.columns(len(methods) + 1)
        cols[0].image(original, caption=label, width="stretch")
        tiles.append((original, label, None))
        for col, m in zip(cols[1:], methods):
            e = results.get((i, m))
            if e is None:
                col.warning("not computed" if cancelled else "failed")
                tiles.append((np.full_like(original, 255), f"{get_method(m).title}: not computed", None))
                continue
            drawn = render.draw_explanation(image, e, choice, scale=shared.get(units[m]), alpha=show["alpha"],
                                            top_percent=show["top"])
            col.image(drawn.image, caption=f"{captions.map_caption(e, classes)} · {drawn.rule}", width="stretch")
            colour_bar(col, drawn.rule)
            tiles.append((drawn.image, captions.target_label(e, classes), drawn.rule))
    colour_rules([t[2] for t in tiles], captions.scale_caption(methods, units, show["shared"], shared) + ".")
    return tiles


def agreement(indices: list[int], methods: list[str], results: dict) -> None:
    """Mean rank agreement between every two methods, over the images every method has a map of."""
    common = [i for i in indices if all((i, m) in results for m in methods)]
    if len(methods) >= 2 and common:
        names, matrix = agreement_matrix({m: [results[(i, m)].attribution for i in common] for m in methods})
        st.plotly_chart(charts.agreement_heatmap(names, matrix, [get_method(m).title for m in names]), width="stretch")


def main() -> None:
    st.title("Compare methods")
    st.caption("Several images × several methods on one screen. Display controls never recompute a map.")
    job = compute.running("compare")  # a grid being computed for any session: a new one (a reload) takes its choices
    if job is not None and state.CMP_METHODS not in st.session_state:
        for k, v in job.meta["selections"].items():
            st.session_state.setdefault(k, v)
    sel = pick_model(no_model)
    if sel is None:
        return
    if sel.ds is None:
        setup_panel(sel.dataset_name)
        return
    with st.sidebar:  # the controls beside the grid, so the maps are in view once computed
        indices = pick_images(sel)
        methods = pick_methods(sel.model, state.CMP_METHODS, DEFAULT_METHODS)
        target_mode = st.radio("Class to explain", ["Predicted", "True"], horizontal=True, key=state.CMP_TARGET)
        st.subheader("Method parameters")
        params = {m: method_params(m, sel.model) for m in methods}
        st.subheader("Display")
        show = display_controls()
    if not indices or not methods:
        st.info("Pick at least one image and one method.")
        return
    images = sel.ds.batch(np.asarray(indices))
    predicted = core.predict_proba(sel.model, images).argmax(axis=1)
    truth = sel.ds.labels[np.asarray(indices)]
    # Targets are class indices either way, so a cell whose true and predicted classes agree is computed once.
    targets = predicted if target_mode == "Predicted" else truth
    selections = {state.DATASET: sel.dataset_name, state.MODEL: sel.model_path, state.SPLIT: sel.split,
                  state.CMP_MODE: "Pick", state.CMP_INDICES: list(indices), state.CMP_METHODS: list(methods),
                  state.CMP_TARGET: target_mode,
                  **{state.param_key(m, k): v for m in methods for k, v in params[m].items()
                     if state.param_key(m, k) in st.session_state}}
    known, cancelled = compute.maps(sel, list(images.numpy()), methods, params, targets.tolist(), compute.COMPARE_KEYS,
                                    selections=selections)
    results = {(i, m): e for m in methods for i, e in zip(indices, known[m]) if e is not None}
    tiles = grid(sel, indices, methods, params, results, predicted, truth, show, cancelled)
    agreement(indices, methods, results)
    png, npz = compare_exports(sel.card, sel.dataset_name, sel.split, indices, methods, params, target_mode,
                               show["colours"], show["shared"], results, tiles,
                               {i: sel.ds.image(i) for i in indices}, sel.root, model_warnings(sel.card))
    c1, c2 = st.columns(2)
    c1.download_button("Download grid (PNG)", png.data, file_name=png.file_name, mime=png.mime, key=state.CMP_DL_PNG)
    c2.download_button("Download raw maps (.npz)", npz.data, file_name=npz.file_name, mime=npz.mime,
                       key=state.CMP_DL_NPZ)


page(main)
