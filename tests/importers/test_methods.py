"""The right methods for a foreign module, over every format: what is offered follows from what the model computes
(a hand-written expectation per format), every offered method runs on it, and where DeepLIFT is offered its maps
sum to f(x) - f(baseline), as its rule promises; where it is not, the reason names what the model computes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core import explain, list_methods, load_model
from core.datasets import shapes
from core.explainers import hidden_methods
from core.importers import inspect_source, save_imported
from tests import model_files as mf

SIZE = 32
ALL = set(list_methods())
RELU_RULES = {"deeplift", "guided_backprop", "guided_grad_cam"}


#: format -> the methods not offered and a word of why, as the model's computation dictates
HIDDEN = {
    "state_dict": {"attention_rollout": "self-attention"},
    "torchscript": {"attention_rollout": "self-attention", "deeplift": "TorchScript", "guided_backprop": "TorchScript",
                    "guided_grad_cam": "TorchScript", "ablation_cam": "TorchScript"},
    "onnx": {"attention_rollout": "self-attention"},
    "keras_onnx": {"attention_rollout": "self-attention"},
    "onnxruntime": {**{m: "ONNX Runtime" for m in ALL - {"occlusion", "lime", "shap_partition"}},
                    "attention_rollout": "self-attention"},
    "timm": {"attention_rollout": "self-attention", "deeplift": "in place", "guided_backprop": "in place",
             "guided_grad_cam": "in place"},
    "hf_vit": {"attention_rollout": "self-attention", "deeplift": "gelu", "guided_backprop": "gelu",
               "guided_grad_cam": "gelu"},
    "hf_convnext": {"attention_rollout": "self-attention", "deeplift": "gelu", "guided_backprop": "gelu",
                    "guided_grad_cam": "gelu"},
}
assert set(HIDDEN) == set(mf.FORMATS)


@pytest.fixture(scope="module", params=mf.FORMATS)
def imported(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    hidden = HIDDEN[request.param]
    path, given = mf.write_format(request.param, tmp, size=SIZE)
    draft = inspect_source(path, **{"classes": "a,b,c", "input_size": SIZE, **given})
    model, card = load_model(save_imported(draft, tmp / "models"))
    image = torch.from_numpy(shapes.generate(1, seed=3, size=SIZE)[0][0]).permute(2, 0, 1).float() / 255
    return request.param, model, image, hidden


def test_the_offered_methods_follow_from_what_the_model_computes(imported):
    name, model, _, expected = imported
    hidden = hidden_methods(model)
    assert set(hidden) == set(expected), name
    assert set(list_methods(model)) == ALL - set(expected)
    for method, word in expected.items():
        assert word.lower() in hidden[method].lower(), (method, hidden[method])


def test_every_offered_method_runs(imported):
    name, model, image, _ = imported
    for method in list_methods(model):
        e = explain(model, image, method)
        assert e.attribution.shape == (SIZE, SIZE) and np.isfinite(e.attribution).all(), (name, method)
        if method in ("integrated_gradients", "deeplift", "gradient_shap"):
            assert e.extras["baseline"].startswith(("baseline", "baselines")), e.extras


@pytest.mark.parametrize("fmt", ["state_dict", "onnx", "keras_onnx"])
def test_deeplift_sums_to_the_output_difference_where_offered(fmt, tmp_path):
    """captum's Rescale rule sums exactly where every non-linearity is a ReLU (max pooling's rule does not sum: these
    models have none, as a ResNet with a small-input stem)."""
    user = mf.torchvision_model("resnet18_small", 3) if fmt != "keras_onnx" else mf.KerasLike(3)
    example = torch.rand(1, 3, SIZE, SIZE)
    path = {"state_dict": lambda: mf.save_state_dict(user, tmp_path / "r.pth"),
            "onnx": lambda: mf.save_onnx(user, tmp_path / "r.onnx", example),
            "keras_onnx": lambda: mf.save_onnx(user, tmp_path / "k.onnx", example.permute(0, 2, 3, 1), opset=11)}[fmt]()
    model = inspect_source(path, classes="a,b,c", input_size=SIZE).model
    assert "deeplift" in list_methods(model)
    image = torch.from_numpy(shapes.generate(1, seed=3, size=SIZE)[0][0]).permute(2, 0, 1).float() / 255
    e = explain(model, image, "deeplift")
    with torch.no_grad():
        gap = float(model(image[None])[0, e.target] - model(torch.zeros_like(image)[None])[0, e.target])
    assert float(e.attribution.sum()) == pytest.approx(gap, rel=1e-3, abs=1e-4)
