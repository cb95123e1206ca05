"""Every export of an imported model says so, with the file it came from, and shows no metric it did not measure."""
from __future__ import annotations

import io
import json

import numpy as np
import torch
from PIL import Image

from core import explain, load_model
from core.importers import inspect_source, save_imported
from core.modelling.trust import model_warnings
from core.present.exports import explain_exports
from tests import model_files as mf


def test_the_figure_and_report_say_the_model_was_imported_and_not_measured(tmp_path):
    path, given = mf.write_format("onnx", tmp_path / "src")
    model, card = load_model(save_imported(inspect_source(path, classes="a,b,c"), tmp_path / "models"))
    x = torch.rand(3, 32, 32)
    e = explain(model, x, "integrated_gradients", n_steps=8)
    image = (x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    tiles = [(image, "Original", None), (image, "Integrated Gradients", "magnitude")]
    proba = torch.softmax(model(x[None]), 1)[0].detach().numpy()
    doubts = model_warnings(card)
    assert doubts == ["this model was imported from m.onnx and has not been evaluated here: how good it is is unknown "
                      f"(run `python -m core evaluate --model {card.id} --dataset folder --data-dir FOLDER` on a "
                      "labelled folder named by its classes)"]
    png, html = explain_exports(card, [e], tiles, proba, None, {"upload_sha256": "x"}, doubts)
    text = Image.open(io.BytesIO(png.data)).text
    assert "imported from m.onnx (onnx, SHA-256 " in text["Description"]
    prov = json.loads(text["provenance"])
    assert prov["imported_from"] == {"format": "onnx", "name": "m.onnx", "sha256": card.source["sha256"]}
    assert prov["preprocessing"]["channel_order"] == "rgb" and prov["preprocessing"]["mean"] == card.mean
    page = html.data if isinstance(html.data, str) else html.data.decode()
    assert "imported from m.onnx" in page and "No test metrics: not measured here" in page
    assert "<th>test metric</th>" not in page and "baseline: black" in page
