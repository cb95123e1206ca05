"""What an import refuses, before anything is loaded half-way or run: a pickled whole model and a planted payload
(nothing unpickled, nothing executed), files that do not fit (with the tensors and shapes), cards that contradict the
model (with the numbers), files of no known format, and formats whose optional package is missing (with the command
that installs it)."""
from __future__ import annotations

import builtins

import pytest
import torch
from torch import nn

from core import CheckpointError
from core.importers import inspect_source, save_imported
from tests import model_files as mf


def test_a_pickled_whole_model_is_refused_without_unpickling(tmp_path, monkeypatch):
    path = mf.save_pickled_model(mf.torchvision_model("resnet18_small", 3), tmp_path / "whole.pt")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    with pytest.raises(CheckpointError) as err:
        inspect_source(path)
    text = str(err.value)
    assert "pickled whole model" in text and "torchvision.models.resnet.ResNet" in text
    assert "torch.save(model.state_dict()" in text and "torch.jit" in text and "torch.onnx.export" in text
    assert "weights_only=False" not in text
    assert loads == []  # refused from the opcodes alone: torch.load (an unpickler) never ran


def test_a_planted_payload_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    path = mf.save_planted(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match="posix.system|os.system"):
        inspect_source(path)
    assert not marker.exists()


def test_a_wrong_head_size_is_refused_with_the_numbers(tmp_path):
    path = mf.save_state_dict(mf.torchvision_model("resnet18_small", 9), tmp_path / "nine.pt")
    with pytest.raises(CheckpointError, match=r"9 outputs but 3 class names are given"):
        inspect_source(path, classes="a,b,c", input_size=32)


def test_a_missing_tensor_is_refused_with_its_name(tmp_path):
    state = mf.torchvision_model("resnet18_small", 3).state_dict()
    del state["layer2.0.conv1.weight"]
    path = tmp_path / "missing.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing tensors \(layer2\.0\.conv1\.weight\)"):
        inspect_source(path, arch="resnet18_small", classes="a,b,c")
    with pytest.raises(CheckpointError, match="closest is resnet18_small.*layer2.0.conv1.weight"):
        inspect_source(path, classes="a,b,c")  # no arch given: nothing fits, the closest is named


def test_a_shape_mismatch_against_the_given_architecture_is_listed(tmp_path):
    path = mf.save_state_dict(mf.torchvision_model("resnet18_small", 3), tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match=r"does not fit architecture 'resnet18'.*conv1\.weight: file \(64, 3, 3, 3\), "
                                              r"architecture \(64, 3, 7, 7\)"):
        inspect_source(path, arch="resnet18", classes="a,b,c")


@pytest.mark.parametrize("given,match", [
    (dict(mean="104,117,123"), r"mean \[104.0, 117.0, 123.0\] is outside the pixel range \[0, 1\]; a mean in 0..255 "
                               "needs pixel_range 255"),
    (dict(mean="0.5,0.5"), "mean has 2 values for a 3-channel model"),
    (dict(std="0.2,0,0.2"), "std"),
    (dict(target_layer="layer9"), r"no layer 'layer9'.*layer4"),
    (dict(input_size="4"), r"input size must be in 8..1024"),
    (dict(pixel_range="100"), "pixel range must be one of 1, 255"),
    (dict(model_id="../escape"), "model id '../escape' is not allowed"),
    (dict(resize_size="16"), "resize_size"),
])
def test_a_wrong_card_is_refused_with_the_numbers(given, match, tmp_path):
    path = mf.save_state_dict(mf.torchvision_model("resnet18_small", 3), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=match):
        inspect_source(path, classes="a,b,c", input_size=given.pop("input_size", 32), **given)


def test_an_existing_model_is_not_replaced_unless_asked(tmp_path):
    path = mf.save_state_dict(mf.torchvision_model("small_cnn", 3), tmp_path / "m.pt")
    draft = inspect_source(path, classes="a,b,c", input_size=32, model_id="mine")
    save_imported(draft, tmp_path / "models")
    with pytest.raises(CheckpointError, match="a model 'mine' exists already"):
        save_imported(draft, tmp_path / "models")
    save_imported(draft, tmp_path / "models", replace=True)
    with pytest.raises(CheckpointError, match="torchvision's ImageNet models"):
        save_imported(inspect_source(path, classes="a,b,c", input_size=32, model_id="imagenet-resnet50"),
                      tmp_path / "models")


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"),
    (b"hello, this is text and no model at all", "not a model file this project reads"),
    (b"PK\x03\x04 damaged zip", "damaged zip"),
    (b"\x80\x02 truncated pickle", "not a readable PyTorch file"),
])
def test_files_of_no_known_format_are_refused(content, match, tmp_path):
    path = tmp_path / "thing.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as err:
        inspect_source(path)
    assert "weights_only" not in str(err.value)  # torch's advice to turn the safe loader off is never passed on


def test_a_folder_without_a_config_and_a_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        inspect_source(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="does not exist"):
        inspect_source(tmp_path / "nowhere.pt")


def test_a_truncated_state_dict(tmp_path):
    path = mf.save_state_dict(mf.torchvision_model("small_cnn", 3), tmp_path / "cut.pt")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="damaged zip|not a readable PyTorch file|neither"):
        inspect_source(path)


@pytest.mark.parametrize("package,writer", [
    ("onnx2torch", lambda p: mf.save_onnx(mf.torchvision_model("small_cnn", 3), p / "m.onnx", torch.rand(1, 3, 32, 32))),
    ("timm", lambda p: mf.save_timm_folder(mf.timm_model("test_resnet"), p / "timm")),
    ("transformers", lambda p: _hf_config_only(p / "hf")),
])
def test_a_missing_optional_package_says_how_to_install_it(package, writer, tmp_path, monkeypatch):
    path = writer(tmp_path)
    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.split(".")[0] == package:
            raise ImportError(f"No module named {package!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    monkeypatch.setattr("importlib.import_module", lambda name, *a: blocked(name))
    with pytest.raises(CheckpointError, match=rf"optional package {package}.*pip install -r requirements-import.txt"):
        inspect_source(path, classes="a,b,c")


def test_an_onnx_conversion_that_disagrees_with_onnx_runtime_is_refused(tmp_path, monkeypatch):
    from core.importers import onnx_graphs

    path = mf.save_onnx(mf.torchvision_model("small_cnn", 3), tmp_path / "m.onnx", torch.rand(1, 3, 32, 32))
    real = onnx_graphs.convert

    def off_by_a_bit(model):
        net, why = real(model)
        return nn.Sequential(net, nn.Identity()).eval() if net is None else _Shifted(net), why

    monkeypatch.setattr(onnx_graphs, "convert", off_by_a_bit)
    with pytest.raises(CheckpointError, match=r"differs from ONNX Runtime on a probe batch: largest difference 0\.01"):
        inspect_source(path, classes="a,b,c")


def _hf_config_only(folder):
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "vit"}')
    return folder


class _Shifted(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) + 0.01


def test_an_upload_is_staged_inside_the_models_folder_and_removed(tmp_path):
    import io
    import zipfile

    from core.importers import staged

    path = mf.save_state_dict(mf.torchvision_model("small_cnn", 3), tmp_path / "m.pt")
    with staged("../../etc/m.pt", path.read_bytes(), tmp_path / "models") as p:
        assert p.is_file() and p.parent.parent == tmp_path / "models" / ".uploads" and p.name == "m.pt"
        assert inspect_source(p, classes="a,b,c", input_size=32).card.arch == "small_cnn"
    assert not any((tmp_path / "models" / ".uploads").iterdir())
    with pytest.raises(CheckpointError, match="over 0.0 MiB, the limit for a model"):
        with staged("m.pt", [b"x" * 10, b"y" * 10], tmp_path / "models", limit=15):
            pass
    for member, match in (("../evil.json", "outside its folder"), ("/abs/config.json", "outside its folder"),
                          ("a/weights.bin", "no config.json")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(member, "{}")
        with pytest.raises(CheckpointError, match=match):
            with staged("folder.zip", buf.getvalue(), tmp_path / "models"):
                pass
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("hf/config.json", "{}")
        z.writestr("hf/big.bin", b"\0" * 200_000)
    with pytest.raises(CheckpointError, match="unpacks to 0.2 MiB; the limit is 0.1 MiB"):
        with staged("folder.zip", buf.getvalue(), tmp_path / "models", limit=100_000):
            pass
    assert not (tmp_path / "outside").exists() and not any((tmp_path / "models" / ".uploads").iterdir())
