"""LIME: the fixed mode is the lime package's own, the adaptive mode stops when its answer is stable (and only then),
and the stability numbers are right: known answers on hand-made models, agreement with scikit-learn and lime."""
import numpy as np
import pytest
import torch
from lime import lime_image
from scipy import stats
from sklearn.linear_model import Ridge
from torch import nn

from core import explain, explain_batch
from core.explainers.engine import resolve_params
from core.explainers.lime_image import segmenter
from core.explainers.lime_stability import assess, kernel_distances, kernel_weights, posterior, spearman_brown
from core.modelling.inference import forward_probabilities
from tests.helpers import make_classifier


class LinearProbability(nn.Module):
    """Class 0's probability is ``0.5 + <W, x>`` (logits log p, log(1 - p), so the softmax gives p back): hiding a
    superpixel (black) takes away exactly its share ``a_s = sum over its pixels of W x``."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.flatten().clone(), requires_grad=False)

    def forward(self, x):
        p = (0.5 + x.flatten(1) @ self.w).clamp(1e-4, 1 - 1e-4)
        return torch.stack([p.log(), (1 - p).log()], dim=1)


class Noisy(nn.Module):
    """Class 0's probability is a pseudo-random function of the input: no linear model explains it."""

    def __init__(self, size: int = 32):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.r = nn.Parameter(torch.randn(3 * size * size, generator=g), requires_grad=False)

    def forward(self, x):
        p = 0.5 + 0.45 * torch.sin(1000.0 * (x.flatten(1) @ self.r))
        return torch.stack([p.log(), (1 - p).log()], dim=1)


def blocks(size: int = 32, n: int = 4, seed: int = 0) -> torch.Tensor:
    """An image of n x n uniform blocks of distinct colours (superpixels follow them)."""
    g = torch.Generator().manual_seed(seed)
    colours = 0.2 + 0.8 * torch.rand((3, n, n), generator=g)
    return colours.repeat_interleave(size // n, 1).repeat_interleave(size // n, 2)


@pytest.fixture(scope="module")
def linear_case():
    image = blocks()
    g = torch.Generator().manual_seed(1)
    strength = torch.linspace(-1, 1, 16)[torch.randperm(16, generator=g)].reshape(4, 4)
    w = (strength.repeat_interleave(8, 0).repeat_interleave(8, 1) * 4e-4).expand(3, 32, 32)
    return LinearProbability(w).eval(), image, w


LINEAR = dict(target=0, segmentation="slic", n_segments=16, compactness=20.0, hide_color="black")


def true_weights(e, image, w):
    segments = e.segments
    contrib = (w * image).sum(0).numpy()
    return np.array([contrib[segments == s].sum() for s in range(int(segments.max()) + 1)])


def fitted(e):
    return np.array([v for _, v in sorted(e.extras["superpixel_weights"])])


def test_adaptive_recovers_the_known_weights_and_stops_early(linear_case):
    model, image, w = linear_case
    e = explain(model, image, "lime", seed=0, max_samples=2000, **LINEAR)
    truth, got = true_weights(e, image, w), fitted(e)
    assert e.extras["stopped"] == "stable" and e.extras["samples"] <= 200  # the first check after 2 per superpixel
    assert e.extras["stability"] >= 0.9 and e.extras["topk_agreement"] >= 0.9
    # LIME's ridge (alpha = 1) shrinks towards 0 by about alpha / (n * var * kernel weight), some 8 % at 100
    # samples: within 10 % of the largest weight, and the same ranking
    assert np.abs(got - truth).max() < 0.1 * np.abs(truth).max()
    assert stats.spearmanr(got, truth).statistic > 0.98
    top = np.argsort(-np.abs(truth))[:5]
    assert set(np.argsort(-np.abs(got))[:5]) == set(top) and np.all(np.sign(got[top]) == np.sign(truth[top]))
    # the credible intervals cover the truth (up to the ridge's shrinkage)
    half = dict(e.extras["intervals"])
    assert np.mean([abs(got[s] - truth[s]) <= half[s] + 0.1 * abs(truth[s]) for s in range(len(truth))]) >= 0.8


def test_a_noisy_model_runs_to_the_maximum_and_says_so():
    image = blocks(seed=2)
    e = explain(Noisy().eval(), image, "lime", seed=0, max_samples=300, round_size=100, **LINEAR)
    assert e.extras["stopped"] == "maximum" and e.extras["samples"] == 300
    assert min(e.extras["stability"], e.extras["topk_agreement"]) < 0.9
    need = e.extras["samples_to_target"]
    assert need is None or need > 300


@pytest.fixture(scope="module")
def cnn_case():
    model = make_classifier(3, num_classes=4, seed=7).eval()
    image = blocks(seed=5) * 0.6 + 0.4 * torch.rand((3, 32, 32), generator=torch.Generator().manual_seed(9))
    return model, image


def test_adaptive_that_stopped_at_n_is_fixed_lime_with_n_samples(cnn_case):
    model, image = cnn_case
    a = explain(model, image, "lime", target=1, seed=4, max_samples=400, round_size=50)
    f = explain(model, image, "lime", target=1, seed=4, num_samples=a.extras["samples"])
    assert f.extras["mode"] == "fixed" and a.extras["mode"] == "adaptive"
    assert np.array_equal(a.attribution, f.attribution)
    assert a.extras["superpixel_weights"] == f.extras["superpixel_weights"]


def test_fixed_mode_is_the_lime_packages_own_explain_instance(cnn_case):
    model, image = cnn_case
    e = explain(model, image, "lime", target=2, seed=6, num_samples=150, batch_size=32)

    def classifier_fn(batch):  # the same model passes as ours, through lime's own pipeline
        t = torch.from_numpy(np.ascontiguousarray(batch)).float().permute(0, 3, 1, 2)
        return forward_probabilities(model, t).numpy()

    exp = lime_image.LimeImageExplainer(random_state=6).explain_instance(
        image.permute(1, 2, 0).double().numpy(), classifier_fn, labels=(2,), top_labels=None, num_features=100000,
        num_samples=150, batch_size=32, segmentation_fn=segmenter("slic", 50, 10.0, 2.0, 6.0, 50.0), random_seed=6)
    theirs = sorted(exp.local_exp[2], key=lambda kv: -abs(kv[1]))
    assert e.extras["superpixel_weights"] == [[int(s), float(v)] for s, v in theirs]
    assert e.extras["score"] == pytest.approx(exp.score)


def test_seeded_runs_reproduce_and_batching_keeps_the_per_image_seeds(cnn_case):
    model, image = cnn_case
    kw = dict(max_samples=300, round_size=100)
    one = explain(model, image, "lime", target=0, seed=11, **kw)
    assert np.array_equal(one.attribution, explain(model, image, "lime", target=0, seed=11, **kw).attribution)
    assert not np.array_equal(one.attribution, explain(model, image, "lime", target=0, seed=12, **kw).attribution)
    # the model's own batch never changes a value (the fast path's outputs do not depend on the batch)
    assert np.array_equal(one.attribution,
                          explain(model, image, "lime", target=0, seed=11, batch_size=7, **kw).attribution)
    images = torch.stack([image, image.flip(2), image.flip(1)])
    batch = explain_batch(model, images, "lime", targets=[0, 1, 2], seed=20, **kw)
    for i, e in enumerate(batch):
        alone = explain(model, images[i], "lime", target=i, seed=20 + i, **kw)
        assert np.array_equal(e.attribution, alone.attribution) and e.extras["samples"] == alone.extras["samples"]


def test_a_number_of_samples_means_the_fixed_mode():
    assert resolve_params("lime", num_samples=500)["mode"] == "fixed"
    assert resolve_params("lime")["mode"] == "adaptive"
    assert resolve_params("lime", mode="adaptive", num_samples=500)["mode"] == "adaptive"


def test_fixed_count_lime_reports_its_stability_and_the_samples_it_would_need(cnn_case):
    model, image = cnn_case
    few = explain(model, image, "lime", target=3, seed=1, num_samples=60)
    many = explain(model, image, "lime", target=3, seed=1, num_samples=600)
    assert few.extras["stopped"] == "fixed" and few.extras["samples"] == 60
    assert few.extras["stability"] < many.extras["stability"]
    if few.extras["stability"] < 0.9:
        assert few.extras["samples_to_target"] is None or few.extras["samples_to_target"] > 60


def test_the_predicted_agreement_matches_the_measured_run_to_run_agreement(cnn_case):
    # what the stability number promises: another run agrees about this well
    model, image = cnn_case
    runs = [explain(model, image, "lime", target=1, seed=s, num_samples=200) for s in range(5)]
    predicted = np.mean([r.extras["stability"] for r in runs])
    measured = np.mean([stats.spearmanr(fitted(a), fitted(b)).statistic
                        for i, a in enumerate(runs) for b in runs[i + 1:]])
    assert abs(predicted - measured) < 0.1, (predicted, measured)


# ------------------------------------------------------------------ the stability module on its own


def test_posterior_mean_is_lime_and_scikit_learns_ridge():
    rng = np.random.RandomState(0)
    data = rng.randint(0, 2, (300, 12))
    data[0] = 1
    y = data @ rng.normal(size=12) * 0.1 + rng.normal(scale=0.05, size=300)
    sw = kernel_weights(data)
    ours = posterior(data, y, sw).mean
    sk = Ridge(alpha=1.0).fit(data, y, sample_weight=sw).coef_
    np.testing.assert_allclose(ours, sk, rtol=1e-8, atol=1e-10)
    explainer = lime_image.LimeImageExplainer(random_state=0)
    _, exp, _, _ = explainer.base.explain_instance_with_data(data, y[:, None], kernel_distances(data), 0, 1000)
    np.testing.assert_allclose([dict(exp)[i] for i in range(12)], ours, rtol=1e-8, atol=1e-10)


def test_credible_intervals_cover_the_truth_about_95_percent():
    hits = []
    for seed in range(20):
        rng = np.random.RandomState(seed)
        w = rng.normal(size=10)
        data = rng.randint(0, 2, (400, 10))
        y = data @ w + rng.normal(scale=1.0, size=400)
        post = posterior(data, y, np.ones(400), alpha=1e-6)
        hits += list(np.abs(post.mean - w) <= post.interval(0.95))
    assert 0.9 <= np.mean(hits) <= 0.99


def test_spearman_brown_and_assess_basics():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.8, 1) == pytest.approx(0.8)
    rng = np.random.RandomState(1)
    data = rng.randint(0, 2, (400, 8))
    exact = assess(data, data @ np.array([-1.0, 0.8, -0.6, 0.4, -0.2, 0.1, 0.05, 0.3]), k=3)
    noisy = assess(data, rng.normal(size=400), k=3)
    assert exact.reached(0.95) and not noisy.reached(0.9)
