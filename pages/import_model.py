"""Import page: bring a classifier trained elsewhere (a state dict, TorchScript, ONNX, a timm or Hugging Face folder),
see the card drafted for it with where each value came from, correct it, check it on images, and save it: it is then
in every model list."""
from __future__ import annotations

import streamlit as st

from ui import importing
from ui.router import page


def main() -> None:
    st.title("Import a model")
    st.caption("A classifier trained anywhere: its file is read (a whole pickled model is refused without running "
               "anything), run on test inputs to find its outputs and which methods apply, and described by a card "
               "you can correct. Check what it predicts on real images before saving it. Command line: "
               "`python -m core import-model FILE --help`.")
    source = importing.source_picker()
    importing.read_button(source)
    draft = importing.draft()
    if draft is None:
        st.info("Give a model file (a path on the server, or an upload) and press *Read the model*.")
        return
    pending = importing.card_form(draft, source)
    importing.about(draft)
    importing.check_panel(draft, pending)
    importing.save_panel(draft, source, pending)


page(main)
