"""Data page: every registered dataset, its state, class distribution per split, samples, sizes/modes, source, licence."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import core
from core import render
from core.datasets import get_source
from ui import cache, data_panel, state
from ui.data_panel import setup_panel
from ui.router import page

SAMPLES_PER_CLASS = 6
SPLITS = ("train", "val", "test")


def main() -> None:
    st.title("Datasets")
    statuses = {n: data_panel.status(n) for n in core.list_datasets()}  # chosen, remembered or model-recorded folders
    rows = [{"dataset": get_source(n).info.title, "name": n, "state": s.state, "where / what to do": s.detail}
            for n, s in statuses.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

    name = st.selectbox("Dataset", core.list_datasets(), key=state.DATA_DATASET, format_func=data_panel.label)
    st.caption(data_panel.state_caption(name))
    src = get_source(name)
    info = src.info
    st.markdown(f"**{info.title}** — {info.description}  \n**Source:** {info.source}  \n**Licence:** {info.license}")
    root, status = data_panel.resolve(name)
    if not status.ready:
        setup_panel(name)
        return
    available = src.available_sizes(Path(root) if root else core.config.data_dir())
    size = st.selectbox("Image size (px)", [None, *available], key=state.DATA_SIZE,
                        format_func=lambda s: "default" if s is None else str(s))
    missing = [s for s in src.sizes if s not in available]
    if missing:
        st.caption(f"Also published at {', '.join(map(str, missing))} px: each size is its own file "
                   f"(`python -m core download {name} --size {missing[0]}`, or put the file in the same folder).")
    splits = {}
    progress = st.progress(0.0, text="Loading splits…")
    for k, split in enumerate(SPLITS):
        progress.progress(k / len(SPLITS), text=f"Loading {split}…")
        try:
            splits[split] = cache.dataset(name, split, size, root)
        except core.XaiError as exc:
            st.error(f"{split}: {exc}")
    progress.empty()
    if not splits:
        return
    first = next(iter(splits.values()))
    classes = first.classes
    for w in {w for d in splits.values() for w in d.extras.get("warnings", [])}:
        st.warning(w)

    counts = {s: [int((d.labels == i).sum()) for i in range(len(classes))] for s, d in splits.items()}
    c1, c2 = st.columns([2, 1])
    fig = go.Figure([go.Bar(name=s, x=list(classes), y=v) for s, v in counts.items()])
    fig.update_layout(barmode="group", title="Class distribution per split", height=340, margin=dict(l=10, r=10, t=40, b=30))
    c1.plotly_chart(fig, width="stretch")
    table = pd.DataFrame(counts, index=list(classes))
    table.loc["total"] = table.sum()
    c2.dataframe(table, width="stretch")

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
        summary.append("Official split sizes: " + ", ".join(f"{s} {d.extras['official_size']:,}" for s, d in splits.items()) + ".")
    st.markdown(" ".join(summary))
    skipped = [item for d in splits.values() for item in d.extras.get("skipped", [])]
    if skipped:
        with st.expander(f"{len(skipped)} files skipped (unreadable or not images)"):
            st.dataframe(pd.DataFrame(skipped, columns=["file", "reason"]), hide_index=True, width="stretch")

    st.subheader("Samples per class")
    gallery = splits.get("train") or first
    scale = max(1, 96 // h)
    for i, cls in enumerate(classes):
        idx = np.flatnonzero(gallery.labels == i)[:SAMPLES_PER_CLASS].tolist()
        st.markdown(f"**{cls}**" + ("" if idx else " — no images in this split"))
        if idx:
            cols = st.columns(SAMPLES_PER_CLASS)
            for col, j in zip(cols, idx):
                col.image(render.upscale(render.to_rgb_uint8(gallery.image(j)), scale), caption=f"#{j}")


page(main)
