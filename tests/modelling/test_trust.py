"""When a prediction should not be believed: model flags from test metrics, OOD scores on inputs."""
import numpy as np
import pytest
import torch

from core import load_model
from core.modelling.cards import ModelCard
from core.modelling.trust import SATURATION_NOTE, model_warnings, ood_check, saturated
from tests.helpers import real_images


def card_with(per_class: dict, balanced: float | None = None, n: int = 300) -> ModelCard:
    m = {"n": n, "per_class": {c: {"precision": 0.5, "recall": r, "f1-score": 0.5, "support": n // len(per_class)}
                               for c, r in per_class.items()}}
    if balanced is not None:
        m["balanced_accuracy"] = balanced
    return ModelCard(id="m", dataset="d", arch="small_cnn", classes=list(per_class), input_size=32, channels=3,
                     mean=[0.5] * 3, std=[0.2] * 3, target_layer="x", metrics=m)


def test_a_chance_level_model_is_flagged_with_its_numbers():
    w = model_warnings(card_with({"a": 0.34, "b": 0.33, "c": 0.32}, balanced=0.33))
    assert any("near chance" in x and "33.0%" in x and "3 classes" in x for x in w), w
    # cards from before balanced accuracy was recorded: computed from the recalls
    assert any("near chance" in x for x in model_warnings(card_with({"a": 0.4, "b": 0.3, "c": 0.3})))


def test_a_class_the_model_rarely_recognises_is_flagged():
    w = model_warnings(card_with({"normal": 0.52 * 0 + 0.3, "pneumonia": 0.99}, balanced=0.645, n=200))
    assert len(w) == 1 and "'normal'" in w[0] and "30.0%" in w[0] and "(30 of 100 images)" in w[0]


def test_a_good_model_has_no_warnings_and_an_unevaluated_one_says_so():
    assert model_warnings(card_with({"a": 0.9, "b": 0.95}, balanced=0.925)) == []
    card = card_with({"a": 0.9, "b": 0.95})
    card.metrics = {}
    assert "no test metrics" in model_warnings(card)[0]


def test_saturation():
    assert saturated(0.9996) and not saturated(0.999)
    assert "not a certainty" in SATURATION_NOTE


def test_ood_threshold_flags_about_5_percent_of_own_test_images(shapes_model_dir):
    from core.modelling.evaluation import load_or_compute

    ev, card = load_or_compute(shapes_model_dir)
    o = ev.metrics["ood"]
    assert o["val_flag_rate"] == pytest.approx(0.05, abs=0.01)
    assert o["test_flag_rate"] <= 0.08, o


def _flag_rate(model_dir, images: torch.Tensor) -> float:
    model, _ = load_model(model_dir, device="cpu")
    results = ood_check(model, model_dir, images)
    return float(np.mean([r.flagged for r in results]))


def test_ood_score_separates_hand_made_out_of_distribution_images(shapes_model_dir):
    """Noise, flat grey and a smooth gradient are nothing like shapes on a background."""
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(16, 3, 32, 32, generator=g)
    flat = torch.full((4, 3, 32, 32), 0.5)
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(4, 3, 32, 32).clone()
    assert _flag_rate(shapes_model_dir, torch.cat([noise, flat, ramp])) >= 0.9


def test_a_shapes_model_flags_real_photographs_and_x_rays(shapes_model_dir):
    from core.datasets.images import open_image, preprocess

    files = real_images("dogs_vs_wolves", "pneumonia_224")
    x = torch.stack([preprocess(open_image(f), 32, 3)[0] for f in files])
    rate = _flag_rate(shapes_model_dir, x)
    assert rate >= 0.9, f"only {rate:.0%} of {len(files)} real photographs and X-rays flagged"


def test_ood_statistics_file_damage_is_a_precise_error(shapes_model_dir, tmp_path):
    import shutil

    from core.errors import CheckpointError
    from core.modelling.ood import OodDetector

    copy = tmp_path / "m"
    shutil.copytree(shapes_model_dir, copy)
    (copy / "ood.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="core evaluate"):
        OodDetector.load(copy)
    (copy / "ood.npz").unlink()
    assert OodDetector.load(copy) is None  # a model from before OOD scores: none, not an error
