"""Widgets built from an explainer's declared parameters (no per-method ``if`` chains)."""
from __future__ import annotations

from typing import Any

import streamlit as st

from core.architectures import conv_layers
from core.explainers import Param, get_method

from . import state


def param_widget(method: str, p: Param, model: Any) -> Any:
    key = state.param_key(method, p.name)
    label = p.label or p.name
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


def method_params(method: str, model: Any) -> dict[str, Any]:
    """Render the parameter widgets of ``method`` in an expander and return their values."""
    cls = get_method(method)
    if not cls.params:
        st.caption(f"**{cls.title}**: no parameters")
        return {}
    with st.expander(f"{cls.title} parameters"):
        st.caption(cls.description)
        values: dict[str, Any] = {}
        for p in cls.params:  # in declaration order, so a parameter's condition is already chosen
            if p.when is not None and values.get(p.when[0]) != p.when[1]:
                values[p.name] = p.default  # irrelevant for this choice: not shown, and out of the cache key
            else:
                values[p.name] = param_widget(method, p, model)
        return values


#: how each method-specific extra is shown under its map; an extra not listed here is simply not shown
EXTRAS_TEXT: dict[str, str] = {
    "convergence_delta": "convergence δ = {:.3g}",
    "output_difference": "f(x) − f(baseline) = {:.3g}",
    "n_superpixels": "{} superpixels",
    "score": "local fit R² = {:.2f}",
    "base_value": "f(fully masked) = {:.3g}",
    "background": "background: {}",
}


def extras_caption(extras: dict[str, Any]) -> str:
    """One line from whichever extras a method reported (methods report different ones, or none)."""
    parts = []
    for key, fmt in EXTRAS_TEXT.items():
        value = extras.get(key)
        if value is not None:
            try:
                parts.append(fmt.format(value))
            except (TypeError, ValueError):
                parts.append(f"{key} = {value}")
    return " · ".join(parts)
