"""LIME (Ribeiro et al., 2016) on superpixels, via the ``lime`` package, with an adaptive number of samples.

Two modes:

- ``fixed``: exactly ``num_samples`` perturbed copies. This is ``LimeImageExplainer.explain_instance`` step by step,
  through its public parts (``data_labels`` and ``base.explain_instance_with_data``), so the map is the package's
  own. Keeping the samples gives the stability numbers as well.
- ``adaptive`` (the default): the samples are drawn in rounds from the same random stream, and the rounds stop when
  the answer is stable (:mod:`core.explainers.lime_stability`, BayesLIME's posterior) or at ``max_samples``.
  Sequential draws from one ``RandomState`` equal one draw of the total, so an adaptive run that stopped after N
  samples gives the map of fixed-count LIME with N samples, bit for bit.

Every model pass goes through the fast inference path (:mod:`core.modelling.inference`).
"""
from __future__ import annotations

import math
import statistics
import threading
import time
import weakref
from typing import Any

import numpy as np
import torch
from lime import lime_image
from lime.wrappers.scikit_image import SegmentationAlgorithm
from torch import nn

from core.explainers.base import Attribution, Explainer, Param, seed_param
from core.explainers.lime_stability import assess, kernel_distances, samples_to_reach
from core.explainers.registry import register
from core.modelling.inference import describe, forward_probabilities

HIDE = {"mean": None, "black": 0.0, "grey": 0.5}
MODES = ("adaptive", "fixed")
#: the stability that fixed-count LIME's "samples to reach" figure aims at (the adaptive default)
DEFAULT_TARGET = 0.9
#: (samples, run-to-run Spearman ρ): LIME's agreement with itself at a known count, from which the adaptive mode's
#: expected samples are stepped (:func:`expected_samples`): LIME-1000's median run-to-run ρ on the demo model, 0.86
#: (README, "LIME at demo speed"; 10 test images, 2 runs each)
TYPICAL_AGREEMENT = (1000, 0.86)
#: superpixels assumed for a time estimate where the segmentation's count is not a parameter (quickshift,
#: felzenszwalb): SLIC's default
TYPICAL_SUPERPIXELS = 50

# lime 0.2 always draws a tqdm bar on stdout (no switch); the app and CLI report progress themselves.
lime_image.tqdm = lambda iterable, *args, **kwargs: iterable


def segmenter(segmentation: str, n_segments: int, compactness: float, kernel_size: float, max_dist: float,
              scale: float) -> SegmentationAlgorithm:
    if segmentation == "slic":
        return SegmentationAlgorithm("slic", n_segments=n_segments, compactness=compactness, start_label=0)
    if segmentation == "quickshift":
        return SegmentationAlgorithm("quickshift", kernel_size=kernel_size, max_dist=max_dist, ratio=0.2)
    return SegmentationAlgorithm("felzenszwalb", scale=scale, sigma=0.5, min_size=20)


def fudged_image(image: np.ndarray, segments: np.ndarray, hide: float | None) -> np.ndarray:
    """What hidden superpixels show, as ``explain_instance`` builds it: each superpixel's mean colour, or a constant."""
    fudged = image.copy()
    if hide is None:
        for s in np.unique(segments):
            fudged[segments == s] = image[segments == s].mean(axis=0)
    else:
        fudged[:] = hide
    return fudged


def expected_samples(target: float, max_samples: int, round_size: int, superpixels: int = 0,
                     typical: tuple[int, float] = TYPICAL_AGREEMENT) -> int:
    """The samples adaptive LIME is expected to stop at, by its own stopping rule: the count at which the predicted
    run-to-run ρ reaches ``target``, stepped from ``typical`` (n0 samples gave ρ0) by the Spearman-Brown formula
    that the rule predicts with (``n = n0 * target (1 - ρ0) / (ρ0 (1 - target))``); then the first round at or past
    it, never below two samples per superpixel (the rule does not stop there), at most ``max_samples``.

    >>> expected_samples(0.9, 2000, 100)   # 1,465 by Spearman-Brown from (1000, 0.86): stopped after 15 rounds
    1500
    """
    n0, r0 = typical
    need = n0 * target * (1.0 - r0) / (r0 * (1.0 - target))
    need = max(need, min(2 * superpixels, max_samples))
    return int(min(max_samples, math.ceil(need / round_size) * round_size))


def _superpixels(params: dict[str, Any]) -> int:
    """The superpixels a time estimate assumes: SLIC's asked-for count, else :data:`TYPICAL_SUPERPIXELS`."""
    return int(params["n_segments"]) if params["segmentation"] == "slic" else TYPICAL_SUPERPIXELS


def check_points(max_samples: int, round_size: int, superpixels: int, stop_at: int) -> list[int]:
    """The sample counts at which adaptive LIME checks its stability on its way to ``stop_at`` samples: after each
    round, from two samples per superpixel on (as :meth:`Lime.attribute` does).

    >>> check_points(2000, 100, 40, 500)
    [100, 200, 300, 400, 500]
    """
    first, stop = min(2 * superpixels, max_samples), min(stop_at, max_samples)
    counts, n = [], 0
    while n < stop:
        n = min(n + round_size, max_samples)
        if n >= first:
            counts.append(n)
    return counts


#: samples of the timed checks (:func:`seconds_per_check`): the default's expected stop
CHECK_SAMPLES = 1500
#: seconds the fast-path pass of each timed round aims at, at most
CHECK_PASS_SECONDS = 0.1
#: rounds timed with a check and without, each (the first of each apart: a warm-up)
CHECK_ROUNDS = 4
_check_rates: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, float]]" = weakref.WeakKeyDictionary()
_check_lock = threading.Lock()


def seconds_per_check(model: nn.Module, image_shape: tuple[int, ...], superpixels: int, k: int,
                      round_size: int) -> float:
    """Seconds per checked sample of adaptive LIME's stability checks (:func:`core.explainers.lime_stability.assess`)
    on ``model`` on this machine, as they run: between rounds of the model's fast-path passes. Timed once per model,
    input shape and settings (:func:`_time_checks`), and kept while the model lives."""
    key = (tuple(int(d) for d in image_shape), max(2, int(superpixels)), int(k), int(round_size))
    with _check_lock:
        known = _check_rates.setdefault(model, {})
        if key not in known:
            known[key] = _time_checks(model, *key)
        return known[key]


def _time_checks(model: nn.Module, image_shape: tuple[int, ...], superpixels: int, k: int, round_size: int) -> float:
    """A check over :data:`CHECK_SAMPLES` random samples (it does the same work whatever the model said), timed as
    it runs: rounds of fast-path passes (a round's images, at most :data:`CHECK_PASS_SECONDS` of them) each followed
    by a check, less the same rounds alone; per checked sample. The libraries' thread pools get in each other's way
    when they take turns: on 2 cores a round and a check over 1,000 samples took 57 ms longer than the round alone,
    where the check alone took 8 ms."""
    from core.explainers.timing import probe_images
    from core.modelling.prediction import model_device

    x = probe_images(image_shape, max(2, min(round_size, 128))).to(model_device(model))

    def seconds(call) -> float:
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0

    one = seconds(lambda: forward_probabilities(model, x[:2], batch_size=2)) / 2  # and the warm-up
    m = int(max(2, min(len(x), CHECK_PASS_SECONDS / max(one, 1e-9))))
    rng = np.random.default_rng(0)
    data = rng.integers(0, 2, (CHECK_SAMPLES, superpixels))
    y = (data @ rng.normal(0.0, 0.05, superpixels) + rng.normal(0.0, 0.05, CHECK_SAMPLES)).astype(np.float32)

    def one_round(check: bool) -> None:
        forward_probabilities(model, x[:m], batch_size=m)
        if check:
            assess(data, y, k)

    def rounds(check: bool) -> float:
        times = [seconds(lambda: one_round(check)) for _ in range(CHECK_ROUNDS)]
        return statistics.median(times[1:])

    alone = rounds(False)
    return max(0.0, rounds(True) - alone) / CHECK_SAMPLES


def masked_images(image: torch.Tensor, fudged: torch.Tensor, segments: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """(n, C, H, W): ``image`` (C, H, W) with the superpixels whose entry in ``rows`` (n, F) is 0 replaced by
    ``fudged``. These are the values ``LimeImageExplainer.data_labels`` makes (it copies the image per row in
    Python; this is one vectorised selection, no arithmetic, so the values are equal)."""
    keep = torch.from_numpy(rows.astype(bool)[:, segments])
    return torch.where(keep[:, None], image, fudged)


@register
class Lime(Explainer):
    name = "lime"
    title = "LIME"
    description = ("Fits a weighted linear model to the class probability of copies with random superpixels hidden; "
                   "each superpixel gets its coefficient. Adaptive: stops drawing copies when the answer is stable.")
    paper = ("Ribeiro, Singh, Guestrin. \"Why Should I Trust You?\": Explaining the Predictions of Any Classifier. "
             "KDD 2016. arXiv:1602.04938. Stopping rule: Slack et al. Reliable Post hoc Explanations: Modeling "
             "Uncertainty in Explainability (BayesLIME). NeurIPS 2021. arXiv:2008.05030")
    needs_gradients = False
    family = "Perturbation"
    stochastic = True
    outlier_perc = 0.0
    units = "probability"  # coefficients of a linear model of the class probability
    params = (
        Param("mode", "choice", "adaptive", choices=MODES, label="Samples",
              help="Adaptive: draw copies in rounds until another run is predicted to agree (the stability target); "
                   "fixed: exactly the number given"),
        Param("num_samples", "int", 1000, help="Perturbed copies (model calls)", min=10, max=20000,
              label="Samples (fixed)", when=("mode", "fixed")),
        Param("max_samples", "int", 2000, help="Adaptive: stop here even if the answer is not yet stable", min=50,
              max=20000, label="At most", when=("mode", "adaptive")),
        Param("stability_target", "float", DEFAULT_TARGET, min=0.1, max=0.99, step=0.01, label="Stability target",
              help="Stop when another run is predicted to agree this well: the Spearman correlation of all superpixel "
                   "weights, and the share of the top superpixels (with their signs) in common", when=("mode", "adaptive")),
        Param("top_k", "int", 5, help="The strongest superpixels whose choice and signs must agree between runs",
              min=1, max=100, label="Top superpixels judged"),
        Param("round_size", "int", 100, help="Adaptive: copies drawn between two stability checks", min=10, max=2000,
              label="Per round", when=("mode", "adaptive")),
        Param("segmentation", "choice", "slic", help="Superpixel algorithm", choices=("slic", "quickshift", "felzenszwalb"),
              label="Segmentation"),
        Param("n_segments", "int", 50, help="SLIC: approximate number of superpixels", min=2, max=1000, label="SLIC segments",
              when=("segmentation", "slic")),
        Param("compactness", "float", 10.0, help="SLIC: colour vs space trade-off (higher = squarer)", min=0.01, max=100.0, step=1.0,
              label="SLIC compactness", when=("segmentation", "slic")),
        Param("kernel_size", "float", 2.0, help="Quickshift: Gaussian kernel width (small for small images)", min=0.5, max=20.0, step=0.5,
              label="Quickshift kernel", when=("segmentation", "quickshift")),
        Param("max_dist", "float", 6.0, help="Quickshift: cut-off distance (higher = fewer segments)", min=1.0, max=200.0, step=1.0,
              label="Quickshift max dist", when=("segmentation", "quickshift")),
        Param("scale", "float", 50.0, help="Felzenszwalb: scale (higher = larger segments)", min=1.0, max=2000.0, step=10.0,
              label="Felzenszwalb scale", when=("segmentation", "felzenszwalb")),
        Param("num_features", "int", 20, help="Superpixels kept in the map (largest |weight|)",
              min=1, max=1000, label="Features"),
        Param("positive_only", "bool", False, help="Keep only superpixels that support the class", label="Positive only"),
        Param("hide_color", "choice", "mean", help="Fill of hidden superpixels: their mean colour, black or grey",
              choices=tuple(HIDE), label="Hide colour"),
        Param("batch_size", "int", 128, help="Copies per progress step (the model's own batch is measured)", min=1,
              max=2048, label="Batch"),
        seed_param(),
    )
    batched = False  # one segmentation and one linear fit per image
    # lime draws from its own RandomState(seed) and only runs the model forward: no shared-state effect

    @classmethod
    def implied(cls, given: dict[str, Any]) -> dict[str, Any]:
        # asking for a number of samples means exactly that many (the CLI's --param lime.num_samples=500)
        if "num_samples" in given and "mode" not in given:
            return {**given, "mode": "fixed"}
        return given

    @classmethod
    def cost(cls, params, model, image_shape):
        return params["num_samples"] if params["mode"] == "fixed" else params["max_samples"]

    passes = "fast"  # every model call goes through the fast inference path

    @classmethod
    def expected_cost(cls, params, model, image_shape):
        if params["mode"] == "fixed":
            return float(params["num_samples"])
        return float(expected_samples(params["stability_target"], params["max_samples"], params["round_size"],
                                      _superpixels(params)))

    @classmethod
    def expected_checks(cls, params, model, image_shape):
        if params["mode"] == "fixed":
            return 0.0  # one check, over its samples: it grows in step with them, in the rate per sample
        stop = int(cls.expected_cost(params, model, image_shape))
        return float(sum(check_points(params["max_samples"], params["round_size"], _superpixels(params), stop)))

    @classmethod
    def check_seconds(cls, params, model, image_shape):
        superpixels = _superpixels(params)
        return seconds_per_check(model, tuple(image_shape), superpixels, min(params["top_k"], superpixels),
                                 params["round_size"])

    @classmethod
    def probe_params(cls, params, units, image_shape):
        if params["mode"] == "fixed":
            return {**params, "num_samples": int(min(20000, max(10, units)))}
        # the same rounds and checks, run to the maximum (a target that a few hundred samples do not reach), in
        # whole rounds: a last short round's small batch is dearer per sample than any of the real run's
        rounds = max(1, round(units / params["round_size"]))
        return {**params, "max_samples": int(min(20000, max(50, rounds * params["round_size"]))),
                "stability_target": 0.99}

    def attribute(self, x, targets, *, seeds, progress, mode, num_samples, max_samples, stability_target, top_k,
                  round_size, segmentation, n_segments, compactness, kernel_size, max_dist, scale, num_features,
                  positive_only, hide_color, batch_size):
        label, seed = int(targets[0]), seeds[0]
        channels = x.shape[1]
        device = x.device
        image = x[0].permute(1, 2, 0).detach().cpu().double().numpy()
        if channels == 1:  # lime works on RGB; it gets a grey RGB copy, the model gets one channel back
            image = np.repeat(image, 3, axis=2)

        def probabilities(t: torch.Tensor) -> np.ndarray:  # (n, 3, H, W) float32 on the CPU
            if channels == 1:
                t = t.mean(dim=1, keepdim=True)
            out = forward_probabilities(self.model, t.to(device), batch_size=batch_size).cpu().numpy()
            progress(len(t))
            return out

        def classifier_fn(batch: np.ndarray) -> np.ndarray:  # lime's side: (n, H, W, 3) float64
            return probabilities(torch.from_numpy(np.ascontiguousarray(batch)).float().permute(0, 3, 1, 2))

        explainer = lime_image.LimeImageExplainer(random_state=seed)
        lo, hi = float(image.min()), float(image.max())  # a module given its own preprocessed inputs: segment a [0, 1] copy
        seen = image if lo >= 0.0 and hi <= 1.0 else (image - lo) / max(hi - lo, 1e-12)
        segments = segmenter(segmentation, n_segments, compactness, kernel_size, max_dist, scale)(seen)
        fudged = fudged_image(image, segments, HIDE[hide_color])
        n_features = int(np.unique(segments).shape[0])
        k = min(top_k, n_features)
        goal = stability_target if mode == "adaptive" else DEFAULT_TARGET
        if mode == "fixed":
            data, labels = explainer.data_labels(image, fudged, segments, classifier_fn, num_samples, batch_size=batch_size)
            st = assess(data, labels[:, label], k, seed)
            stopped = "fixed"
        else:
            # the same stream data_labels draws from (randint over n * F values), in rounds
            rng = explainer.random_state
            data = np.zeros((0, n_features), dtype=int)
            labels = None
            as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float().permute(2, 0, 1)  # noqa: E731
            image_t, fudged_t = as_t(image), as_t(fudged)
            while True:
                r = min(round_size, max_samples - len(data))
                rows = rng.randint(0, 2, r * n_features).reshape((r, n_features))
                if not len(data):
                    rows[0, :] = 1
                preds = [probabilities(masked_images(image_t, fudged_t, segments, rows[i:i + batch_size]))
                         for i in range(0, r, batch_size)]
                data = np.concatenate([data, rows])
                labels = np.concatenate([labels, *preds]) if labels is not None else np.concatenate(preds)
                # below two samples per superpixel the prior, not the data, sets the spread: never stop there
                if len(data) >= min(2 * n_features, max_samples):
                    st = assess(data, labels[:, label], k, seed)
                    if st.reached(goal):
                        stopped = "stable"
                        break
                if len(data) >= max_samples:
                    stopped = "maximum"
                    break
        distances = kernel_distances(data)
        _, local_exp, score, local_pred = explainer.base.explain_instance_with_data(
            data, labels, distances, label, 100000, model_regressor=None, feature_selection=explainer.feature_selection)
        every = sorted(local_exp, key=lambda kv: -abs(kv[1]))
        shown = [kv for kv in every if kv[1] > 0] if positive_only else every
        lookup = np.zeros(int(segments.max()) + 1, dtype=np.float32)
        for segment, weight in shown[:num_features]:
            lookup[segment] = weight
        half = st.posterior.interval()
        need = None if st.reached(goal) else samples_to_reach(st, goal, limit=20000, seed=seed)
        extras = {"n_superpixels": n_features, "score": float(score),
                  "local_pred": float(np.ravel(local_pred)[0]) if local_pred is not None else None,
                  # every superpixel's weight, largest |weight| first, and the superpixel map itself
                  # (the engine moves it to Explanation.segments): the LIME picture is drawn from these
                  "superpixel_weights": [[int(s), float(w)] for s, w in every],
                  "segments": segments.astype(np.int32),
                  # how stable the answer is (lime_stability): 95 % credible half-widths per superpixel, the
                  # predicted run-to-run agreement, and how many samples in all would reach the target
                  "samples": int(len(data)), "mode": mode, "stopped": stopped,
                  "stability": round(st.rho, 4), "topk_agreement": round(st.topk, 4), "top_k": int(k),
                  "stability_target": float(goal), "samples_to_target": need,
                  "intervals": [[int(s), float(half[int(s)])] for s, _ in every],
                  "inference": describe(self.model, tuple(x.shape[1:]))["backend"]}
        return Attribution(lookup[segments][None], [extras])

