"""What every explanation-quality metric declares, and what it is given.

A metric scores a batch of maps of one method: per image a number (and, for curve metrics, the curve). It
declares its name, category, direction (higher is better or not), what data it needs (object masks, marker
masks, a stochastic method, gradients), and whether it re-runs the method (stability, randomisation). The
Quality page, the CLI and the report are built from these declarations, as the method pages are from the
methods'.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from core.cancel import CancelToken
from core.params import Param, resolve

@dataclass
class QualityInputs:
    """One method's maps for a batch of images, and what re-running it needs."""

    model: nn.Module
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    targets: np.ndarray  # (N,) class explained per image
    maps: np.ndarray  # (N, H, W) signed attributions at the input's resolution
    method: str
    params: dict[str, Any]  # the method's parameters (seed included where it has one)
    masks: np.ndarray | None = None  # (N, H, W) bool object masks, where the dataset has them
    marker_masks: np.ndarray | None = None  # (N, H, W) bool spurious-marker masks (shapes_spurious)
    background: torch.Tensor | None = None  # for methods that need a background sample
    progress: Callable[[int, int], None] | None = None  # (done, total) in model images, per metric
    cancel: CancelToken | None = None

    def explain(self, images: torch.Tensor, model: nn.Module | None = None, **overrides: Any) -> np.ndarray:
        """The method's maps for other images (or another model), same targets and parameters."""
        from core.explainers import explain_batch

        params = {**self.params, **overrides}
        out = explain_batch(model or self.model, images, self.method, targets=self.targets.tolist(),
                            background=self.background, cancel=self.cancel, **params)
        return np.stack([e.attribution for e in out])


@dataclass(frozen=True, kw_only=True)
class CurveSpec:
    """A curve a metric draws: ``cell.curves[x]`` against the mean over images of ``cell.curves[y]`` (N, K)."""

    x: str
    y: str
    title: str
    xtitle: str
    ytitle: str


@dataclass
class MetricResult:
    values: np.ndarray  # (N,) one number per image (NaN where it does not apply)
    curves: dict[str, Any] = field(default_factory=dict)  # e.g. {"x": [...], "y": (N, K) array}
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. the random baseline of a localisation score


class Metric:
    name: ClassVar[str]
    title: ClassVar[str]
    category: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    needs_masks: ClassVar[bool] = False
    needs_marker: ClassVar[bool] = False
    needs_stochastic: ClassVar[bool] = False  # only for methods that take a seed
    reexplains: ClassVar[bool] = False  # runs the method again (costly)
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: the metric's options, declared as methods declare their parameters (the Quality page builds its widgets and
    #: the CLI its flags from them); an instance holds the resolved values in :attr:`settings`
    params: ClassVar[tuple[Param, ...]] = ()
    #: the curves the metric's cells carry, for the charts (see :class:`CurveSpec`)
    curves: ClassVar[tuple[CurveSpec, ...]] = ()

    def __init__(self, **settings: Any) -> None:
        self.settings = resolve(self.title, self.params, settings)

    def applies(self, method: str, inputs_have_masks: bool, inputs_have_marker: bool) -> str | None:
        """None when the metric applies to this method and data, else the reason it does not."""
        from core.explainers import get_method

        if self.needs_masks and not inputs_have_masks:
            return "needs object masks (a dataset with masks, e.g. shapes)"
        if self.needs_marker and not inputs_have_marker:
            return "needs spurious-marker masks (shapes_spurious)"
        if self.needs_stochastic and not get_method(method).stochastic:
            return f"{get_method(method).title} is deterministic: its runs always agree"
        return None

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        raise NotImplementedError


def target_probability(model: nn.Module, images: torch.Tensor, targets: np.ndarray, batch_size: int = 256,
                       progress: Callable[[int], None] | None = None, cancel: CancelToken | None = None) -> np.ndarray:
    """The model's softmax probability of each image's target: chunks through the fast inference path
    (:mod:`core.modelling.inference`, float32, the same maths), with progress and a cancel check between them."""
    from core.errors import Cancelled
    from core.modelling.inference import forward_logits
    from core.modelling.prediction import model_device

    dev = model_device(model)
    out = []
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    for s in range(0, len(images), batch_size):
        if cancel is not None and cancel.cancelled:
            raise Cancelled("quality evaluation was cancelled")
        p = forward_logits(model, images[s:s + batch_size].to(dev), batch_size=batch_size).softmax(1).cpu()
        out.append(p[torch.arange(len(p)), t[s:s + batch_size]].double().numpy())
        if progress:
            progress(len(p))
    return np.concatenate(out) if out else np.zeros(0)
