"""Exports reproduce: the provenance in a PNG or a report recomputes the same maps."""
import io
import json
import re

import numpy as np
from PIL import Image

from core import explain, explain_batch, load_dataset
from core.present import render, report


def _results(model, x):
    return [explain(model, x, "grad_cam"), explain(model, x, "lime", num_samples=60, seed=7)]


def test_png_provenance_recomputes_the_same_maps(tiny_model):
    model, card = tiny_model
    x, _ = load_dataset("shapes", split="test")[3]
    results = _results(model, x)
    prov = report.provenance(card, results, {"dataset": "shapes", "split": "test", "index": 3})
    tiles = [(render.upscale(render.to_rgb_uint8(x.numpy()), 2), "Original")] + [
        (render.draw_map(render.upscale(render.to_rgb_uint8(x.numpy()), 2), e.attribution, choice="magnitude",
                         size=64).image, e.title, "magnitude") for e in results]
    fig = report.figure(tiles, ["model m", "prediction p"], ["params"])
    assert fig.ndim == 3 and fig.shape[2] == 3 and fig.shape[1] >= 3 * 128
    assert fig.shape[:2] == (1080, 1920)  # a 16:9 slide
    png = report.png_with_provenance(fig, prov)
    got = json.loads(Image.open(io.BytesIO(png)).text["provenance"])
    assert got["model"] == card.id and got["weights_sha256"] == card.weights_sha256
    assert set(got["libraries"]) == set(report.LIBRARIES) and got["created"].endswith("+00:00")
    for entry, e in zip(got["methods"], results):
        again = explain(model, x, entry["method"], entry["target"], **entry["params"])
        np.testing.assert_array_equal(again.attribution, e.attribution)  # the recorded seed reproduces LIME
    assert got["methods"][1]["params"]["seed"] == 7


def test_report_html_is_self_contained_and_complete(tiny_model):
    model, card = tiny_model
    ds = load_dataset("shapes", split="test")
    x, y = ds[5]
    results = explain_batch(model, x[None], "saliency") + _results(model, x)
    proba = np.array([0.7, 0.2, 0.05, 0.05])
    tiles = [(render.to_rgb_uint8(x.numpy()), "Original")] + [(render.to_rgb_uint8(x.numpy()), e.title, v)
                                                               for e, v in zip(results, ["magnitude", "signed", "signed"])]
    prov = report.provenance(card, results)
    page = report.report_html(card, tiles, proba, int(y), results, prov)
    offline = page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # an SVG's namespace is a name, never fetched
    assert page.startswith("<!doctype html>") and "http://" not in offline and "https://" not in page  # works offline
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(tiles)  # the maps
    assert page.count("<svg") == 2 and "against the class" in page  # one vector colour bar per colour rule shown
    assert card.id in page and card.weights_sha256 in page and card.classes[0] in page
    for e in results:
        assert e.title in page
    assert '&quot;seed&quot;: 7' in page or '"seed": 7' in page
    assert "torch" in page and "captum" in page and "70.0%" in page
    assert f"{card.metrics['accuracy']:.3f}" in page
    assert "Explanation quality" not in page and "class=\"warning\"" not in page
    assert "60 samples (fixed count): another run would agree" in page  # LIME's samples and stability
    assert "model passes: ONNX Runtime" in page
    # the reasons not to trust the prediction and the quality numbers known for the model, when given
    page = report.report_html(card, tiles, proba, int(y), results, prov,
                              ["the model is near chance level"], {"Saliency": "Quality: Deletion AUC 0.41 (n=50)"})
    assert "&#9888; the model is near chance level" in page
    assert "Explanation quality" in page and "Deletion AUC 0.41 (n=50)" in page


def test_the_png_figure_carries_limes_samples_and_stability(tiny_model, monkeypatch):
    from core.present import exports

    model, card = tiny_model
    x, _ = load_dataset("shapes", split="test")[2]
    results = _results(model, x)
    seen = {}
    real = report.figure

    def spy(tiles, header, footer, **kw):
        seen["footer"] = list(footer)
        return real(tiles, header, footer, **kw)

    monkeypatch.setattr(report, "figure", spy)
    tiles = [(render.to_rgb_uint8(x.numpy()), "Original")]
    exports.explain_exports(card, results, tiles, np.array([0.4, 0.3, 0.2, 0.1]), None, {"index": 2}, [])
    assert any(line.startswith("LIME: 60 samples (fixed count)") for line in seen["footer"])
