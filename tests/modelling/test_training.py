import math

import pytest
import torch

from core import TrainingError, UnknownNameError, load_model
from core.modelling.training import TrainConfig, train


def test_short_run_learns_and_reports(tmp_path):
    events = []
    model, card, path = train(TrainConfig(epochs=3, size=32, model_id="quick", seed=0), events.append, tmp_path)
    # chance is 25% on four balanced classes; this 3-epoch run at 32 px reached ~80% when written
    assert card.metrics["accuracy"] > 0.6, card.metrics
    assert card.metrics["n"] == 1000 and set(card.metrics["per_class"]) == {"circle", "square", "triangle", "cross"}
    assert all(0 <= v["f1-score"] <= 1 for v in card.metrics["per_class"].values())
    assert card.training["n_train"] == 4000 and card.input_size == 32 and card.training["epochs"] == 3 and card.training["seconds"] > 0
    steps = [e.step for e in events if e.step > 0]
    assert steps == sorted(steps) and steps[-1] == events[-1].total_steps == 3 * math.ceil(4000 / 64)
    assert events[-1].fraction == 1.0
    # loss falls over training
    losses = [e.loss for e in events if e.loss == e.loss]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    # mean/std recorded in the card are baked into the saved model
    loaded, card2 = load_model(path, device="cpu")
    torch.testing.assert_close(loaded.normalize.mean.flatten(), torch.tensor(card2.mean))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.cpu()(x))


def test_bad_settings(tmp_path):
    with pytest.raises(TrainingError, match="epochs"):
        train(TrainConfig(epochs=0), None, tmp_path)
    with pytest.raises(UnknownNameError, match="architecture"):
        train(TrainConfig(arch="nope"), None, tmp_path)


def test_balanced_loss_counters_a_skewed_training_set(tmp_path, monkeypatch):
    """With 1 circle per 9 squares, the balanced loss recalls circles far better than the plain one."""
    import numpy as np

    from core.datasets import shapes

    real = shapes.load

    def skewed(split, root, size=64):
        ds = real(split, root, size)
        if split == "train":
            keep = np.flatnonzero(ds.labels <= 1)
            keep = keep[(ds.labels[keep] == 1) | (np.arange(len(keep)) % 9 == 0)]
            ds = type(ds)(info=ds.info, split=split, images=ds.images[keep], labels=ds.labels[keep], masks=ds.masks[keep])
        return ds

    monkeypatch.setattr(shapes, "load", skewed)
    recall = {}
    for balanced in (False, True):  # class weighting off / on
        _, card, _ = train(TrainConfig(epochs=4, size=32, class_weighting="on" if balanced else "off", model_id=f"b{balanced}"),
                           None, tmp_path)
        recall[balanced] = card.metrics["per_class"]["circle"]["recall"]
    assert recall[True] > recall[False] + 0.1, recall


def test_tiny_folder_dataset_trains(tmp_path):
    """A dozen images (one batch per epoch) must train, not crash the scheduler."""
    from tests.helpers import make_tree

    tree = make_tree(tmp_path / "pets", split_layout=False)
    _, card, _ = train(TrainConfig(dataset="folder", data_root=str(tree), arch="small_cnn", epochs=3, size=32), None,
                       tmp_path / "models")
    assert card.classes == ["cats", "dogs"] and card.training["n_train"] > 0
    assert card.dataset_options["layout"] == "class folders" and card.dataset_options["split_seed"] == 0
    assert card.dataset_options["path"] == str(tree)


@pytest.mark.parametrize("setting,value,message", [
    ("batch_size", 0, "batch size"), ("batch_size", -1, "batch size"), ("max_train", 0, "max train images"),
    ("lr", float("nan"), "learning rate"), ("lr", -1.0, "learning rate"), ("seed", -1, "seed"),
    ("size", -5, "image size"), ("size", 0, "image size"), ("epochs", 0, "epochs"), ("epochs", 2.5, "epochs"),
    ("weight_decay", float("inf"), "weight decay"),
])
def test_every_training_setting_is_checked_before_any_work(setting, value, message, tmp_path):
    from core.errors import TrainingError
    from core.modelling.training import TrainConfig, train

    with pytest.raises(TrainingError, match=message):
        train(TrainConfig(**{setting: value}), None, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing saved


def test_training_settings_from_the_cli_get_the_same_messages(tmp_path, capsys):
    from core.faces.cli import main

    for args, message in ((["--batch-size", "0"], "batch size"), (["--max-train", "0"], "max train images"),
                          (["--lr", "nan"], "learning rate"), (["--seed", "-1"], "seed"), (["--size", "-5"], "image size")):
        assert main(["--models-dir", str(tmp_path), "train", *args]) == 2
        assert message in capsys.readouterr().err


def test_an_empty_test_split_is_refused_before_training(tmp_path):
    from core.errors import TrainingError
    from core.modelling.training import TrainConfig, train
    from tests.helpers import write_npz

    write_npz(tmp_path / "pneumoniamnist.npz", 28, rgb=False, n=(8, 2, 0))
    with pytest.raises(TrainingError, match="no test images"):
        train(TrainConfig(dataset="pneumoniamnist", data_root=str(tmp_path), size=28), None, tmp_path / "models")
