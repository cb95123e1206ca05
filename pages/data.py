"""Data page: every registered dataset, its state, class distribution per split, samples, sizes/modes, source, licence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import core
from core.present import captions, charts, render
from core.datasets import get_source
from ui import cache, data_panel, state
from ui.data_panel import setup_panel
from ui.router import page

SAMPLES_PER_CLASS = 6
SPLITS = ("train", "val", "test")


def overview() -> None:
    """Every registered dataset with its state here (chosen, remembered or model-recorded folders)."""
    statuses = {n: data_panel.status(n) for n in core.list_datasets()}
    rows = [{"dataset": get_source(n).info.title, "name": n, "state": s.state, "where / what to do": s.detail}
            for n, s in statuses.items()]
    # a static table: the last column's instructions wrap instead of being cut at the cell's edge
    st.table(pd.DataFrame(rows).set_index("dataset"))


def pick_size(name: str, root: str | None) -> int | None:
    src = get_source(name)
    available = src.available_sizes(Path(root) if root else core.config.data_dir())
    size = st.selectbox("Image size (px)", [None, *available], key=state.DATA_SIZE,
                        format_func=lambda s: "default" if s is None else str(s))
    missing = [s for s in src.sizes if s not in available]
    if missing:
        st.caption(f"Also published at {', '.join(map(str, missing))} px: each size is its own file "
                   f"(`python -m core download {name} --size {missing[0]}`, or put the file in the same folder).")
    return size


def load_splits(name: str, size: int | None, root: str | None) -> dict:
    splits = {}
    progress = st.progress(0.0, text="Loading splits…")
    for k, split in enumerate(SPLITS):
        progress.progress(k / len(SPLITS), text=f"Loading {split}…")
        try:
            splits[split] = cache.dataset(name, split, size, root)
        except core.XaiError as exc:
            st.error(f"{split}: {exc}")
    progress.empty()
    return splits


def distribution(splits: dict) -> None:
    classes = next(iter(splits.values())).classes
    counts = {s: [int((d.labels == i).sum()) for i in range(len(classes))] for s, d in splits.items()}
    c1, c2 = st.columns([2, 1])
    c1.plotly_chart(charts.class_distribution(counts, classes), width="stretch")
    table = pd.DataFrame(counts, index=list(classes))
    table.loc["total"] = table.sum()
    c2.dataframe(table, width="stretch")


def samples(splits: dict) -> None:
    st.subheader("Samples per class")
    gallery = splits.get("train") or next(iter(splits.values()))
    scale = max(1, 96 // gallery.images.shape[1])
    for i, cls in enumerate(gallery.classes):
        idx = np.flatnonzero(gallery.labels == i)[:SAMPLES_PER_CLASS].tolist()
        st.markdown(f"**{cls}**" + ("" if idx else " — no images in this split"))
        if idx:
            for col, j in zip(st.columns(SAMPLES_PER_CLASS), idx):
                col.image(render.upscale(render.to_rgb_uint8(gallery.image(j)), scale), caption=f"#{j}")


def main() -> None:
    st.title("Datasets")
    overview()
    name = st.selectbox("Dataset", core.list_datasets(), key=state.DATA_DATASET, format_func=data_panel.label)
    st.caption(data_panel.state_caption(name))
    info = get_source(name).info
    st.markdown(f"**{info.title}** — {info.description}  \n**Source:** {info.source}  \n**Licence:** {info.license}")
    root, status = data_panel.resolve(name)
    if not status.ready:
        setup_panel(name)
        return
    splits = load_splits(name, pick_size(name, root), root)
    if not splits:
        return
    for w in {w for d in splits.values() for w in d.extras.get("warnings", [])}:
        st.warning(w)
    distribution(splits)
    st.markdown(captions.dataset_summary(splits))
    skipped = [item for d in splits.values() for item in d.extras.get("skipped", [])]
    if skipped:
        with st.expander(f"{len(skipped)} files skipped (unreadable or not images)"):
            st.dataframe(pd.DataFrame(skipped, columns=["file", "reason"]), hide_index=True, width="stretch")
    samples(splits)


page(main)
