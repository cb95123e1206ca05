"""Tensors given to the library: every bad kind through every entry point gets a precise ImageError (issue 9)."""
import numpy as np
import pytest
import torch

from core import ImageError, explain, explain_batch, predict, predict_proba
from tests.helpers import make_classifier

RGB = make_classifier(3, num_classes=3, seed=0)
GOOD = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _nan():
    x = GOOD.clone()
    x[0, 0, 0, 0] = float("nan")
    return x


def _inf():
    x = GOOD.clone()
    x[:, 2, 3, 4] = float("inf")
    return x


BAD = {  # kind -> (batch of two, expected message)
    "0..255 floats": (GOOD * 255, r"\[0, 1\], got \[.*\]; divide by 255"),
    "x1000": (GOOD * 1000, r"must be in \[0, 1\]"),
    "negative": (GOOD - 0.5, r"must be in \[0, 1\]"),
    "NaN": (_nan(), "non-finite"),
    "inf": (_inf(), "non-finite"),
    "one channel into an RGB model": (GOOD[:, :1], "takes 3-channel images, got 1"),
    "channels last": (GOOD.permute(0, 2, 3, 1), "channels-last"),
    "no batch axis or channel": (GOOD[0, 0], "expected (images|one image)"),
}

ENTRY_POINTS = {
    "predict": lambda x: predict(RGB, x[0]),
    "predict_proba": lambda x: predict_proba(RGB, x),
    "explain": lambda x: explain(RGB, x[0], "saliency"),
    "explain_batch": lambda x: explain_batch(RGB, x, "grad_cam"),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", BAD)
def test_bad_tensor_is_refused_precisely(kind, entry):
    x, message = BAD[kind]
    if kind == "no batch axis or channel" and entry in ("predict", "explain"):
        x = x[None]  # these take x[0]: a 2-D map
    with pytest.raises(ImageError, match=message):
        ENTRY_POINTS[entry](x)


def test_uint8_images_are_converted_unambiguously():
    as_uint8 = (GOOD * 255).round().to(torch.uint8)
    expected = predict_proba(RGB, as_uint8.float() / 255)
    np.testing.assert_allclose(predict_proba(RGB, as_uint8), expected, rtol=1e-6)
    np.testing.assert_allclose(predict(RGB, as_uint8[0].numpy()), expected[0], rtol=1e-6)


def test_one_image_where_a_batch_is_expected_and_vice_versa():
    with pytest.raises(ImageError, match="one image"):
        explain(RGB, GOOD, "saliency")
    with pytest.raises(ImageError, match="one image"):
        predict(RGB, GOOD)
    assert len(explain_batch(RGB, GOOD[0], "saliency")) == 1  # one (C, H, W) image is a batch of one


TINY = {  # image sizes the model cannot take
    "one pixel": torch.rand(3, 1, 1),
    "four pixels": torch.rand(3, 4, 4),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", TINY)
def test_an_image_too_small_for_the_model_is_a_precise_image_error(kind, entry):
    x = TINY[kind][None].repeat(2, 1, 1, 1)
    with pytest.raises(ImageError, match=r"cannot take images of \d+x\d+ px .*input_size"):
        ENTRY_POINTS[entry](x)


def test_a_vit_given_another_size_is_a_precise_image_error():
    from tests.helpers import make_vit

    vit = make_vit()
    size = vit.image_size if hasattr(vit, "image_size") else 32
    with pytest.raises(ImageError, match="cannot take images of"):
        predict(vit, torch.rand(3, size + 8, size + 8))
    with pytest.raises(ImageError, match="cannot take images of"):
        explain(vit, torch.rand(3, size + 8, size + 8), "saliency")


@pytest.mark.parametrize("method", ["gradient_shap", "shap_gradient"])
def test_a_background_sample_is_checked_and_converted_like_the_images(method):
    background = (torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 255).round()
    as_uint8 = background.to(torch.uint8)
    kw = {"seed": 0, "n_samples": 4}
    got = explain_batch(RGB, GOOD, method, background=as_uint8, **kw)
    expected = explain_batch(RGB, GOOD, method, background=as_uint8.float() / 255, **kw)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.attribution, e.attribution, rtol=1e-5, atol=1e-7)
    with pytest.raises(ImageError, match=r"\[0, 1\].*divide by 255"):
        explain_batch(RGB, GOOD, method, background=background, **kw)
