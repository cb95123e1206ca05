"""The Import page's work: read a model made elsewhere (a path on the server, or an upload staged inside the models
folder) into a draft, show its card as a form built from the import settings with where each value came from, check
it on images, and save it. The draft holds a torch module: it lives in this session's state only, never in a cache.

Every face imports through the same calls (:mod:`core.importers`); the CLI's ``import-model`` is the reference."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import streamlit as st

import core
from core.datasets.images import MAX_UPLOAD_MIB, UPLOAD_EXTENSIONS
from core.errors import CheckpointError
from core.explainers import get_method, hidden_methods
from core.importers import (SETTINGS, Draft, check, dataset_images, folder_images, inspect_source, save_imported,
                            staged, upload_images)
from core.importers.matching import IMPORTED, matching_datasets
from core.importers.settings import Setting
from core.importers.uploads import max_model_bytes

from . import cache, data_panel, state

SOURCES = ("Path on the server", "Upload")
CHECK_ON = ("Dataset", "Folder on the server", "Uploaded images")
#: the model files an upload may be (a ``.zip``: a timm or Hugging Face folder)
MODEL_TYPES = ["pt", "pth", "bin", "ckpt", "safetensors", "ts", "onnx", "zip"]
#: the card's name of a setting where it differs
CARD_FIELD = {"model_id": "id"}


@dataclass
class Source:
    """Where the model is: a path on the server, or an uploaded file (kept by the upload box)."""

    name: str
    path: str | None = None
    upload: Any = None

    @property
    def key(self) -> tuple:
        if self.path is not None:
            return ("path", self.path)
        return ("upload", self.upload.name, self.upload.size, self.upload.file_id)


def _kept(key: str, widget, *args, default: Any = None, **kwargs):
    """A widget whose value survives a page switch (see :func:`ui.state.restore`), starting at ``default``."""
    state.restore(key, default)
    value = widget(*args, key=key, **kwargs)
    state.remember(key)
    return value


def source_picker() -> Source | None:
    """A path on the server or an upload (Streamlit shows its progress); ``None`` until there is one."""
    how = _kept(state.IMP_HOW, st.radio, "The model", SOURCES, horizontal=True,
                help="A file (or a timm / Hugging Face folder) on the server, or a file uploaded from your computer")
    if how == SOURCES[0]:
        path = _kept(state.IMP_PATH, st.text_input, "Path of the model file or folder on the server",
                     placeholder="/path/to/best_model.pth",
                     help="A state dict (.pt, .pth, .bin, .ckpt, .safetensors), TorchScript, ONNX, or a timm or "
                          "Hugging Face folder (config.json beside the weights)")
        path = path.strip()
        return Source(Path(path).name or path, path=path) if path else None
    # Streamlit's server takes no upload over server.maxUploadSize (.streamlit/config.toml), whatever a widget says
    mib = min(max_model_bytes() // 2**20, int(st.get_option("server.maxUploadSize")))
    up = st.file_uploader(f"Model file ({', '.join(MODEL_TYPES)}; up to {mib:,} MiB)", type=MODEL_TYPES,
                          key=state.IMP_UPLOAD, max_upload_size=mib,
                          help="A .zip holds a timm or Hugging Face folder. A whole pickled model (torch.save(model)) "
                               "is refused: save its state_dict, or export it to TorchScript or ONNX. A larger file: "
                               "give its path on the server")
    return Source(up.name, upload=up) if up is not None else None


def draft() -> Draft | None:
    return st.session_state.get(state.IMP_DRAFT)


@contextlib.contextmanager
def _opened(source: Source) -> Iterator[Path]:
    """The source as a path: the server's path, or the upload staged inside the models folder (removed after)."""
    if source.path is not None:
        yield Path(source.path).expanduser()
        return
    with staged(source.name, source.upload.getvalue()) as path:
        yield path


def _draft_source(current: Source | None) -> Source:
    """What the draft was read from, to read again (Apply, Save); an upload must still be in the upload box."""
    kept = st.session_state[state.IMP_SOURCE]
    if kept["path"] is not None:
        return Source(kept["name"], path=kept["path"])
    if current is None or current.upload is None or current.key != kept["key"]:
        raise CheckpointError(f"upload {kept['name']} again: an uploaded model is kept only while it is in the upload "
                              "box")
    return current


def _inspect(source: Source, given: dict[str, str]) -> Draft:
    what = " again with your values" if given else ""
    with st.spinner(f"Reading {source.name}{what}: loading it, running it on test inputs to find its outputs, "
                    "channels and which methods apply…"), _opened(source) as path:
        return inspect_source(path, **given)


def _keep(new: Draft, source: Source, given: dict[str, str]) -> None:
    """The draft becomes this session's: the form shows its values, the old check and save are forgotten."""
    st.session_state[state.IMP_DRAFT] = new
    st.session_state[state.IMP_SOURCE] = {"name": source.name, "path": source.path, "key": source.key}
    st.session_state[state.IMP_GIVEN] = dict(given)
    st.session_state[state.IMP_PREFILL] = {s.name: shown(s, new) for s in SETTINGS}
    for key in (state.IMP_CHECK, state.IMP_SAVED):
        st.session_state.pop(key, None)


def read_button(source: Source | None) -> None:
    """*Read the model*: the file's card drafted (each value read, detected, or defaulted)."""
    if not st.button("Read the model", key=state.IMP_READ, type="primary", disabled=source is None,
                     icon=":material/upload_file:", help=None if source else "Type a path or upload a file first"):
        return
    try:
        new = _inspect(source, {})
    except core.XaiError as exc:
        st.session_state.pop(state.IMP_DRAFT, None)  # the form showed another model: it must not stay beside the error
        st.error(str(exc), icon=":material/error:")
        return
    _keep(new, source, {})


def shown(setting: Setting, d: Draft) -> str:
    """A setting's value in the draft's card, as the form shows (and parses) it."""
    value = getattr(d.card, CARD_FIELD.get(setting.name, setting.name))
    if setting.kind == "names":
        return "\n".join(value)
    if setting.kind == "numbers":
        return ", ".join(f"{v:.6g}" for v in value)
    return str(value)


def _field(setting: Setting, key: str, d: Draft) -> None:
    if setting.name == "target_layer" and d.model.cam_layers:  # chosen from the layers a CAM can weight (detected)
        options = list(d.model.cam_layers)
        if st.session_state.get(key) not in options:
            st.session_state[key] = d.card.target_layer if d.card.target_layer in options else options[-1]
        _kept(key, st.selectbox, f"{setting.label} (the layers CAM methods can weight)", options, help=setting.help)
    elif setting.kind == "choice":
        options = list(setting.choices)
        if st.session_state.get(key) not in options:  # a value the settings do not list (never, but never a crash)
            options.append(st.session_state.get(key))
        _kept(key, st.selectbox, setting.label, options, help=setting.help)
    elif setting.kind == "names":
        _kept(key, st.text_area, f"{setting.label} (one a line, in the model's output order)", help=setting.help,
              height=140)
    else:
        _kept(key, st.text_input, setting.label, help=setting.help)


def edited(d: Draft) -> dict[str, str]:
    """The settings the next read is given: those given before, and every field whose text differs from the draft's
    value (an emptied field is detected again)."""
    given = dict(st.session_state.get(state.IMP_GIVEN, {}))
    for s in SETTINGS:
        text = st.session_state.get(state.imp_field(s.name))
        if text is None:
            continue
        if not str(text).strip():
            given.pop(s.name, None)
        elif str(text) != shown(s, d):
            given[s.name] = str(text)
    return given


def card_form(d: Draft, current: Source | None) -> bool:
    """The card as a form built from the import settings, each value beside where it came from; *Apply* reads the
    model again with the edited values given. Returns whether edits wait for *Apply*."""
    for name, value in st.session_state.pop(state.IMP_PREFILL, {}).items():
        st.session_state[state.imp_field(name)] = value
    kept = st.session_state[state.IMP_SOURCE]
    st.subheader(f"Its card: {d.card.id}")
    st.caption(f"A {d.format} model read from {kept['name']}. Each value was read from the file, found by running "
               "the model, given by you, or a default: beside it, which. Change any and press *Apply*: the model is "
               "read again with your values (empty a field to have it detected again).")
    with st.container(border=True):
        for s in SETTINGS:
            c1, c2 = st.columns([3, 2], vertical_alignment="center")
            with c1:
                _field(s, state.imp_field(s.name), d)
            c2.caption(f"{s.label}: {d.origin.get(s.name, 'default')}")
        given = edited(d)
        pending = given != st.session_state.get(state.IMP_GIVEN, {})
        if pending:
            st.info("Edits not applied yet: press *Apply* to read the model with them (the check and *Save* use the "
                    "card as last applied).", icon=":material/edit:")
        if st.button("Apply", key=state.IMP_APPLY, icon=":material/refresh:", disabled=not pending):
            try:
                source = _draft_source(current)
                new = _inspect(source, given)
            except core.XaiError as exc:  # the typed values stay in the form
                st.error(str(exc), icon=":material/error:")
                return pending
            _keep(new, source, given)
            st.rerun()
    return pending


def about(d: Draft) -> None:
    """Notes of the import, which model lists it joins, and which methods apply (the others with the reason)."""
    for note in d.notes:
        st.caption(f"Note: {note}")
    card = d.card
    found = matching_datasets(card.classes)
    if found:
        titles = ", ".join(f"**{data_panel.label(n)}**" for n in found)
        mapping = card.training.get("class_mapping")
        st.markdown(f"Its classes are those of {titles}: it is listed there (and under *Imported models*)"
                    + (f"; the classes are in another order, mapped by name: {mapping}." if mapping else "."))
    else:
        st.markdown("Its classes match no dataset here: it is listed under **Imported models (any image)**, where it "
                    "explains images you upload or a folder of images.")
    offered = core.list_methods(d.model)
    st.markdown(f"**{len(offered)} methods apply:** " + ", ".join(get_method(m).title for m in offered))
    hidden = hidden_methods(d.model)
    if hidden:
        with st.expander(f"{len(hidden)} method{'s' * (len(hidden) != 1)} not offered for this model"):
            for m, why in hidden.items():
                st.markdown(f"- **{get_method(m).title}**: {why}")


def _ready_datasets() -> list[str]:
    return [n for n in core.list_datasets(labelled=True) if data_panel.status(n).ready]


def _check_images(d: Draft, where: str, n: int):
    """``(images, labels or None, description)`` for the check, or ``None`` while something is missing."""
    if where == CHECK_ON[0]:
        names = _ready_datasets()
        if not names:
            st.info("No dataset is ready on this machine: the Data page gets one.")
            return None
        index = names.index(d.card.dataset) if d.card.dataset in names else 0
        name = st.selectbox("Dataset (test split; labels matched to the model's classes by name)", names, index=index,
                            key=state.IMP_CHECK_DATASET, format_func=data_panel.label)
        return lambda: dataset_images(d.card, name, "test", data_panel.resolve(name)[0], n=n)
    if where == CHECK_ON[1]:
        folder = _kept(state.IMP_CHECK_FOLDER, st.text_input, "Folder of images on the server",
                       help="Images, or class folders of images: labelled when the class folders are the model's "
                            "classes (in any order)").strip()
        return (lambda: folder_images(d.card, folder, n=n)) if folder else None
    files = st.file_uploader(f"Images (up to {MAX_UPLOAD_MIB} MiB each)", type=list(UPLOAD_EXTENSIONS),
                             accept_multiple_files=True, key=state.IMP_CHECK_UPLOADS, max_upload_size=MAX_UPLOAD_MIB)
    return (lambda: upload_images(d.card, [f.getvalue() for f in files[:n]])) if files else None


def check_panel(d: Draft, pending: bool) -> None:
    """Run the model on real images before it is used: what it predicts, its accuracy where labelled, and every sign
    of a card that does not fit it (a wrong mean / std, BGR as RGB, classes out of order)."""
    st.subheader("Check it on images")
    st.caption("A good model with a wrong card (mean / std, pixel range, channel order, class order) still runs, but "
               "predicts nonsense: see what it predicts before it is used.")
    c1, c2 = st.columns([3, 1])
    where = _kept(state.IMP_CHECK_ON, c1.radio, "Images", CHECK_ON, horizontal=True)
    n = int(_kept(state.IMP_CHECK_N, c2.number_input, "How many", 4, 1024, default=64,
                  help="A seeded sample of this many images"))
    images = _check_images(d, where, n)
    if st.button("Run the check", key=state.IMP_CHECK_RUN, icon=":material/fact_check:",
                 disabled=images is None or pending, help="Apply your edits first" if pending else None):
        try:
            with st.spinner(f"Running {d.card.id} on up to {n} images…"):
                x, labels, what = images()
                st.session_state[state.IMP_CHECK] = check(d.model, d.card, x, labels, what)
        except core.XaiError as exc:
            st.error(str(exc), icon=":material/error:")
    result = st.session_state.get(state.IMP_CHECK)
    if result is not None:
        show_check(d, result)


def show_check(d: Draft, result) -> None:
    """The predictions' class distribution, accuracy when labelled, and every warning in its own box."""
    st.markdown(f"Checked on {result.source}.")
    table = pd.DataFrame({"class": d.card.classes,
                          "predicted": [result.counts.get(c, 0) for c in d.card.classes]})
    table["share"] = table["predicted"] / max(result.n, 1)
    c1, c2 = st.columns([3, 2])
    share = st.column_config.ProgressColumn("share of the images", min_value=0.0, max_value=1.0, format="percent")
    c1.dataframe(table, hide_index=True, width="stretch", column_config={"share": share})
    if result.accuracy is not None:
        c2.metric("Accuracy", f"{result.accuracy:.1%}", help=f"on {result.labelled} labelled images")
        c2.metric("Balanced accuracy", f"{result.balanced_accuracy:.1%}",
                  help=f"the mean recall over the classes present; chance is {1 / len(d.card.classes):.1%}")
    else:
        c2.caption("Unlabelled images: no accuracy (a dataset, or a folder of class folders named as the model's "
                   "classes, gives one).")
    for w in result.warnings:
        st.warning(w, icon=":material/warning:")
    if not result.warnings:
        st.success("Nothing in its predictions suggests a card that does not fit the model.",
                   icon=":material/check_circle:")


def _save(d: Draft, current: Source | None, replace: bool) -> Path:
    """Save the draft; an upload is staged again and read with the same values (its staged file is gone), and must
    be the file that was checked."""
    source = _draft_source(current)
    if source.path is not None:
        return save_imported(d, replace=replace)
    given = st.session_state.get(state.IMP_GIVEN, {})
    with _opened(source) as path:
        again = inspect_source(path, **given)
        if again.card.source.get("sha256") != d.card.source.get("sha256"):
            raise CheckpointError(f"{source.name} is not the file that was read: press Read the model again")
        return save_imported(again, replace=replace)


def save_panel(d: Draft, current: Source | None, pending: bool) -> None:
    """*Save* (an existing id only with *replace* ticked); then where the model is now."""
    st.subheader("Save")
    replace = st.checkbox(f"Replace the model {d.card.id!r} if one exists already", key=state.IMP_REPLACE)
    if st.button("Save", key=state.IMP_SAVE, type="primary", icon=":material/save:", disabled=pending,
                 help="Apply your edits first" if pending else f"Saves it to the models folder as {d.card.id}"):
        try:
            with st.spinner(f"Saving {d.card.id}…"):
                path = _save(d, current, replace)
        except core.XaiError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        cache.clear_all()  # a replaced model of this id must not be served from a cache (its card, its maps)
        st.session_state[state.IMP_SAVED] = {"id": d.card.id, "path": str(path), "dataset": d.card.dataset}
        # the Explain and Compare pages open on it
        st.session_state[state.DATASET] = d.card.dataset
        st.session_state[state.MODEL] = str(path)
    saved = st.session_state.get(state.IMP_SAVED)
    if saved is not None:
        saved_links(saved)


def saved_links(saved: dict) -> None:
    st.success(f"Saved **{saved['id']}** to `{saved['path']}`: it is in every model list now, under "
               f"{data_panel.label(saved['dataset'])}" + ("" if saved["dataset"] == IMPORTED else
                                                          " and under Imported models (any image)") + ".",
               icon=":material/check_circle:")
    c1, c2, c3 = st.columns(3)
    c1.page_link("pages/explain.py", label="Explain an image with it", icon=":material/image_search:")
    c2.page_link("pages/compare.py", label="Compare methods on it", icon=":material/grid_view:")
    c3.page_link("pages/performance.py", label="Measure its performance", icon=":material/monitoring:")
    if saved["dataset"] == IMPORTED:
        st.caption("Compare and Performance need a labelled dataset whose classes are the model's; until then, "
                   "Explain takes images you upload or a folder of images (`python -m core evaluate --model "
                   f"{saved['id']} --dataset folder --data-dir FOLDER` measures it on a labelled folder).")

