"""The engine's memory budget: what one ``attribute`` call would hold at once, estimated before it runs, and the
chunk of images that fits (or a precise refusal when one image does not fit).

The estimate is the method's declared model images held at once (:meth:`Explainer.peak_images`) times the
measured memory of one model image on this model at this size: every tensor a forward pass creates, which a
backward pass keeps (gradient methods), or twice the largest of them for forward-only passes (intermediate outputs
are freed as the pass goes). Measured once per model and image size, by one forward pass under a dispatch mode
that records each operation's output (thread-local: no hook on the shared model). The budget,
``XAI_MEMORY_BUDGET_MIB``, defaults to a third of the machine's memory, at most 8 GiB.
``python -m benchmarks --methods none --memory-estimate`` compares estimates with measured peaks (README).
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from core.errors import ParameterError

_cache: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], tuple[int, int]]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def budget_bytes() -> int:
    """``XAI_MEMORY_BUDGET_MIB``, else a third of the machine's memory, at most 8 GiB."""
    given = os.environ.get("XAI_MEMORY_BUDGET_MIB")
    if given:
        return int(float(given) * 2**20)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return min(total // 3, 8 * 2**30)


class _Sizes(TorchDispatchMode):
    """Records the bytes of every tensor an operation creates (views excluded), in this thread only: the shared
    model runs as it is, with no hook on it."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and not t._is_view():
                self.sizes.append(t.numel() * t.element_size())
        return out


def activation_bytes(model: nn.Module, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """(every tensor a forward pass creates, the largest of them) in bytes for one image of ``image_shape``."""
    from core.modelling.prediction import logits, model_device

    key = tuple(int(d) for d in image_shape)
    with _lock:
        known = _cache.get(model, {}).get(key)
    if known is not None:
        return known
    recorder = _Sizes()
    with recorder:  # the one prediction path: eval mode, inference mode, a size the model cannot take refused
        logits(model, torch.zeros((1, *key), device=model_device(model)))
    measured = (sum(recorder.sizes), max(recorder.sizes, default=0))
    with _lock:
        _cache.setdefault(model, {})[key] = measured
    return measured


def per_model_image(cls: Any, model: nn.Module, image_shape: tuple[int, ...]) -> int:
    total, largest = activation_bytes(model, image_shape)
    return max(1, total if cls.needs_gradients else 2 * largest)


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def fitting_chunk(cls: Any, params: dict[str, Any], model: nn.Module, image_shape: tuple[int, ...],
                  chunk: int) -> int:
    """The largest chunk of images, at most ``chunk``, whose call stays within the budget (the maps do not
    depend on the chunk). Raises :class:`ParameterError` with the estimate when one image alone would not fit."""
    budget = budget_bytes()
    each = per_model_image(cls, model, image_shape)
    while chunk > 1 and cls.peak_images(params, image_shape, chunk) * each > budget:
        chunk = max(1, chunk // 2)
    peak = cls.peak_images(params, image_shape, chunk)
    if peak * each > budget:
        fits = max(0, budget // each)
        param = cls.peak_param
        advice = (f"lower {param} (now {params[param]}) to at most about {fits}" if param in params
                  else "use a smaller image or model")
        raise ParameterError(
            f"{cls.title} would hold about {_size(peak * each)} at once ({peak} model images of {_size(each)} "
            f"each, at {'x'.join(str(d) for d in image_shape[-2:])} px on this model); the memory budget is "
            f"{_size(budget)} (XAI_MEMORY_BUDGET_MIB): {advice}")
    return chunk
