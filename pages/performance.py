"""Performance page: how good each model is on its test split, per class, with curves, calibration, its most
confident mistakes (one click opens them on Explain), and several models of a dataset side by side."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import core
from core.present import charts, render
from core.modelling.classification import HEADLINE, confident_mistakes
from core.modelling.trust import model_warnings
from ui import cache, data_panel, state
from ui.data_panel import setup_panel
from ui.pickers import dataset_models, model_label, st_trust_box
from ui.router import page

DATASET = "perf.dataset"
MODELS = "perf.models"
NORMALISE = "perf.normalise"
TRUE_FILTER = "perf.true"
PRED_FILTER = "perf.pred"
GALLERY = 12

LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_precision": "macro precision",
          "macro_recall": "macro recall", "macro_f1": "macro F1", "weighted_precision": "weighted precision",
          "weighted_recall": "weighted recall", "weighted_f1": "weighted F1", "roc_auc": "ROC AUC", "ece": "ECE (lower is better)"}


def open_on_explain(dataset: str, model_path: str, index: int) -> None:
    """Button callback: the Explain page's own selectors are set to this test image before switching."""
    st.session_state[state.DATASET] = dataset
    st.session_state[state.MODEL] = model_path
    st.session_state[state.SPLIT] = "test"
    st.session_state[state.IMAGE_SOURCE] = "Dataset"
    st.session_state[state.IMAGE_INDEX] = int(index)
    st.session_state["perf.goto"] = True


def headline_table(evals: dict[str, tuple]) -> pd.DataFrame:
    rows = []
    for path, (ev, card) in evals.items():
        m = ev.metrics
        rows.append({"model": card.id, "arch": card.arch, "test images": m["n"],
                     **{LABELS[k]: m.get(k) for k in HEADLINE},
                     "chance accuracy": m["chance_accuracy"], "chance balanced acc.": m["chance_balanced_accuracy"],
                     "OOD flags on test": (m.get("ood") or {}).get("test_flag_rate")})
    return pd.DataFrame(rows)


def one_model(path: str, ev, card, root: str | None) -> None:
    m = ev.metrics
    c = st.columns(5)
    c[0].metric("Accuracy", f"{m['accuracy']:.1%}", help=f"Always answering the most frequent class: {m['chance_accuracy']:.1%}")
    c[0].caption(f"chance {m['chance_accuracy']:.1%}")
    c[1].metric("Balanced accuracy", f"{m['balanced_accuracy']:.1%}", help="Mean recall over the classes")
    c[1].caption(f"chance {m['chance_balanced_accuracy']:.1%}")
    c[2].metric("Macro F1", f"{m['macro_f1']:.3f}")
    c[3].metric("ROC AUC", "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}",
                help="One-vs-rest, macro-averaged, for more than two classes")
    c[4].metric("ECE", f"{m['ece']:.3f}", help="Expected calibration error: how far confidence is from accuracy")
    c[4].caption(f"{m['n']:,} test images")

    st.subheader("Per class")
    per = pd.DataFrame([{"class": k, "precision": v["precision"], "recall": v["recall"], "F1": v["f1-score"],
                         "support": v["support"]} for k, v in m["per_class"].items()])
    c1, c2 = st.columns([2, 3])
    c1.dataframe(per, hide_index=True, width="stretch")
    c2.plotly_chart(charts.per_class_metrics(m), width="stretch", key=f"perclass.{card.id}")
    normalise = st.toggle("Row-normalised confusion matrix", value=False, key=NORMALISE)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.confusion_heatmap(m["confusion_matrix"], card.classes, normalise), width="stretch",
                    key=f"cm.{card.id}")
    c2.plotly_chart(charts.reliability_diagram(ev.details["reliability"]), width="stretch", key=f"rel.{card.id}")
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.roc_curves(ev.details["curves"]), width="stretch", key=f"roc.{card.id}")
    c2.plotly_chart(charts.pr_curves(ev.details["curves"]), width="stretch", key=f"pr.{card.id}")
    if (m.get("ood") or {}).get("threshold") is not None:
        o = m["ood"]
        st.caption(f"Out-of-distribution score: {o['method']}; threshold {o['threshold']:.1f} (the validation "
                   f"split's {o['quantile']:.0%} quantile) flags {o['val_flag_rate']:.1%} of val and "
                   f"{o['test_flag_rate']:.1%} of test images.")
    mistakes(path, ev, card, root)


def mistakes(path: str, ev, card, root: str | None) -> None:
    st.subheader("Most confident mistakes")
    options = [None, *range(len(card.classes))]
    fmt = lambda i: "any" if i is None else card.classes[i]  # noqa: E731
    c1, c2 = st.columns(2)
    t = c1.selectbox("True class", options, format_func=fmt, key=TRUE_FILTER)
    p = c2.selectbox("Predicted class", options, format_func=fmt, key=PRED_FILTER)
    idx = confident_mistakes(ev.y_true, ev.proba, t, p, limit=GALLERY)
    if len(idx) == 0:
        st.info("No misclassified test images with these classes.")
        return
    try:
        ds = cache.dataset(card.dataset, "test", card.input_size, root)
    except core.XaiError as exc:
        st.warning(f"The test images cannot be shown: {exc}")
        return
    cols = st.columns(6)
    for j, i in enumerate(idx):
        col = cols[j % 6]
        pred = int(ev.proba[i].argmax())
        col.image(render.upscale(ds.image(int(i)), max(1, 96 // ds.images.shape[1])), width="stretch",
                  caption=f"#{i}: {card.classes[int(ev.y_true[i])]} → {card.classes[pred]} ({ev.proba[i, pred]:.1%})")
        col.button("Explain", key=f"perf.explain.{i}", on_click=open_on_explain, args=(card.dataset, path, int(i)),
                   help="Open this image on the Explain page")


def main() -> None:
    if st.session_state.pop("perf.goto", False):
        st.switch_page("pages/explain.py")
    st.title("Model performance")
    picked = dataset_models(DATASET)
    if picked is None:
        return
    name, cards = picked
    if MODELS in st.session_state:  # another dataset's models are not this one's: its own newest model then
        st.session_state[MODELS] = [p for p in st.session_state[MODELS] if p in cards] or [next(iter(cards))]
    chosen = st.multiselect("Models (two or more: side by side)", list(cards), default=[next(iter(cards))], key=MODELS,
                            format_func=lambda p: model_label(cards[p]))
    if not chosen:
        st.info("Pick at least one model.")
        return
    evals, roots = {}, {}
    for path in chosen:
        card = cards[path]
        root, status = data_panel.resolve(name, card)
        roots[path] = root
        try:
            evals[path] = cache.evaluation(path, card.weights_sha256, root)
        except core.XaiError as exc:
            st.error(f"{card.id}: {exc}")
            if not status.ready:
                setup_panel(name)
    if not evals:
        return
    for path, (ev, card) in evals.items():
        st_trust_box(model_warnings(card, ev.metrics), card.id)  # one box per model, every reason in it
    table = headline_table(evals)
    if len(evals) > 1:
        st.subheader("Side by side")
        st.dataframe(table, hide_index=True, width="stretch")
        keys = [LABELS[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc")]
        st.plotly_chart(charts.models_side_by_side(table.to_dict("records"), keys), width="stretch")
        per = pd.DataFrame([{"model": card.id, "class": c, "precision": v["precision"], "recall": v["recall"],
                             "F1": v["f1-score"], "support": v["support"]}
                            for _, (ev, card) in evals.items() for c, v in ev.metrics["per_class"].items()])
        st.dataframe(per.pivot(index="class", columns="model", values=["recall", "precision", "F1"]), width="stretch")
        detail = st.selectbox("Details of", list(evals), format_func=lambda p: cards[p].id, key="perf.detail")
    else:
        detail = chosen[0]
        with st.expander("All headline numbers"):
            st.dataframe(table, hide_index=True, width="stretch")
    ev, card = evals[detail]
    st.header(card.id)
    one_model(detail, ev, card, roots[detail])


page(main)
