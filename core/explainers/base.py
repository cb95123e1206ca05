"""The explainer contract: one base class, one declared parameter schema, one result type.

An explainer subclass declares its abilities, parameters and effects on shared state as class
attributes (the UI builds its widgets from them; the engine derives locking and seeding from them)
and implements :meth:`Explainer.attribute`, which returns raw attributions for a chunk of images.
:func:`core.explainers.engine.explain_batch` wraps it with validation, replicas, seeding, progress,
channel reduction, display scaling and timing, so every method returns the same :class:`Explanation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from core.modelling.architectures import traits_of
from core.params import Param


def seed_param() -> Param:
    return Param("seed", "int", 0, help="Random seed: the same seed gives the same map", min=0, max=2**31 - 1, label="Seed")


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
        seconds: wall time of the attribution itself (in a batch: the chunk's time divided by its images).
        signed: whether the attribution can be negative.
        flat: True when the map is constant (no pixel stands out); ``heatmap`` is then all zeros.
        extras: method-specific values (JSON-able), e.g. ``convergence_delta`` for Integrated Gradients,
            ``superpixel_weights`` for LIME.
        segments: (H, W) int region labels for region methods (LIME's superpixels), else ``None``.
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
    segments: np.ndarray | None = None


#: ``progress(n)``: ``n`` more model images evaluated (called from inside long methods)
Tick = Callable[[int], None]


@dataclass
class Attribution:
    """What one :meth:`Explainer.attribute` call computed for a chunk of B images, when it is more than the maps
    (as captum's ``attribute`` returns ``(attributions, delta)`` on request).

    Attributes:
        maps: (B, C, H, W) or (B, H, W) attributions.
        extras: one dict of method-specific, JSON-able values per image (e.g. IG's convergence delta).
        predicted: (B,) classes the method chose itself (``predicts_target`` methods called with no targets).
    """

    maps: np.ndarray | torch.Tensor
    extras: list[dict[str, Any]] = field(default_factory=list)
    predicted: torch.Tensor | None = None

    @classmethod
    def with_extras(cls, maps: np.ndarray | torch.Tensor, **values: Any) -> Attribution:
        """Per-image extras from per-batch values: a sequence of length B gives one item per image, a scalar the
        same value for each."""
        seq = (list, tuple, np.ndarray, torch.Tensor)
        n = max((len(v) for v in values.values() if isinstance(v, seq)), default=1)
        return cls(maps, [{k: (_item(v[i]) if isinstance(v, seq) else v) for k, v in values.items()} for i in range(n)])


#: What a method can do to state that other sessions share (declared per method, see :meth:`Explainer.effects`):
#: ``hooks`` (forward/backward hooks on the model's modules), ``modules`` (swaps or wraps modules),
#: ``module_state`` (writes parameters' ``.grad``, mode flags or buffers), ``global_rng`` (draws from
#: torch's, numpy's or Python's global random generators).
Effect = Literal["hooks", "modules", "module_state", "global_rng"]
MODEL_EFFECTS: frozenset[str] = frozenset({"hooks", "modules", "module_state"})


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
    #: what the method does to shared state while it runs (see ``Effect``); :meth:`effects` may refine it
    #: per parameter set. Methods with a model effect run on a private replica of the model; methods that
    #: draw from a global RNG run seeded, one image at a time, under the global RNG lock.
    shared_effects: ClassVar[frozenset[str]] = frozenset()
    #: ``attribute`` takes a chunk of several images with one target each (the library batches natively);
    #: otherwise the engine calls it once per image.
    batched: ClassVar[bool] = True
    #: images per ``attribute`` call for batched methods (memory vs speed); ``explain_batch(chunk_size=...)``
    chunk_size: ClassVar[int] = 64
    #: what one unit of the map means, so that only maps in the same units share a colour scale: "relative"
    #: (scaled per image, CAMs), "gradient" (derivative of the class logit), "logit" (each pixel's contribution to the
    #: class logit), "logit drop per window" (Occlusion), "probability" (LIME's coefficients of the class
    #: probability), "squared"
    units: ClassVar[str] = "logit"
    #: architecture traits (``core.modelling.architectures.TRAITS``) the method needs, each with the reason shown where a
    #: model lacks it: the method is then not offered for that model (and the engine refuses it)
    requires: ClassVar[dict[str, str]] = {}
    #: the map is the same for every class (attention rollout, Eigen-CAM): the target only labels it
    class_specific: ClassVar[bool] = True
    #: the colour rule that shows this method's maps best by default (``core.present.render.map_view``): "signed"
    #: (red for, blue against: LIME, SHAP, Occlusion) or "magnitude" (sparse pixel gradients, whose signed maps are
    #: nearly invisible at tile size); unsigned maps are always shown as magnitude
    view: ClassVar[Literal["signed", "magnitude"]] = "signed"
    #: the parameter that sets how many model images one ``attribute`` call holds at once (see :meth:`peak_images`),
    #: named in the engine's refusal when a call would exceed the memory budget
    peak_param: ClassVar[str | None] = None
    #: the method finds the predicted class itself in its own forward pass (``attribute`` gets ``targets=None``
    #: and sets :attr:`predicted`), which saves the engine a forward pass
    predicts_target: ClassVar[bool] = False
    #: the path its model images take, whose measured rate its time estimate starts from (:mod:`.timing`):
    #: "fast" (forward only, through :mod:`core.modelling.inference`), "forward" (plain torch) or "gradient"
    #: (forward and backward); ``None``: "gradient" if it :attr:`needs_gradients`, else "forward"
    passes: ClassVar[Literal["fast", "forward", "gradient"] | None] = None

    def __init__(self, model: nn.Module, background: torch.Tensor | None = None) -> None:
        self.model = model
        self.background = background

    @staticmethod
    def grad_input(x: torch.Tensor) -> torch.Tensor:
        """A private copy of ``x`` that requires grad (the caller's tensor is never touched)."""
        return x.detach().clone().requires_grad_(True)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.params}

    @classmethod
    def unavailable(cls, model: nn.Module) -> str | None:
        """Why this method does not apply to ``model`` (``None``: it does), from :attr:`requires` and
        :attr:`needs_gradients`. A model that says why it lacks a trait (``trait_notes``, e.g. an ONNX graph run
        by ONNX Runtime) has its reason added."""
        traits = traits_of(model)
        needs = dict(cls.requires)
        if cls.needs_gradients:
            needs.setdefault("gradients", f"{cls.title} needs the gradient of the model's output")
        for trait, why in needs.items():
            if trait not in traits:
                note = (getattr(model, "trait_notes", None) or {}).get(trait)
                return f"{why} ({note})" if note else why
        return None

    @classmethod
    def implied(cls, given: dict[str, Any]) -> dict[str, Any]:
        """The parameters a caller gave, with what they imply filled in (LIME: a ``num_samples`` means the fixed
        mode). Called before defaults are filled, so only what the caller named can imply anything."""
        return given

    @classmethod
    def effects(cls, params: dict[str, Any]) -> frozenset[str]:
        """What this call, with these (resolved) parameters, does to shared state."""
        return cls.shared_effects

    @classmethod
    def signed_for(cls, params: dict[str, Any]) -> bool:
        """Whether the maps can be negative with these parameters (a wrapper such as SmoothGrad inherits it from
        the method it wraps)."""
        return cls.signed

    @classmethod
    def reduction_for(cls, params: dict[str, Any]) -> str:
        """How (C, H, W) attributions become one map with these parameters (see :attr:`channel_reduction`)."""
        return cls.channel_reduction

    @classmethod
    def units_for(cls, params: dict[str, Any]) -> str:
        """The map's units with these parameters (see :attr:`units`)."""
        return cls.units

    @classmethod
    def chunk_for(cls, params: dict[str, Any], image_shape: tuple[int, ...]) -> int:
        """Images per ``attribute`` call for these parameters (batched methods; memory vs speed)."""
        return cls.chunk_size

    @classmethod
    def cost(cls, params: dict[str, Any], model: nn.Module, image_shape: tuple[int, ...]) -> int:
        """Model images (forward or forward + backward) per explained image, roughly: the unit of progress."""
        return 1

    @classmethod
    def expected_cost(cls, params: dict[str, Any], model: nn.Module, image_shape: tuple[int, ...]) -> float:
        """Model images per explained image that a call is expected to take, by the method's own rule (for time
        estimates): :meth:`cost`, unless the method may stop sooner (adaptive LIME: its expected samples)."""
        return float(cls.cost(params, model, image_shape))

    @classmethod
    def passes_for(cls, params: dict[str, Any]) -> str:
        """The path these parameters' model images take (see :attr:`passes`)."""
        return cls.passes or ("gradient" if cls.needs_gradients else "forward")

    @classmethod
    def expected_checks(cls, params: dict[str, Any], model: nn.Module, image_shape: tuple[int, ...]) -> float:
        """For a method that checks its own answer as it goes: the samples summed over the checks a call is expected
        to make on its way to its stopping point (adaptive LIME: a stability check after each round, each over all
        the samples so far, so that their time grows with the square of the rounds; :mod:`.timing` adds it apart
        from the model images, at :meth:`check_seconds` each). 0 for the others."""
        return 0.0

    @classmethod
    def check_seconds(cls, params: dict[str, Any], model: nn.Module, image_shape: tuple[int, ...]) -> float:
        """For a method that checks as it goes (:meth:`expected_checks`): seconds per checked sample on this model
        and machine, timed by the method itself as the checks run."""
        return 0.0

    @classmethod
    def probe_params(cls, params: dict[str, Any], units: int, image_shape: tuple[int, ...]) -> dict[str, Any] | None:
        """``params`` changed to cost about ``units`` model images per image, all else kept: the cheap calls that
        measure this method's rate on a model (:mod:`.timing`). ``None``: the cost has no such scale (it is the
        model's or the image's), so only the real parameters can be timed."""
        return None

    @classmethod
    def peak_images(cls, params: dict[str, Any], image_shape: tuple[int, ...], chunk: int) -> int:
        """Model images one ``attribute`` call on ``chunk`` images holds in memory at once (one pass over the chunk,
        by default): with the measured memory of one model image, the engine's memory estimate (see
        :mod:`core.explainers.memory`)."""
        return chunk

    def attribute(self, x: torch.Tensor, targets: torch.Tensor | None, *, seeds: tuple[int, ...], progress: Tick,
                  **params: Any) -> np.ndarray | torch.Tensor | Attribution:
        """Attributions for a chunk of images.

        Args:
            x: (B, C, H, W) float tensor in [0, 1] on the model's device (B = 1 unless ``batched``).
                Must not be modified.
            targets: (B,) long tensor of class indices to explain; ``None`` only for ``predicts_target``
                methods, which then return the classes they chose in :attr:`Attribution.predicted`.
            seeds: one seed per image (stochastic methods draw from these, not from the ``seed`` parameter).
            progress: ``progress(n)`` reports ``n`` more model images evaluated, from inside long methods
                (progress and the cancel check between the library's own batches).
            **params: the resolved parameters, without ``seed``.
        Returns:
            (B, C, H, W) or (B, H, W) attributions at input resolution, or an :class:`Attribution` that also
            carries per-image extras or the predicted classes.
        """
        raise NotImplementedError


def _item(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return v.item() if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0) else v
