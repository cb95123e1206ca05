"""Every format imports from a file written as a user's code writes it, and the imported model computes what the
user's own model computes on the user's own preprocessing of the same images: architecture, head, channels,
normalisation, channel order, pixel range, layout and output all taken right."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from core import CheckpointError, load_model
from core.importers import inspect_source, save_imported
from core.importers.wrapper import as_logits
from tests import model_files as mf

K = 5  # classes of the test models


def x01(n: int, size: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, channels, size, size), generator=torch.Generator().manual_seed(seed))


def assert_same_logits(model, reference: torch.Tensor, x: torch.Tensor, tol: float = 1e-4) -> None:
    with torch.no_grad():
        got = model(x)
    scale = max(1.0, float(reference.abs().max()))
    assert got.shape == reference.shape
    assert float((got - reference).abs().max()) <= tol * scale, float((got - reference).abs().max())


def imported(path, tmp_path, **given):
    draft = inspect_source(path, **given)
    folder = save_imported(draft, tmp_path / "models")
    model, card = load_model(folder)
    return draft, model, card


ARCHS = [("small_cnn", 1, 32), ("resnet18_small", 3, 32), ("resnet18", 3, 64), ("resnet50", 1, 64),
         ("densenet121", 3, 64), ("efficientnet_b0", 3, 64), ("vit_b_16", 3, 224), ("vgg11", 3, 64), ("vgg16", 3, 64)]


@pytest.mark.parametrize("arch,channels,size", ARCHS, ids=[a for a, _, _ in ARCHS])
def test_state_dict_of_every_architecture_is_detected_and_computes_the_same(arch, channels, size, tmp_path):
    user = mf.torchvision_model(arch, K, channels)
    path = mf.save_state_dict(user, tmp_path / f"{arch}.pth")
    mean, std = mf.USER_MEAN[:channels], mf.USER_STD[:channels]
    draft, model, card = imported(path, tmp_path, classes=[f"c{i}" for i in range(K)], input_size=size, mean=mean,
                                  std=std)
    assert card.arch == arch and draft.origin["arch"].startswith("detected")
    assert card.channels == channels and card.classes == [f"c{i}" for i in range(K)] and card.imported
    assert card.source["format"] == "state_dict" and card.source["name"] == f"{arch}.pth"
    assert len(card.source["sha256"]) == 64 and card.training["source"] == "imported"
    x = x01(2, size, channels)
    with torch.no_grad():
        want = user(mf.user_input(x, mean, std))
    assert_same_logits(draft.model, want, x)
    assert_same_logits(model, want, x)  # loaded again from the model folder


WRAPPINGS = ["plain", "module", "lightning", "checkpoint", "safetensors"]


@pytest.mark.parametrize("wrapping", WRAPPINGS)
def test_checkpoint_wrappings_are_taken_off_and_said(wrapping, tmp_path):
    user = mf.torchvision_model("resnet18_small", 3)
    path = mf.save_state_dict(user, tmp_path / ("w.safetensors" if wrapping == "safetensors" else "w.ckpt"), wrapping)
    draft = inspect_source(path, classes="a,b,c", input_size=32, mean=mf.USER_MEAN, std=mf.USER_STD)
    x = x01(2, 32)
    with torch.no_grad():
        assert_same_logits(draft.model, user(mf.user_input(x)), x)
    notes = " ".join(draft.notes)
    if wrapping == "module":
        assert "'module.'" in notes and "DataParallel" in notes
    if wrapping == "lightning":
        assert "'state_dict'" in notes and "epoch" in notes and "'model.'" in notes
    if wrapping == "checkpoint":
        assert "'model_state_dict'" in notes and "optimizer_state_dict" in notes


def test_a_replaced_head_is_rebuilt_with_relu_and_dropout_and_said(tmp_path):
    user = mf.torchvision_model("resnet18_small", 4)
    user.fc = nn.Sequential(nn.Linear(512, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 4)).eval()
    draft = inspect_source(mf.save_state_dict(user, tmp_path / "h.pt"), classes="a,b,c,d", input_size=32,
                           mean=mf.USER_MEAN, std=mf.USER_STD)
    assert any("Linear(512→32) → ReLU → Dropout (the identity at inference) → Linear(32→4)" in n for n in draft.notes)
    x = x01(2, 32)
    with torch.no_grad():
        assert_same_logits(draft.model, user(mf.user_input(x)), x)


def test_another_head_asks_for_torchscript_or_onnx(tmp_path):
    user = mf.torchvision_model("resnet18_small", 4)
    user.fc = nn.Sequential(nn.Linear(512, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    with pytest.raises(CheckpointError, match="TorchScript or ONNX"):
        inspect_source(mf.save_state_dict(user, tmp_path / "bn.pt"), classes="a,b,c,d", input_size=32)


def test_this_projects_own_state_dict_brings_its_normalisation(tmp_path, tiny_model):
    model, card = tiny_model
    path = tmp_path / "own.pt"
    torch.save(model.state_dict(), path)
    draft = inspect_source(path, classes=",".join(card.classes), input_size=card.input_size)
    assert draft.card.mean == pytest.approx(card.mean) and draft.origin["mean"].startswith("the file")
    x = x01(2, card.input_size, card.channels)
    with torch.no_grad():
        assert_same_logits(draft.model, model(x), x)


@pytest.mark.parametrize("how", ["trace", "script"])
def test_torchscript(how, tmp_path):
    user = mf.torchvision_model("resnet18_small", 3)
    path = mf.save_torchscript(user, tmp_path / "m.ts", mf.user_input(x01(1, 32)), how)
    draft, model, card = imported(path, tmp_path, classes="a,b,c", input_size=32, mean=mf.USER_MEAN, std=mf.USER_STD)
    assert card.arch == "torchscript" and card.model_file == "model.ts" and card.channels == 3
    x = x01(2, 32)
    with torch.no_grad():
        assert_same_logits(model, user(mf.user_input(x)), x)
    assert model.target_layer == "net.layer4" and "net.layer3" in model.cam_layers


def test_torchscript_final_softmax_is_taken_off(tmp_path):
    user = mf.torchvision_model("resnet18_small", 3)
    soft = nn.Sequential(user, nn.Softmax(dim=1)).eval()
    path = mf.save_torchscript(soft, tmp_path / "soft.ts", mf.user_input(x01(1, 32)))
    draft = inspect_source(path, classes="a,b,c", input_size=32, mean=mf.USER_MEAN, std=mf.USER_STD)
    assert draft.card.output == "logits" and "softmax" in draft.origin["output"]
    x = x01(2, 32)
    with torch.no_grad():
        assert_same_logits(draft.model, user(mf.user_input(x)), x)  # the logits before the softmax


def test_onnx_from_torch(tmp_path):
    user = mf.torchvision_model("resnet18_small", 3)
    path = mf.save_onnx(user, tmp_path / "m.onnx", mf.user_input(x01(1, 32)))
    draft, model, card = imported(path, tmp_path, classes="a,b,c", mean=mf.USER_MEAN, std=mf.USER_STD)
    assert card.input_size == 32 and draft.origin["input_size"] == "the ONNX graph's input shape"
    assert card.source["runtime"] == "torch" and "traits" in card.source
    x = x01(3, 32)
    with torch.no_grad():
        assert_same_logits(model, user(mf.user_input(x)), x)


def test_onnx_keras_export_channels_last_bgr_255_softmax(tmp_path):
    user = mf.KerasLike(3).eval()
    caffe_mean = [103.9, 116.8, 123.7]  # BGR order, pixels in [0, 255], no std
    path = mf.save_onnx(user, tmp_path / "keras.onnx", torch.rand(1, 32, 32, 3) * 255, opset=11)
    draft, model, card = imported(path, tmp_path, classes="cat,dog,fox", mean=caffe_mean, std="1,1,1",
                                  channel_order="bgr", pixel_range="255")
    assert card.source["layout"] == "nhwc" and card.output == "logits" and card.source.get("softmax_removed")
    x = x01(2, 32)
    inp = mf.user_input(x, caffe_mean, [1.0, 1.0, 1.0], bgr=True, pixel_range=255, nhwc=True)
    with torch.no_grad():
        probs = user(inp)
        h = inp.permute(0, 3, 1, 2)
        before = user.fc(torch.relu(user.conv2(torch.relu(user.conv1(h)))).mean(dim=(2, 3)))
    assert_same_logits(model, before, x)
    assert torch.allclose(torch.softmax(model(x), 1), probs, atol=1e-5)


def test_onnx_fixed_batch_of_one_runs_image_by_image(tmp_path):
    user = mf.torchvision_model("small_cnn", 3)
    path = mf.save_onnx(user, tmp_path / "one.onnx", mf.user_input(x01(1, 32)), dynamic=False)
    draft = inspect_source(path, classes="a,b,c", mean=mf.USER_MEAN, std=mf.USER_STD)
    assert draft.card.source["fixed_batch"] == 1
    x = x01(3, 32)
    with torch.no_grad():
        assert_same_logits(draft.model, user(mf.user_input(x)), x)


def test_onnx_graph_onnx2torch_cannot_convert_runs_on_onnx_runtime(tmp_path):
    from core import list_methods
    from core.explainers import hidden_methods

    path = mf.save_unconvertible_onnx(tmp_path / "odd.onnx")
    draft, model, card = imported(path, tmp_path, classes="a,b,c", mean="0,0,0", std="1,1,1")
    assert card.source["runtime"] == "onnxruntime" and "ThresholdedRelu" in card.source["unconverted"]
    x = x01(2, 32)
    assert_same_logits(model, mf.run_unconvertible(path, x), x)
    assert set(list_methods(model)) == {"occlusion", "lime", "shap_partition"}
    assert "ONNX Runtime" in hidden_methods(model)["integrated_gradients"]
    assert "ONNX Runtime" in hidden_methods(model)["grad_cam"]


def test_timm_state_dict_with_arch(tmp_path):
    user = mf.timm_model("test_resnet", 3)
    path = mf.save_state_dict(user, tmp_path / "timm.pth")
    draft, model, card = imported(path, tmp_path, arch="timm:test_resnet", classes="a,b,c", input_size=32)
    assert card.arch == "timm:test_resnet" and card.mean == [0.5, 0.5, 0.5]  # timm's own configuration
    x = x01(2, 32)
    with torch.no_grad():
        assert_same_logits(model, user(mf.user_input(x, [0.5] * 3, [0.5] * 3)), x)


def test_timm_folder_brings_its_preprocessing_and_labels(tmp_path):
    user = mf.timm_model("test_vit", 3)
    folder = mf.save_timm_folder(user, tmp_path / "timm-vit", labels=["x", "y", "z"], mean=(0.4, 0.5, 0.6),
                                 std=(0.2, 0.3, 0.4))
    draft, model, card = imported(folder, tmp_path)
    assert card.classes == ["x", "y", "z"] and card.input_size == 160 and card.resize_size == 168
    assert card.interpolation == "bicubic" and card.mean == [0.4, 0.5, 0.6]
    assert draft.origin["mean"] == "the folder's pretrained_cfg" and "tokens" in model.traits
    x = x01(2, 160)
    with torch.no_grad():
        assert_same_logits(model, user(mf.user_input(x, [0.4, 0.5, 0.6], [0.2, 0.3, 0.4])), x)


def test_hugging_face_vit_folder(tmp_path):
    from transformers import ViTImageProcessor

    user = mf.hf_vit(["cat", "dog", "fox"])
    folder = mf.save_hf(user, tmp_path / "hf-vit", ViTImageProcessor(size={"height": 32, "width": 32},
                                                                     image_mean=[0.4, 0.5, 0.6], image_std=[0.3, 0.3, 0.3]))
    draft, model, card = imported(folder, tmp_path)
    assert card.classes == ["cat", "dog", "fox"] and draft.origin["classes"].endswith("(id2label)")
    assert card.input_size == 32 and card.mean == [0.4, 0.5, 0.6] and card.arch == "hf:vit"
    assert card.model_file == "hf/model.safetensors"
    assert "tokens" in model.traits and model.target_layer.endswith("layers.1.layernorm_before")
    x = x01(2, 32)
    with torch.no_grad():
        assert_same_logits(model, as_logits(user(mf.user_input(x, [0.4, 0.5, 0.6], [0.3] * 3))), x)


def test_hugging_face_convnext_folder_resize_then_crop(tmp_path):
    from transformers import ConvNextImageProcessor

    user = mf.hf_convnext(["p", "q"])
    processor = ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875, image_mean=mf.USER_MEAN,
                                       image_std=mf.USER_STD)
    _, model, card = imported(mf.save_hf(user, tmp_path / "hf-cnx", processor), tmp_path)
    assert (card.input_size, card.resize_size, card.interpolation) == (32, 36, "bicubic")
    assert "spatial" in model.traits and card.mean == mf.USER_MEAN
    x = x01(2, 32)
    with torch.no_grad():
        assert_same_logits(model, as_logits(user(mf.user_input(x))), x)


def test_class_names_come_from_a_file_in_every_form(tmp_path):
    from core.importers.settings import parse_names

    assert parse_names("a, b ,c") == ["a", "b", "c"] == parse_names("a\nb\nc\n") == parse_names('["a", "b", "c"]')
    assert parse_names(json.dumps({"1": "b", "0": "a", "2": "c"})) == ["a", "b", "c"]
    with pytest.raises(CheckpointError, match="more than once"):
        parse_names("a,b,a")
