"""torchvision's ImageNet classifiers as a model source: architectures, cards, weights (cache, given file, fetch),
preprocessing, which methods apply (ViT included), the photo workflow in the CLI and the app, and fine-tuning.

No real ImageNet weights exist on this machine: every test writes a random state dict of the right shapes under
torchvision's own file name in a temporary ``TORCH_HOME`` (what torchvision itself reads)."""
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import CheckpointError, NotApplicableError, TrainingError, explain, list_models, load_model, predict_proba
from core.modelling.architectures import build_model, traits_of
from core.explainers import hidden_methods
from core.datasets.images import open_image, preprocess_for
from core.modelling import pretrained
from tests.helpers import fake_weights, make_vit, real_images

ARCHS = ["resnet18", "resnet50", "densenet121", "efficientnet_b0", "vit_b_16", "vgg11", "vgg16"]


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.mark.parametrize("arch", ARCHS)
def test_our_build_computes_torchvisions_function_with_its_parameter_names(arch):
    """Our ResNets and DenseNet make every ReLU a separate module (DeepLIFT, guided backprop): the same function,
    the same parameter names, so torchvision's files load strictly."""
    from torchvision.models import get_model

    torch.manual_seed(1)
    ref = get_model(arch).eval()
    for m in ref.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.02)
    ours = build_model(arch, 1000, 3, [0.0] * 3, [1.0] * 3).eval()
    ours.net.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_card_comes_from_torchvisions_metadata_offline(arch, torch_home):
    w = pretrained.weights_enum(arch)
    card = pretrained.imagenet_card(arch)
    t = w.transforms()
    assert card.id == f"imagenet-{arch}" and card.dataset == "imagenet" and card.channels == 3
    assert card.classes == list(w.meta["categories"]) and len(card.classes) == 1000
    assert card.input_size == t.crop_size[0] and card.resize_size == t.resize_size[0]
    assert card.interpolation == t.interpolation.value and card.mean == list(t.mean) and card.std == list(t.std)
    assert card.training["published_imagenet_1k"] == w.meta["_metrics"]["ImageNet-1K"]
    assert card.weights_sha256 == "" and card.training["file"] is None  # no weights here yet
    card.validate()


def test_known_preprocessing_differences_are_taken_from_the_weights():
    assert pretrained.imagenet_card("resnet50").resize_size == 232  # V2 weights: resize 232, crop 224
    assert pretrained.imagenet_card("efficientnet_b0").interpolation == "bicubic"


@pytest.mark.parametrize("arch", ["resnet50", "efficientnet_b0"])
def test_preprocessing_equals_the_weights_own_transform(arch):
    """On a real photo: our input (in [0, 1]; the model normalises inside) is torchvision's transform undone."""
    w = pretrained.weights_enum(arch)
    card = pretrained.imagenet_card(arch)
    photo = real_images("dogs_vs_wolves")[0]
    img = open_image(photo)
    ours, display = preprocess_for(img, card)
    ref = w.transforms()(img.convert("RGB"))
    mean, std = torch.tensor(card.mean).view(3, 1, 1), torch.tensor(card.std).view(3, 1, 1)
    torch.testing.assert_close(ours, ref * std + mean, rtol=0, atol=1e-5)
    assert display.shape[0] == display.shape[1] >= 224  # the same crop at the photo's own resolution


def test_missing_weights_say_which_file_from_where_everywhere(torch_home, capsys):
    from core.faces.cli import main

    with pytest.raises(TrainingError) as err:
        load_model("imagenet-resnet50")
    msg = str(err.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in msg
    assert str(torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in msg
    assert "python -m core fetch-weights resnet50" in msg and "--from FILE" in msg
    listed = {c.id: c for _, c in list_models(dataset="imagenet")}
    assert sorted(listed) == sorted(f"imagenet-{a}" for a in ARCHS)
    assert main(["list"]) == 0
    assert "weights missing: python -m core fetch-weights vit_b_16" in capsys.readouterr().out
    assert main(["explain", "--model", "imagenet-resnet50", "--image", str(real_images("dogs_vs_wolves")[0]),
                 "--out", str(torch_home / "out")]) == 2
    assert "fetch-weights resnet50" in capsys.readouterr().err


def test_weights_from_the_torch_cache_load_weights_only_into_the_card(torch_home):
    state = fake_weights("resnet18")
    model, card = load_model("imagenet-resnet18")
    torch.testing.assert_close(model.net.conv1.weight, state["conv1.weight"])
    path = pretrained.cache_path("resnet18")
    assert card.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and card.training["file"] == str(path)
    assert [c.weights_sha256 for _, c in list_models(dataset="imagenet") if c.arch == "resnet18"] == [card.weights_sha256]


def test_densenet_files_with_torchvisions_old_key_names_load(torch_home):
    """torchvision's published DenseNet files say ``norm.1``; its own loader renames them, and so does ours."""
    import re

    state = fake_weights("densenet121")
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])", r"\1.\2", k): v for k, v in state.items()
           if not k.endswith("num_batches_tracked")}  # as in the published file (older than that counter)
    assert old.keys() != state.keys()
    torch.save(old, pretrained.cache_path("densenet121"))
    model, _ = load_model("imagenet-densenet121")
    torch.testing.assert_close(model.net.features.denseblock1.denselayer1.norm1.weight,
                               state["features.denseblock1.denselayer1.norm1.weight"])


def test_a_given_file_is_checked_then_remembered(torch_home, tmp_path):
    good = tmp_path / "my_resnet18.pth"
    state = fake_weights("resnet18")
    pretrained.cache_path("resnet18").rename(good)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, wrong)
    pickled = tmp_path / "pickled.pth"
    pickled.write_bytes(b"not torch")
    with pytest.raises(CheckpointError, match="does not fit torchvision's resnet18"):
        pretrained.use_weights_file("resnet18", wrong)
    with pytest.raises(CheckpointError, match="not a readable PyTorch state dict"):
        pretrained.use_weights_file("resnet18", pickled)
    with pytest.raises(TrainingError, match="does not exist"):
        pretrained.use_weights_file("resnet18", tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="does not fit torchvision's resnet50"):
        pretrained.use_weights_file("resnet50", good)
    notes = pretrained.use_weights_file("resnet18", good)
    assert notes and "not torchvision's published file" in notes[0]
    assert pretrained.find_weights("resnet18") == good.resolve()
    model, card = load_model("imagenet-resnet18")
    torch.testing.assert_close(model.net.fc.weight, state["fc.weight"])
    assert card.training["file"] == str(good.resolve())


def test_a_file_that_is_not_the_published_one_is_flagged_everywhere_and_loses_the_published_accuracy(
        torch_home, monkeypatch, capsys):
    """Random tensors of the right shapes under torchvision's file name: the card, the model list's label, the
    trust warnings, `core list` and the API's /models all say it is not the published file, and none shows
    torchvision's published accuracy for it. With the published digest it is the published model again."""
    from fastapi.testclient import TestClient

    from core.faces.api import create_app
    from core.faces.cli import main
    from core.modelling.trust import model_warnings
    from ui.pickers import model_label

    fake_weights("resnet18")
    _, card = load_model("imagenet-resnet18")
    assert card.training["published_file"] is False and not card.training["published_imagenet_1k"]
    warnings = model_warnings(card)
    assert len(warnings) == 1 and "not torchvision's published resnet18 file" in warnings[0]
    assert card.weights_sha256[:8] in warnings[0] and "69.8" not in warnings[0]
    assert "NOT the published weights" in model_label(card) and "69.8" not in model_label(card)
    assert pretrained.published_accuracy(card) == "NOT torchvision's published weights: accuracy unknown"
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    line = next(l for l in out.splitlines() if "imagenet-resnet18 " in l)
    assert "accuracy unknown" in line and "69.8" not in line
    assert "WARNING: imagenet-resnet18: its weights file resnet18-f37072fd.pth is not torchvision's published" in err
    listed = {m["id"]: m for m in TestClient(create_app()).get("/models").json()}
    got = listed["imagenet-resnet18"]
    assert got["published_top1"] is None and got["published_weights"] is False and got["warnings"] == warnings
    assert listed["imagenet-resnet50"]["published_top1"] > 80 and listed["imagenet-resnet50"]["warnings"] == []
    # the published file (its digest starts with the published prefix) keeps the published accuracy, no warning
    monkeypatch.setattr(pretrained, "published_sha256_prefix", lambda arch: card.weights_sha256[:8])
    _, card = load_model("imagenet-resnet18")
    assert card.training["published_file"] is True and model_warnings(card) == []
    assert "top-1 69.8% published" in model_label(card) and "acc@1 69.8%" in pretrained.published_accuracy(card)


def test_fetch_weights_checks_the_published_checksum_and_fails_offline_with_instructions(torch_home, tmp_path,
                                                                                          monkeypatch, capsys):
    from core.faces.cli import main

    source = tmp_path / "mirror" / "resnet18-f37072fd.pth"
    source.parent.mkdir()
    torch.save(build_model("resnet18", 1000, 3, [0.5] * 3, [0.5] * 3).net.state_dict(), source)
    dest = pretrained.cache_path("resnet18")
    # the random file is not torchvision's: the checksum refuses it and nothing is left in the cache
    with pytest.raises(CheckpointError, match="failed torchvision's checksum"):
        pretrained.fetch_weights("resnet18", url=source.as_uri(), progress=False)
    assert not dest.exists() and not list(dest.parent.glob("*"))
    # offline (or a dead mirror): what to do instead
    assert main(["fetch-weights", "resnet18", "--url", (tmp_path / "gone.pth").as_uri(), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and str(dest) in err and "--from FILE" in err
    # a file whose digest matches the published prefix is saved where torchvision looks, and then used
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setattr(pretrained, "published_sha256_prefix", lambda arch: digest[:8])
    assert main(["fetch-weights", "resnet18", "--url", source.as_uri(), "--quiet"]) == 0
    assert dest.read_bytes() == source.read_bytes()
    assert load_model("imagenet-resnet18")[1].weights_sha256 == digest


EXPECTED_HIDDEN = {
    "resnet18": {"attention_rollout"},
    "resnet50": {"attention_rollout"},
    "densenet121": {"attention_rollout"},
    "efficientnet_b0": {"attention_rollout", "deeplift", "guided_backprop", "guided_grad_cam"},
    "vit_b_16": {"deeplift", "guided_backprop", "guided_grad_cam"},
    "vgg11": {"attention_rollout"},
    "vgg16": {"attention_rollout"},
}


@pytest.mark.parametrize("arch", ARCHS)
def test_which_methods_each_imagenet_architecture_hides_and_why(arch):
    model = build_model(arch, 10, 3, [0.5] * 3, [0.5] * 3)
    hidden = hidden_methods(model)
    assert set(hidden) == EXPECTED_HIDDEN[arch]
    for m, why in hidden.items():
        assert len(why) > 40  # a reason a user can act on, declared by the method
        with pytest.raises(NotApplicableError, match="does not apply to this model"):
            explain(model, torch.rand(3, 64, 64) if arch != "vit_b_16" else torch.rand(3, 224, 224), m)


def test_a_hand_built_vit_gets_the_same_traits_as_the_registered_one():
    assert traits_of(make_vit()) == traits_of(build_model("vit_b_16", 3, 3, [0.5] * 3, [0.5] * 3))


def test_rollout_by_hand():
    """Two layers, one head, three tokens: rollout = norm(0.5 A2 + 0.5 I) @ norm(0.5 A1 + 0.5 I), by hand."""
    from core.explainers.attention_rollout import rollout

    a1 = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.6, 0.2], [0.0, 0.0, 1.0]])
    a2 = torch.tensor([[0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, 0.5]])
    eye = torch.eye(3)
    expected = (0.5 * a2 + 0.5 * eye) @ (0.5 * a1 + 0.5 * eye)  # rows already sum to 1
    got = rollout([a1[None, None], a2[None, None]])[0]
    torch.testing.assert_close(got, expected)
    # head fusion: the max over two heads, renormalised after adding the identity
    heads = torch.stack([a1, a2])[None]
    fused = 0.5 * torch.maximum(a1, a2) + 0.5 * eye
    torch.testing.assert_close(rollout([heads], "max")[0], fused / fused.sum(-1, keepdim=True))
    # discarding the lowest weights never drops attention to the class token (column 0)
    low = rollout([torch.tensor([[[[0.01, 0.5, 0.49], [0.01, 0.98, 0.01], [0.02, 0.0, 0.98]]]])], discard_ratio=0.5)[0]
    assert (low[:, 0] > 0).all()


def test_rollout_reads_the_models_real_attention_and_gives_a_flat_map_for_uniform_attention():
    from core.explainers.attention_rollout import attention_weights

    model = make_vit(seed=4)
    x = torch.rand(1, 3, 32, 32)
    layer0 = model.net.encoder.layers[0]
    seen = {}
    h = layer0.ln_1.register_forward_hook(lambda m, i, o: seen.setdefault("tokens", o.detach()))
    weights = attention_weights(model, x)
    h.remove()
    assert len(weights) == 2 and weights[0].shape == (1, 2, 17, 17)
    # layer 0's attention by hand from its input and projection weights
    t = seen["tokens"][0]
    wq, wk, _ = layer0.self_attention.in_proj_weight.chunk(3)
    bq, bk, _ = layer0.self_attention.in_proj_bias.chunk(3)
    q, k = (t @ wq.T + bq).view(17, 2, 8).transpose(0, 1), (t @ wk.T + bk).view(17, 2, 8).transpose(0, 1)
    by_hand = torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5, dim=-1)
    torch.testing.assert_close(weights[0][0], by_hand, rtol=1e-4, atol=1e-6)
    # zero query and key projections: uniform attention everywhere, so every patch gets the same share
    with torch.no_grad():
        for layer in model.net.encoder.layers:
            layer.self_attention.in_proj_weight[:32].zero_()
            layer.self_attention.in_proj_bias[:32].zero_()
    e = explain(model, x[0], "attention_rollout")
    assert e.flat
    # (0.5 U + 0.5 I)^2 = 0.25 I + 0.75 U: each of the 16 patches gets 0.75 / 17 of the class token's flow
    assert e.attribution.mean() == pytest.approx(0.75 / 17, rel=1e-4)


def test_vit_b16_cam_and_rollout_at_224_px():
    """The registered ViT-B/16: Grad-CAM through the 14 x 14 token grid, and attention rollout."""
    torch.manual_seed(0)
    model = build_model("vit_b_16", 5, 3, [0.5] * 3, [0.25] * 3).eval()
    torch.nn.init.normal_(model.net.heads.head.weight, std=0.02)
    x = torch.rand(3, 224, 224)
    cam = explain(model, x, "grad_cam")
    assert cam.attribution.shape == (224, 224) and not cam.flat
    # a 14 x 14 grid upsampled: at most 14 distinct values along a row's cell centres
    centres = cam.attribution[8, 8::16]
    assert len(centres) == 14
    rollout = explain(model, x, "attention_rollout")
    assert rollout.attribution.shape == (224, 224) and rollout.attribution.min() >= 0
    assert 0 < rollout.attribution[8::16, 8::16].sum() <= 1.0 + 1e-5  # a share of the class token's flow


def test_the_photo_workflow_in_the_cli_top5_and_maps_equal_the_library(torch_home, tmp_path):
    from core.faces.cli import main

    fake_weights("resnet18")
    photo = real_images("dogs_vs_wolves")[0]
    out = tmp_path / "out"
    assert main(["explain", "--model", "imagenet-resnet18", "--image", str(photo), "--methods",
                 "grad_cam,integrated_gradients", "--param", "integrated_gradients.n_steps=8", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    model, card = load_model("imagenet-resnet18")
    x, _ = preprocess_for(open_image(photo), card)
    proba = predict_proba(model, x[None])[0]
    top = np.argsort(-proba)[:5]
    assert [t["class"] for t in summary["top_k"]] == top.tolist()
    assert [t["probability"] for t in summary["top_k"]] == pytest.approx(proba[top].tolist(), rel=1e-5)
    assert summary["top_k"][0]["name"] == card.classes[top[0]]
    ig = explain(model, x, "integrated_gradients", n_steps=8)
    np.testing.assert_allclose(np.load(out / "integrated_gradients.npy"), ig.attribution, rtol=1e-5, atol=1e-7)
    assert (out / "grad_cam.png").is_file()
    # a third-ranked class can be explained too
    third = int(top[2])
    assert main(["explain", "--model", "imagenet-resnet18", "--image", str(photo), "--methods", "grad_cam",
                 "--target", str(third), "--out", str(tmp_path / "o3")]) == 0
    assert json.loads((tmp_path / "o3" / "summary.json").read_text())["methods"]["grad_cam"]["target"] == third


# ------------------------------------------------------------------------------------------------ the app
from tests.helpers import APP

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _explain_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/explain.py").run()
    at.selectbox(key="dataset").set_value("imagenet").run()
    return at


def test_app_photo_top5_then_any_class_explained(torch_home, tiny_model_dir):
    fake_weights("resnet18")
    at = _explain_page()
    at.selectbox(key="model").set_value(str(list_models(dataset="imagenet")[0][0])).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    photo = real_images("dogs_vs_wolves")[0]
    at.file_uploader(key="upload").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    at.multiselect(key="methods").set_value(["grad_cam"]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    model, card = load_model("imagenet-resnet18")
    proba = predict_proba(model, preprocess_for(open_image(photo), card)[0][None])[0]
    top = [int(c) for c in np.argsort(-proba)[:5]]
    top5 = next(m.value for m in at.markdown if m.value.startswith("**Top 5:**"))
    for k, c in enumerate(top):
        assert f"{k + 1}. {card.classes[c]} ({proba[c]:.1%})" in top5
    box = at.selectbox(key="target")
    assert box.options[1:6] == [f"{c}: {card.classes[c]} — top {k + 1}, {proba[c]:.1%}" for k, c in enumerate(top)]
    assert len(box.options) == 1001  # every class can be searched
    box.set_value(top[2]).run()
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert any(c.startswith(f"Grad-CAM → {card.classes[top[2]]}") for c in caps), caps
    hidden = next(e for e in at.expander if "not offered" in e.label)
    assert "Attention rollout" in hidden.markdown[0].value
    assert any("No out-of-distribution check for ImageNet models" in c.value for c in at.caption)
    assert at.selectbox(key="split").disabled  # no dataset images to pick a split of
    # random weights: the model box says so, and the warning stays above the maps on every rerun
    assert "NOT the published weights" in at.selectbox(key="model").format_func(at.selectbox(key="model").value)
    for _ in range(2):
        assert sum("not torchvision's published resnet18 file" in w.value for w in at.warning) == 1
        at.run()


def test_app_vit_hides_three_methods_with_their_reasons_and_explains(torch_home, tiny_model_dir):
    fake_weights("vit_b_16")
    at = _explain_page()
    vit = str(next(p for p, c in list_models(dataset="imagenet") if c.arch == "vit_b_16"))
    at.selectbox(key="model").set_value(vit).run()
    # the cheap methods first: the default set includes Integrated Gradients, tens of seconds on ViT-B/16 at 224 px
    at.session_state["methods"] = ["grad_cam", "attention_rollout"]  # the picker shows once there is an image
    photo = real_images("dogs_vs_wolves")[0]
    at.file_uploader(key="upload").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    offered = at.multiselect(key="methods").options
    assert "Attention rollout" in offered and not {"DeepLIFT", "Guided Backprop", "Guided Grad-CAM"} & set(offered)
    hidden = next(e for e in at.expander if "3 methods not offered" in e.label)
    assert all(t in hidden.markdown[0].value + hidden.markdown[1].value + hidden.markdown[2].value
               for t in ("DeepLIFT", "Guided Backprop", "GELU"))
    at.multiselect(key="methods").set_value(["grad_cam", "attention_rollout"]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert any(c.startswith("Grad-CAM → ") for c in caps)
    assert any(c.startswith("Attention rollout (the same map for every class)") for c in caps)


def test_app_missing_weights_say_how_and_take_a_file(torch_home, tmp_path, tiny_model_dir):
    at = _explain_page()
    r50 = str(next(p for p, c in list_models(dataset="imagenet") if c.arch == "resnet50"))
    at.selectbox(key="model").set_value(r50).run()
    assert not at.exception
    assert any("fetch-weights resnet50" in w.value and "resnet50-11ad3fa6.pth" in w.value for w in at.warning)
    shown = [e.value for e in [*at.warning, *at.markdown, *at.info, *at.caption]]
    assert sum(pretrained.weights_enum("resnet50").url in v for v in shown) == 1  # the instructions once
    given = tmp_path / "r50.pth"
    fake_weights("resnet50")
    shutil.move(pretrained.cache_path("resnet50"), given)
    use = next(b for b in at.button if b.label == "Use this file")  # the form's submit button
    use.click().run()
    assert any("Type the path of the weights file first" in e.value for e in at.error)
    at.text_input(key="weights_path_resnet50").set_value(str(given))
    next(b for b in at.button if b.label == "Use this file").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.selectbox(key="model").set_value(r50).run()
    assert not any("fetch-weights resnet50" in w.value for w in at.warning)
    # a random file: not the published accuracy, and a warning that stays while the model is used
    assert not any("80.9%" in c.value for c in at.caption)
    assert any("NOT torchvision's published weights: accuracy unknown" in c.value for c in at.caption)
    for _ in range(2):
        assert any("r50.pth is not torchvision's published resnet50 file" in w.value for w in at.warning)
        at.run()


def test_fine_tuning_a_resnet18_from_imagenet_weights_on_the_train_page(torch_home, tmp_path, monkeypatch,
                                                                         tiny_model_dir):
    from tests.helpers import rerun_until

    state = fake_weights("resnet18")
    models = tmp_path / "models"
    monkeypatch.setenv("XAI_MODELS_DIR", str(models))
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train.shapes.size").set_value(32).run()
    at.selectbox(key="train.shapes.arch").set_value("resnet18").run()
    at.checkbox(key="train.shapes.pretrained.resnet18").check().run()
    at.number_input(key="train.shapes.epochs").set_value(1).run()
    assert at.number_input(key="train.shapes.lr.True").value == pytest.approx(1e-4)  # the lower fine-tuning rate
    at.button(key="train.start").click().run()
    rerun_until(at, lambda a: bool(a.success) or bool(a.error))
    assert not at.error, [e.value for e in at.error]
    (path, card), = list_models(models)
    assert any("initialised from ImageNet weights resnet18-f37072fd.pth" in n for n in card.training["notes"])
    assert card.mean == pretrained.IMAGENET_MEAN
    # frozen by default? whatever the page chose, the stem started from the file's weights
    trained, _ = load_model(path)
    assert trained.net.conv1.weight.shape == state["conv1.weight"].shape


def test_vit_training_needs_224_px(tmp_path):
    from core.modelling.training import TrainConfig, preflight

    with pytest.raises(TrainingError, match="vit_b_16 takes 224 px images only"):
        preflight(TrainConfig(arch="vit_b_16", size=64))


def test_fine_tuning_from_imagenet_weights_from_the_cli_on_a_local_image_folder(torch_home, tmp_path):
    """`train --pretrained` on a folder of real X-rays (grey): ResNet-18 from the cached file, conv1 summed over
    colour, the frozen stem unchanged after training, ImageNet normalisation in the card."""
    from core.faces.cli import main

    state = fake_weights("resnet18")
    files = real_images("pneumonia_224")
    root = files[0].parents[2]  # .../pneumonia_224/{train,val,test}/{normal,pneumonia}/
    models = tmp_path / "models"
    rc = main(["--models-dir", str(models), "train", "--dataset", "folder", "--data-dir", str(root), "--arch",
               "resnet18", "--pretrained", "--freeze", "conv1,bn1", "--size", "64", "--epochs", "1",
               "--batch-size", "8", "--model-id", "xray-ft"])
    assert rc == 0
    model, card = load_model(models / "xray-ft")
    assert card.channels == 1 and card.mean == [float(np.mean(pretrained.IMAGENET_MEAN))]
    notes = " ".join(card.training["notes"])
    assert "resnet18-f37072fd.pth" in notes and "summed over colour" in notes
    torch.testing.assert_close(model.net.conv1.weight.cpu(), state["conv1.weight"].sum(1, keepdim=True))
