import pytest
import torch

from core import UnknownNameError
from core.modelling.architectures import build_model, conv_layers, get_layer, list_architectures


@pytest.mark.parametrize("arch,size", [("small_cnn", 64), ("small_cnn", 28), ("resnet18_small", 64),
                                       ("resnet18", 128), ("resnet50", 128)])
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shapes(arch, size, channels):
    model = build_model(arch, 5, channels, [0.5] * channels, [0.2] * channels).eval()
    with torch.no_grad():
        out = model(torch.rand(2, channels, size, size))
    assert out.shape == (2, 5)
    assert model.target_layer in conv_layers(model)


@pytest.mark.parametrize("arch,size,cells", [("small_cnn", 64, 8), ("resnet18_small", 64, 8), ("resnet18_small", 28, 4),
                                             ("resnet18", 224, 7)])
def test_default_cam_layer_resolution(arch, size, cells):
    model = build_model(arch, 3, 3, [0.5] * 3, [0.2] * 3).eval()
    seen = {}
    h = get_layer(model, model.target_layer).register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    with torch.no_grad():
        model(torch.rand(1, 3, size, size))
    h.remove()
    assert tuple(seen["shape"][-2:]) == (cells, cells)


def test_normalisation_is_the_first_layer():
    model = build_model("small_cnn", 2, 3, [0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(model.normalize(x), (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / 0.5)


def test_bad_names_and_arguments():
    assert {"small_cnn", "resnet18_small", "resnet18", "resnet50"} <= set(list_architectures())
    with pytest.raises(UnknownNameError, match="small_cnn"):
        build_model("vgg99", 2, 3, [0.5] * 3, [0.2] * 3)
    with pytest.raises(ValueError, match="in_channels"):
        build_model("small_cnn", 2, 4, [0.5] * 4, [0.2] * 4)
    model = build_model("small_cnn", 2, 3, [0.5] * 3, [0.2] * 3)
    with pytest.raises(UnknownNameError, match="no layer 'net.nothing'"):
        get_layer(model, "net.nothing")


@pytest.mark.parametrize("depth", [18, 50])
def test_our_resnets_are_torchvision_resnets_with_separate_relus(depth):
    import torchvision

    torch.manual_seed(depth)
    ref = getattr(torchvision.models, f"resnet{depth}")(num_classes=5).eval()
    ours = build_model(f"resnet{depth}", 5, 3, [0.0] * 3, [1.0] * 3).eval()
    ours.net.load_state_dict(ref.state_dict())  # same parameter names: torchvision weights load as they are
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    relus = [m for m in ours.modules() if isinstance(m, torch.nn.ReLU)]
    assert all(not r.inplace for r in relus)
    calls = []
    hooks = [r.register_forward_hook(lambda m, i, o: calls.append(id(m))) for r in relus]
    with torch.no_grad():
        ours(x)
    for h in hooks:
        h.remove()
    assert len(calls) == len(set(calls))  # every ReLU module is used once (DeepLIFT's requirement)
