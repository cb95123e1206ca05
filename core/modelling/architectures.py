"""Model architectures behind a registry, each wrapped in :class:`Classifier`.

Every model takes images in [0, 1] of shape (N, C, H, W); its first layer normalises them with the
mean/std recorded in the model card, so preprocessing can never drift between training, the app and
the attribution baselines (a "zeros" baseline is a black image).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from core.errors import UnknownNameError
from core.registry import Registry


class Normalize(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``normalize`` then ``net``; carries the name of its default Grad-CAM layer and the traits its architecture
    declares (see :data:`TRAITS`; ``None``: found by :func:`traits_of` from the modules)."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], target_layer: str,
                 traits: frozenset[str] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.target_layer = target_layer
        self.traits = traits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


@dataclass(frozen=True)
class ArchSpec:
    name: str
    description: str
    builder: Callable[[int, int], nn.Module]
    target_layer: str  # relative to ``net``
    sizes: tuple[int, int]  # sensible input size range (px)
    imagenet: str | None = None  # torchvision weights enum whose ImageNet weights initialise it, if any
    #: what attribution methods may rely on (see :data:`TRAITS`); methods declare what they need
    traits: frozenset[str] = frozenset({"spatial", "relu"})
    title: str = ""  # display name, e.g. "ResNet-50"


#: Architecture traits that decide which attribution methods apply (each method declares what it needs):
TRAITS = {
    "spatial": "convolutional feature maps (N, C, H, W) that CAM methods weight",
    "tokens": "a transformer's patch tokens (N, 1 + h*w, C), reshaped to an h x w grid for CAM methods",
    "relu": "every non-linearity is its own non-inplace ReLU module and residual adds are out of place, so "
            "DeepLIFT's Rescale rule and guided backpropagation apply",
    "attention": "self-attention layers whose attention matrices can be read (attention rollout)",
    "gradients": "torch computes the gradient of its output with respect to its input (every gradient method)",
    "swappable": "its layers are modules that a method may swap for another while it runs (Ablation-CAM)",
}
#: what every model built in torch offers (a model converted from elsewhere may lack them: its own traits say so)
TORCH_TRAITS = frozenset({"gradients", "swappable"})

ARCHITECTURES: Registry[ArchSpec] = Registry("architecture")


def _register(name: str, description: str, target_layer: str, sizes: tuple[int, int], imagenet: str | None = None,
              traits: frozenset[str] = frozenset({"spatial", "relu"}), title: str = ""):
    def deco(fn: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
        ARCHITECTURES.register(name)(ArchSpec(name, description, fn, target_layer, sizes, imagenet,
                                              traits | TORCH_TRAITS, title or name))
        return fn

    return deco


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    # Separate, non-inplace ReLU modules: DeepLIFT-style methods need them.
    return nn.Sequential(
        OrderedDict(conv=nn.Conv2d(cin, cout, 3, padding=1, bias=False), bn=nn.BatchNorm2d(cout), relu=nn.ReLU())
    )


@_register("small_cnn", "4 conv blocks (32-64-128-128), global average pooling; fast on CPU", "features.block4", (28, 128))
def small_cnn(num_classes: int, in_channels: int) -> nn.Module:
    features = nn.Sequential(
        OrderedDict(
            block1=_conv_block(in_channels, 32),
            pool1=nn.MaxPool2d(2),
            block2=_conv_block(32, 64),
            pool2=nn.MaxPool2d(2),
            block3=_conv_block(64, 128),
            pool3=nn.MaxPool2d(2),
            block4=_conv_block(128, 128),
        )
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(128, num_classes))
    return nn.Sequential(OrderedDict(features=features, head=head))


def _resnet_blocks():
    """torchvision's ResNet blocks with separate, non-inplace ReLUs and an out-of-place residual add.

    torchvision reuses one in-place ReLU module per block and adds the shortcut in place; captum's
    DeepLIFT and guided backprop (and shap's DeepExplainer) need one ReLU module per use. Our subclasses
    compute the same function and keep torchvision's parameter names, so ImageNet weights still load.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck

    class FreshBasicBlock(BasicBlock):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.relu = nn.ReLU()
            self.relu_out = nn.ReLU()

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu_out(self.bn2(self.conv2(out)) + identity)

    class FreshBottleneck(Bottleneck):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.relu = nn.ReLU()
            self.relu2 = nn.ReLU()
            self.relu_out = nn.ReLU()

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu2(self.bn2(self.conv2(out)))
            return self.relu_out(self.bn3(self.conv3(out)) + identity)

    return FreshBasicBlock, FreshBottleneck


def _resnet(depth: int, num_classes: int, in_channels: int, small_input: bool) -> nn.Module:
    from torchvision.models.resnet import ResNet

    basic, bottleneck = _resnet_blocks()
    block, layers = {18: (basic, [2, 2, 2, 2]), 50: (bottleneck, [3, 4, 6, 3])}[depth]
    net = ResNet(block, layers, num_classes=num_classes)
    net.relu = nn.ReLU()
    if small_input:  # CIFAR-style stem: 3x3 stride-1 conv, no max-pool (keeps 8x8 maps at 64 px)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return net


@_register("resnet18_small", "ResNet-18 with a 3x3 stride-1 stem and no max-pool, for 28-64 px inputs", "layer4", (28, 96),
           imagenet="ResNet18_Weights.IMAGENET1K_V1", title="ResNet-18 (small input)")
def resnet18_small(num_classes: int, in_channels: int) -> nn.Module:
    return _resnet(18, num_classes, in_channels, small_input=True)


@_register("resnet18", "Standard torchvision ResNet-18, for 128 px and up", "layer4", (128, 512),
           imagenet="ResNet18_Weights.IMAGENET1K_V1", title="ResNet-18")
def resnet18(num_classes: int, in_channels: int) -> nn.Module:
    return _resnet(18, num_classes, in_channels, small_input=False)


@_register("resnet50", "Standard torchvision ResNet-50, for 128 px and up", "layer4", (128, 512),
           imagenet="ResNet50_Weights.IMAGENET1K_V2", title="ResNet-50")
def resnet50(num_classes: int, in_channels: int) -> nn.Module:
    return _resnet(50, num_classes, in_channels, small_input=False)


def _fresh_relus(net: nn.Module) -> nn.Module:
    """Every ``ReLU(inplace=True)`` module replaced by a non-inplace one (each is used once in these nets)."""
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU) and child.inplace:
                setattr(module, child_name, nn.ReLU())
    return net


def _first_conv_grey(conv: nn.Conv2d) -> nn.Conv2d:
    return nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)


@_register("densenet121", "torchvision DenseNet-121 (ReLUs made separate and non-inplace), for 128 px and up",
           "features", (128, 512), imagenet="DenseNet121_Weights.IMAGENET1K_V1", title="DenseNet-121")
def densenet121(num_classes: int, in_channels: int) -> nn.Module:
    from torchvision.models.densenet import DenseNet

    class FreshDenseNet(DenseNet):
        """torchvision's DenseNet-121 with its final functional in-place ReLU as a module (DeepLIFT, guided
        backprop); the same function and parameter names."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.relu_out = nn.ReLU()

        def forward(self, x):
            out = torch.flatten(nn.functional.adaptive_avg_pool2d(self.relu_out(self.features(x)), (1, 1)), 1)
            return self.classifier(out)

    net = _fresh_relus(FreshDenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                                     num_classes=num_classes))
    if in_channels != 3:
        net.features.conv0 = _first_conv_grey(net.features.conv0)
    return net


@_register("efficientnet_b0", "torchvision EfficientNet-B0 (SiLU, squeeze-excitation), for 128 px and up", "features",
           (128, 512), imagenet="EfficientNet_B0_Weights.IMAGENET1K_V1", traits=frozenset({"spatial"}),
           title="EfficientNet-B0")
def efficientnet_b0(num_classes: int, in_channels: int) -> nn.Module:
    from torchvision.models import efficientnet_b0 as build

    net = build(num_classes=num_classes)
    if in_channels != 3:
        net.features[0][0] = _first_conv_grey(net.features[0][0])
    return net


@_register("vit_b_16", "torchvision Vision Transformer ViT-B/16: 16 px patches, 12 layers; 224 px only",
           "encoder.layers.encoder_layer_11.ln_1", (224, 224), imagenet="ViT_B_16_Weights.IMAGENET1K_V1",
           traits=frozenset({"tokens", "attention"}), title="ViT-B/16")
def vit_b_16(num_classes: int, in_channels: int) -> nn.Module:
    from torchvision.models import vit_b_16 as build

    net = build(num_classes=num_classes)
    if in_channels != 3:
        net.conv_proj = _first_conv_grey(net.conv_proj)
    return net


def _vgg(depth: int, num_classes: int, in_channels: int) -> nn.Module:
    from torchvision.models import vgg11, vgg16

    net = _fresh_relus({11: vgg11, 16: vgg16}[depth](num_classes=num_classes))
    if in_channels != 3:
        net.features[0] = _first_conv_grey(net.features[0])
    return net


@_register("vgg11", "torchvision VGG-11 (ReLUs made separate and non-inplace), for 128 px and up", "features",
           (128, 512), imagenet="VGG11_Weights.IMAGENET1K_V1", title="VGG-11")
def vgg11(num_classes: int, in_channels: int) -> nn.Module:
    return _vgg(11, num_classes, in_channels)


@_register("vgg16", "torchvision VGG-16 (ReLUs made separate and non-inplace), for 128 px and up", "features",
           (128, 512), imagenet="VGG16_Weights.IMAGENET1K_V1", title="VGG-16")
def vgg16(num_classes: int, in_channels: int) -> nn.Module:
    return _vgg(16, num_classes, in_channels)


def list_architectures() -> list[str]:
    return ARCHITECTURES.names()


def build_model(arch: str, num_classes: int, in_channels: int, mean: Sequence[float], std: Sequence[float]) -> Classifier:
    """Build an untrained :class:`Classifier` of a registered architecture."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(f"mean/std need {in_channels} values, got {len(mean)}/{len(std)}")
    spec = ARCHITECTURES.get(arch)
    return Classifier(spec.builder(num_classes, in_channels), mean, std, target_layer="net." + spec.target_layer,
                      traits=spec.traits)


def traits_of(model: nn.Module) -> frozenset[str]:
    """What the model offers attribution methods (:data:`TRAITS`): declared by its architecture, or, for a model
    built elsewhere, found from its modules (attention layers give ``tokens`` and ``attention``; only non-inplace
    ReLU non-linearities give ``relu``; convolutions give ``spatial``)."""
    declared = getattr(model, "traits", None)
    if declared is not None:
        return frozenset(declared)
    modules = list(model.modules())
    found = set(TORCH_TRAITS)
    if any(isinstance(m, nn.MultiheadAttention) for m in modules):
        found |= {"tokens", "attention"}
    elif any(isinstance(m, nn.Conv2d) for m in modules):
        found.add("spatial")
    others = (nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.Hardswish, nn.Mish, nn.MultiheadAttention)
    if not any(isinstance(m, others) or (isinstance(m, nn.ReLU) and m.inplace) for m in modules):
        found.add("relu")
    return frozenset(found)


#: tokens before the patches a transformer may carry: a class token, a distillation token, register tokens
MAX_PREFIX_TOKENS = 8


def tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """A transformer layer's output (N, p + h*w, C), ``p`` prefix tokens (a class token, distillation or register
    tokens; none for a pooled model) before the patches, as feature maps (N, C, h, w): what CAM methods weight
    (pytorch-grad-cam's ``reshape_transform``). The grid is square, as in ViT, so ``p`` is what is left over."""
    if tokens.ndim != 3:
        return tokens
    side = math.isqrt(tokens.shape[1])
    prefix = tokens.shape[1] - side * side
    if side == 0 or prefix > MAX_PREFIX_TOKENS:
        raise ValueError(f"{tokens.shape[1]} tokens do not form a square grid of patches after at most "
                         f"{MAX_PREFIX_TOKENS} prefix tokens")
    return tokens[:, prefix:, :].reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def conv_layers(model: nn.Module) -> list[str]:
    """Names of layers with spatial outputs that CAM methods can target: every Conv2d and every container whose
    name is a known block (ResNet ``layerN``, small_cnn ``blockN``, DenseNet ``denseblockN`` / ``transitionN`` /
    ``features``, EfficientNet's numbered stages); for a transformer, each encoder layer's input norm (``ln_1``),
    whose tokens are reshaped to a grid. A model made elsewhere lists its own (``cam_layers``, found by running it:
    :mod:`core.importers`)."""
    listed = getattr(model, "cam_layers", None)
    if listed is not None:
        return list(listed)
    if "tokens" in traits_of(model):
        return [name for name, m in model.named_modules() if name.endswith("ln_1") and isinstance(m, nn.LayerNorm)]
    names = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        parent = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else ""
        if (isinstance(module, nn.Conv2d) or (leaf.startswith(("layer", "block", "denseblock", "transition"))
                                              and leaf[-1].isdigit())
                or (name.endswith("features") and any(isinstance(m, nn.Conv2d) for m in module.modules()))
                or (parent == "features" and leaf.isdigit() and isinstance(module, nn.Sequential))):
            names.append(name)
    return names


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """Resolve a dotted layer name (never ``eval``)."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise UnknownNameError(f"Model has no layer {name!r}. Convolutional layers: {', '.join(conv_layers(model))}") from None


def freezable_layers(model: Classifier) -> list[str]:
    """Layers of ``model.net`` a fine-tuning run can freeze, input side first: its direct children, with
    named containers (small_cnn's ``features``) opened one level. Names are relative to ``net``."""
    out = []
    for name, child in model.net.named_children():
        kids = [(n, c) for n, c in child.named_children() if any(True for _ in c.parameters())]
        if kids and not any(n.isdigit() for n, _ in kids):
            out += [f"{name}.{n}" for n, _ in kids]
        elif any(True for _ in child.parameters()):
            out.append(name)
    return out
