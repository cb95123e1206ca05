"""Home page: what the tool does and where to start."""
import streamlit as st

import core
from core.datasets import dataset_info
from core.explainers import get_method
from ui.router import ensure_router

ensure_router()

st.title("XAI Dashboard for image classifiers")
st.markdown(
    """
See **why** a convolutional network decided what it did. Pick a dataset and a trained model, choose one or
more attribution methods, and compare their maps side by side with the model's prediction.

**Start here:** open **Explain**, keep the built-in *Shapes* dataset and the demo model, and step through
images with the index box or *Random*. Every shapes image has a known object mask, so a good explanation
should light up the shape, not the background.
"""
)
st.page_link("pages/explain.py", label="Open the Explain page", icon=":material/image_search:")

c1, c2 = st.columns(2)
with c1:
    st.subheader("Attribution methods")
    for m in core.list_methods():
        cls = get_method(m)
        st.markdown(f"- **{cls.title}** — {cls.description}  \n  <small>{cls.paper}</small>", unsafe_allow_html=True)
with c2:
    st.subheader("Datasets")
    for name in core.list_datasets():
        info = dataset_info(name)
        st.markdown(f"- **{info.title}** — {info.description} ({len(info.classes)} classes, "
                    f"{info.image_size} px, {'RGB' if info.channels == 3 else 'grayscale'})")
    st.subheader("Trained models")
    models = core.list_models()
    if models:
        for path, card in models:
            st.markdown(f"- `{card.id}` — {card.arch} on {card.dataset}, test accuracy "
                        f"{card.metrics.get('accuracy', float('nan')):.1%}")
    else:
        st.info("No model yet: the Explain page can train one, or run `make run`.")

st.caption("Command line: `python -m core train|explain|list --help`. Library: `from core import load_model, "
           "load_dataset, explain, list_methods`.")
