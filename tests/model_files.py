"""Model files in the real formats, written as a user's code writes them (torch.save, torch.jit, torch.onnx, timm and
transformers' save_pretrained, an ONNX graph built node by node), and a user's own preprocessing to hold an imported
model against. Shared by the importer, CLI, API, app and browser tests."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

#: a user's own normalisation (not ImageNet's), so that a card that ignores it shows
USER_MEAN, USER_STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
PATH_CLASSES = ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
                "cancer-associated stroma", "colorectal adenocarcinoma epithelium"]


def user_input(x01: torch.Tensor, mean=USER_MEAN, std=USER_STD, bgr: bool = False, pixel_range: int = 1,
               nhwc: bool = False) -> torch.Tensor:
    """What a user's own pipeline feeds their model for images ``x01`` (N, C, H, W) in [0, 1]: channels in the model's
    order, scaled to its pixel range, mean subtracted and divided by std (given in that order and range), layout."""
    x = x01.flip(1) if bgr else x01
    x = x * pixel_range
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    x = (x - m) / s
    return x.permute(0, 2, 3, 1) if nhwc else x


def torchvision_model(arch: str, num_classes: int, channels: int = 3, seed: int = 0) -> nn.Module:
    """The model a user of torchvision (or of this project's own small CNN) trains for ``arch``, eval mode."""
    torch.manual_seed(seed)
    if arch == "small_cnn":
        from core.modelling.architectures import ARCHITECTURES

        net = ARCHITECTURES.get("small_cnn").builder(num_classes, channels)
    elif arch == "resnet18_small":
        net = torchvision.models.resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif arch.startswith("vgg"):
        net = getattr(torchvision.models, arch)(num_classes=num_classes)
        # the usual fine-tuning head: the whole classifier replaced by a small one (and a small file)
        net.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(32, num_classes))
    else:
        net = getattr(torchvision.models, arch)(num_classes=num_classes)
    if channels == 1 and arch.startswith(("resnet18", "resnet50")) and arch != "resnet18_small":
        net.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    elif channels == 1 and arch == "densenet121":
        net.features.conv0 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    with torch.no_grad():  # BatchNorm statistics that are not 0 and 1, as after training
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def save_state_dict(module: nn.Module, path: Path, wrapping: str = "plain") -> Path:
    """``torch.save`` of the state dict as users' code writes it: ``plain``, ``module.`` (DataParallel), ``lightning``
    (a checkpoint with ``state_dict`` of ``model.`` keys beside epoch and optimizer state), ``checkpoint``
    (``model_state_dict`` beside ``epoch`` and ``optimizer_state_dict``), or ``safetensors``."""
    state = module.state_dict()
    if wrapping == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path
    if wrapping == "module":
        obj = {f"module.{k}": v for k, v in state.items()}
    elif wrapping == "lightning":
        opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
        obj = {"epoch": 7, "global_step": 700, "pytorch-lightning_version": "2.4.0",
               "state_dict": {f"model.{k}": v for k, v in state.items()}, "optimizer_states": [opt.state_dict()],
               "lr_schedulers": []}
    elif wrapping == "checkpoint":
        opt = torch.optim.Adam(module.parameters())
        obj = {"epoch": 12, "model_state_dict": state, "optimizer_state_dict": opt.state_dict(), "best_acc": 0.93}
    else:
        obj = state
    torch.save(obj, path)
    return path


def save_torchscript(module: nn.Module, path: Path, example: torch.Tensor, how: str = "trace") -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.trace(module, example) if how == "trace" else torch.jit.script(module)
        torch.jit.save(script, str(path))
    return path


def save_onnx(module: nn.Module, path: Path, example: torch.Tensor, opset: int = 17, dynamic: bool = True) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), opset_version=opset, dynamo=False, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "n"}, "output": {0: "n"}} if dynamic else None)
    return path


class KerasLike(nn.Module):
    """A Keras-style CNN as tf2onnx exports it: channels-last input (BGR, pixels in [0, 255] minus a mean), a Transpose
    first, a softmax last."""

    def __init__(self, num_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.softmax(self.fc(x.mean(dim=(2, 3))), dim=1)


def save_unconvertible_onnx(path: Path, num_classes: int = 3, size: int = 32, seed: int = 0) -> Path:
    """A small CNN graph with an operation ONNX Runtime runs and onnx2torch does not convert (ThresholdedRelu)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "W")
    g = numpy_helper.from_array(rng.standard_normal((num_classes, 8)).astype(np.float32), "G")
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("ThresholdedRelu", ["c"], ["t"], alpha=0.1),
             helper.make_node("GlobalAveragePool", ["t"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "G"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "odd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", num_classes])], [w, g])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run_unconvertible(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort

    s = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    return torch.from_numpy(s.run(None, {"x": x.numpy()})[0])


def timm_model(name: str = "test_resnet", num_classes: int = 3, seed: int = 0) -> nn.Module:
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, num_classes=num_classes).eval()


def save_timm_folder(module: nn.Module, folder: Path, labels: list[str] | None = None, **cfg_override) -> Path:
    """A timm folder as ``timm.models.save_for_hf`` / the hub keep it: config.json and model.safetensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / "model.safetensors"))
    cfg = dict(module.pretrained_cfg)
    cfg.update(cfg_override)
    config = {"architecture": cfg["architecture"], "num_classes": module.num_classes,
              "num_features": module.num_features, "pretrained_cfg": cfg}
    if labels:
        config["label_names"] = labels
    (folder / "config.json").write_text(json.dumps(config, default=list))
    return folder


def hf_vit(labels: list[str], size: int = 32, seed: int = 0):
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=size, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
                    label2id={c: i for i, c in enumerate(labels)})
    return ViTForImageClassification(cfg).eval()


def hf_convnext(labels: list[str], seed: int = 0):
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(seed)
    cfg = ConvNextConfig(num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=len(labels),
                         id2label=dict(enumerate(labels)), label2id={c: i for i, c in enumerate(labels)})
    return ConvNextForImageClassification(cfg).eval()


def save_hf(model, folder: Path, processor) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def save_pickled_model(module: nn.Module, path: Path) -> Path:
    """``torch.save(model, path)``: a whole pickled model (what this project refuses to read)."""
    torch.save(module, path)
    return path


class Planted:
    """A pickle payload: unpickling it would call ``os.system`` and create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def save_planted(path: Path, marker: Path) -> Path:
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3), "payload": Planted(marker)}, path)
    return path


def write_format(fmt: str, folder: Path, num_classes: int = 3, size: int = 32) -> tuple[Path, dict]:
    """A small model of ``fmt`` (one of :data:`FORMATS`) written to ``folder`` as a user writes it, and the import
    settings it needs beyond the class names."""
    folder.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, size, size)
    if fmt == "state_dict":
        return save_state_dict(torchvision_model("small_cnn", num_classes), folder / "sd.pth"), {"input_size": size}
    if fmt == "torchscript":
        return save_torchscript(torchvision_model("small_cnn", num_classes), folder / "m.ts", example), {"input_size": size}
    if fmt == "onnx":
        return save_onnx(torchvision_model("small_cnn", num_classes), folder / "m.onnx", example), {}
    if fmt == "keras_onnx":
        return save_onnx(KerasLike(num_classes), folder / "k.onnx", example.permute(0, 2, 3, 1), opset=11), {}
    if fmt == "onnxruntime":
        return save_unconvertible_onnx(folder / "odd.onnx", num_classes, size), {}
    if fmt == "timm":
        return (save_state_dict(timm_model("test_resnet", num_classes), folder / "t.pth"),
                {"arch": "timm:test_resnet", "input_size": size})
    labels = [f"c{i}" for i in range(num_classes)]
    if fmt == "hf_vit":
        from transformers import ViTImageProcessor

        return save_hf(hf_vit(labels, size), folder / "hfvit", ViTImageProcessor(size={"height": size, "width": size})), {}
    if fmt == "hf_convnext":
        from transformers import ConvNextImageProcessor

        return save_hf(hf_convnext(labels), folder / "hfcnx", ConvNextImageProcessor(size={"shortest_edge": size},
                                                                                      crop_pct=1.0)), {}
    raise ValueError(fmt)


#: every format a test imports (a small model each)
FORMATS = ("state_dict", "torchscript", "onnx", "keras_onnx", "onnxruntime", "timm", "hf_vit", "hf_convnext")
