"""The explainer contract: one base class, one declared parameter schema, one result type.

An explainer subclass declares its abilities and parameters as class attributes (the UI builds its
widgets from them) and implements :meth:`Explainer.attribute`, which returns the raw attribution for
one image. :func:`core.explainers.explain` wraps it with validation, locking, channel reduction,
display scaling and timing, so every method returns the same :class:`Explanation`.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError

ParamKind = Literal["int", "float", "choice", "bool", "layer"]


@dataclass(frozen=True)
class Param:
    """One method parameter: type, default and range, with a help line for the UI."""

    name: str
    kind: ParamKind
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""

    def validate(self, value: Any) -> Any:
        """Coerce ``value`` to this parameter's type or raise :class:`ParameterError`."""
        try:
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(value)
            elif self.kind == "float":
                value = float(value)
                if not np.isfinite(value):
                    raise ValueError
            elif self.kind == "bool":
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                value = bool(value)
            elif self.kind in ("choice", "layer"):
                value = str(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {self.name!r} must be {self.kind}, got {value!r}") from None
        if self.kind == "choice" and value not in self.choices:
            raise ParameterError(f"parameter {self.name!r} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.kind in ("int", "float"):
            if self.min is not None and value < self.min or self.max is not None and value > self.max:
                raise ParameterError(f"parameter {self.name!r} must be in [{self.min}, {self.max}], got {value}")
        return value


def seed_param() -> Param:
    return Param("seed", "int", 0, "Random seed: the same seed gives the same map", 0, 2**31 - 1, label="Seed")


@dataclass
class Explanation:
    """The result of one attribution.

    Attributes:
        attribution: signed map (H, W) float32 at the input's resolution (channels reduced as the
            method declares). Non-negative for methods with ``signed = False``.
        heatmap: (H, W) float32 in [0, 1] for display: ``|attribution|`` scaled by a robust maximum.
        target: the class index explained.
        method, title: registry name and display name.
        params: the full parameter set used (defaults filled in).
        seconds: wall time of the attribution itself.
        signed: whether the attribution can be negative.
        flat: True when the map is constant (no pixel stands out); ``heatmap`` is then all zeros.
        extras: method-specific values, e.g. ``convergence_delta`` for Integrated Gradients.
    """

    method: str
    title: str
    attribution: np.ndarray
    heatmap: np.ndarray
    target: int
    params: dict[str, Any]
    seconds: float
    signed: bool
    flat: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


class Explainer:
    """Base class. Subclasses set the class attributes and implement :meth:`attribute`."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: abilities, declared for the UI and the tests
    needs_gradients: ClassVar[bool] = True
    needs_layer: ClassVar[bool] = False
    takes_baseline: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False
    signed: ClassVar[bool] = True
    #: how (C, H, W) attributions become one (H, W) map: "sum" (signed) or "max_abs"
    channel_reduction: ClassVar[Literal["sum", "max_abs"]] = "sum"
    #: percentage of the largest |values| clipped when scaling the heat map (robust to single hot pixels)
    outlier_perc: ClassVar[float] = 1.0
    #: needs a sample of training images (``explain(..., background=...)``); falls back to synthetic ones
    needs_background: ClassVar[bool] = False
    #: "CAM", "Gradient" or "Perturbation" (grouping in the UI)
    family: ClassVar[str] = "Gradient"

    def __init__(self, model: nn.Module, background: torch.Tensor | None = None) -> None:
        self.model = model
        self.background = background
        #: method-specific values an ``attribute`` call may set (copied into ``Explanation.extras``)
        self.extras: dict[str, Any] = {}
        #: per-call overrides: a wrapper method (SmoothGrad) inherits these from the method it wraps
        self.signed_output: bool = self.signed
        self.reduction: str = self.channel_reduction

    @staticmethod
    def grad_input(x: torch.Tensor) -> torch.Tensor:
        """A private copy of ``x`` that requires grad (the caller's tensor is never touched)."""
        return x.detach().clone().requires_grad_(True)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.params}

    def attribute(self, x: torch.Tensor, target: int, **params: Any) -> np.ndarray | torch.Tensor:
        """Attribution for one image.

        Args:
            x: (1, C, H, W) float tensor in [0, 1] on the model's device. Must not be modified.
            target: class index to explain.
        Returns:
            (C, H, W) or (H, W) attribution at input resolution.
        """
        raise NotImplementedError


#: Stochastic methods reseed the global RNGs; this lock keeps two of them from interleaving.
rng_lock = threading.Lock()

_locks: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """One re-entrant lock per model object.

    Models cached with ``st.cache_resource`` are shared by every browser session. Hook-based methods
    (CAMs, guided backprop) attach hooks to the shared model, so a concurrent forward pass from
    another thread would be captured by them; every attribution therefore holds its model's lock.
    """
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock
