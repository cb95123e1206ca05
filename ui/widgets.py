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




def colour_rules(views: Sequence[str | None], scale_note: str) -> None:
    """The colour rule of every map shown (``views``: each tile's rule), once, with each rule's colour bar drawn as
    a vector, then ``scale_note`` (per-map or shared scale)."""
    from core.present import render

    kinds = [v for v in ("signed", "magnitude") if v in views]
    if not kinds:
        return
    for col, v in zip(st.columns(len(kinds) + 1), kinds):
        col.html(render.colorbar_svg(v))
    st.caption(f"{render.colour_rule_text(kinds)} {scale_note}")
