"""Widgets built from an explainer's declared parameters (no per-method ``if`` chains)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import streamlit as st

from core.modelling.architectures import conv_layers
from core.explainers import Param, get_method

from ui import state


def param_widget(p: Param, key: str, model: Any = None) -> Any:
    """One widget for one declared parameter (a method's or a quality metric's), under ``key``."""
    label = p.widget_label()
    if p.kind == "layer":
        options = conv_layers(model)
        default = getattr(model, "target_layer", None)
        index = options.index(default) if default in options else 0
        return st.selectbox(label, options, index=index, key=key, help=p.help)
    if p.kind == "choice":
        return st.selectbox(label, p.choices, index=p.choices.index(p.default), key=key, help=p.help)
    if p.kind == "bool":
        return st.checkbox(label, value=bool(p.default), key=key, help=p.help)
    if p.kind == "int":
        return int(st.number_input(label, min_value=int(p.min), max_value=int(p.max), value=int(p.default),
                                   step=int(p.step or 1), key=key, help=p.help))
    return float(st.number_input(label, min_value=float(p.min), max_value=float(p.max), value=float(p.default),
                                 step=float(p.step or 0.01), key=key, help=p.help, format="%.4g"))


def param_widgets(params: Sequence[Param], key: Callable[[Param], str], model: Any = None) -> dict[str, Any]:
    """Widgets for declared parameters, in declaration order (so a parameter's condition is already chosen); a
    parameter whose ``when`` condition does not hold is not shown and keeps its default (out of the cache key)."""
    values: dict[str, Any] = {}
    for p in params:
        if p.when is not None and values.get(p.when[0]) != p.when[1]:
            values[p.name] = p.default
        else:
            values[p.name] = param_widget(p, key(p), model)
    return values


def method_params(method: str, model: Any) -> dict[str, Any]:
    """Render the parameter widgets of ``method`` in an expander and return their values."""
    cls = get_method(method)
    if not cls.params:
        st.caption(f"**{cls.title}**: no parameters")
        return {}
    with st.expander(f"{cls.title} parameters"):
        st.caption(cls.description)
        return param_widgets(cls.params, lambda p: state.param_key(method, p.name), model)


def metric_params(metrics: Sequence[str], key_prefix: str) -> dict[str, dict[str, Any]]:
    """The options of the chosen quality metrics, one widget per option name (deletion and insertion share
    ``replacement``), built from the metrics' declared parameters. Returns only the metrics that have options."""
    from core.quality import get_metric

    shared: dict[str, Param] = {}
    for m in metrics:
        for p in get_metric(m).params:
            shared.setdefault(p.name, p)
    values = param_widgets(list(shared.values()), lambda p: f"{key_prefix}{p.name}")
    return {m: {p.name: values[p.name] for p in get_metric(m).params} for m in metrics if get_metric(m).params}




def colour_bar(container: Any, rule: str) -> None:
    """A rule's colour bar at the width of its column (a map tile's), drawn by the browser as an image with its text
    alternative (alt text and aria-label name it a colour bar and its rule, for screen readers)."""
    import base64

    from core.present import render

    # drawn 240 units wide and scaled to the tile: its 12-unit labels read at about 11 px under a 220 px tile and at
    # about 30 px under a presentation tile of 600 px; object-fit "fill", as Streamlit's markdown images are
    # "scale-down", which never draws the bar wider than its own 240 units
    svg = base64.b64encode(render.colorbar_svg(rule, width=240).encode()).decode()
    label = render.colorbar_label(rule)
    style = "width:100%;height:auto;object-fit:fill;display:block"
    container.markdown(f'<img src="data:image/svg+xml;base64,{svg}" alt="{label}" aria-label="{label}" '
                       f'class="xai-colour-bar" data-rule="{rule}" style="{style}">', unsafe_allow_html=True)


def colour_rules(views: Sequence[str | None], scale_note: str) -> None:
    """The colour rule of every map shown (``views``: each tile's rule) in words, once, then ``scale_note`` (per-map
    or shared scale); each map's own colour bar is under it (:func:`colour_bar`)."""
    from core.present import render

    kinds = [v for v in ("signed", "magnitude") if v in views]
    if kinds:
        st.caption(f"{render.colour_rule_text(kinds)} Under a map, the image is shown in grey: every colour on it is "
                   f"the map's. {scale_note}")


#: presentation mode: no sidebar (its controls keep their values), the main area at the full width, larger text
PRESENTATION_CSS = """<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"]
{display: none !important;}
.block-container, [data-testid="stMainBlockContainer"] {max-width: 100% !important; padding: 1rem 2rem !important;}
[data-testid="stMarkdownContainer"] p, [data-testid="stCaptionContainer"] {font-size: 1.35rem !important;}
[data-testid="stMarkdownContainer"] h3 {font-size: 1.9rem !important;}
</style>"""


def presentation_mode(key: str) -> bool:
    """A toggle in the main area (it stays reachable with the sidebar hidden): on, the sidebar is hidden and the page
    uses the whole screen with larger text, for a room or a projector. Its value is the page's to use (e.g. fewer,
    larger tiles with large titles)."""
    on = st.toggle("Presentation mode", key=key, help="Hide the controls and show this image's maps as large as the "
                                                      "screen allows, with titles and colour bars readable from the back")
    if on:
        st.markdown(PRESENTATION_CSS, unsafe_allow_html=True)
    return on
