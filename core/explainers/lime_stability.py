"""How stable a LIME answer is: would another run with this many samples give the same map?

Two numbers, each from a stated rule, both computed from the run's own samples (no extra model passes):

- ``rho``, the run-to-run agreement of the whole ranking. This is the predicted Spearman correlation between the
  superpixel weights of two independent runs, the agreement the README measures. It is *split-half reliability*: fit
  LIME's ridge regression on random halves of the samples and take the mean Spearman correlation of the halves'
  weights. Then step that up to the full count with the Spearman-Brown prophecy formula ``2r / (1 + r)`` (Spearman
  1910; Brown 1910). It assumes nothing about the model's form.
- ``topk``, whether the strongest superpixels and their signs would stay. This comes from BayesLIME's posterior over
  the weights (Slack, Hilgard, Singh, Lakkaraju. Reliable Post hoc Explanations: Modeling Uncertainty in
  Explainability. NeurIPS 2021. arXiv:2008.05030). It is a Bayesian linear regression of the class probability on
  the superpixels' on/off pattern, with LIME's kernel weights as per-sample precisions. The prior is conjugate
  normal-inverse-gamma, ``w | s2 ~ N(0, s2 / alpha I)``, with LIME's ridge ``alpha = 1``, an unpenalised intercept
  and a vague prior on ``s2``. So its mean is exactly the ridge fit the ``lime`` package returns, and each weight
  gets a 95 % credible interval. We draw two runs' weights from it around a plausible true weight vector (the
  posterior mean, shrunk by the noise's share of its spread) and count the signed top-k superpixels they share.

Adaptive LIME draws samples in rounds and stops when both numbers reach the target. Fixed-count LIME reports them
too. We first used the posterior for ``rho`` as well. On 6 demo-model images it was optimistic: it predicted 0.88
where runs agreed at 0.84 with 1,000 samples, and 0.78 against 0.70 with 300. On 10 images split-half predicts 0.84
against 0.82, and 0.73 against 0.69. The posterior's top-5 predictions are within 0.05 (``python -m benchmarks
--methods none --lime-adaptive``; README, *LIME at demo speed*).
We wrote this ourselves because the ``lime`` package has no rounds and no uncertainty, and BayesLIME's code is not a
maintained package. The rules are the papers'.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import pairwise_distances

#: LIME's ridge penalty (``lime_base``: ``Ridge(alpha=1)``): the prior precision of the weights
ALPHA = 1.0
#: vague inverse-gamma prior on the noise variance
A0 = B0 = 1e-6
#: posterior draws per top-k estimate (each is two simulated runs)
DRAWS = 256
#: random half-splits per split-half estimate
SPLITS = 8


@dataclass(frozen=True)
class Posterior:
    """The posterior over F superpixel weights after n weighted samples."""

    mean: np.ndarray  #: (F,) = the ridge coefficients LIME reports
    scale: np.ndarray  #: (F, F) scale matrix of the Student t (covariance = scale * dof / (dof - 2))
    dof: float
    n: int

    def interval(self, level: float = 0.95) -> np.ndarray:
        """(F,) half-widths of the central credible intervals."""
        return stats.t.ppf(0.5 + level / 2, self.dof) * np.sqrt(np.diag(self.scale))

    def with_samples(self, n: int) -> Posterior:
        """The posterior expected after ``n`` samples of the same kind (the spread shrinks as 1 / n)."""
        return Posterior(self.mean, self.scale * (self.n / n), self.dof * n / self.n, n)


def kernel_distances(data: np.ndarray) -> np.ndarray:
    """The cosine distance of each row to the first (the all-on row), as ``explain_instance`` computes them."""
    return pairwise_distances(data, data[0].reshape(1, -1), metric="cosine").ravel()


def kernel_weights(data: np.ndarray, kernel_width: float = 0.25) -> np.ndarray:
    """LIME's sample weights, as ``lime_image``'s default kernel makes them: ``sqrt(exp(-d^2 / width^2))``."""
    d = kernel_distances(data)
    return np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2))


def _centred(data: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``data`` and ``y`` centred on their weighted means (the unpenalised intercept, as scikit-learn's Ridge does),
    as float64, and the weights."""
    X = data.astype(np.float64)
    y = np.asarray(y, dtype=np.float64)
    sw = np.asarray(weights, dtype=np.float64)
    return X - sw @ X / sw.sum(), y - sw @ y / sw.sum(), sw


def posterior(data: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float = ALPHA) -> Posterior:
    """The posterior of the weighted ridge regression ``y ~ b + data @ w`` (``data`` (n, F) 0/1, ``y`` (n,))."""
    Xc, yc, sw = _centred(data, y, weights)
    cov = np.linalg.inv(Xc.T @ (Xc * sw[:, None]) + alpha * np.eye(Xc.shape[1]))
    mean = cov @ (Xc.T @ (sw * yc))
    resid = yc - Xc @ mean
    ss = float(sw @ resid ** 2 + alpha * mean @ mean)  # y' W y - mean' V^-1 mean, computed stably
    a = A0 + (len(yc) - 1) / 2.0
    b = B0 + ss / 2.0
    return Posterior(mean, (b / a) * cov, 2.0 * a, len(yc))


def ridge(data: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """The posterior mean alone (LIME's ridge coefficients), by a linear solve."""
    Xc, yc, sw = _centred(data, y, weights)
    return np.linalg.solve(Xc.T @ (Xc * sw[:, None]) + alpha * np.eye(Xc.shape[1]), Xc.T @ (sw * yc))


def _ranks(a: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(a, axis=-1, kind="stable"), axis=-1, kind="stable").astype(np.float64)


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.divide((a * b).sum(axis=1), den, out=np.ones(len(a)), where=den > 0)


def _signed_topk(w: np.ndarray, k: int) -> np.ndarray:
    """(S, F) bool: the top-k entries by |w| of each row, with their sign encoded as +1 / -1 (0 elsewhere)."""
    idx = np.argsort(-np.abs(w), axis=1, kind="stable")[:, :k]
    out = np.zeros(w.shape, dtype=np.int8)
    np.put_along_axis(out, idx, np.where(np.take_along_axis(w, idx, axis=1) >= 0, 1, -1).astype(np.int8), axis=1)
    return out


def predicted_topk(post: Posterior, k: int, seed: int = 0, draws: int = DRAWS) -> float:
    """The expected share of the signed top-k superpixels that two independent runs have in common, simulated from
    the posterior (see the module docstring)."""
    F = len(post.mean)
    k = max(1, min(k, F))
    if F < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    cov = post.scale * (post.dof / (post.dof - 2) if post.dof > 2 else 1.0)
    noise = float(np.mean(np.diag(cov)))
    centre = post.mean.mean()
    spread = float(np.var(post.mean))
    shrink = np.sqrt(max(0.0, spread - noise) / spread) if spread > 0 else 0.0
    truth = centre + (post.mean - centre) * shrink
    L = np.linalg.cholesky(post.scale + 1e-18 * np.eye(F))
    # multivariate t: normal draws scaled by sqrt(dof / chi2)
    z = rng.standard_normal((2, draws, F)) @ L.T
    g = np.sqrt(post.dof / rng.chisquare(post.dof, size=(2, draws, 1)))
    runs = truth + z * g
    a, b = _signed_topk(runs[0], k), _signed_topk(runs[1], k)
    return float((((a == b) & (a != 0)).sum(axis=1) / k).mean())


def spearman_brown(r: float, factor: float) -> float:
    """The reliability of ``factor`` times as many samples, from ``r`` (the Spearman-Brown prophecy formula)."""
    if r <= 0:
        return r
    return factor * r / (1 + (factor - 1) * r)


def split_half(data: np.ndarray, y: np.ndarray, weights: np.ndarray, seed: int = 0, splits: int = SPLITS) -> float:
    """The predicted Spearman correlation between two runs of ``len(y)`` samples: the mean Spearman correlation of
    the weights fitted on random halves of the samples, stepped up to the full count by Spearman-Brown."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if n < 4:
        return 0.0
    halves = []
    for _ in range(splits):
        perm = rng.permutation(n)
        a, b = perm[: n // 2], perm[n // 2:]
        wa = ridge(data[a], y[a], weights[a])
        wb = ridge(data[b], y[b], weights[b])
        halves.append(_rowwise_pearson(_ranks(wa[None]), _ranks(wb[None]))[0])
    return spearman_brown(float(np.mean(halves)), 2.0)


@dataclass(frozen=True)
class Stability:
    """How stable one LIME answer is (see the module docstring)."""

    posterior: Posterior
    rho: float  #: predicted run-to-run Spearman correlation of all the superpixel weights
    topk: float  #: predicted share of the top-k superpixels, with their signs, that another run would pick too
    k: int

    def reached(self, target: float) -> bool:
        return min(self.rho, self.topk) >= target


def assess(data: np.ndarray, y: np.ndarray, k: int, seed: int = 0) -> Stability:
    """The stability of the LIME fit of ``y`` (n,) on the 0/1 ``data`` (n, F), with LIME's kernel weights."""
    w = kernel_weights(data)
    post = posterior(data, y, w)
    k = max(1, min(k, data.shape[1]))
    return Stability(post, split_half(data, y, w, seed), predicted_topk(post, k, seed), k)


def samples_to_reach(st: Stability, target: float, limit: int, seed: int = 0) -> int | None:
    """Roughly how many samples in all would bring both numbers to ``target``: Spearman-Brown for the correlation,
    the posterior's spread scaled as 1 / n for the top-k (BayesLIME's "perturbations to go"); ``None`` if more than
    ``limit``."""
    n = st.posterior.n
    for factor in (1.25, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32):
        m = int(np.ceil(n * factor / 50.0) * 50)
        if m > limit:
            return None
        if (spearman_brown(st.rho, m / n) >= target
                and predicted_topk(st.posterior.with_samples(m), st.k, seed) >= target):
            return m
    return None
