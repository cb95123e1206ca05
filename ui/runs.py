"""The Dataset page's parts: start a whole-split run (a job of the server's runner: any session sees it, with
progress and Cancel), open a run on disk (the page's, the CLI's or the API's), and the model's strategies in it:
per class, the maps' spectral clusters with their numbers, mean maps and nearest images; cohorts; the agreement of
two methods' clusterings."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import core
from core import config
from core.explainers import get_method
from core.present import charts
from core.present.render import draw_map
from core.runs import load_table, read_manifest, strategies
from core.eta import format_left
from ui import cache, jobs
from ui.pickers import import_link

RUN = "dataset.run"  # the folder of the run being looked at
MODE = "dataset.mode"
START_MODEL, START_SPLIT, START_METHODS = "dataset.start.model", "dataset.start.split", "dataset.start.methods"
START_HOW, START_N, START = "dataset.start.how", "dataset.start.n", "dataset.start.go"
OPEN_PICK, OPEN_PATH, FOLLOW = "dataset.open.pick", "dataset.open.path", "dataset.follow"
METHOD, BY, CLASS, K, COHORT, OTHER = ("dataset.method", "dataset.by", "dataset.class", "dataset.k", "dataset.cohort",
                                       "dataset.other")
HOW = ("First N images", "Random sample of N", "Whole split")


def title(method: str) -> str:
    """A method as people read it: its title (an id no longer registered stays as it is)."""
    return get_method(method).title if method in core.list_methods() else method


def titles(methods) -> str:
    return ", ".join(title(m) for m in methods)


def run_label(label: str) -> str:
    """A run job's name with its methods by title: the runner names a run ``"<model> <split>: <method ids>"``."""
    head, sep, tail = label.rpartition(": ")
    return f"{head}: {titles(tail.split(', '))}" if sep else label


#: a clause that says the time left ("about 2 min left"), as a run's own progress message may carry one
_LEFT = re.compile(r",?\s*about [^,·]* left")


def progress_line(job) -> str:
    """A run's progress in one line: its name (methods by title), images done, its rate, and the time left once
    (the job's measured estimate; else the one the run's message gives)."""
    name = run_label(job.label)
    if not job.total:
        return f"{name}: planning (measuring one batch)…"
    said = _LEFT.search(job.message or "")
    left = format_left(job.seconds_left) or (said.group(0).strip(" ,") if said else "")
    rate = _LEFT.sub("", job.message or "").strip(" ,·")
    return " · ".join(p for p in (f"{name}: {job.done:,} / {job.total:,} images", rate, left) if p)


def stored_runs() -> list[Path]:
    """Finished runs under the runs folder, newest first."""
    root = config.runs_dir()
    found = [p.parent for p in root.glob("*/manifest.json")] if root.is_dir() else []
    return sorted(found, key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True)


def start_panel() -> None:
    """Model, split, methods and how many images; the run goes to the server's job runner."""
    models = [(p, c) for name in core.list_datasets(labelled=True) for p, c in cache.models_for(name)]
    if not models:
        st.info("No trained model yet.")
        c1, c2 = st.columns(2)
        with c1:
            st.page_link("pages/train.py", label="Train one", icon=":material/model_training:")
        with c2:
            import_link()
        return
    cards = dict(models)
    c1, c2, c3 = st.columns([2, 1, 3])
    path = c1.selectbox("Model", list(cards), key=START_MODEL, format_func=lambda p: f"{cards[p].id} ({cards[p].dataset})")
    split = c2.selectbox("Split", ["test", "val", "train"], key=START_SPLIT)
    methods = c3.multiselect("Methods", core.list_methods(), default=["grad_cam"], key=START_METHODS, format_func=title,
                             help="LIME, SHAP and Occlusion need a sample of at most a few hundred images")
    c1, c2 = st.columns(2)
    how = c1.radio("Images", HOW, horizontal=True, key=START_HOW)
    n = c2.number_input("N", 1, 1_000_000, 500, key=START_N, disabled=how == HOW[2])
    if st.button("Explain the split", key=START, type="primary", disabled=not methods, icon=":material/play_arrow:",
                 help="Runs in the background; starting the same settings again resumes a cancelled run"):
        job = jobs.start_run(path, cards[path].id, split, methods, limit=int(n) if how == HOW[0] else None,
                             sample=int(n) if how == HOW[1] else None)
        st.session_state[FOLLOW] = job.meta["out"]  # opened below as soon as it has finished


def running() -> list:
    """The server's whole-split runs that have not ended (any session's)."""
    return jobs.runner().find(kind="run", running=True)


@st.fragment(run_every=1.0)
def live_runs() -> None:
    running_now = running()
    for job in running_now:
        st.progress(job.fraction, text=progress_line(job))
        st.button("Cancel", key=f"dataset.cancel.{job.id}", on_click=job.cancel, icon=":material/cancel:",
                  help="The parts already computed are kept: start the same run again to resume it")
    if st.session_state.get("dataset.live") and not running_now:
        st.session_state["dataset.live"] = False
        st.rerun()  # a run just ended: the page redraws with it
    st.session_state["dataset.live"] = bool(running_now)


def recent_outcomes() -> None:
    for job in jobs.runner().find(kind="run", running=False)[:3]:
        if job.state == "failed":
            st.error(f"{run_label(job.label)}: {job.error}")
        elif job.state == "cancelled":
            st.info(f"{run_label(job.label)}: cancelled; the parts already computed are kept (start it again to "
                    "resume).")


def open_panel() -> Path | None:
    """The run to look at: one of the runs folder's, or any folder with a manifest (a CLI run)."""
    options = [str(p) for p in stored_runs()]
    follow = st.session_state.get(FOLLOW)
    if follow in options:  # the run this session started has finished: show it
        st.session_state[OPEN_PICK] = follow
        st.session_state[FOLLOW] = None
    c1, c2 = st.columns([2, 2])
    picked = c1.selectbox("Stored run", options, key=OPEN_PICK, format_func=run_name) if options else None
    typed = c2.text_input("Or a run folder (e.g. a CLI run's --out)", key=OPEN_PATH).strip()
    chosen = typed or picked
    if not options and not typed:
        st.caption("No finished run yet: start one above, or run `python -m core explain-split ... --out DIR`.")
        return None
    return Path(chosen).expanduser() if chosen else None


def run_name(folder: str) -> str:
    """A stored run as people read it: model, data, methods by title, images and when it finished."""
    path = Path(folder) / "manifest.json"
    try:
        return _run_name(folder, path.stat().st_mtime)
    except (OSError, core.XaiError):
        return Path(folder).name


@st.cache_data(max_entries=64, show_spinner=False)
def _run_name(folder: str, mtime: float) -> str:
    m = read_manifest(folder)
    return (f"{m['model']['id']} · {m['dataset']['name']}/{m['dataset']['split']} · {titles(m['methods'])} · "
            f"{m['images']['count']:,} images · {str(m['finished'])[:16].replace('T', ' ')}")


@st.cache_data(max_entries=8, show_spinner="Reading the run…")
def _table(folder: str, finished: str):
    return load_table(folder)


@st.cache_data(max_entries=32, show_spinner="Clustering the maps…")
def _strategies(folder: str, finished: str, method: str, by: str, cls: int, k: int | None, region_key: str):
    manifest = read_manifest(folder)
    ds = _dataset(manifest)
    region = ds.extras.get("marker_masks") if region_key else None
    region_class = ds.extras.get("marker_class") if region_key else None
    return strategies.class_strategies(_table(folder, finished), method, by, cls, manifest["dataset"]["classes"], k=k,
                                       region=region, region_class=region_class)


def _dataset(manifest: dict[str, Any]):
    d = manifest["dataset"]
    return cache.dataset(d["name"], d["split"], d["size"], d.get("root"))


def show_run(folder: Path) -> None:
    try:
        manifest = read_manifest(folder)
        table = _table(str(folder), manifest["finished"])
        ds = _dataset(manifest)
    except core.XaiError as exc:
        st.error(str(exc))
        return
    classes = manifest["dataset"]["classes"]
    fails = manifest["failures"]
    st.caption(f"**{manifest['model']['id']}** on {manifest['dataset']['name']}/{manifest['dataset']['split']}: "
               f"{manifest['images']['count']:,} images ({manifest['images']['selection']['rule']}), methods "
               f"{titles(manifest['methods'])}; engine {manifest['engine']['name']}; {len(fails)} failure(s); "
               f"finished {manifest['finished']}")
    if fails:
        with st.expander(f"{len(fails)} failure(s)"):
            shown = pd.DataFrame(fails)
            if "method" in shown:
                shown["method"] = [title(m) if isinstance(m, str) else m for m in shown["method"]]
            st.dataframe(shown, hide_index=True)
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("Method", list(manifest["methods"]), key=METHOD, format_func=title)
    by = c2.radio("Class", ["predicted", "label"], key=BY, horizontal=True,
                  format_func=lambda b: "predicted" if b == "predicted" else "true")
    column = np.asarray(table.column("prediction" if by == "predicted" else "label"))
    counts = np.bincount(column[np.asarray(table.column("method")) == method], minlength=len(classes))
    if st.session_state.get(CLASS) is None or st.session_state.get(CLASS) >= len(classes):
        st.session_state[CLASS] = int(counts.argmax())  # the largest class first
    cls = c3.selectbox("Of class", list(range(len(classes))), key=CLASS,
                       format_func=lambda c: f"{classes[c]} ({counts[c]:,} images)")
    k_in = c4.number_input("Clusters (0: the eigengap's choice)", 0, 20, 0, key=K)
    region_key = "marker" if "marker_masks" in ds.extras else ""
    try:
        s = _strategies(str(folder), manifest["finished"], method, by, int(cls), int(k_in) or None, region_key)
    except core.XaiError as exc:
        st.warning(f"{exc}. Choose another class, or explain more images.")
    else:
        clusters_view(s, ds, classes, region_key)
    cohorts_view(table, method, classes, ds, region_key)
    if len(manifest["methods"]) > 1:
        agreement_view(folder, manifest, method, by, int(cls), region_key)


def clusters_view(s, ds, classes, region_key: str) -> None:
    c = s.clustering
    right = np.where(s.labels == s.predictions, "right", "wrong")
    hover = [f"image {i}: true {classes[t]}, predicted {classes[p]}" for i, t, p in zip(s.ids, s.labels, s.predictions)]
    st.subheader(f"{len(s.ids)} maps of class {classes[s.cls]}: {c.k} cluster(s)")
    st.caption(f"The eigengap suggests {c.suggested_k}. Maps are compared as distributions of relevance mass "
               f"(|map| summing to 1, {c.params['grid']}x{c.params['grid']} blocks) on a "
               f"{c.params['n_neighbors']}-nearest-neighbour graph (spectral relevance analysis, Lapuschkin et al. 2019).")
    a, b, e = st.columns([2, 2, 1])
    a.plotly_chart(charts.strategy_map(c.embedding, [f"cluster {v}" for v in c.labels], hover, "By cluster"),
                   width="stretch", key="dataset.fig.cluster")
    b.plotly_chart(charts.strategy_map(c.embedding, right, hover, "Right or wrong"), width="stretch",
                   key="dataset.fig.right")
    e.plotly_chart(charts.eigengap(c.eigenvalues, c.suggested_k), width="stretch", key="dataset.fig.eig")
    rows = []
    for r in s.clusters:
        row = {"cluster": r["group"], "images": r["size"], "accuracy": f"{r['accuracy']:.0%}",
               "true classes": ", ".join(f"{k} {v}" for k, v in r["labels"].items())}
        if region_key:
            row["mass on the marker"] = f"{r['region_mass']:.0%}"
            row["marker lies (images)"] = r["lies"]
            row["accuracy where the marker lies"] = "n/a" if r["accuracy_when_region_lies"] is None \
                else f"{r['accuracy_when_region_lies']:.0%}"
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if region_key:
        st.caption("This dataset marks a spurious marker in every image: a cluster whose maps put much of their mass on "
                   "it, with low accuracy where the marker names another class, is the model using the shortcut.")
    for r in s.clusters:
        with st.expander(f"Cluster {r['group']}: {r['size']} images, accuracy {r['accuracy']:.0%}", expanded=r is s.clusters[0]):
            members = s.ids[c.labels == r["group"]]
            mean_image = np.mean([ds.image(int(i)).astype(np.float32) for i in members], axis=0).astype(np.uint8)
            cols = st.columns(7)
            cols[0].image(magnitude_tile(mean_image, r["mean_map"], alpha=0.6), caption="mean map over the mean image")
            for col, pos in zip(cols[1:], c.nearest(r["group"], 6)):
                i = int(s.ids[pos])
                col.image(magnitude_tile(ds.image(i), np.abs(s.maps[pos]), alpha=0.5),
                          caption=f"#{i}: {classes[int(s.labels[pos])]} → {classes[int(s.predictions[pos])]}")
                if col.button("Explain", key=f"dataset.open.{r['group']}.{i}", icon=":material/image_search:"):
                    open_on_explain(i)


def magnitude_tile(image: np.ndarray, magnitude: np.ndarray, alpha: float) -> np.ndarray:
    """A cluster's |map| (a member's, or their mean) over its image, by the one drawing path in the magnitude rule
    (these maps are |values|: no sign is left to show), full colour at the map's maximum, at twice the image's size."""
    return draw_map(image, magnitude, method_view="magnitude", signed=False, alpha=alpha,
                    scale=max(float(np.max(magnitude)), 1e-12), size=2 * min(image.shape[:2])).image


def open_on_explain(index: int) -> None:
    """Explain this image: the run's model, dataset and split are selected there."""
    from ui import state

    manifest = read_manifest(st.session_state[RUN] if st.session_state.get(RUN) else "")
    paths = [p for p, c in cache.models_for(manifest["dataset"]["name"])
             if c.id == manifest["model"]["id"] and c.weights_sha256 == manifest["model"]["weights_sha256"]]
    if not paths:
        st.warning(f"Model {manifest['model']['id']} (with these weights) is not in the models folder any more.")
        return
    st.session_state.update({state.DATASET: manifest["dataset"]["name"], state.MODEL: paths[0],
                             state.SPLIT: manifest["dataset"]["split"], state.IMAGE_SOURCE: "Dataset",
                             state.IMAGE_INDEX: index})
    st.switch_page("pages/explain.py")


COHORTS = ("true x predicted class", "confidence", "right / wrong")


def cohorts_view(table, method: str, classes, ds, region_key: str) -> None:
    st.subheader("Cohorts")
    kind = st.radio("Group every image by", COHORTS, horizontal=True, key=COHORT)
    t = table.filter(np.asarray(table.column("method")) == method)
    t = t.filter(strategies.select(t, "label", None))
    labels, preds = np.asarray(t.column("label")), np.asarray(t.column("prediction"))
    proba = np.asarray(t.column("probability"))
    if kind == COHORTS[0]:
        groups, name = labels * len(classes) + preds, lambda g: f"{classes[g // len(classes)]} → {classes[g % len(classes)]}"
    elif kind == COHORTS[1]:
        edges = ("< 50%", "50-80%", "80-95%", "≥ 95%")
        groups, name = strategies.confidence_bins(proba), lambda g: f"probability {edges[g]}"
    else:
        groups, name = (labels == preds).astype(int), lambda g: "right" if g else "wrong"
    from core.runs.store import maps_of

    ids = np.asarray(t.column("image_id"))
    region = np.asarray(ds.extras["marker_masks"])[ids] if region_key else None
    lies = (np.asarray(ds.extras["marker_class"])[ids] != labels) if region_key else None
    rows = strategies.summarise(groups, labels, preds, maps_of(t), classes, region, lies)
    out = []
    for r in rows:
        row = {"cohort": name(r["group"]), "images": r["size"], "accuracy": f"{r['accuracy']:.0%}"}
        if region_key:
            row["mass on the marker"] = f"{r['region_mass']:.0%}"
            row["accuracy where the marker lies"] = "n/a" if r["accuracy_when_region_lies"] is None \
                else f"{r['accuracy_when_region_lies']:.0%}"
        out.append(row)
    st.dataframe(pd.DataFrame(out), hide_index=True, width="stretch")


def agreement_view(folder: Path, manifest, method: str, by: str, cls: int, region_key: str) -> None:
    others = [m for m in manifest["methods"] if m != method]
    other = st.selectbox("Compare its clusters with the clusters of", others, key=OTHER, format_func=title)
    try:
        a = _strategies(str(folder), manifest["finished"], method, by, cls, None, region_key)
        b = _strategies(str(folder), manifest["finished"], other, by, cls, None, region_key)
    except core.XaiError as exc:
        st.warning(str(exc))
        return
    common, ia, ib = np.intersect1d(a.ids, b.ids, return_indices=True)
    ari = strategies.agreement(a.clustering.labels[ia], b.clustering.labels[ib])
    st.metric(f"Adjusted Rand index, {title(method)} vs {title(other)} ({len(common)} images)", f"{ari:.2f}",
              help="1: the two methods split these images into the same groups; about 0: no more alike than chance")
