"""Known answers and reference checks for each attribution method."""
import numpy as np
import pytest
import torch
from torch import nn

from core import explain
from core.explainers import to_heatmap
from tests.helpers import Linear, make_classifier


class HandCAM(nn.Module):
    """1x1 conv -> ReLU (target layer) -> global average pool -> linear, with given weights.

    Grad-CAM's answer is then available in closed form: the gradient of class c w.r.t. A_k(i, j) is
    W[c, k] / (H W), so alpha_k = W[c, k] / (H W) and cam = ReLU(sum_k alpha_k A_k).
    """

    def __init__(self, V: torch.Tensor, W: torch.Tensor):
        super().__init__()
        self.conv = nn.Conv2d(V.shape[1], V.shape[0], 1, bias=False)
        self.conv.weight.data = V.view(*V.shape, 1, 1).clone()
        self.relu = nn.ReLU()
        self.fc = nn.Linear(W.shape[1], W.shape[0], bias=False)
        self.fc.weight.data = W.clone()
        self.target_layer = "relu"

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def test_grad_cam_equals_hand_computation():
    g = torch.Generator().manual_seed(0)
    # Large weights keep the raw CAM far above pytorch-grad-cam's 1e-7 normalisation epsilon.
    V = torch.randn(4, 3, generator=g)
    W = 1000 * torch.tensor([[1.0, -0.5, 0.3, -1.0], [-0.4, 1.0, -0.8, 0.6]])
    x = torch.rand(3, 12, 12, generator=g)
    H = Wd = 12
    A = np.maximum(np.einsum("kc,chw->khw", V.numpy(), x.numpy()), 0)
    for c in (0, 1):
        alpha = W.numpy()[c] / (H * Wd)
        cam = np.maximum(np.einsum("k,khw->hw", alpha, A), 0)
        assert cam.max() > cam.min()  # a non-trivial map, so the comparison means something
        expected = (cam - cam.min()) / (cam.max() - cam.min())  # pytorch-grad-cam's per-image min-max scaling
        e = explain(HandCAM(V, W), x, "grad_cam", target=c)
        np.testing.assert_allclose(e.attribution, expected, atol=1e-5)
    # the two classes' maps differ: the target really steers the map
    assert not np.allclose(explain(HandCAM(V, W), x, "grad_cam", target=0).attribution,
                           explain(HandCAM(V, W), x, "grad_cam", target=1).attribution)


@pytest.mark.parametrize("ch", [1, 3])
def test_saliency_is_the_absolute_input_gradient(ch):
    w = torch.randn(2, ch, 8, 8, generator=torch.Generator().manual_seed(ch))
    e = explain(Linear(w), torch.rand(ch, 8, 8), "saliency", target=1)
    # for f(x) = w . x + b the input gradient is w; saliency takes |.| and the max over channels
    np.testing.assert_allclose(e.attribution, w[1].abs().amax(dim=0).numpy(), rtol=1e-6)


def test_saliency_matches_autograd_on_a_cnn():
    model = make_classifier(3)
    x = torch.rand(1, 3, 32, 32)
    xg = x.clone().requires_grad_(True)
    model(xg)[0, 2].backward()
    e = explain(model, x[0], "saliency", target=2)
    np.testing.assert_allclose(e.attribution, xg.grad[0].abs().amax(dim=0).numpy(), rtol=1e-5, atol=1e-7)


def test_integrated_gradients_exact_on_a_linear_model():
    w = torch.randn(3, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    x = torch.rand(3, 6, 6)
    e = explain(Linear(w), x, "integrated_gradients", target=2, n_steps=8)
    # IG of a linear function from a zero baseline is exactly (x - 0) * w, summed over channels here
    np.testing.assert_allclose(e.attribution, (x * w[2]).sum(dim=0).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("baseline", ["zeros", "blur", "noise", "mean"])
def test_integrated_gradients_completeness(baseline, tiny_model):
    """Sum of attributions = f(x) - f(baseline) within 5% at 64 steps (the axiom IG is built on)."""
    from core import load_dataset

    model, card = tiny_model
    ds = load_dataset("shapes", split="test")
    checked = 0
    for index in range(20):
        e = explain(model, ds[index][0], "integrated_gradients", n_steps=64, baseline=baseline)
        gap = e.extras["output_difference"]
        if abs(gap) < 0.1:  # a relative 5% test is meaningless when f(x) ~ f(baseline)
            continue
        assert abs(e.attribution.sum() - gap) <= 0.05 * abs(gap), (baseline, index, e.attribution.sum(), gap)
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_noise_baseline_is_seeded():
    model = make_classifier(3)
    x = torch.rand(3, 32, 32)
    a = explain(model, x, "integrated_gradients", baseline="noise", seed=1, n_steps=8).attribution
    b = explain(model, x, "integrated_gradients", baseline="noise", seed=1, n_steps=8).attribution
    c = explain(model, x, "integrated_gradients", baseline="noise", seed=2, n_steps=8).attribution
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_maps_find_the_object_on_the_trained_demo_recipe(tiny_model):
    """Even a one-epoch model's Grad-CAM and IG maps put more weight on the shape than on the background."""
    from core import load_dataset

    model, _ = tiny_model
    ds = load_dataset("shapes", split="test")
    ratios = {"grad_cam": [], "integrated_gradients": []}
    for i in range(8):
        x, y = ds[i]
        mask = ds.mask(i)
        for m in ratios:
            h = explain(model, x, m, target=y).heatmap
            ratios[m].append(h[mask].mean() / max(h[~mask].mean(), 1e-6))
    for m, r in ratios.items():
        assert np.median(r) > 1.5, (m, r)


def test_heatmap_scaling():
    a = np.zeros((10, 10), np.float32)
    assert to_heatmap(a) == (pytest.approx(np.zeros((10, 10))), True) or to_heatmap(a)[1]
    a[3, 3] = -5.0
    a[4, 4] = 1.0
    h, flat = to_heatmap(a, outlier_perc=0)
    assert not flat and h[3, 3] == 1.0 and h[4, 4] == pytest.approx(0.2)
    h, flat = to_heatmap(np.full((4, 4), 2.0, np.float32))
    assert flat and (h == 0).all()
