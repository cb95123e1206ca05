"""Training runs: per-epoch progress, best-epoch keeping, cancel and kill safety, MLflow tracking, freezing,
ImageNet initialisation, recipes, and the saved evaluation."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from core import Cancelled, TrainingError, list_models, load_model
from core.cancel import CancelToken
from core.modelling.training import TrainConfig, augment, recipe, train
from tests.helpers import ROOT, SHARED_DATA

QUICK = dict(epochs=3, size=32, max_train=600)


def quick(**kw) -> TrainConfig:
    return TrainConfig(**{**QUICK, **kw})


def test_progress_reports_every_epoch_with_curves_and_time_left(tmp_path):
    events = []
    _, card, path = train(quick(model_id="p"), events.append, tmp_path)
    ends = [e for e in events if e.history is not None]
    assert [len(e.history) for e in ends] == [1, 2, 3]
    h = ends[-1].history
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy", "best_epoch"} <= set(h[0])
    assert all(math.isfinite(r["val_loss"]) for r in h)
    left = [e.seconds_left for e in events if e.seconds_left is not None]
    assert left[-1] == 0 and left[0] > 0
    # the kept epoch is the best on val, and the card says which
    best = max(h, key=lambda r: (round(r["val_balanced_accuracy"], 6), r["val_roc_auc"]))
    assert card.training["best_epoch"] == best["epoch"] and card.training["status"] == "complete"
    assert card.training["validation"] == "the dataset's validation split"
    assert {"card.json", "weights.pt", "predictions.npz", "metrics.json", "ood.npz"} <= set(os.listdir(path))


def test_cancel_keeps_nothing(tmp_path):
    token = CancelToken()

    def stop_in_epoch_two(p):
        if p.epoch == 2:
            token.cancel()

    with pytest.raises(Cancelled, match="nothing was saved"):
        train(quick(model_id="c"), stop_in_epoch_two, tmp_path, cancel=token)
    assert list(tmp_path.iterdir()) == []  # no model, no half-written folder


def test_stop_and_keep_best_saves_the_best_epoch_so_far_labelled(tmp_path):
    token = CancelToken()

    def stop_in_epoch_three(p):
        if p.epoch == 3:
            token.cancel()

    _, card, path = train(quick(epochs=5, model_id="k"), stop_in_epoch_three, tmp_path, cancel=token,
                          keep_best_on_cancel=lambda: True)
    assert card.training["status"].startswith("cancelled during epoch 3 of 5")
    assert card.training["epochs_run"] == 2 and card.training["best_epoch"] in (1, 2)
    assert load_model(path)[1].training["status"] == card.training["status"]
    assert card.metrics["n"] == 1000  # evaluated on the test split like any model


def test_a_killed_training_leaves_no_corrupt_model(tmp_path):
    """SIGKILL in the middle of a CLI training: the model lists still load and hold no partial model."""
    models = tmp_path / "models"
    env = {**os.environ, "XAI_MODELS_DIR": str(models)}
    proc = subprocess.Popen([sys.executable, "-m", "core", "train", "--epochs", "50", "--size", "32", "--model-id", "killed"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline and "epoch 2/50" not in seen:
        seen += proc.stderr.read(64) or ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert "epoch 2/50" in seen
    assert list_models(models) == []
    assert not (models / "killed").exists()


def test_tracking_writes_a_run_that_mlflow_reads_back(tmp_path):
    from mlflow.tracking import MlflowClient

    from core.modelling.tracking import past_runs, tracking_uri

    _, card, _ = train(quick(model_id="tracked"), None, tmp_path)
    run_id = card.training["tracking"]["run_id"]
    client = MlflowClient(tracking_uri())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["arch"] == "small_cnn" and run.data.params["epochs"] == "3"
    assert run.data.metrics["test_accuracy"] == pytest.approx(card.metrics["accuracy"])
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1, 2, 3]
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"model_card.json", "confusion_matrix.png"} <= names
    listed = past_runs("shapes")
    assert listed[0]["run_id"] == run_id and listed[0]["model_id"] == "tracked"


def test_a_tracking_failure_is_a_warning_not_a_failed_training(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")  # a folder under a file
    events = []
    _, card, path = train(quick(epochs=1, model_id="untracked"), events.append, tmp_path / "models")
    assert (path / "weights.pt").is_file() and card.training["tracking"] == {}
    assert any(e.warning and "experiment tracking stopped" in e.warning for e in events)


def test_frozen_layers_keep_their_initial_weights(tmp_path):
    from core.modelling.architectures import build_model

    model, card, _ = train(quick(epochs=1, freeze=("features.block1",), model_id="f"), None, tmp_path)
    torch.manual_seed(0)
    fresh = build_model("small_cnn", 4, 3, card.mean, card.std)
    for name in ("net.features.block1.conv.weight", "net.features.block1.bn.running_mean"):
        torch.testing.assert_close(model.state_dict()[name].cpu(), fresh.state_dict()[name])
    assert not torch.equal(model.state_dict()["net.features.block2.conv.weight"].cpu(),
                           fresh.state_dict()["net.features.block2.conv.weight"])
    with pytest.raises(TrainingError, match="layers of this architecture are features.block1"):
        train(quick(freeze=("nope",)), None, tmp_path)


@pytest.fixture
def fake_imagenet_home(tmp_path, monkeypatch):
    """Random ResNet-18 weights saved under torchvision's own file name in a temporary TORCH_HOME."""
    from torchvision.models import resnet18

    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(123)
    state = resnet18().state_dict()
    torch.save(state, home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(home))
    return state


def test_imagenet_initialisation_from_the_torch_cache(tmp_path, fake_imagenet_home):
    from core.modelling.pretrained import IMAGENET_MEAN

    cfg = TrainConfig(arch="resnet18", pretrained=True, epochs=1, size=32, max_train=64, batch_size=32,
                      freeze=("conv1", "bn1", "layer1"), model_id="ft")
    model, card, _ = train(cfg, None, tmp_path)
    torch.testing.assert_close(model.net.conv1.weight.detach().cpu(), fake_imagenet_home["conv1.weight"])
    torch.testing.assert_close(model.net.layer1[0].conv1.weight.detach().cpu(), fake_imagenet_home["layer1.0.conv1.weight"])
    assert card.mean == IMAGENET_MEAN and any("ImageNet weights resnet18-f37072fd.pth" in n for n in card.training["notes"])


def test_imagenet_initialisation_of_a_grey_model_sums_the_colour_filters(tmp_path, fake_imagenet_home):
    from core.modelling.architectures import build_model
    from core.modelling.pretrained import init_from_imagenet

    model = build_model("resnet18", 2, 1, [0.45], [0.226])
    notes = init_from_imagenet(model, "resnet18")
    torch.testing.assert_close(model.net.conv1.weight, fake_imagenet_home["conv1.weight"].sum(1, keepdim=True))
    assert any("summed over colour" in n for n in notes)


def test_missing_imagenet_weights_say_which_file_from_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(TrainingError) as err:
        train(TrainConfig(arch="resnet18", pretrained=True, epochs=1, size=32), None, tmp_path / "m")
    msg = str(err.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "empty" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg
    with pytest.raises(TrainingError, match="no ImageNet weights"):
        train(TrainConfig(arch="small_cnn", pretrained=True), None, tmp_path / "m")


def test_augmentation_keeps_range_and_does_only_what_is_asked():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 16, 16)
    ident = TrainConfig(flip="none", rotation=0.0, shift=0.0, color_jitter=0.0)
    torch.testing.assert_close(augment(x, ident, g), x)
    out = augment(x, TrainConfig(flip="horizontal", rotation=0.0, shift=0.0, color_jitter=0.0), g)
    assert all(torch.equal(o, a) or torch.equal(o, a.flip(-1)) for o, a in zip(out, x))
    out = augment(x, TrainConfig(flip="both", rotation=30.0, shift=0.1, color_jitter=0.5), g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, x)
    grey = augment(torch.rand(4, 1, 16, 16), TrainConfig(flip="none", rotation=0.0, shift=0.0, color_jitter=0.5), g)
    assert grey.shape == (4, 1, 16, 16)


def test_recipes_and_unique_ids(tmp_path):
    r = recipe("pneumoniamnist")
    assert r["size"] == 28 and r["flip"] == "horizontal" and r["class_weighting"] == "auto"
    assert TrainConfig(dataset="pneumoniamnist").resolved().epochs == r["epochs"]
    assert TrainConfig(dataset="pneumoniamnist", epochs=2).resolved().epochs == 2
    _, a, _ = train(quick(epochs=1), None, tmp_path)
    _, b, _ = train(quick(epochs=1), None, tmp_path)
    assert (a.id, b.id) == ("shapes-small_cnn", "shapes-small_cnn-2")  # any number of models per dataset


def test_class_weighting_auto_turns_on_for_imbalanced_data(tmp_path):
    from tests.helpers import write_npz

    write_npz(tmp_path / "pneumoniamnist.npz", 28, rgb=False, n=(60, 20, 20))
    import numpy as np

    z = dict(np.load(tmp_path / "pneumoniamnist.npz"))
    z["train_labels"] = (np.arange(60) % 6 != 0).astype(np.uint8).reshape(-1, 1)  # 1 : 5
    np.savez(tmp_path / "pneumoniamnist.npz", **z)
    _, card, _ = train(TrainConfig(dataset="pneumoniamnist", data_root=str(tmp_path), epochs=1), None, tmp_path / "m")
    assert any(n.startswith("class weighting on (auto: the largest class has 5.0x") for n in card.training["notes"])


def test_evaluation_is_kept_beside_the_model_and_not_recomputed(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    from core.modelling import evaluation

    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    for f in ("predictions.npz", "metrics.json", "ood.npz"):
        (copy / f).unlink()
    ev, card = evaluation.load_or_compute(copy)  # a model from before: computed and written once
    assert (copy / "predictions.npz").is_file() and (copy / "ood.npz").is_file()
    assert ev.metrics["accuracy"] == pytest.approx(card.metrics["accuracy"])

    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(evaluation, "predict_proba", boom)
    again, _ = evaluation.load_or_compute(copy)  # e.g. after a restart
    np.testing.assert_array_equal(again.proba, ev.proba)
    (copy / "ood.npz").unlink()  # only the OOD statistics missing: they are fitted, the predictions reused
    refit, _ = evaluation.load_or_compute(copy)
    assert (copy / "ood.npz").is_file() and refit.ood is not None
    np.testing.assert_array_equal(refit.proba, ev.proba)
    # new weights (a different digest) make the saved evaluation stale
    meta = json.loads((copy / "metrics.json").read_text())
    meta["weights_sha256"] = "0" * 64
    (copy / "metrics.json").write_text(json.dumps(meta))
    with pytest.raises(AssertionError, match="recomputed"):
        evaluation.load_or_compute(copy)


def test_cli_evaluate_prints_the_tables_and_writes_the_files(tiny_model_dir, tmp_path, capsys):
    import shutil

    from core.faces.cli import main

    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "metrics.json").unlink()
    assert main(["evaluate", "--model", str(copy)]) == 0
    out = capsys.readouterr()
    assert "balanced accuracy" in out.out and "chance" in out.out and "circle" in out.out and "support" in out.out
    assert (copy / "metrics.json").is_file() and (copy / "predictions.npz").is_file()
    saved = json.loads((copy / "metrics.json").read_text())
    assert saved["metrics"]["n"] == 1000 and len(saved["curves"]["roc"]) == 4
    assert main(["evaluate", "--model", str(tmp_path / "nothing")]) == 2


def test_cli_train_uses_the_dataset_recipe_when_given_no_flags(tmp_path, capsys, monkeypatch):
    from core.faces.cli import main
    from tests.helpers import write_npz

    write_npz(tmp_path / "pneumoniamnist.npz", 28, rgb=False, n=(40, 10, 10))
    monkeypatch.setitem(__import__("core.modelling.training", fromlist=["RECIPES"]).RECIPES["pneumoniamnist"], "epochs", 1)
    assert main(["--models-dir", str(tmp_path / "m"), "train", "--dataset", "pneumoniamnist", "--data-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "size=28" in err and "flip=horizontal" in err and "rotation=10.0" in err


@pytest.mark.skipif(not (SHARED_DATA / "pneumoniamnist.npz").is_file(), reason="real PneumoniaMNIST file not in ../shared/data")
def test_real_pneumoniamnist_one_epoch_of_the_recipe_learns(tmp_path):
    """One epoch of the default recipe on the real file: far above chance, and the low-recall flag logic runs on it."""
    from core.modelling.trust import model_warnings

    _, card, _ = train(TrainConfig(dataset="pneumoniamnist", data_root=str(SHARED_DATA), epochs=1), None, tmp_path)
    assert card.metrics["roc_auc"] > 0.8 and card.input_size == 28
    assert any(n.startswith("class weighting on") for n in card.training["notes"])
    assert isinstance(model_warnings(card), list)
