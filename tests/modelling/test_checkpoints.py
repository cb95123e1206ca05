import json
import re
from pathlib import Path

import pytest
import torch

from core import CheckpointError, ModelCard, load_model, save_model
from core.modelling.checkpoints import list_models
from tests.helpers import ROOT, make_classifier


def _card(model, **kw):
    d = dict(id="m1", dataset="shapes", arch="small_cnn", classes=["a", "b", "c"], input_size=32, channels=3,
             mean=[0.5] * 3, std=[0.25] * 3, target_layer=model.target_layer)
    d.update(kw)
    return ModelCard(**d)


def test_roundtrip_gives_identical_outputs(tmp_path):
    model = make_classifier(3, 3, seed=1)
    # Move BatchNorm statistics away from their defaults so a lost buffer would show.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = save_model(model, _card(model), tmp_path)
    loaded, card = load_model(path, device="cpu")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert card.classes == ["a", "b", "c"] and len(card.weights_sha256) == 64 and card.created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m1"]  # no temporary folders left behind
    assert [c.id for _, c in list_models(tmp_path)] == ["m1"]


def test_save_replaces_existing_model(tmp_path):
    a, b = make_classifier(3, 3, seed=1), make_classifier(3, 3, seed=2)
    save_model(a, _card(a), tmp_path)
    save_model(b, _card(b), tmp_path)
    loaded, _ = load_model(tmp_path / "m1", device="cpu")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), b(x), rtol=0, atol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m1"]


@pytest.fixture
def saved(tmp_path):
    model = make_classifier(3, 3)
    return save_model(model, _card(model), tmp_path)


def test_missing_model(tmp_path):
    with pytest.raises(CheckpointError, match="card.json is missing"):
        load_model(tmp_path / "nothing")


def test_corrupt_weights_detected_by_digest(saved):
    w = saved / "weights.pt"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_model(saved)


def test_garbage_weights_without_digest(saved):
    card = json.loads((saved / "card.json").read_text())
    card["weights_sha256"] = ""
    (saved / "card.json").write_text(json.dumps(card))
    (saved / "weights.pt").write_bytes(b"garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable PyTorch state dict"):
        load_model(saved)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_are_refused(saved):
    torch.save({"x": Evil()}, saved / "weights.pt")
    card = json.loads((saved / "card.json").read_text())
    card["weights_sha256"] = ""
    (saved / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="never loaded; save the model's state_dict") as info:
        load_model(saved)
    assert "weights_only=False" not in str(info.value)  # never advise disabling the safe loader
    (saved / "weights.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="truncated, or not a PyTorch file") as info:
        load_model(saved)
    assert "weights_only" not in str(info.value)


def test_weights_of_another_architecture(saved):
    card = json.loads((saved / "card.json").read_text())
    card["classes"] = ["a", "b"]  # head now has 2 outputs, weights have 3
    (saved / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"does not fit architecture 'small_cnn' with 2 classes.*shape mismatch"):
        load_model(saved)
    card["arch"] = "resnet18_small"
    (saved / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="missing .* tensors"):
        load_model(saved)
    card["arch"] = "alexnet"
    (saved / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="Unknown architecture 'alexnet'"):
        load_model(saved)


def test_bad_card(saved):
    (saved / "card.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(saved)
    (saved / "card.json").write_text(json.dumps({"id": "x"}))
    with pytest.raises(CheckpointError, match="lacks dataset"):
        load_model(saved)


def test_every_torch_load_uses_weights_only():
    """Guard for the project rule: no torch.load without weights_only=True anywhere in our code."""
    offenders = []
    for py in list(ROOT.glob("core/**/*.py")) + list(ROOT.glob("ui/**/*.py")) + list(ROOT.glob("pages/*.py")):
        for call in re.findall(r"torch\.load\((.*?)\)", py.read_text(), flags=re.S):
            if "weights_only=True" not in call:
                offenders.append(str(py))
    assert offenders == []


def test_a_model_id_cannot_escape_the_models_folder(tmp_path, capsys):
    """`train --model-id "/../../x/victim"` once wrote outside models/ and removed an existing folder there."""
    from core.faces.cli import main

    models = tmp_path / "a" / "b" / "models"
    victim = tmp_path / "x" / "victim"
    victim.mkdir(parents=True)
    (victim / "precious.txt").write_text("keep me")
    for bad in ("/../../x/victim", "../victim", ".hidden", "a/b", "x" * 101, "name with space", "..", "ok\x00"):
        assert main(["--models-dir", str(models), "train", "--epochs", "1", "--max-train", "32", "--size", "16",
                     "--model-id", bad]) == 2, bad
        assert "is not allowed" in capsys.readouterr().err
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not models.exists() or not any(models.iterdir())  # refused before any work: nothing written


def test_saved_models_and_settings_follow_the_umask(tmp_path, monkeypatch):
    """tempfile creates 0700 folders and 0600 files: a model saved by one user was unreadable by an app server
    running as another."""
    import stat

    from core import settings
    from core.io import shared_mode
    from core.modelling.training import TrainConfig, train

    _, _, path = train(TrainConfig(epochs=1, max_train=32, size=16, model_id="perm"), None, tmp_path / "models")
    assert stat.S_IMODE(path.stat().st_mode) == shared_mode(directory=True)
    for f in path.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == shared_mode(), f
    monkeypatch.setenv("XAI_DATA_DIR", str(tmp_path / "data"))
    settings.remember_dataset_root("folder", tmp_path)
    assert stat.S_IMODE(settings.settings_path().stat().st_mode) == shared_mode()
    assert shared_mode() & 0o044  # readable by others under the usual umask (022)


KILL_AT = """
import os, sys
from pathlib import Path
import core.modelling.checkpoints as ck
from core import load_model
model, card = load_model(sys.argv[1])
card.training = {**card.training, "generation": "new"}
real, calls = os.replace, []
def replace(a, b):
    if Path(a).is_dir():  # the folder moves of a replacement (files inside are written atomically too)
        calls.append((a, b))
        if len(calls) == int(sys.argv[3]):
            os._exit(9)  # killed at this step: nothing after it runs
    return real(a, b)
ck.os.replace = replace
ck.save_model(model, card, sys.argv[2])
"""


@pytest.mark.parametrize("step", [1, 2])
def test_a_kill_during_replacement_loses_no_model(saved, tmp_path, step):
    """Killed before the old folder moves aside (1) or between the two moves (2): the model is still listed
    and loads, the old or the new one, never neither."""
    import subprocess
    import sys

    from core.modelling.checkpoints import list_models
    from tests.helpers import ROOT

    models = saved.parent
    rc = subprocess.run([sys.executable, "-c", KILL_AT, str(saved), str(models), str(step)], cwd=ROOT).returncode
    assert rc == 9
    model, card = load_model(saved)  # loading it directly recovers it too
    assert [p for p, c in list_models(models) if c.id == saved.name] == [saved]
    assert card.training.get("generation") != "new"  # the publish never happened: the old model is back
    assert not [p for p in models.iterdir() if p.name.startswith(".")]  # no hidden copy left as litter


@pytest.mark.parametrize("field,value,message", [
    ("channels", 2, "'channels' must be 1 or 3"), ("channels", "3", "'channels' must be 1 or 3"),
    ("mean", [0.5], "'mean' must be 3 finite numbers"), ("std", [0.2, 0.2, 0.0], "'std' must be 3 positive"),
    ("input_size", 0, "'input_size' must be"), ("input_size", -5, "'input_size' must be"),
    ("input_size", "64", "'input_size' must be"), ("classes", "abc", "'classes' must be a list"),
    ("classes", ["only"], "'classes' must be a list"), ("arch", 7, "'arch' must be a non-empty string"),
    ("metrics", [], "'metrics' must be an object"),
])
def test_every_card_field_is_checked_on_load(saved, field, value, message):
    card = json.loads((saved / "card.json").read_text())
    card[field] = value
    (saved / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=message):
        load_model(saved)


@pytest.mark.parametrize("edit,message", [
    ({"input_size": 64, "training": {"size": 32}},
     "model card says input_size 64 px but the model was trained at 32 px \\(training.size\\): set input_size to 32"),
    ({"target_layer": "net.no_such_layer"}, "model card's target_layer 'net.no_such_layer' is not a layer of small_cnn"),
])
def test_a_card_that_contradicts_its_model_is_refused_with_the_numbers_everywhere(saved, edit, message, capsys):
    """A card whose input size is not the size it was trained at, or whose target layer does not exist, is refused
    (before: the CLI ran at the card's size and the pages picked the first conv layer), in the library, in the model
    lists (broken, with the reason) and in the CLI."""
    from core.faces.cli import main
    from core.modelling.checkpoints import broken_models

    card = json.loads((saved / "card.json").read_text())
    card.update(edit)
    (saved / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=message):
        load_model(saved)
    if "input_size" in edit:  # refused from the card alone: listed as broken
        assert [p for p, _ in list_models(saved.parent)] == []
        assert re.search(message, dict(broken_models(saved.parent))[saved])
    x = saved.parent / "x.png"
    from PIL import Image
    Image.new("RGB", (32, 32), "red").save(x)
    assert main(["explain", "--model", str(saved), "--image", str(x), "--methods", "grad_cam",
                 "--out", str(saved.parent / "out")]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_broken_models_are_listed_with_the_reason_not_hidden(saved, capsys):
    from core.modelling.checkpoints import broken_models, list_models
    from core.faces.cli import main

    models = saved.parent
    (saved / "card.json").write_text("{not json")
    assert [p for p, _ in list_models(models)] == []
    broken = broken_models(models)
    assert [p for p, _ in broken] == [saved] and "not valid JSON" in broken[0][1]
    assert main(["--models-dir", str(models), "list"]) == 0
    out = capsys.readouterr().out
    assert f"{saved}  BROKEN: " in out and "not valid JSON" in out


def test_ensure_demo_verifies_and_retrains_a_corrupt_demo(tmp_path, monkeypatch):
    import core.modelling.training as training
    from core import config

    calls = []
    monkeypatch.setattr(training, "train", lambda cfg, progress, root: calls.append(cfg.model_id) or (None, None, Path(root) / cfg.model_id))
    model = make_classifier(3, 3)
    path = save_model(model, _card(model, id=config.DEMO_MODEL_ID), tmp_path)
    assert training.ensure_demo_model(None, tmp_path) == path and calls == []  # a sound demo is kept
    (path / "weights.pt").write_bytes(b"corrupted")
    assert training.ensure_demo_model(None, tmp_path) == path and calls == [config.DEMO_MODEL_ID]


def test_a_weights_digest_is_read_once_and_again_when_the_file_changes(saved, monkeypatch):
    """The pickers check every model's weights on each page run: the digest is remembered per file version."""
    import builtins

    from core.modelling.cards import file_sha256

    weights = saved / "weights.pt"
    first = file_sha256(weights)
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    assert file_sha256(weights) == first and str(weights) not in opened  # not read again
    monkeypatch.undo()
    weights.write_bytes(weights.read_bytes() + b"x")
    assert file_sha256(weights) != first  # another size (and mtime): read again
