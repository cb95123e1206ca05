"""Compare page: several images x several methods in one grid, display controls, method agreement, downloads."""
from __future__ import annotations

import json

import numpy as np
import streamlit as st

import core
from core import charts, render, report
from core.compare import agreement_matrix, maps_npz
from core.maps import robust_scale
from core.explainers import get_method
from ui import cache, state
from ui.pickers import Selection, explain_cached, pick_methods, pick_model, request_key
from ui.progress import EngineProgress
from ui.data_panel import setup_panel
from ui.router import page
from ui.widgets import method_params

DEFAULT_METHODS = ["grad_cam", "integrated_gradients", "lime"]
MAX_IMAGES = 8
TILE = 160  # px per grid cell


def no_model(dataset_name: str) -> None:
    st.info("No trained model for this dataset yet: train one on the **Explain** page or with "
            f"`python -m core train --dataset {dataset_name}`.")
    st.page_link("pages/explain.py", label="Go to Explain", icon=":material/image_search:")


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
        "signed": st.radio("Colours", ["Magnitude", "Signed"], key=state.CMP_COLOURS, horizontal=True,
                           help="Signed: blue negative, red positive, centred at zero") == "Signed",
        "shared": st.radio("Scale", ["Per map", "Shared"], key=state.CMP_SCALE, horizontal=True,
                           help="Shared: one colour scale for all maps in the same units (CAMs are scaled per "
                                "image by their library; gradients, logit contributions and LIME's probability "
                                "weights are each their own unit)") == "Shared",
        "alpha": st.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key=state.CMP_ALPHA),
        "top": st.slider("Show top-k % pixels", 1, 100, 100, key=state.CMP_TOPK,
                         help="Colour only the most important pixels of each map"),
    }


def main() -> None:
    st.title("Compare methods")
    st.caption("Several images × several methods on one screen. Display controls never recompute a map.")
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

    results: dict[tuple[int, str], core.Explanation] = {}
    errors: list[str] = []
    images = sel.ds.batch(np.asarray(indices))
    predicted = core.predict_proba(sel.model, images).argmax(axis=1)
    truth = sel.ds.labels[np.asarray(indices)]
    # Targets are class indices either way, so a cell whose true and predicted classes agree is computed once.
    targets = predicted if target_mode == "Predicted" else truth
    arrays = list(images.numpy())
    request = request_key(sel.card.weights_sha256, ",".join(cache.image_digest(a) for a in arrays), methods, params,
                          targets.tolist())
    cancelled = st.session_state.get(state.CMP_CANCELLED) == request
    controls = st.empty()
    if not cancelled:
        controls.button("Cancel", key=state.CMP_CANCEL, icon=":material/cancel:", on_click=state.set_value,
                        args=(state.CMP_CANCELLED, request), help="Stop computing; the cells already computed stay")
    bar = EngineProgress(len(methods))
    for k, m in enumerate(methods):  # one batched engine call per method, for its missing cells only
        bar.start(k, f"{get_method(m).title} on {len(indices)} image{'s' * (len(indices) != 1)}")
        try:
            found = explain_cached(sel, arrays, m, params[m], targets.tolist(), bar, compute=not cancelled)
            results.update({(i, m): e for i, e in zip(indices, found) if e is not None})
        except core.XaiError as exc:
            errors.append(f"{get_method(m).title}: {exc}")
    bar.empty()
    controls.empty()
    if cancelled and len(results) < len(indices) * len(methods):
        with controls.container():
            st.info(f"Cancelled: {len(indices) * len(methods) - len(results)} cells not computed; the others are shown.")
            st.button("Compute the rest", key=state.CMP_RESUME, on_click=state.set_value, args=(state.CMP_CANCELLED, None))
    for e in errors:
        st.error(e)

    units = {m: get_method(m).units_for(params[m]) for m in methods}
    shared: dict[str, float] = {}  # one colour scale per unit: only maps in the same units are comparable
    if show["shared"]:
        for e in results.values():
            u = units[e.method]
            shared[u] = max(shared.get(u, 0.0), robust_scale(e.attribution, get_method(e.method).outlier_perc))
    classes = sel.card.classes
    tiles: list[tuple[np.ndarray, str]] = []
    header = st.columns(len(methods) + 1)
    header[0].markdown("**Original**")
    for col, m in zip(header[1:], methods):
        col.markdown(f"**{get_method(m).title}**")
    for k, i in enumerate(indices):
        scale = max(1, TILE // sel.ds.image(i).shape[0])
        original = render.upscale(render.to_rgb_uint8(sel.ds.image(i)), scale)
        right = predicted[k] == truth[k]
        label = (f"#{i} · true {classes[truth[k]]} · predicted {classes[predicted[k]]} · "
                 f"{'right' if right else 'wrong'}")
        cols = st.columns(len(methods) + 1)
        cols[0].image(original, caption=label, width="stretch")
        tiles.append((original, label))
        for col, m in zip(cols[1:], methods):
            e = results.get((i, m))
            if e is None:
                col.warning("not computed" if cancelled else "failed")
                tiles.append((np.full_like(original, 255), f"{get_method(m).title}: not computed"))
                continue
            tile = render.attribution_overlay(
                original, e.attribution, signed=show["signed"] and e.signed, scale=shared.get(units[m]),
                alpha=show["alpha"], top_percent=show["top"], outlier_perc=get_method(m).outlier_perc)
            caption = f"{get_method(m).title} → {classes[e.target]} · {e.seconds:.3f} s" + (" · flat" if e.flat else "")
            col.image(tile, caption=caption, width="stretch")
            tiles.append((tile, f"{get_method(m).title} → {classes[e.target]}"))
    cmap = render.SIGNED_CMAP if show["signed"] else render.MAGNITUDE_CMAP
    bar = render.colorbar(cmap, labels=("negative", "positive") if show["signed"] else ("low", "high"))
    groups = sorted(set(units.values()))
    st.image(bar, caption=(f"Shared scale within each unit ({', '.join(f'{u}: ' + ', '.join(get_method(m).title for m in methods if units[m] == u) for u in groups)}); "
                           "maps in different units are never put on one scale" if show["shared"] else "Per-map scale")
             + ("; unsigned methods (CAMs, saliency) stay on the magnitude map" if show["signed"] else ""))

    if len(methods) >= 2:
        common = [i for i in indices if all((i, m) in results for m in methods)]  # the same images for every method
        per_method = {m: [results[(i, m)].attribution for i in common] for m in methods}
        if common:
            names, matrix = agreement_matrix(per_method)
            st.plotly_chart(charts.agreement_heatmap(names, matrix, [get_method(m).title for m in names]),
                            width="stretch")

    c1, c2 = st.columns(2)
    ordered = [results[(i, m)] for i in indices for m in methods if (i, m) in results]
    prov = report.provenance(sel.card, ordered, {"dataset": sel.dataset_name, "split": sel.split,
                                                 "indices": [int(i) for i in indices], "folder": sel.root})
    head = [f"Model {sel.card.id} ({sel.card.arch}, {sel.card.input_size} px) · {sel.dataset_name} {sel.split} · "
            f"class explained: {target_mode.lower()}",
            f"{'Signed' if show['signed'] else 'Magnitude'} colours, {'shared' if show['shared'] else 'per-map'} scale · "
            f"{prov['created']}"]
    foot = [f"{get_method(m).title}: {json.dumps(params[m], default=str)}" for m in methods]
    png = report.png_with_provenance(report.figure(tiles, head, foot, bar, per_row=len(methods) + 1), prov)
    c1.download_button("Download grid (PNG)", png, file_name="xai_compare.png", mime="image/png", key=state.CMP_DL_PNG)
    meta = {"model": sel.card.id, "dataset": sel.dataset_name, "split": sel.split, "classes": list(classes),
            "methods": {m: params[m] for m in methods}, "provenance": prov,
            "targets": {f"{i}_{m}": e.target for (i, m), e in results.items()}}
    c2.download_button("Download raw maps (.npz)", maps_npz({k: e.attribution for k, e in results.items()},
                                                             {i: sel.ds.image(i) for i in indices}, meta),
                       file_name="xai_maps.npz", mime="application/octet-stream", key=state.CMP_DL_NPZ)


page(main)
