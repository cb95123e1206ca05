"""Train page: every training setting (starting from the dataset's recipe), live progress and curves with a
Cancel, and the past runs tracked with MLflow."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import core
from core.modelling import pretrained, tracking
from core.modelling.architectures import ARCHITECTURES, build_model, freezable_layers, list_architectures
from core.datasets import dataset_info, get_source
from core.modelling.training import (CLASS_WEIGHTING, FLIPS, IMBALANCE_RATIO, OPTIMIZERS, SCHEDULES, TrainConfig, recipe,
                           unique_model_id)
from ui import cache, data_panel
from ui.data_panel import setup_panel
from ui import jobs, state, training
from ui.pickers import model_label
from ui.router import page

DATASET = "train.dataset"
JOB = "train.job"  # id of the training this page shows (its own, or one running on the server)
START = "train.start"


def key(dataset: str, name: str) -> str:
    """Settings are remembered per dataset: switching datasets and back keeps what was typed."""
    return f"train.{dataset}.{name}"


def sizes_for(name: str, root: str | None) -> list[int]:
    src = get_source(name)
    if hasattr(src, "available_sizes"):
        found = list(src.available_sizes(Path(root) if root else core.config.data_dir()))
        if found:
            return found
    return [int(src.info.image_size)]


def class_counts(name: str, size: int, root: str | None) -> tuple[list[str], np.ndarray]:
    """The training split's classes (a folder's come from its files, not the registry) and images per class."""
    ds = cache.dataset(name, "train", size, root)
    return list(ds.classes), np.bincount(ds.labels, minlength=len(ds.classes))


#: fewer validation images than this make the best epoch a coin toss: said beside the settings
FEW_VAL = 20


def split_sizes_note(name: str, size: int, root: str | None) -> str:
    """"Train 40, val 3, test 9 images" for the settings, with a warning when val is too small to choose an epoch."""
    n = {s: len(cache.dataset(name, s, size, root)) for s in ("train", "val", "test")}
    text = f"Images: train {n['train']:,}, val {n['val']:,}, test {n['test']:,}."
    if n["val"] < FEW_VAL:
        text += (f" :orange[Only {n['val']} validation images: the best epoch is chosen on them, so the choice is "
                 f"noisy; a folder with more images (or train/val/test folders) gives a steadier one.]")
    return text


def settings_form(name: str, root: str | None) -> TrainConfig | None:
    r = recipe(name)
    sizes = sizes_for(name, root)
    lo, hi = ARCHITECTURES.get(r["arch"]).sizes
    fitting = [s for s in sizes if lo <= s <= hi]  # the defaults never trigger their own size warning
    default_size = r.get("size") if r.get("size") in sizes else (fitting or sizes)[0]
    c1, c2, c3 = st.columns(3)
    size = c1.selectbox("Image size (px)", sizes, index=sizes.index(default_size), key=key(name, "size"),
                        help="Only the sizes whose files are on disk")
    archs = list_architectures()
    arch = c2.selectbox("Architecture", archs, index=archs.index(r["arch"]), key=key(name, "arch"),
                        format_func=lambda a: a, help="; ".join(f"{a}: {ARCHITECTURES.get(a).description}" for a in archs))
    lo, hi = ARCHITECTURES.get(arch).sizes
    if not lo <= size <= hi:
        c2.caption(f":orange[{arch} is meant for {lo}-{hi} px inputs]")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key=key(name, "seed"))

    pretrained_on, weights_file = False, None
    if pretrained.has_imagenet(arch):
        if pretrained.weights_present(arch):
            found = pretrained.find_weights(arch)
            pretrained_on = st.checkbox(f"Start from ImageNet weights ({found.name}, found at {found.parent})",
                                        value=False, key=key(name, f"pretrained.{arch}"))
        else:
            weights_file = st.text_input("ImageNet weights file (optional)", key=key(name, f"weights.{arch}"),
                                         help=pretrained.how_to_get(arch)).strip() or None
            st.caption(pretrained.how_to_get(arch))
            pretrained_on = weights_file is not None
    else:
        st.caption(f"{arch} has no ImageNet weights: it starts from random weights.")
    if pretrained_on:
        grey = dataset_info(name).channels == 1
        st.caption("ImageNet normalisation from the weights' transform. " + (
            "Grey images: the first convolution's ImageNet filters are **summed over the three colour channels**, "
            "which gives exactly what the RGB filters give on the grey image repeated three times, with a one-channel "
            "model (no extra memory or time)." if grey else ""))

    st.subheader("Optimisation")
    c1, c2, c3, c4, c5 = st.columns(5)
    epochs = c1.number_input("Epochs", 1, 1000, int(r["epochs"]), key=key(name, "epochs"))
    batch = c2.number_input("Batch size", 1, 4096, int(r["batch_size"]), key=key(name, "batch"))
    lr = c3.number_input("Learning rate", 1e-6, 1.0, float(1e-4 if pretrained_on else r["lr"]), format="%.5f",
                         key=key(name, f"lr.{pretrained_on}"), help="Peak rate for the one-cycle schedule; "
                         "fine-tuning from ImageNet weights starts from a lower rate")
    optimizer = c4.selectbox("Optimiser", OPTIMIZERS, index=OPTIMIZERS.index(r["optimizer"]), key=key(name, "opt"))
    schedule = c5.selectbox("Schedule", SCHEDULES, index=SCHEDULES.index(r["schedule"]), key=key(name, "sched"))
    wd = c1.number_input("Weight decay", 0.0, 1.0, float(r["weight_decay"]), format="%.5f", key=key(name, "wd"))

    st.subheader("Augmentation and balance")
    c1, c2, c3, c4 = st.columns(4)
    flip = c1.selectbox("Random flips", FLIPS, index=FLIPS.index(r["flip"]), key=key(name, "flip"),
                        help="Vertical flips suit textures and symbols, rarely X-rays or photographs")
    rotation = c2.slider("Rotation (±degrees)", 0, 180, int(r["rotation"]), key=key(name, "rot"))
    shift = c3.slider("Shift (± fraction of the side)", 0.0, 0.5, float(r["shift"]), 0.01, key=key(name, "shift"))
    jitter = c4.slider("Colour jitter", 0.0, 1.0, float(r["color_jitter"]), 0.05, key=key(name, "jitter"),
                       help="Brightness and contrast (and saturation for colour images)")
    classes, counts = class_counts(name, size, root)
    present = counts[counts > 0]
    ratio = float(present.max() / present.min())
    weighting = st.radio("Class weighting", CLASS_WEIGHTING, index=CLASS_WEIGHTING.index(r["class_weighting"]),
                         horizontal=True, key=key(name, "weighting"),
                         help="Weight the loss by inverse class frequency, so rare classes count as much as common ones")
    auto_on = ratio >= IMBALANCE_RATIO
    st.caption(split_sizes_note(name, size, root))
    st.caption(f"Training images per class: {', '.join(f'{c} {n:,}' for c, n in zip(classes, counts))}. "
               + (f"Auto weighting is **{'on' if auto_on else 'off'}**: the largest class has {ratio:.1f}x the "
                  f"images of the smallest (on from {IMBALANCE_RATIO}x)." if weighting == "auto" else ""))
    channels = core.dataset_info(name).channels
    layers = freezable_layers(build_model(arch, max(2, len(counts)), channels, [0.5] * channels, [0.25] * channels))
    freeze = st.multiselect("Layers to freeze (kept as initialised)", layers[:-1], default=[],
                            key=key(name, f"freeze.{arch}"),
                            help="Usual with ImageNet weights: freeze the early layers, fine-tune the rest")
    model_id = st.text_input("Model id (folder name)", key=key(name, "id"), placeholder=unique_model_id(f"{name}-{arch}"),
                             help="Leave empty for the first free name shown; a new name never replaces a model")
    if model_id.strip() and (core.config.models_dir() / model_id.strip()).exists():
        st.caption(f":orange[A model named {model_id.strip()} exists: training replaces it.]")
    return TrainConfig(dataset=name, arch=arch, epochs=int(epochs), batch_size=int(batch), lr=float(lr),
                       weight_decay=float(wd), optimizer=optimizer, schedule=schedule, flip=flip, rotation=float(rotation),
                       shift=float(shift), color_jitter=float(jitter), class_weighting=weighting, freeze=tuple(freeze),
                       pretrained=pretrained_on, weights_file=weights_file, seed=int(seed), size=int(size),
                       data_root=root, model_id=model_id.strip() or None)


#: the form's widget names for the TrainConfig fields a running job shows again in a new session
FORM_FIELDS = {"size": "size", "arch": "arch", "seed": "seed", "epochs": "epochs", "batch_size": "batch",
               "optimizer": "opt", "schedule": "sched", "weight_decay": "wd", "flip": "flip", "rotation": "rot",
               "shift": "shift", "color_jitter": "jitter", "class_weighting": "weighting", "model_id": "id"}


def follow_settings(cfg: TrainConfig) -> None:
    """The settings of the training shown, in the form of a session that did not start it (a reload)."""
    for field, name in FORM_FIELDS.items():
        value = getattr(cfg, field)
        if value is not None:
            st.session_state.setdefault(key(cfg.dataset, name), int(value) if name == "rot" else value)


def past_runs(name: str) -> None:
    st.subheader("Past training runs (MLflow)")
    try:
        runs = tracking.past_runs(name)
    except Exception as exc:  # an unreadable store must not break the page
        st.warning(f"The experiment store at {tracking.tracking_uri()} cannot be read: {type(exc).__name__}: {exc}")
        return
    if not runs:
        st.caption("No tracked runs for this dataset yet.")
    else:
        rows = [{"started": datetime.fromtimestamp(r["start_time"] / 1000).strftime("%Y-%m-%d %H:%M"),
                 "model": r["model_id"], "status": r["status"], "arch": r["params"].get("arch"),
                 "epochs": r["params"].get("epochs"), "lr": r["params"].get("lr"),
                 "test accuracy": r["metrics"].get("test_accuracy"),
                 "test balanced acc.": r["metrics"].get("test_balanced_accuracy"),
                 "test ROC AUC": r["metrics"].get("test_roc_auc"), "run id": r["run_id"]} for r in runs]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    uri = tracking.tracking_uri()
    st.caption(f"Store: `{uri}`. MLflow's own UI on these runs: `mlflow ui --backend-store-uri {uri}` "
               "(then open http://127.0.0.1:5000).")


def main() -> None:
    st.title("Train a model")
    job = jobs.adopt(JOB, "training")  # a training any session started: shown with progress and Cancel
    if DATASET not in st.session_state and job is not None and job.running:  # a new session: the job's settings
        st.session_state[DATASET] = job.meta["dataset"]
        follow_settings(job.detail.cfg)
    state.restore(DATASET)  # back from another page: the dataset chosen before
    name = st.selectbox("Dataset", core.list_datasets(labelled=True), key=DATASET, format_func=data_panel.label)
    state.remember(DATASET)
    st.caption(data_panel.state_caption(name))
    root, status = data_panel.resolve(name)
    if not status.ready:
        setup_panel(name)
        return
    existing = cache.models_for(name)
    if existing:
        st.caption("Models of this dataset: " + "; ".join(model_label(c) for _, c in existing))
    busy = job is not None and job.running
    with st.container(border=True):
        try:
            cfg = settings_form(name, root)
        except core.XaiError as exc:
            st.error(str(exc))
            return
        go = st.button("Train", key=START, type="primary", disabled=busy, icon=":material/model_training:",
                       help="Runs in the background: you can use other pages meanwhile" if not busy
                       else f"Training {job.label} is in progress (from this or another tab): wait for it, or cancel it")
    if go:
        try:
            st.session_state[JOB] = jobs.start_training(cfg).id
        except core.XaiError as exc:
            st.error(str(exc))
    job = training.follow(JOB, "train")
    if busy and job is not None and not job.running:  # it ended while this run drew Train disabled: draw it again
        st.rerun()
    if job is not None and job.state == "done":
        st.page_link("pages/performance.py", label="See its Performance page", icon=":material/monitoring:")
    past_runs(name)


page(main)
