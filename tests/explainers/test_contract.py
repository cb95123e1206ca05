"""One contract for every registered explainer, on grayscale and RGB models."""
import numpy as np
import pytest
import torch
from torch import nn

from core import AttributionError, ParameterError, UnknownNameError, explain, get_method, list_methods, predict
from core.datasets import shapes
from core.explainers import resolve_params
from tests.helpers import hooks_on, make_classifier, make_vit, refused

METHODS = list_methods()


@pytest.fixture(scope="module", params=[("cnn", 1), ("cnn", 3), ("vit", 3)], ids=["gray", "rgb", "vit"])
def model_and_image(request):
    kind, ch = request.param
    model = make_classifier(ch, num_classes=3, seed=ch) if kind == "cnn" else make_vit(ch, num_classes=3, seed=4)
    # (a random ViT with seed 3 has an all-negative Grad-CAM++ on this image: flat, and correctly reported so)
    # a realistic image (a shape on texture): superpixel methods need structure to segment
    image = torch.from_numpy(shapes.generate(1, seed=ch, size=32)[0][0]).permute(2, 0, 1).float() / 255
    if ch == 1:
        image = image.mean(dim=0, keepdim=True)
    return model, image


@pytest.mark.parametrize("method", METHODS)
def test_contract(method, model_and_image, monkeypatch):
    model, image = model_and_image
    if refused(model, method, image):
        return
    cls = get_method(method)
    made = []
    real_init = cls.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(cls, "__init__", recording_init)
    before = image.clone()
    e = explain(model, image, method)
    # attribute() gets seeds and progress as arguments and returns what it computes: nothing is set on the method
    # object from outside, or by the method from inside, beyond what its constructor holds
    assert made and all(set(vars(m)) == {"model", "background"} for m in made), [vars(m).keys() for m in made]
    assert e.method == method and e.title == get_method(method).title
    assert e.attribution.shape == (32, 32) and e.attribution.dtype == np.float32
    assert np.isfinite(e.attribution).all()
    assert e.heatmap.shape == (32, 32) and e.heatmap.min() >= 0 and e.heatmap.max() <= 1
    assert not e.flat and e.heatmap.max() == pytest.approx(1.0)
    if not e.signed:
        assert e.attribution.min() >= 0
    # the input is untouched and no hook survives the call
    assert torch.equal(image, before) and not image.requires_grad and image.grad is None
    assert hooks_on(model) == 0
    assert not model.training
    # target: predicted by default, any class on request
    assert e.target == int(predict(model, image).argmax())
    other = (e.target + 1) % 3
    again = explain(model, image, method, target=other)
    assert again.target == other
    # the declaration says whether the target matters (captions say "the same map for every class" from it)
    same = np.array_equal(again.attribution, e.attribution)
    assert same == (not cls.class_specific), f"{method} declares class_specific={cls.class_specific}, maps same={same}"
    assert e.params == resolve_params(method, model) and e.seconds > 0


@pytest.mark.parametrize("method", METHODS)
def test_declaration_is_complete(method):
    cls = get_method(method)
    assert cls.title and cls.description and cls.paper
    for p in cls.params:
        assert p.help and p.kind in ("int", "float", "choice", "bool", "layer")
        if p.kind in ("int", "float"):
            assert p.min <= p.default <= p.max
        if p.kind == "choice":
            assert p.default in p.choices


class ConstantHead(nn.Module):
    """The output ignores the input entirely: every honest attribution is flat."""

    def __init__(self, ch):
        super().__init__()
        self.inner = make_classifier(ch, 3)
        self.target_layer = "inner." + self.inner.target_layer

    def forward(self, x):
        return self.inner(x) * 0.0 + torch.tensor([1.0, 2.0, 3.0])


class NaNHead(ConstantHead):
    def forward(self, x):
        return self.inner(x) * float("nan")


# Eigen-CAM never looks at the output (first principal component of activations) and Score-CAM
# softmax-normalises its channel scores, so neither gives a flat map for a constant output.
# Attention rollout reads only the attention weights (and the tiny wrappers below are CNNs, which it refuses).
OUTPUT_BLIND = {"eigen_cam", "score_cam", "attention_rollout"}


@pytest.mark.parametrize("method", [m for m in METHODS if m not in OUTPUT_BLIND])
def test_flat_map_is_reported_not_nan(method):
    e = explain(ConstantHead(3).eval(), torch.rand(3, 32, 32), method)
    assert e.flat and np.isfinite(e.attribution).all() and (e.heatmap == 0).all()


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("eigen_cam", "attention_rollout")])
def test_non_finite_map_raises(method):
    with pytest.raises(AttributionError, match="non-finite|NaN"):
        explain(NaNHead(3).eval(), torch.rand(3, 32, 32), method, target=0)


def test_bad_arguments_are_precise():
    model = make_classifier(3)
    x = torch.rand(3, 32, 32)
    with pytest.raises(UnknownNameError, match="Unknown method 'lrp'.*saliency"):
        explain(model, x, "lrp")
    with pytest.raises(ParameterError, match="has no parameter 'steps'.*n_steps"):
        explain(model, x, "integrated_gradients", steps=3)
    with pytest.raises(ParameterError, match=r"n_steps.*\[4, 512\]"):
        explain(model, x, "integrated_gradients", n_steps=1)
    with pytest.raises(ParameterError, match="baseline.*one of"):
        explain(model, x, "integrated_gradients", baseline="grey")
    with pytest.raises(ParameterError, match="target"):
        explain(model, x, "saliency", target=3)
    with pytest.raises(UnknownNameError, match="no layer 'net.fc'"):
        explain(model, x, "grad_cam", layer="net.fc")
    with pytest.raises(ParameterError, match="stride 16 is larger than the window 8"):
        explain(model, x, "occlusion", window=8, stride=16)
    with pytest.raises(ValueError, match="one image"):
        explain(model, torch.rand(2, 3, 32, 32), "saliency")


class Exploding(nn.Module):
    """Switches itself to train mode, then fails: the shared model must still come back in eval mode."""

    def __init__(self):
        super().__init__()
        self.inner = make_classifier(3)
        self.target_layer = "inner." + self.inner.target_layer

    def forward(self, x):
        if torch.is_grad_enabled():
            self.train()
            raise RuntimeError("boom")
        return self.inner(x)


def test_failure_leaves_the_model_in_eval_mode_without_hooks():
    model = Exploding().eval()
    for method in ("saliency", "grad_cam"):
        with pytest.raises(AttributionError, match="boom"):
            explain(model, torch.rand(3, 32, 32), method)
        assert not model.training and hooks_on(model) == 0
