"""The call: :func:`explain_batch` (many images, one method) and :func:`explain`, its one-image case.

>>> from core import load_model, load_dataset
>>> from core.explainers import explain_batch
>>> model, card = load_model("models/shapes-small_cnn")
>>> ds = load_dataset("shapes", split="test")
>>> maps = explain_batch(model, ds.batch(range(64)), "grad_cam")       # one Explanation per image
>>> [e.target for e in maps[:4]], maps[0].attribution.shape

What the engine does around a method's ``attribute``, for every method alike: validates parameters and
targets; predicts the targets in one batched forward pass (unless the method finds them itself); runs
the method on the shared model or, when the method declares a model effect, on a private replica
(:mod:`.sharing`); seeds methods that draw from a global RNG one image at a time (:mod:`.seeding`);
sends batched methods the images in chunks; reports progress in model images and honours a cancel
token between chunks (and inside LIME and SHAP, between their own batches); reduces channels, checks
shapes and finiteness and scales the display heat map per image.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from core.cancel import CancelToken  # noqa: F401  (re-exported: engine callers import it from here)
from core.errors import AttributionError, Cancelled, NotApplicableError, ParameterError, XaiError
from core.explainers.heatmap import to_heatmap
from core.modelling.prediction import as_images, expected_channels, logits, model_device, value_range
from core.explainers import memory, seeding
from core.modelling import sharing
from core.explainers.base import MODEL_EFFECTS, Attribution, Explainer, Explanation
from core.explainers.registry import EXPLAINERS
from core.params import resolve

# captum announces, on every call, that it adds and removes hooks (we check that none survive ourselves). Only these
# messages, and only when captum raises them (from its own modules, or with stacklevel=2 from our method files that
# call it): every other warning, and the same words from any other library, still reach the user.
for _message in ("Setting backward hooks on ReLU activations", "Setting forward, backward hooks and attributes on non-linear",
                 "Input Tensor 0 did not already require gradients"):
    warnings.filterwarnings("ignore", message=_message, category=UserWarning, module=r"(captum|core\.explainers)(\.|$)")

#: ``progress(done, total)``: model images evaluated so far, and the estimated total of the call
ProgressFn = Callable[[int, int], None]


class _Run:
    """Progress in model images, and the cancel check, for one call."""

    def __init__(self, total: int, progress: ProgressFn | None, cancel: CancelToken | None, what: str) -> None:
        self.total, self.progress, self.cancel, self.what = max(1, total), progress, cancel, what
        self.done = 0
        self.limit = 0  # the done count at the end of the current chunk: in-method ticks stop there
        self.callback_error: BaseException | None = None

    def check(self) -> None:
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled(f"{self.what} was cancelled after {self.done} of about {self.total} model images")

    def _report(self) -> None:
        if self.progress is not None:
            try:
                self.progress(self.done, self.total)
            except BaseException as exc:  # the caller's own exception (e.g. a UI stopping the script) goes through as it is
                self.callback_error = exc
                raise

    def tick(self, n: int) -> None:
        """``n`` more model images done (called from inside long methods)."""
        self.done = min(self.done + int(n), self.limit)
        self._report()
        self.check()

    def end_chunk(self) -> None:
        self.done = self.limit
        self._report()


def list_methods(model: nn.Module | None = None) -> list[str]:
    """Registered method names, in registration order; with ``model``, only those that apply to it (see
    :func:`hidden_methods` for the others and why)."""
    names = EXPLAINERS.names()
    return names if model is None else [m for m in names if EXPLAINERS.get(m).unavailable(model) is None]


def hidden_methods(model: nn.Module) -> dict[str, str]:
    """Methods that do not apply to ``model``'s architecture, each with the reason the method declares."""
    return {m: why for m in EXPLAINERS.names() if (why := EXPLAINERS.get(m).unavailable(model)) is not None}


def get_method(name: str) -> type[Explainer]:
    return EXPLAINERS.get(name)


def resolve_params(method: str, model: nn.Module | None = None, **params: Any) -> dict[str, Any]:
    """The full, validated parameter set of ``method``: defaults filled in, unknown names refused
    (:func:`core.params.resolve`, as for every declared parameter).

    A ``layer`` parameter left at ``None`` becomes the model's default target layer.
    """
    cls = EXPLAINERS.get(method)
    params = cls.implied(dict(params))
    if set(params) <= {p.name for p in cls.params}:  # unknown names: refused by resolve() first
        for p in cls.params:
            if p.kind == "layer" and params.get(p.name, p.default) is None:
                params[p.name] = getattr(model, "target_layer", None)
                if params[p.name] is None:
                    raise ParameterError(f"{method} needs a layer: pass layer=... (the model declares no default)")
    return resolve(method, cls.params, params)


def _reduce(attr: np.ndarray, how: str) -> np.ndarray:
    if attr.ndim == 2:
        return attr
    if how == "max_abs":
        return np.abs(attr).max(axis=0)
    return attr.sum(axis=0)


def _target_list(targets: int | Sequence[int] | np.ndarray | torch.Tensor | None, n: int) -> list[int] | None:
    if targets is None:
        return None
    if isinstance(targets, (int, np.integer)) or (isinstance(targets, (np.ndarray, torch.Tensor)) and targets.ndim == 0):
        return [int(targets)] * n
    try:
        out = [int(t) for t in targets]
    except (TypeError, ValueError):
        raise ParameterError(f"targets must be None, a class index or one class index per image, got {targets!r}") from None
    if len(out) != n:
        raise ParameterError(f"targets has {len(out)} entries for {n} images: give one per image, or one int for all")
    return out


def _check_targets(targets: list[int], n_classes: int) -> None:
    for t in targets:
        if not 0 <= t < n_classes:
            raise ParameterError(f"target must be a class index in [0, {n_classes - 1}], got {t}")


def _finish(cls: type[Explainer], raw: np.ndarray, shape: tuple[int, int], target: int, params: dict[str, Any],
            seconds: float, extras: dict[str, Any]) -> Explanation:
    attribution = _reduce(np.asarray(raw, dtype=np.float32), cls.reduction_for(params))
    if attribution.shape != shape:
        raise AttributionError(f"{cls.title} returned a map of shape {attribution.shape}, expected {shape}")
    if not np.all(np.isfinite(attribution)):
        bad = int((~np.isfinite(attribution)).sum())
        raise AttributionError(f"{cls.title} produced {bad} non-finite values (NaN/inf); try other parameters or another method")
    heatmap, flat = to_heatmap(attribution, cls.outlier_perc)
    segments = extras.pop("segments", None)  # a region method's label map: an array, not a JSON-able extra
    return Explanation(method=cls.name, title=cls.title, attribution=attribution, heatmap=heatmap, target=target,
                       params=params, seconds=seconds, signed=cls.signed_for(params), flat=flat, extras=extras,
                       segments=segments)


def explain_batch(model: nn.Module, images: torch.Tensor | np.ndarray, method: str,
                  targets: int | Sequence[int] | np.ndarray | torch.Tensor | None = None, *,
                  background: torch.Tensor | np.ndarray | None = None, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None, chunk_size: int | None = None, **params: Any) -> list[Explanation]:
    """Explain the model's score for each image's target; one :class:`Explanation` per image, in order.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] (see :mod:`core.modelling.architectures`). It is
            only read (methods that change a model run on a private replica), so it may be shared.
        images: (N, C, H, W) float in [0, 1], or one image (C, H, W). Never modified.
        method: a name from :func:`list_methods`.
        targets: class index per image; one int for all; ``None`` = each image's predicted class.
        background: (M, C, H, W) training images in [0, 1] for methods that need a background sample
            (``needs_background``); without it they build a synthetic one and say so in ``extras``.
        progress: called as ``progress(done, total)`` in model images (forward or forward + backward).
        cancel: a :class:`CancelToken`, checked between chunks and inside long methods.
        chunk_size: images per method call for batched methods (default: the method's declaration).
        **params: the method's parameters (see ``get_method(method).params``); missing ones take defaults.
            Stochastic methods take ``seed``: image ``i`` is explained with seed ``seed + i``, the seed
            recorded in its ``params``, so a batch gives the same maps as the images one by one.

    Raises:
        UnknownNameError: unknown method or layer.  ParameterError: bad parameter or target.
        AttributionError: the method failed or produced a non-finite map.  Cancelled: ``cancel`` was set.
        ParameterError: also when one call would exceed the memory budget (:mod:`core.explainers.memory`).
    """
    cls = EXPLAINERS.get(method)
    full = resolve_params(method, model, **params)
    why = cls.unavailable(model)
    if why is not None:
        raise NotApplicableError(f"{cls.title} does not apply to this model: {why}")
    x = as_images(images, model_device(model), channels=expected_channels(model), value_range=value_range(model))
    n = len(x)
    shape = tuple(x.shape[-2:])
    seeds = seeding.image_seeds(full.get("seed"), n)
    effects = cls.effects(full)
    global_rng = "global_rng" in effects
    if chunk_size is not None and int(chunk_size) < 1:
        raise ParameterError(f"chunk_size must be at least 1, got {chunk_size}")
    # Global-RNG methods run one image per seeded call, so each image's map depends only on its own seed.
    chunk = 1 if (not cls.batched or global_rng) else int(chunk_size or cls.chunk_for(full, tuple(x.shape[1:])))
    wanted = _target_list(targets, n)
    kw = {k: v for k, v in full.items() if k != "seed"}
    # checked like the images: uint8 converted from 0..255, anything else in [0, 1]
    bg = None if background is None else as_images(background, x.device, channels=expected_channels(model),
                                                   value_range=value_range(model))
    per_image = max(1, int(cls.cost(full, model, tuple(x.shape[1:]))))
    run = _Run(n * per_image, progress, cancel, f"{cls.title} on {n} image{'s' * (n != 1)}")
    run.check()
    results: list[Explanation] = []
    with sharing.use(model, private=bool(effects & MODEL_EFFECTS)) as m:
        try:
            # measured on m: a model carrying another library's hooks is measured on a replica without them
            chunk = memory.fitting_chunk(cls, full, m, tuple(x.shape[1:]), min(chunk, n))  # or refused, with the estimate
            if wanted is None and not cls.predicts_target:
                wanted = logits(m, x).argmax(dim=1).tolist()
            elif wanted is not None:
                _check_targets(wanted, int(logits(m, x[:1]).shape[1]))
            explainer = cls(m, background=bg)
            for start in range(0, n, chunk):
                run.check()
                stop = min(start + chunk, n)
                run.limit = stop * per_image
                tc = None if wanted is None else torch.tensor(wanted[start:stop], dtype=torch.long, device=x.device)
                t0 = time.perf_counter()
                # a global-RNG method without a seed parameter (SHAP Partition breaks ties at random) runs
                # under seed 0: deterministic, and the caller's generators are restored all the same
                with seeding.seeded((seeds[start] if seeds else 0) if global_rng else None):
                    out = explainer.attribute(x[start:stop], tc, seeds=seeds[start:stop], progress=run.tick, **kw)
                seconds = (time.perf_counter() - t0) / (stop - start)
                out = out if isinstance(out, Attribution) else Attribution(out)
                raw = out.maps
                if isinstance(raw, torch.Tensor):
                    raw = raw.detach().float().cpu().numpy()
                used = tc if tc is not None else out.predicted
                if used is None or len(raw) != stop - start:
                    raise AttributionError(f"{cls.title} returned {len(raw)} maps for {stop - start} images"
                                           if used is not None else f"{cls.title} did not report the predicted classes")
                for j in range(stop - start):
                    extras = out.extras[j] if j < len(out.extras) else {}
                    p = {**full, "seed": seeds[start + j]} if seeds else full
                    results.append(_finish(cls, raw[j], shape, int(used[j]), p, seconds, dict(extras)))
                run.end_chunk()
        except XaiError:
            raise
        except Exception as exc:
            if exc is run.callback_error:
                raise
            raise AttributionError(f"{cls.title} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if m.training:  # a library (or the model itself) switched modes: leave the model as found
                m.eval()
    return results


def explain(model: nn.Module, image: torch.Tensor | np.ndarray, method: str, target: int | None = None, *,
            background: torch.Tensor | np.ndarray | None = None, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None, **params: Any) -> Explanation:
    """Explain the model's score for ``target`` on one image: :func:`explain_batch` with N = 1.

    Args:
        image: (C, H, W) or (1, C, H, W) float in [0, 1]. Never modified.
        target: class index to explain; ``None`` = the predicted class.
        Others as :func:`explain_batch`.
    """
    x = as_images(image, single=True, value_range=value_range(model))
    return explain_batch(model, x, method, targets=target, background=background, progress=progress, cancel=cancel,
                         **params)[0]
