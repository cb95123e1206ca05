import math

import pytest
import torch

from core import TrainingError, UnknownNameError, load_model
from core.training import TrainConfig, train


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
