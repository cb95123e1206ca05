"""The seed case and the notebook call, against the field's reference libraries: an imported ResNet-18 with a 9-class
PathMNIST head at 224 px gives pytorch-grad-cam's Grad-CAM and captum's Integrated Gradients of the user's own model
on the user's own preprocessing; ``explain`` on any module gives theirs on that module; a notebook's module saved
with ``save_module`` opens like any model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from core import explain, explain_batch, list_models, load_model, save_module
from core.importers import inspect_source, save_imported
from tests import model_files as mf


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def reference_maps(user, inp: torch.Tensor, base: torch.Tensor, targets: list[int], steps: int = 64):
    """pytorch-grad-cam's Grad-CAM on layer4 and captum's IG (Gauss-Legendre, ``steps``) on the user's inputs."""
    with GradCAM(model=user, target_layers=[user.layer4]) as cam:
        cams = cam(input_tensor=inp, targets=[ClassifierOutputTarget(t) for t in targets])
    ig = IntegratedGradients(user).attribute(inp, baselines=base, target=targets, n_steps=steps,
                                             method="gausslegendre").sum(dim=1).detach().numpy()
    return cams, ig


@pytest.fixture(scope="module")
def seed_case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seed")
    user = mf.torchvision_model("resnet18", 9)
    path = mf.save_state_dict(user, tmp / "best_pathmnist_resnet18.pth")
    draft = inspect_source(path, classes=",".join(mf.PATH_CLASSES), input_size=224)
    folder = save_imported(draft, tmp / "models")
    return user, folder, draft


def test_the_seed_case_imports_as_a_pathmnist_model(seed_case):
    _, folder, draft = seed_case
    model, card = load_model(folder)
    assert card.arch == "resnet18" and card.classes == mf.PATH_CLASSES and card.input_size == 224
    assert card.dataset == "pathmnist" and card.id == "best_pathmnist_resnet18"
    assert [c.id for _, c in list_models(folder.parent, dataset="pathmnist")] == [card.id]
    assert [c.id for _, c in list_models(folder.parent, dataset="imported")] == [card.id]
    assert list_models(folder.parent, dataset="shapes") == []


def test_the_seed_cases_maps_equal_the_reference_libraries(seed_case):
    user, folder, _ = seed_case
    model, card = load_model(folder)
    x = torch.rand((1, 3, 224, 224), generator=torch.Generator().manual_seed(5))
    inp, base = mf.user_input(x, card.mean, card.std), mf.user_input(torch.zeros_like(x), card.mean, card.std)
    targets = user(inp).argmax(1).tolist()
    cams, ig = reference_maps(user, inp, base, targets, steps=32)
    ours_cam = explain_batch(model, x, "grad_cam")
    ours_ig = explain_batch(model, x, "integrated_gradients", targets=targets, n_steps=32)
    for i in range(1):
        assert ours_cam[i].target == targets[i]
        assert pearson(ours_cam[i].attribution, cams[i]) >= 0.99
        assert pearson(ours_ig[i].attribution, ig[i]) >= 0.99
    said = ours_ig[0].extras["baseline"]  # the baseline, in pixels and as the model receives it: reproducible
    assert "black" in said and "(-2.118, -2.036, -1.804)" in said


def test_explain_on_any_module_equals_the_reference_libraries():
    user = mf.torchvision_model("resnet18", 4)
    inp = torch.randn((2, 3, 64, 64), generator=torch.Generator().manual_seed(2))  # the user's own inputs
    before = [p.detach().clone() for p in user.parameters()]
    maps = explain(user, inp, methods=["grad_cam", "integrated_gradients", "saliency"], n_steps=32)
    targets = user(inp).argmax(1).tolist()
    cams, ig = reference_maps(user, inp, torch.zeros_like(inp), targets, steps=32)
    assert set(maps) == {"grad_cam", "integrated_gradients", "saliency"}
    for i in range(2):
        assert maps["grad_cam"][i].target == targets[i]
        assert pearson(maps["grad_cam"][i].attribution, cams[i]) >= 0.99
        assert pearson(maps["integrated_gradients"][i].attribution, ig[i]) >= 0.99
    assert "module's own input space" in maps["integrated_gradients"][0].extras["baseline"]
    assert all(torch.equal(a, b) for a, b in zip(before, user.parameters()))  # the user's module is untouched
    assert not any(m._forward_hooks or m._backward_hooks for m in user.modules())
    one = explain(user, inp[0], "grad_cam", layer="layer3")  # one image, one method, a layer by the module's name
    assert one.params["layer"] == "net.layer3" and one.attribution.shape == (64, 64)


def test_a_notebook_module_saved_with_its_card_opens_like_any_model(tmp_path):
    user = mf.torchvision_model("resnet18_small", 3)
    folder = save_module(user, "notebook-resnet", classes=["a", "b", "c"], input_size=32, mean=mf.USER_MEAN,
                         std=mf.USER_STD, models_dir=tmp_path)
    model, card = load_model(folder)
    assert card.source["format"] == "state_dict" and card.arch == "resnet18_small"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), user(mf.user_input(x)), rtol=1e-4, atol=1e-4)

    class Custom(torch.nn.Module):  # no architecture of ours: saved as TorchScript
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.body(x).flatten(1))

    custom = Custom().eval()
    model, card = load_model(save_module(custom, "notebook-custom", classes=["a", "b", "c"], input_size=32,
                                         mean=mf.USER_MEAN, std=mf.USER_STD, models_dir=tmp_path))
    assert card.source["format"] == "torchscript" and model.target_layer == "net.body.1"  # body ends in a 1x1 pool
    with torch.no_grad():
        torch.testing.assert_close(model(x), custom(mf.user_input(x)), rtol=1e-4, atol=1e-4)
