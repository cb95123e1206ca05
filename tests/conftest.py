"""Shared fixtures: isolated data/models folders, a tiny trained model, hand-built models."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def isolated_dirs(tmp_path_factory):
    """Every test uses temporary data/models folders, never the user's ``data/`` and ``models/``."""
    data = tmp_path_factory.mktemp("data")
    models = tmp_path_factory.mktemp("models")
    mlruns = tmp_path_factory.mktemp("mlruns")
    torch_home = tmp_path_factory.mktemp("torch_home")
    old = {k: os.environ.get(k) for k in ("XAI_DATA_DIR", "XAI_MODELS_DIR", "XAI_DEVICE", "MLFLOW_TRACKING_URI",
                                          "TORCH_HOME")}
    os.environ["TORCH_HOME"] = str(torch_home)  # no weights from the user's torch cache: tests write their own
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{mlruns / 'mlflow.db'}"  # never the project's own store
    os.environ["XAI_DATA_DIR"] = str(data)
    os.environ["XAI_MODELS_DIR"] = str(models)
    os.environ["XAI_DEVICE"] = "cpu"  # the tests run on the CPU even where CUDA is present
    yield {"data": data, "models": models, "mlruns": mlruns, "torch_home": torch_home}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny_model_dir(isolated_dirs) -> Path:
    """A small_cnn trained for one short epoch on shapes, saved under the demo id in the test models folder."""
    from core import config
    from core.training import TrainConfig, train

    _, _, path = train(TrainConfig(epochs=1, max_train=512, model_id=config.DEMO_MODEL_ID), None, isolated_dirs["models"])
    return path


@pytest.fixture(scope="session")
def shapes_model_dir(isolated_dirs, tmp_path_factory) -> Path:
    """A shapes model that learned something (3 epochs at 32 px, about 80% test accuracy when written), in its own
    models folder, with its saved evaluation and out-of-distribution statistics."""
    from core.training import TrainConfig, train

    _, _, path = train(TrainConfig(epochs=3, size=32, model_id="shapes-good"), None, tmp_path_factory.mktemp("good_models"))
    return path


def real_images(*folders: str) -> list[Path]:
    """The shared real photographs / X-rays under ``../shared/data/samples`` (skips the test when absent)."""
    files = sorted(p for f in folders for p in (SHARED_DATA / "samples" / f).rglob("*") if p.suffix in (".jpg", ".png"))
    if not files:
        pytest.skip(f"real sample images not found under {SHARED_DATA / 'samples'}")
    return files


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from core import load_model

    return load_model(tiny_model_dir)


def make_classifier(in_channels: int, num_classes: int = 3, seed: int = 0):
    """A random-init small_cnn wrapped as a Classifier (what every method must handle)."""
    from core.architectures import build_model

    torch.manual_seed(seed)
    model = build_model("small_cnn", num_classes, in_channels, [0.5] * in_channels, [0.25] * in_channels)
    return model.eval()


def make_vit(in_channels: int = 3, num_classes: int = 3, seed: int = 0, size: int = 32):
    """A tiny Vision Transformer built by hand (torchvision's class: 8 px patches, 2 layers, 2 heads, width 16) with a
    random head (torchvision starts it at zero, which makes every class score constant), wrapped as a Classifier
    with its traits found from its modules, as for any model built outside our registry."""
    from torchvision.models.vision_transformer import VisionTransformer

    from core.architectures import Classifier

    torch.manual_seed(seed)
    net = VisionTransformer(image_size=size, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                            num_classes=num_classes)
    if in_channels != 3:
        net.conv_proj = nn.Conv2d(in_channels, 16, 8, 8)
    nn.init.normal_(net.heads.head.weight, std=0.5)
    return Classifier(net, [0.5] * in_channels, [0.25] * in_channels, "net.encoder.layers.encoder_layer_1.ln_1").eval()


def refused(model: nn.Module, method: str, image=None) -> bool:
    """Whether ``method`` does not apply to ``model``; if so, asserts the library refuses it with the reason the
    method declares (tests generated over every method call this first, then test the method where it applies)."""
    from core import NotApplicableError, explain, get_method

    why = get_method(method).unavailable(model)
    if why is None:
        return False
    size = 32
    x = image if image is not None else torch.rand(int(model.normalize.mean.shape[1]), size, size)
    with pytest.raises(NotApplicableError, match=re.escape(why[:40])):
        explain(model, x, method)
    return True


def hooks_on(model: nn.Module) -> int:
    """Number of forward/backward hooks registered on any module of ``model``."""
    from core.explainers.sharing import hook_count

    return hook_count(model)
