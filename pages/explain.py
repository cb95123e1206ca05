"""Explain page: dataset -> model -> image -> methods -> maps side by side, with the prediction."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import core
from core.datasets import dataset_info
from core.datasets.images import MAX_PIXELS, MAX_UPLOAD_MIB, UPLOAD_EXTENSIONS, open_image, preprocess_for, read_upload
from core.explainers import get_method
from core.modelling.architectures import list_architectures
from core.modelling.cards import class_mapping
from core.modelling.training import TrainConfig, recipe
from core.present import captions, charts, render
from core.present.exports import explain_exports
from core.quality import QUALITY_DIR, known_numbers
from ui import cache, compute, data_panel, jobs, state, training
from ui.data_panel import setup_panel
from ui.pickers import import_link, pick_methods, pick_model, slow_methods_note
from ui.router import page
from ui.widgets import colour_bar, colour_rules, method_params, presentation_mode

DEFAULT_METHODS = ["grad_cam", "integrated_gradients", "saliency"]
GALLERY_SIZE = 8


def train_panel(dataset_name: str) -> None:
    """Offered when no model exists for the dataset: trains one in the background (the server's job runner), with
    progress, the time left and Cancel; the page shows the new model's maps when it is done."""
    root, status = data_panel.resolve(dataset_name)
    if not status.ready:
        setup_panel(dataset_name)
        return
    st.info(f"No trained model for **{dataset_info(dataset_name).title}** yet. Train one here with the dataset's "
            f"recipe (or with `python -m core train --dataset {dataset_name}`).")
    c1, c2 = st.columns(2)
    with c1:
        st.page_link("pages/train.py", label="Every training setting, live curves and past runs: the Train page",
                     icon=":material/model_training:")
    with c2:
        import_link()
    job = jobs.adopt(state.TRAIN_JOB, "training", dataset=dataset_name)  # also one started in another tab
    c1, c2 = st.columns(2)
    arch = c1.selectbox("Architecture", list_architectures(), key=state.TRAIN_ARCH)
    epochs = c2.number_input("Epochs", 1, 100, int(recipe(dataset_name)["epochs"]), key=state.TRAIN_EPOCHS)
    if st.button("Train a model", key=state.TRAIN_BUTTON, type="primary", disabled=job is not None and job.running):
        try:
            cfg = TrainConfig(dataset=dataset_name, arch=arch, epochs=int(epochs), data_root=root)
            st.session_state[state.TRAIN_JOB] = jobs.start_training(cfg).id
        except core.XaiError as exc:
            st.error(f"Training failed: {exc}")
    training.follow(state.TRAIN_JOB, "explain.train")


def pick_image(n: int, key: str = state.IMAGE_INDEX, random_key: str = state.RANDOM_BUTTON,
               what: str = "this split") -> int:
    """An index among ``n`` images (a number box and *Random*), kept under ``key``."""
    if key not in st.session_state:
        st.session_state[key] = 0
    st.session_state[key] = min(st.session_state[key], n - 1)

    def set_index(i: int) -> None:
        st.session_state[key] = i

    index = st.number_input(f"Image index (0–{n - 1})", 0, n - 1, key=key)
    st.button("Random image", icon=":material/casino:", key=random_key, width="stretch",
              on_click=lambda: set_index(random.randrange(n)), help=f"Pick a random image of {what}")
    return int(index)


def gallery(ds, index: int) -> None:
    """The images around the chosen one, in the main area where thumbnails have room; *Use* picks one."""
    n = len(ds)

    def set_index(i: int) -> None:
        st.session_state[state.IMAGE_INDEX] = i

    with st.expander(f"Gallery: images {index // GALLERY_SIZE * GALLERY_SIZE}–"
                     f"{min(n, (index // GALLERY_SIZE + 1) * GALLERY_SIZE) - 1} of this split"):
        start = (index // GALLERY_SIZE) * GALLERY_SIZE
        for j, col in enumerate(st.columns(GALLERY_SIZE)):
            i = start + j
            if i >= n:
                break
            thumb = ds.image(i)
            col.image(render.upscale(thumb, max(1, 96 // thumb.shape[0])), caption=f"#{i} {ds.classes[ds.labels[i]]}",
                      width="stretch")
            col.button("Use", key=state.gallery_key(j), on_click=set_index, args=(i,), width="stretch",
                       type="primary" if i == index else "secondary")


MAX_PER_ROW = 4
#: tiles per row in presentation mode (a projector's 1280 x 720: three tiles and their titles in one view)
PRESENT_PER_ROW = 3


TOP_K = 5


def pick_target(card, proba) -> int | None:
    """The class to explain: the predicted one by default; the top 5 first (with their probabilities), then every
    other class by index (the box searches all of them by name as you type)."""
    if len(card.classes) <= 2 * TOP_K:  # few classes: a fixed order, so the choice stays from image to image
        return st.selectbox("Class to explain", [None, *range(len(card.classes))], key=state.TARGET,
                            format_func=lambda t: "Predicted class" if t is None else f"{t}: {card.classes[t]}")
    top = [int(c) for c in np.argsort(-proba)[:TOP_K]]
    rest = [c for c in range(len(card.classes)) if c not in top]
    rank = {c: k for k, c in enumerate(top)}

    def name(t):
        if t is None:
            return "Predicted class"
        extra = f" — top {rank[t] + 1}, {proba[t]:.1%}" if t in rank else ""
        return f"{t}: {card.classes[t]}{extra}"

    return st.selectbox("Class to explain", [None, *top, *rest], key=state.TARGET, format_func=name,
                        help=f"The top {TOP_K} first; type to search all {len(card.classes)} classes by name")


def display_controls(ds, source: str, methods: list[str]) -> dict:
    """Controls that only redraw (never recompute a map), in the sidebar."""
    st.sidebar.subheader("Display")
    show = {
        "view": render.VIEW_CHOICES[st.sidebar.radio("Colours", list(render.VIEW_CHOICES), key=state.COLOURS, horizontal=True,
                                       help="Per method: each map in the colours that show it best (magnitude for "
                                            "sparse pixel gradients, signed for LIME, SHAP and Occlusion). Signed: "
                                            "red for the class, blue against it, transparent at zero. Magnitude: "
                                            "importance whatever its sign. Unsigned maps (CAMs, Saliency) are "
                                            "always magnitude.")],
        "alpha": st.sidebar.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key=state.ALPHA),
        "mask": False,
        "lime_n": 0,
    }
    if ds is not None and ds.masks is not None and source == "Dataset":
        show["mask"] = st.sidebar.toggle("Outline the object (ground truth)", value=False, key=state.SHOW_MASK,
                                         help="The dataset's object mask, drawn on the original and on every map")
    if "lime" in methods:
        show["lime_n"] = int(st.sidebar.number_input("LIME superpixels shown", 1, 100, 8, key=state.LIME_SHOWN,
                                                     help="The superpixels with the largest |weight|: red "
                                                          "supports the class, blue opposes it (as on signed maps)"))
    return show


def show_results(display, mask, card, results: list[core.Explanation], show: dict,
                 notes: dict[str, str] | None = None) -> list:
    """The original and one tile per map (LIME also gets its superpixel picture), every map drawn by the one drawing
    path in its colour rule with its colour bar under it, in rows that fill the width (at most four tiles; three,
    with large titles, in presentation mode; the rows as even as can be, every tile the same size). Returns the
    tiles (image, caption, rule) for the exports."""
    original = render.smooth_resize(display, render.tile_side(min(display.shape[:2])))

    def outlined(tile):
        return render.outline(tile, mask) if show["mask"] and mask is not None else tile

    tiles = [(outlined(original), "Original", None, None)]
    for e in results:
        drawn = render.draw_explanation(display, e, show["view"], alpha=show["alpha"])
        caption = captions.target_label(e, card.classes) if show["present"] else \
            f"{captions.map_caption(e, card.classes)} · {drawn.rule}"  # a room reads the method and the class
        tiles.append((outlined(drawn.image), caption, drawn.rule, e))
        if e.segments is not None and show["lime_n"]:
            weights = {int(k): float(v) for k, v in e.extras.get("superpixel_weights", [])}
            picture = render.superpixel_view(original, e.segments, weights, show["lime_n"])
            tiles.append((outlined(picture), f"LIME superpixels → {card.classes[e.target]} (red for, blue against)",
                          "signed", None))
    most = PRESENT_PER_ROW if show["present"] else MAX_PER_ROW
    per_row = -(-len(tiles) // -(-len(tiles) // most))  # as few rows as fit, as even as can be: one tile size for all
    for start in range(0, len(tiles), per_row):
        row = tiles[start : start + per_row]
        for col, (img, caption, rule, e) in zip(st.columns(per_row), row):
            tile(col, img, caption, rule, e, (notes or {}).get(e.method) if e is not None else None, show["present"])
    colour_rules([t[2] for t in tiles], "Each map is scaled on its own.")
    lime_weights(results, show)
    return [(t, c, v) for t, c, v, _ in tiles]


def tile(col, img, caption: str, rule: str | None, e, note: str | None, present: bool) -> None:
    """One tile: its title (large, above, in presentation mode), the image, its colour bar, and what to know about
    the map."""
    if present:
        col.markdown(f"### {caption}")
    col.image(img, caption=None if present else caption, width="stretch")
    if rule is not None:
        colour_bar(col, rule)
    if e is not None and e.flat:
        col.warning("Flat map: no pixel stands out for this target.")
    if e is not None and not present and (extra := captions.extras_caption(e.extras)):
        col.caption(extra)
    if note and not present:
        col.caption(note)


def lime_weights(results: list[core.Explanation], show: dict) -> None:
    for e in results:
        if e.segments is not None and show["lime_n"]:
            top = e.extras.get("superpixel_weights", [])[: show["lime_n"]]
            half = dict(e.extras.get("intervals", []))
            with st.expander(f"LIME: the {len(top)} superpixels with the largest |weight|"):
                st.dataframe({"superpixel": [k for k, _ in top], "weight": [round(w, 5) for _, w in top],
                              "± (95 % credible)": [round(half[k], 5) if k in half else None for k, _ in top],
                              "effect": ["for" if w > 0 else "against" for _, w in top]}, hide_index=True)
                st.caption("± is the half-width of each weight's 95 % credible interval (BayesLIME's posterior): a "
                           "weight within it of 0 could have either sign.")


def prediction_doubts(sel, image_t, proba, uploaded: bool) -> list[str]:
    """Shows, and returns for the exports, why this prediction may not deserve belief: an input unlike the
    training data (uploads), and a saturated probability. Model-level flags are shown by the model picker."""
    from core.modelling.trust import SATURATION_NOTE, model_warnings, ood_results, saturated

    doubts = list(model_warnings(sel.card))
    if uploaded and sel.card.from_torchvision:
        st.caption("No out-of-distribution check for ImageNet models: their training images are not on this machine. "
                   "A photo of something outside the 1,000 classes still gets one of them, often with confidence.")
    elif uploaded:
        det = cache.ood_detector(sel.model_path)
        if det is None and sel.card.imported:
            st.caption(ood_missing_for_imported(sel.card))
        elif det is None:
            st.caption("No out-of-distribution statistics for this model yet: open it on the Performance page (or run "
                       f"`python -m core evaluate --model {sel.card.id}`) to compute them.")
        else:
            ood = ood_results(det, sel.model, image_t.unsqueeze(0))[0]
            if ood.flagged:
                st.warning(ood.message, icon=":material/warning:")
                doubts.append(ood.message)
            else:
                st.caption(f"Out-of-distribution check: like the training images ({ood.message}).")
    if saturated(float(proba.max())):
        st.caption(SATURATION_NOTE)
        doubts.append(SATURATION_NOTE)
    return doubts


def ood_missing_for_imported(card) -> str:
    """Why an imported model has no out-of-distribution check, and how it gets one."""
    first = ("No out-of-distribution check: this model was imported, and the statistics it needs come from images "
             "like its training images, measured here. ")
    if card.dataset != "imported":
        return first + (f"Open it on the Performance page under {dataset_info(card.dataset).title} (or run "
                        f"`python -m core evaluate --model {card.id} --dataset {card.dataset}`) to compute them.")
    return first + ("Evaluate it on a labelled folder whose class folders are its classes: `python -m core evaluate "
                    f"--model {card.id} --dataset folder --data-dir FOLDER`.")


def exports(card, results, tiles, proba, label, image_ref: dict, doubts: list[str],
            quality: dict[str, str] | None = None) -> None:
    """The figure (PNG) and the one-page report (HTML), each carrying what reproduces it and every warning."""
    png, html = explain_exports(card, results, tiles, proba, label, image_ref, doubts, quality)
    c1, c2 = st.columns(2)
    c1.download_button("Download figure (PNG)", png.data, file_name=png.file_name, mime=png.mime, key=state.DL_FIGURE,
                       help="Original, maps, colour scale, prediction, target, model and parameters; the PNG "
                            "also carries the full provenance (model digest, seeds, library versions)")
    c2.download_button("Download report (HTML)", html.data, file_name=html.file_name, mime=html.mime,
                       key=state.DL_REPORT, help="A one-page report to keep: image, prediction, maps, parameters, "
                                                 "model card summary, library versions and date")


def uploaded_image(card) -> tuple[object, object] | None:
    """An uploaded file, preprocessed for the model exactly as its training images were."""
    mb = MAX_UPLOAD_MIB
    up = st.file_uploader(f"Image (PNG, JPEG, TIFF, BMP, WebP; up to {mb} MiB and {MAX_PIXELS / 1e6:.0f} Mpixels)",
                          type=list(UPLOAD_EXTENSIONS), key=state.UPLOAD, max_upload_size=mb)
    if up is None:
        st.info("Upload an image to explain.")
        return None
    try:
        img = read_upload(up.getvalue())
    except core.XaiError as exc:
        st.error(f"{up.name}: {exc}")
        return None
    how = (f"shorter side to {card.resize_size} px ({card.interpolation}), centre crop: the weights' own transform"
           if card.resize_size else "resize shorter side, centre crop")
    st.caption(f"{up.name}: {img.size[0]}x{img.size[1]} {img.mode} → {card.input_size}x{card.input_size}, "
               f"{'grayscale' if card.channels == 1 else 'RGB'} ({how})")
    try:
        return preprocess_for(img, card)
    except core.XaiError as exc:
        st.error(f"{up.name}: {exc}")
        return None


def folder_image(card) -> tuple[object, object, int | None, dict] | None:
    """An image of a folder on the server (an index or *Random* among its images), preprocessed for the model;
    labelled when its class folders are the model's classes (in any order)."""
    state.restore(state.FOLDER_PATH)
    typed = st.text_input("Folder of images on the server", key=state.FOLDER_PATH,
                          help="Images, or class folders of images (in train/val/test folders or not): labelled "
                               "when the class folders are the model's classes")
    state.remember(state.FOLDER_PATH)
    if not typed.strip():
        st.info("Type the path of a folder of images to explain.")
        return None
    root = Path(typed.strip()).expanduser()
    try:
        paths, folders = cache.folder_listing(str(root))
    except core.XaiError as exc:
        st.error(str(exc))
        return None
    index = pick_image(len(paths), state.FOLDER_INDEX, state.FOLDER_RANDOM, "this folder")
    names = sorted({c for c in folders if c is not None})
    order = class_mapping(card.classes, names) if names else None
    label = order[names.index(folders[index])] if order is not None else None
    path = Path(paths[index])
    try:
        img = open_image(path)
        x, display = preprocess_for(img, card)
    except core.XaiError as exc:
        st.error(f"{path.name}: {exc}")
        return None
    where = (f"class folder {folders[index]}" if folders[index] is not None else "no class folder")
    if names and order is None:
        where += " (the class folders are not the model's classes: unlabelled)"
    name = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
    st.caption(f"{name}: {img.size[0]}x{img.size[1]} → {card.input_size}x{card.input_size}; {where}")
    return x, display, label, {"folder": str(root), "file": name}


@dataclass
class Picked:
    """The image to explain: the model input, what is shown, its label (None for uploads) and how to find it again."""

    x: Any  # (C, H, W) float tensor in [0, 1]
    display: np.ndarray
    mask: np.ndarray | None
    label: int | None
    ref: dict


def pick_input(sel) -> Picked | None:
    """A dataset image (index, Random, gallery), an upload, or (photos-only datasets) an image of a folder on the
    server; ``None`` while there is none to explain."""
    sources = ["Dataset", "Upload"] if sel.ds is not None else ["Upload"]
    if data_panel.get_source(sel.dataset_name).photos_only:
        sources.append("Folder")
    source = st.radio("Image", sources, horizontal=True, key=state.IMAGE_SOURCE)
    if source == "Dataset":
        index = pick_image(len(sel.ds))
        x, label = sel.ds[index]
        return Picked(x, sel.ds.image(index), sel.ds.mask(index), int(label),
                      {"dataset": sel.dataset_name, "split": sel.split, "index": index, "folder": sel.root})
    if source == "Folder":
        got = folder_image(sel.card)
        return None if got is None else Picked(got[0], got[1], None, got[2], got[3])
    got = uploaded_image(sel.card)
    if got is None:
        if sel.ds is None:
            setup_panel(sel.dataset_name)
        return None
    x, display = got
    return Picked(x, display, None, None, {"upload_sha256": cache.image_digest(x.numpy())})


def method_settings(sel, methods: list[str]) -> dict[str, dict]:
    st.subheader("Method parameters")
    params = {m: method_params(m, sel.model) for m in methods}
    note = slow_methods_note(sel, params)
    if note:
        st.caption(note)
    return params


def more_samples_buttons(results: list[core.Explanation]) -> None:
    """A button per map that is not yet stable (LIME): it raises the sample count to what the stability predicts,
    and the map is computed again with it."""
    def raise_param(method: str, name: str, value: int) -> None:
        st.session_state[state.param_key(method, name)] = value

    for e in results:
        more = captions.more_samples(e.extras, e.params)
        if more:
            name, value = more
            label = next(p.widget_label() for p in get_method(e.method).params if p.name == name)
            st.button(f"{e.title}: compute again with {value:,} samples", key=f"more_samples.{e.method}",
                      icon=":material/add:", on_click=raise_param, args=(e.method, name, value),
                      help=f"Sets '{label}' to {value:,}: the count its stability predicts for the target, or "
                           "twice the samples used")


def explained(sel, picked: Picked, methods, params, target: int, show: dict, doubts: list[str], proba) -> None:
    """The maps (what is known at once, the rest as it is computed, with Cancel), then the exports."""
    card = sel.card
    quality = {m: captions.quality_note(known_numbers(Path(sel.model_path) / QUALITY_DIR, m)) for m in methods}
    head, grid = st.container(), st.empty()  # Cancel, progress and errors above the maps

    def draw(known: compute.Maps):
        done = [known[m][0] for m in methods if known[m][0] is not None]
        if done:
            with grid.container():
                return show_results(picked.display, picked.mask, card, done, show, quality)
        return None

    with head:
        known, _ = compute.maps(sel, [picked.x.numpy()], methods, params, [target], compute.EXPLAIN_KEYS, draw)
    shown = draw(known)
    if shown is not None:
        results = [known[m][0] for m in methods if known[m][0] is not None]
        more_samples_buttons(results)
        exports(card, results, shown, proba, picked.label, picked.ref, doubts,
                {e.title: quality[e.method] for e in results if quality.get(e.method)})


def main() -> None:
    st.title("Explain a prediction")
    sel = pick_model(train_panel)
    if sel is None:
        return
    with st.sidebar:
        picked = pick_input(sel)
        if picked is None:
            return
        methods = pick_methods(sel.model, state.METHODS, DEFAULT_METHODS)
        proba = core.predict(sel.model, picked.x)
        target = pick_target(sel.card, proba)
        params = method_settings(sel, methods)
        show = display_controls(sel.ds, "Dataset" if "index" in picked.ref else "Upload", methods)
    show["present"] = presentation_mode(state.PRESENT)
    if "index" in picked.ref and not show["present"]:
        gallery(sel.ds, picked.ref["index"])
    for line in captions.prediction_markdown(sel.card, proba, picked.label, TOP_K):
        st.markdown(line)
    doubts = prediction_doubts(sel, picked.x, proba, uploaded="index" not in picked.ref)
    if not methods:
        st.info("Pick at least one method in the sidebar.")
        return
    explained(sel, picked, methods, params, int(proba.argmax()) if target is None else target, show, doubts, proba)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.topk_probabilities(proba, sel.card.classes, k=5, highlight=picked.label), width="stretch")
    if sel.card.metrics.get("per_class"):
        c2.plotly_chart(charts.per_class_metrics(sel.card.metrics), width="stretch")
    with st.expander("Model card"):
        st.json(sel.card.to_dict(), expanded=False)


page(main)
