"""Agreement with the reference libraries and known answers for the full method suite."""
import threading

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from pytorch_grad_cam import (AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM,
                              XGradCAM)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from core import explain, list_methods, predict
from core.modelling.architectures import build_model, get_layer
from core.datasets import shapes
from tests.helpers import hooks_on, make_classifier
from tests.helpers import Linear


@pytest.fixture(scope="module")
def model_and_image():
    model = make_classifier(3, num_classes=4, seed=7)
    image = torch.from_numpy(shapes.generate(1, seed=11, size=32)[0][0]).permute(2, 0, 1).float() / 255
    return model, image


CAMS = {"grad_cam": GradCAM, "grad_cam_plusplus": GradCAMPlusPlus, "xgrad_cam": XGradCAM, "layer_cam": LayerCAM,
        "hires_cam": HiResCAM, "eigen_cam": EigenCAM, "score_cam": ScoreCAM, "ablation_cam": AblationCAM}


@pytest.mark.parametrize("method", CAMS)
def test_cam_family_equals_pytorch_grad_cam(method, model_and_image):
    model, image = model_and_image
    layer = "net.features.block3"  # a non-default layer: the choice must reach the library
    with CAMS[method](model=model, target_layers=[get_layer(model, layer)]) as cam:
        expected = cam(input_tensor=image[None], targets=[ClassifierOutputTarget(2)])[0]
    ours = explain(model, image, method, target=2, layer=layer).attribution
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert hooks_on(model) == 0


@pytest.mark.parametrize("integration", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_equals_captum(integration, model_and_image):
    model, image = model_and_image
    expected = IntegratedGradients(model).attribute(image[None], baselines=torch.zeros(1, 3, 32, 32), target=1,
                                                    n_steps=24, method=integration)[0].sum(0).detach().numpy()
    ours = explain(model, image, "integrated_gradients", target=1, n_steps=24, integration=integration).attribution
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["smoothgrad", "smoothgrad_sq"])
def test_smoothgrad_with_zero_noise_equals_its_base(variant, model_and_image):
    model, image = model_and_image
    sal = explain(model, image, "saliency", target=1).attribution
    sg = explain(model, image, variant, target=1, base="saliency", noise_level=0.0, n_samples=4).attribution
    np.testing.assert_allclose(sg, sal ** 2 if variant == "smoothgrad_sq" else sal, rtol=1e-5, atol=1e-9)


# base of SmoothGrad -> (the same method on its own, with the settings SmoothGrad uses for it)
SMOOTHGRAD_BASES = {
    "input_x_gradient": ("input_x_gradient", {}),
    "guided_backprop": ("guided_backprop", {}),
    "integrated_gradients": ("integrated_gradients", {"n_steps": 16}),
    "deeplift": ("deeplift", {"baseline": "zeros"}),
}


@pytest.mark.parametrize("base", list(SMOOTHGRAD_BASES))
def test_smoothgrad_over_every_base_at_zero_noise_equals_that_base(base, model_and_image):
    from core.explainers.smoothgrad import BASES

    assert set(BASES) == set(SMOOTHGRAD_BASES) | {"saliency"}  # every base is covered here or above
    model, image = model_and_image
    method, kw = SMOOTHGRAD_BASES[base]
    plain = explain(model, image, method, target=1, **kw).attribution
    sg = explain(model, image, "smoothgrad", target=1, base=base, noise_level=0.0, n_samples=3).attribution
    np.testing.assert_allclose(sg, plain, rtol=1e-5, atol=1e-8)


def test_smoothgrad_equals_captum_noise_tunnel_for_the_same_seed(model_and_image):
    model, image = model_and_image
    torch.manual_seed(5)
    expected = NoiseTunnel(Saliency(model)).attribute(image[None].clone().requires_grad_(True), nt_type="smoothgrad",
                                                       nt_samples=8, nt_samples_batch_size=8, stdevs=0.2, target=0,
                                                       abs=True)[0].amax(0).numpy()
    ours = explain(model, image, "smoothgrad", target=0, n_samples=8, batch_size=8, noise_level=0.2, seed=5).attribution
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)


STOCHASTIC = ["lime", "gradient_shap", "smoothgrad", "shap_gradient", "integrated_gradients", "occlusion", "deeplift"]


@pytest.mark.parametrize("method", ["lime", "gradient_shap", "smoothgrad", "smoothgrad_sq", "shap_gradient"])
def test_stochastic_methods_are_reproducible_with_a_seed(method, model_and_image):
    model, image = model_and_image
    kw = {"num_samples": 200} if method == "lime" else {}
    a = explain(model, image, method, target=1, seed=3, **kw).attribution
    torch.rand(10)  # disturb the global RNGs in between
    np.random.rand(10)
    b = explain(model, image, method, target=1, seed=3, **kw).attribution
    c = explain(model, image, method, target=1, seed=4, **kw).attribution
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_seeding_leaves_the_callers_rng_alone(model_and_image):
    model, image = model_and_image
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    explain(model, image, "smoothgrad", seed=99, n_samples=2)
    torch.testing.assert_close(torch.rand(3), expected)


def test_shap_partition_is_deterministic_and_sums_to_the_logit_gap(model_and_image):
    model, image = model_and_image
    a = explain(model, image, "shap_partition", target=2, max_evals=300)
    b = explain(model, image, "shap_partition", target=2, max_evals=300)
    np.testing.assert_array_equal(a.attribution, b.attribution)
    # Owen values are efficient: they sum to f(x) - f(fully masked image), shap's base value
    with torch.no_grad():
        fx = model(image[None])[0, 2].item()
    assert a.attribution.sum() + a.extras["base_value"] == pytest.approx(fx, rel=1e-4, abs=1e-5)
    assert abs(a.attribution.sum()) > 1e-3


def test_occlusion_known_answer_on_a_linear_model():
    w = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x = torch.rand(1, 8, 8)
    # window 1: the score drop from zeroing pixel i of f(x) = w.x + b is exactly w_i x_i
    e = explain(Linear(w), x, "occlusion", target=1, window=1, stride=1, baseline="zeros")
    np.testing.assert_allclose(e.attribution, (w[1, 0] * x[0]).numpy(), rtol=1e-5, atol=1e-6)
    # non-overlapping 2x2 windows: every pixel of a block gets the drop of zeroing the whole block
    e = explain(Linear(w), x, "occlusion", target=1, window=2, stride=2, baseline="zeros")
    block = (w[1, 0] * x[0]).reshape(4, 2, 4, 2).sum(dim=(1, 3))
    np.testing.assert_allclose(e.attribution, block.repeat_interleave(2, 0).repeat_interleave(2, 1).numpy(), rtol=1e-5,
                               atol=1e-6)


def test_linear_model_known_answers():
    w = torch.randn(3, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    x = torch.rand(3, 6, 6)
    ixg = explain(Linear(w), x, "input_x_gradient", target=0).attribution
    np.testing.assert_allclose(ixg, (x * w[0]).sum(0).numpy(), rtol=1e-5, atol=1e-6)
    gbp = explain(Linear(w), x, "guided_backprop", target=0).attribution  # no ReLU: plain gradient
    np.testing.assert_allclose(gbp, w[0].sum(0).numpy(), rtol=1e-5, atol=1e-6)
    dl = explain(Linear(w), x, "deeplift", target=0, baseline="zeros").attribution
    np.testing.assert_allclose(dl, (x * w[0]).sum(0).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18_small", "densenet121"])
def test_deeplift_completeness_on_our_architectures(arch):
    """Every ReLU its own module (DenseNet-121's final functional in-place ReLU too), so the Rescale rule applies
    throughout."""
    torch.manual_seed(0)
    model = build_model(arch, 3, 3, [0.5] * 3, [0.25] * 3).eval()
    x = torch.rand(3, 64 if arch == "densenet121" else 32, 64 if arch == "densenet121" else 32)
    e = explain(model, x, "deeplift", target=1, baseline="blur")
    from core.explainers.baselines import make_baseline

    with torch.no_grad():
        gap = (model(x[None]) - model(make_baseline(x[None], "blur")))[0, 1].item()
    # exact for ReLU/linear layers; captum's max-pool rule (small_cnn, DenseNet's stem) is approximate, within 1% here
    assert e.attribution.sum() == pytest.approx(gap, rel=1e-3 if arch == "resnet18_small" else 1e-2, abs=1e-4)
    # and the reported convergence delta states that gap honestly
    assert e.extras["convergence_delta"] == pytest.approx(abs(e.attribution.sum() - gap), rel=0.05, abs=1e-5)


def test_lime_weights_follow_the_segments_and_options(model_and_image):
    model, image = model_and_image
    e = explain(model, image, "lime", target=0, num_samples=300, num_features=5, seed=1)
    values = np.unique(e.attribution)
    assert len(values[values != 0]) <= 5  # only the top-5 superpixels carry weight
    pos = explain(model, image, "lime", target=0, num_samples=300, num_features=50, positive_only=True, seed=1)
    assert pos.attribution.min() >= 0
    for seg in ("quickshift", "felzenszwalb"):
        s = explain(model, image, "lime", target=0, num_samples=100, segmentation=seg, seed=1)
        assert s.extras["n_superpixels"] > 1


def test_shap_gradient_uses_the_background_it_is_given(model_and_image):
    model, image = model_and_image
    bg = torch.from_numpy(shapes.generate(8, seed=2, size=32)[0]).permute(0, 3, 1, 2).float() / 255
    with_bg = explain(model, image, "shap_gradient", target=1, background=bg, background_size=8, seed=0)
    without = explain(model, image, "shap_gradient", target=1, background_size=8, seed=0)
    assert "8 training images" in with_bg.extras["background"] and "synthetic" in without.extras["background"]
    assert not np.allclose(with_bg.attribution, without.attribution)


HOOKED = ["grad_cam", "score_cam", "guided_backprop", "guided_grad_cam", "deeplift", "layer_cam", "integrated_gradients"]


def test_concurrent_sessions_on_one_shared_model_get_their_own_results():
    """Two threads explaining with the same (cached, shared) model at once get what they would get alone."""
    model = make_classifier(3, num_classes=4, seed=3)
    imgs = [torch.from_numpy(shapes.generate(1, seed=s, size=32)[0][0]).permute(2, 0, 1).float() / 255 for s in (1, 2)]
    alone = {(i, m): explain(model, imgs[i], m, target=i).attribution for i in (0, 1) for m in HOOKED}
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def session(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                for m in HOOKED:
                    results[(i, m)] = explain(model, imgs[i], m, target=i).attribution
                    predict(model, imgs[1 - i])  # plain predictions interleave too, as another page would do
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, expected in alone.items():
        np.testing.assert_allclose(results[key], expected, rtol=1e-5, atol=1e-7, err_msg=str(key))
    assert hooks_on(model) == 0


@pytest.mark.parametrize("arch,channels,size", [("resnet18_small", 1, 32), ("resnet50", 3, 64), ("densenet121", 3, 64),
                                                ("efficientnet_b0", 3, 64)])
def test_every_applicable_method_runs_on_each_cnn_architecture(arch, channels, size):
    """Every method that applies (the others are refused with their reason: tests/modelling/test_imagenet.py) gives a finite
    map of the input's size on every CNN of the registry (the ViT: the engine and contract tests' tiny ViT, and
    tests/modelling/test_imagenet.py at 224 px)."""
    torch.manual_seed(0)
    model = build_model(arch, 3, channels, [0.5] * channels, [0.25] * channels).eval()
    x = torch.rand(channels, size, size)
    fast = {"lime": {"num_samples": 50}, "shap_partition": {"max_evals": 50}, "score_cam": {}, "ablation_cam": {},
            "integrated_gradients": {"n_steps": 8}, "occlusion": {"window": 16, "stride": 16}}
    for m in list_methods(model):
        e = explain(model, x, m, target=0, **fast.get(m, {}))
        assert np.isfinite(e.attribution).all() and e.attribution.shape == (size, size), m
    assert hooks_on(model) == 0
