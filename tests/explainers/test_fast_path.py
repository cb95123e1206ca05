"""Every forward-only perturbation method (from the registry) and the deletion / insertion curves run their model
passes through the one fast inference path, say so, and give torch's maps up to float rounding."""
import copy

import numpy as np
import pytest
import torch

from core import explain, get_method, list_methods
from core.modelling import inference
from core.quality.base import QualityInputs
from core.quality.perturbation import curves
from tests.helpers import make_classifier

FORWARD_ONLY = [m for m in list_methods() if get_method(m).family == "Perturbation" and not get_method(m).needs_gradients]
QUICK = {"lime": {"num_samples": 120, "num_features": 1000}, "shap_partition": {"max_evals": 60},
         "occlusion": {"window": 8, "stride": 8}}


@pytest.fixture()
def spy(monkeypatch):
    shapes = []
    real = inference.path_for

    def counting(model, shape):
        shapes.append(tuple(shape))
        return real(model, shape)

    monkeypatch.setattr(inference, "path_for", counting)
    return shapes


def test_the_forward_only_perturbation_methods_are_known():
    assert {"lime", "occlusion", "shap_partition"} <= set(FORWARD_ONLY)


@pytest.mark.parametrize("method", FORWARD_ONLY)
def test_every_forward_only_perturbation_method_uses_the_fast_path(method, spy, monkeypatch):
    model = make_classifier(3, num_classes=3, seed=8).eval()
    image = torch.rand((3, 32, 32), generator=torch.Generator().manual_seed(2))
    fast = explain(model, image, method, target=1, **QUICK.get(method, {}))
    assert (3, 32, 32) in spy and fast.extras["inference"] == "onnxruntime"
    monkeypatch.setenv("XAI_FAST_INFERENCE", "0")
    plain = explain(copy.deepcopy(model), image, method, target=1, **QUICK.get(method, {}))
    assert plain.extras["inference"] == "torch"
    scale = float(np.abs(plain.attribution).max())
    np.testing.assert_allclose(fast.attribution, plain.attribution, rtol=0, atol=1e-3 * scale)


def test_deletion_and_insertion_curves_use_the_fast_path(spy):
    model = make_classifier(3, num_classes=3, seed=9).eval()
    x = torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(3))
    maps = np.random.default_rng(0).random((2, 32, 32))
    inp = QualityInputs(model, x, np.array([0, 2]), maps, "saliency", {})
    y = curves(inp, insert=False, steps=4)
    assert (3, 32, 32) in spy and y.shape == (2, 5) and np.all((0 <= y) & (y <= 1))
