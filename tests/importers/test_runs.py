"""Whole-split runs on imported models: every format runs one, its labels mapped to the model's own class order."""
from __future__ import annotations

import numpy as np
import pytest

from core import list_methods, load_dataset, load_model
from core.importers import inspect_source, save_imported
from core.runs import explain_split, load_table, maps_of
from tests import model_files as mf

#: shapes' classes in another order than the dataset's: the runs must map the labels by name
ORDER = ["square", "circle", "cross", "triangle"]


@pytest.mark.parametrize("fmt", mf.FORMATS)
def test_every_format_runs_a_whole_split(fmt, tmp_path):
    path, given = mf.write_format(fmt, tmp_path / "src", num_classes=4)
    folder = save_imported(inspect_source(path, classes=ORDER, **{"input_size": 32, **given}), tmp_path / "models")
    model, card = load_model(folder)
    assert card.dataset == "shapes"  # its class names are shapes', in another order
    method = "grad_cam" if "grad_cam" in list_methods(model) else "occlusion"
    manifest = explain_split(folder, None, "test", [method], tmp_path / "run", limit=8, part_size=4)
    assert manifest["rows"] == 8 and not manifest["failures"]
    table = load_table(tmp_path / "run", method)
    maps = maps_of(table)
    assert maps.shape == (8, 32, 32) and np.isfinite(maps).all()
    truth = load_dataset("shapes", "test", size=32).labels[:8]
    names = load_dataset("shapes", "test", size=32).classes
    assert table.column("label").to_pylist() == [ORDER.index(names[t]) for t in truth]
