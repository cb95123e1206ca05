"""The check before saving: silent on a model whose card fits, and each warning with its cause on what a card that
does not fit does to a model (non-finite logits, every image one class, chance accuracy on labelled images)."""
from __future__ import annotations

import torch
from torch import nn

from core.importers import check
from core.modelling.cards import ModelCard


class Colour(nn.Module):
    """Predicts the image's brightest channel, with a margin (a model that is right on the images below)."""

    def forward(self, x):
        return 10 * x.mean(dim=(2, 3))


class Constant(nn.Module):
    def forward(self, x):
        return torch.tensor([[0.0, 5.0, 1.0]]).expand(len(x), 3) + 0 * x.mean()


class NaNs(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3)) * float("nan")


CARD = ModelCard(id="c", dataset="imported", arch="x", classes=["red", "green", "blue"], input_size=8, channels=3,
                 mean=[0.0] * 3, std=[1.0] * 3, target_layer="net", source={"format": "onnx"})


def images(n: int = 30) -> tuple[torch.Tensor, list[int]]:
    labels = [i % 3 for i in range(n)]
    x = torch.full((n, 3, 8, 8), 0.1)
    for i, c in enumerate(labels):
        x[i, c] = 0.9
    return x, labels


def test_a_card_that_fits_is_checked_in_silence():
    x, y = images()
    result = check(Colour(), CARD, x, y, "30 test images")
    assert result.warnings == [] and result.accuracy == 1.0 and result.balanced_accuracy == 1.0
    assert result.counts == {"red": 10, "green": 10, "blue": 10}
    assert result.lines()[0].startswith("checked on 30 images (30 test images)")


def test_classes_named_out_of_order_are_at_chance_with_the_likely_causes():
    x, y = images()
    shifted = [(c + 1) % 3 for c in y]  # the names are not in the order of the model's outputs
    result = check(Colour(), CARD, x, shifted)
    assert result.accuracy == 0.0 and len(result.warnings) == 1
    assert "about chance (33.3% for 3 classes)" in result.warnings[0] and "order of the model's outputs" in result.warnings[0]
    assert "mean / std" in result.warnings[0] and "BGR" in result.warnings[0]


def test_every_image_one_class_and_non_finite_logits_are_warned_of():
    x, _ = images()
    constant = check(Constant(), CARD, x)
    assert len(constant.warnings) == 1 and constant.warnings[0].startswith("every one of the 30 images is predicted as "
                                                                          "'green': likely causes: a wrong mean / std")
    nans = check(NaNs(), CARD, x)
    assert any("not finite (NaN or inf) for 30 of 30 images" in w for w in nans.warnings)
    # a test set of one class predicted as that class is no warning: its labels say so too
    x1 = x[[i for i in range(30) if i % 3 == 1]]
    assert check(Colour(), CARD, x1, [1] * len(x1)).warnings == []
