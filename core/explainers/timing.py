"""How long a method takes on a model: measured, not guessed. Time estimates for the app, the CLI and the API.

    from core.explainers.timing import Estimator
    est = Estimator(model, (3, 64, 64))            # measures nothing yet
    est.seconds("lime")                            # one image, LIME's defaults: measured on first use, then kept
    est.seconds("grad_cam", images=500, chunk=32)  # a whole-split run's share

Two measurements, each made once per model, input shape and method (after a warm-up call, which carries the
start-up, as the first unit of :class:`core.eta.UnitClock` does; then the median of timed calls):

- **passes** (:class:`PassRates`): seconds per model image on each path a method's model images take
  (:attr:`Explainer.passes`): ``fast`` (forward only, through :mod:`core.modelling.inference`: ONNX Runtime on a
  CPU), ``forward`` (plain torch, inference mode) and ``gradient`` (forward and backward to the input, torch), each
  at the batch the methods' passes reach.
- **the method itself** (:class:`MethodRate`), on a smooth random probe image, at cheap parameters it declares
  (:meth:`Explainer.probe_params`): two or three timed calls give its seconds per engine call, per image and per
  model image (a method's checks, timed apart, taken out first). That takes in what the passes leave out: LIME's masks and fits, a CAM library's hooks, the engine's
  replica, target pass and heat map.

A method's estimate for N images is then ``calls x per call + N x (per image + expected model images per image x
per model image + expected checked samples x per checked sample)``; the expected model images come from the
method's own rule (:meth:`Explainer.expected_cost`: adaptive LIME's expected samples, not its maximum), and so do the
checked samples (:meth:`Explainer.expected_checks`: adaptive LIME's stability check after each round, over all the
samples so far), whose cost the method times itself (:meth:`Explainer.check_seconds`): it grows with the square of
the rounds, so a cheap probe call cannot be scaled up to it. A probe that would take longer than
:data:`PROBE_SECONDS` at the measured pass rate (a big model) is not run: the estimate is then the passes alone,
which is what dominates there.
``python -m benchmarks --methods none --estimates`` measures these estimates against the real times (README).
"""
from __future__ import annotations

import json
import math
import statistics
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from core.eta import seconds_per_item
from core.explainers.registry import EXPLAINERS

#: a method's probe (warm-up and timed calls together) may take at most about this long, at the measured pass rate
PROBE_SECONDS = 1.5
#: model images per image of the largest probe call, at most (each smaller one is a quarter of the one before)
PROBE_UNITS = 512
#: images of the batched probe call (batched methods: the engine's cost per call apart from per image)
PROBE_IMAGES = 8
#: timed calls per probe size (the median is kept)
REPEATS = 2
#: seconds one pass-rate call aims at (its batch is doubled up to it, see :func:`_rate_at_scale`)
PASS_SECONDS = 0.15
#: a call that took this many times the one at half the batch is in proportion to its images
LINEAR = 1.6
#: seconds the doubling of one pass-rate measurement may take in all
PASS_BUDGET = 1.0
#: timed calls of a pass rate at its batch (the median is kept: a pass is cheap, and every estimate starts from it)
PASS_REPEATS = 3


@dataclass(frozen=True)
class PassRates:
    """Seconds per model image on each path, measured on one model at one input shape."""

    fast: float
    forward: float
    gradient: float

    def of(self, path: str) -> float:
        return float(getattr(self, path))


@dataclass(frozen=True)
class MethodRate:
    """A method's measured cost on one model: seconds per engine call (beyond its images), per image (beyond its
    model images), per model image and, for a method that checks its answer as it goes, per checked sample.
    ``probed``: from timed calls of the method itself; ``False``: from the pass rate alone (the probe would have
    taken too long; a check's cost is then left out, as small beside the passes)."""

    per_call: float
    per_image: float
    per_unit: float
    probed: bool = True
    per_check: float = 0.0  #: seconds per checked sample (:meth:`Explainer.expected_checks`)

    def seconds(self, images: int, units_per_image: float, calls: int, checks_per_image: float = 0.0) -> float:
        return calls * self.per_call + images * (self.per_image + units_per_image * self.per_unit
                                                 + checks_per_image * self.per_check)


def probe_images(image_shape: tuple[int, ...], n: int) -> torch.Tensor:
    """(n, C, H, W) smooth random images in [0, 1] (low-resolution noise, upsampled): regions like a photo's, so
    that superpixel methods find about as many segments as on real images. Seeded: the same every time."""
    c, h, w = (int(d) for d in image_shape)
    low = torch.rand((n, c, max(2, h // 8), max(2, w // 8)), generator=torch.Generator().manual_seed(0))
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def _rate_at_scale(run: Callable[[int], object], most: int = 64) -> float:
    """Seconds per image of ``run(n)`` at the batch the methods' own passes reach (:func:`core.eta.seconds_per_item`):
    a small batch's per-call cost (a thread pool's wake-ups, which a loaded machine makes many times larger) is not
    charged to every model image, as it is not in a method's batched passes."""
    return seconds_per_item(run, most, aim=PASS_SECONDS, budget=PASS_BUDGET, linear=LINEAR, repeats=PASS_REPEATS,
                            clock=lambda: time.perf_counter())


#: the paths a method's model images take (:attr:`Explainer.passes`)
PATHS = ("fast", "forward", "gradient")


def measure_pass(model: nn.Module, image_shape: tuple[int, ...], path: str) -> float:
    """Seconds per model image on ``path``: a forward pass through the fast path or plain torch, or a forward and
    backward pass, at the batch the methods reach (:func:`_rate_at_scale`), a warm-up call apart."""
    from core.modelling.inference import forward_logits
    from core.modelling.prediction import logits, model_device

    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    x = probe_images(image_shape, 64).to(model_device(model))
    if path == "fast":
        return _rate_at_scale(lambda n: forward_logits(model, x[:n], batch_size=n))
    if path == "forward":
        return _rate_at_scale(lambda n: logits(model, x[:n]))

    def backward(n: int) -> None:  # the input's gradient only: no parameter's .grad is written
        xg = x[:n].detach().clone().requires_grad_(True)
        out = model(xg)
        torch.autograd.grad(out.gather(1, out.detach().argmax(1, keepdim=True)).sum(), xg)

    with torch.enable_grad():
        return _rate_at_scale(backward)


def measure_passes(model: nn.Module, image_shape: tuple[int, ...]) -> PassRates:
    """The seconds per model image of every path (:func:`measure_pass`)."""
    return PassRates(**{path: measure_pass(model, image_shape, path) for path in PATHS})


def engine_chunk(cls: Any, params: dict[str, Any], image_shape: tuple[int, ...], chunk_size: int | None = None) -> int:
    """Images per ``attribute`` call, as :func:`core.explainers.engine.explain_batch` chooses them (the memory budget
    apart): one for methods that are not batched or draw from a global RNG."""
    if not cls.batched or "global_rng" in cls.effects(params):
        return 1
    return int(chunk_size or cls.chunk_for(params, tuple(image_shape)))


def _time_call(call: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _probe_plan(cls: Any, params: dict[str, Any], model: nn.Module, shape: tuple[int, ...], units: float,
                target: float, images: int) -> tuple[dict[str, Any], dict[str, Any] | None, float] | None:
    """The probe calls for about ``target`` model images per image: the larger call's parameters (the real ones
    when they cost no more), the smaller's (a quarter of it, ``None`` for a method whose cost has no scale), and
    the model images all the calls take together; ``None`` when the method cannot be made that cheap."""
    high = params if target >= units else cls.probe_params(params, max(1, int(target)), shape)
    if high is None:
        return None
    u_high = float(cls.expected_cost(high, model, shape))
    low = cls.probe_params(params, max(1, int(u_high // 4)), shape)
    u_low = float(cls.expected_cost(low, model, shape)) if low is not None else u_high
    if low is not None and u_low >= u_high:
        low, u_low = None, u_high
    total = u_low + REPEATS * u_high + (REPEATS * u_low if low is not None else 0.0)
    total += REPEATS * images * u_low if images > 1 else 0.0
    return high, low, total


def measure_method(method: str, model: nn.Module, image_shape: tuple[int, ...], params: dict[str, Any],
                   passes: PassRates | Estimator) -> MethodRate:
    """The method's cost on ``model``, from timed calls on probe images at the cheap parameters it declares
    (:meth:`Explainer.probe_params`); from the pass rate alone when those calls would take more than
    :data:`PROBE_SECONDS`. ``params``: resolved (see :func:`core.explainers.engine.resolve_params`).

    The calls: one image at the larger and at the smaller parameters (their difference is the cost per model
    image, what is left the cost per image and call), and, for batched methods, a chunk of images at the smaller
    ones (the cost per call apart from per image). A method that checks its answer as it goes times its checks
    itself (:meth:`Explainer.check_seconds`); their share of each call is taken out before the fit."""
    from core.explainers.engine import explain_batch

    cls = EXPLAINERS.get(method)
    shape = tuple(int(d) for d in image_shape)
    rate = max(passes.of(cls.passes_for(params)), 1e-9)
    units = float(cls.expected_cost(params, model, shape))
    chunk = engine_chunk(cls, params, shape)
    b = min(chunk, PROBE_IMAGES)
    plan = _probe_plan(cls, params, model, shape, units, min(units, PROBE_UNITS), b)
    if plan is not None and plan[2] * rate > PROBE_SECONDS:  # scaled down to the budget where the method can be
        plan = _probe_plan(cls, params, model, shape, units, min(units, PROBE_UNITS) * PROBE_SECONDS
                           / (plan[2] * rate), b)
    if plan is None or plan[2] * rate > 1.5 * PROBE_SECONDS:
        return MethodRate(0.0, 0.0, rate, probed=False)
    high, low, _ = plan
    small = low if low is not None else high
    x = probe_images(shape, PROBE_IMAGES)
    per_check = cls.check_seconds(params, model, shape) if cls.expected_checks(high, model, shape) > 0 else 0.0

    def timed(p: dict[str, Any], n: int) -> float:
        """A call's time, less its checks' (timed apart, see above)."""
        checks = n * per_check * cls.expected_checks(p, model, shape)
        return max(0.0, _time_call(lambda: explain_batch(model, x[:n], method, **p)) - checks)

    explain_batch(model, x[:1], method, **small)  # warm-up: imports, the fast path's export, hooks, memory measurement
    u_high = float(cls.expected_cost(high, model, shape))
    t_high = timed(high, 1)
    per_unit = rate
    if low is not None:
        u_low = float(cls.expected_cost(low, model, shape))
        t_low = timed(low, 1)
        if t_high > t_low:
            per_unit = (t_high - t_low) / (u_high - u_low)
    else:
        u_low, t_low = u_high, t_high
    one = max(0.0, t_low - u_low * per_unit)  # one call of one image, beyond its model images
    if b == 1:
        return MethodRate(0.0, one, per_unit, per_check=per_check)
    t_batch = timed(small, b)
    per_image = min(one, max(0.0, (t_batch - t_low) / (b - 1) - u_low * per_unit))
    return MethodRate(one - per_image, per_image, per_unit, per_check=per_check)


class Estimator:
    """Time estimates on one model at one input shape. Pass rates and each method's rate are measured on first use
    and kept (an estimate does not change between calls); safe to share between threads."""

    def __init__(self, model: nn.Module, image_shape: tuple[int, ...], passes: PassRates | None = None) -> None:
        self.model, self.image_shape = model, tuple(int(d) for d in image_shape)
        self._passes: dict[str, float] = {} if passes is None else {p: passes.of(p) for p in PATHS}
        self._methods: dict[str, MethodRate] = {}
        self._lock = threading.RLock()

    def of(self, path: str) -> float:
        """Seconds per model image on ``path`` (as :meth:`PassRates.of`), measured on first use: a page that asks
        about Grad-CAM alone times no fast path."""
        with self._lock:
            if path not in self._passes:
                self._passes[path] = measure_pass(self.model, self.image_shape, path)
            return self._passes[path]

    @property
    def passes(self) -> PassRates:
        """Every path's rate (each measured on first use)."""
        return PassRates(**{path: self.of(path) for path in PATHS})

    def rate(self, method: str, params: dict[str, Any]) -> MethodRate:
        """The method's measured rate with these (resolved) parameters; one probe serves every parameter set whose
        probe calls are the same (LIME at 1,000 or 8,000 samples)."""
        cls = EXPLAINERS.get(method)
        units = cls.expected_cost(params, self.model, self.image_shape)
        probe = cls.probe_params(params, PROBE_UNITS, self.image_shape) or params
        key = json.dumps([method, probe, units <= PROBE_UNITS], sort_keys=True, default=str)
        with self._lock:
            if key not in self._methods:
                self._methods[key] = measure_method(method, self.model, self.image_shape, params, self)
            return self._methods[key]

    def seconds(self, method: str, images: int = 1, chunk: int | None = None, **params: Any) -> float:
        """Seconds to explain ``images`` images with ``method`` in one engine call (``chunk``: images per
        ``attribute`` call, default the method's), targets predicted."""
        from core.explainers.engine import resolve_params

        cls = EXPLAINERS.get(method)
        full = resolve_params(method, self.model, **params)
        units = float(cls.expected_cost(full, self.model, self.image_shape))
        calls = math.ceil(images / engine_chunk(cls, full, self.image_shape, chunk))
        checks = float(cls.expected_checks(full, self.model, self.image_shape))
        return self.rate(method, full).seconds(images, units, calls, checks)


_estimators: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], Estimator]]" = weakref.WeakKeyDictionary()
_estimators_lock = threading.Lock()


def estimator_for(model: nn.Module, image_shape: tuple[int, ...]) -> Estimator:
    """The one :class:`Estimator` of ``model`` at ``image_shape`` in this process: what it measured is kept as long
    as the model lives, for every page, job and run that asks."""
    key = tuple(int(d) for d in image_shape)
    with _estimators_lock:
        per_model = _estimators.setdefault(model, {})
        if key not in per_model:
            per_model[key] = Estimator(model, key)
        return per_model[key]
