"""Home page: what the tool does and where to start."""
import streamlit as st

import core
from core.explainers import get_method
from ui import data_panel
from ui.pickers import model_label
from ui.router import PAGES, page


def main() -> None:
    st.title("XAI Dashboard for image classifiers")
    st.markdown(
        """
    See **why** a convolutional network decided what it did. Pick a dataset and a trained model, choose
    attribution methods, and compare their maps side by side with the model's prediction.

    **Start here:** open **Explain**, keep the built-in *Shapes* dataset and the demo model, and step through
    images with the index box or *Random*. Every shapes image has a known object mask, so a good explanation
    should light up the shape, not the background. Then open **Compare** to put several methods and images
    on one grid and see which methods agree. An explanation only means something beside how good the model is:
    **Performance** shows each model's numbers per class, its calibration and its most confident mistakes, and
    every page warns where a prediction should not be believed. **Train** trains more models with every
    setting, live curves and tracked experiments. **Data** shows each dataset and how to get the real ones
    (PathMNIST, PneumoniaMNIST, chest X-rays, dogs vs wolves, insects, or your own folder); **Explain** also
    takes an uploaded image. **Import** brings a classifier trained elsewhere (a state dict, TorchScript, ONNX,
    a timm or Hugging Face folder) to every page, after a check of what it predicts.
    """
    )
    links = [p for p in PAGES if p[0] != "pages/home.py"]  # every other page, from the router's list
    for start in range(0, len(links), 4):
        for col, (path, _, icon, label) in zip(st.columns(4), links[start : start + 4]):
            col.page_link(path, label=label, icon=icon)

    left, right = st.columns(2)
    with left:
        methods_by_family()
    with right:
        datasets_and_models()
    st.caption("Command line: `python -m core train|evaluate|explain|quality|download|list --help`; benchmarks: "
               "`python -m benchmarks --help`. Library: `from core import load_model, load_dataset, explain, "
               "list_methods`.")


def methods_by_family() -> None:
    st.subheader(f"{len(core.list_methods())} attribution methods")
    families: dict[str, list[str]] = {}
    for m in core.list_methods():
        families.setdefault(get_method(m).family, []).append(m)
    for family, names in families.items():
        with st.expander(f"{family} ({len(names)})", expanded=family == "CAM"):
            for m in names:
                cls = get_method(m)
                st.markdown(f"- **{cls.title}** — {cls.description}  \n  <small>{cls.paper}</small>",
                            unsafe_allow_html=True)


def datasets_and_models() -> None:
    st.subheader("Datasets")
    for name in core.list_datasets():
        s = data_panel.status(name)
        st.markdown(f"- {data_panel.STATE_ICON[s.state]} **{core.dataset_info(name).title}** — {s.state}")
    st.subheader("Trained models")
    models = core.list_models()
    if not models:
        st.info("No model yet: the Train page (or Explain) trains one, the Import page brings one trained elsewhere, "
                "or run `make run`.")
    for _, card in models:
        if card.imported:
            st.markdown(f"- {model_label(card)}, for {core.dataset_info(card.dataset).title}")
            continue
        st.markdown(f"- `{card.id}` — {card.arch} on {card.dataset}, test accuracy "
                    f"{card.metrics.get('accuracy', float('nan')):.1%}"
                    + ("" if card.training.get("status", "complete") == "complete" else " (stopped early)"))


page(main)
