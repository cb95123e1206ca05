"""Explanation-quality metrics against hand-computed cases, and the Clever Hans dataset."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import core
from core.quality import evaluate, get_metric, list_metrics
from core.quality.base import QualityInputs
from core.quality.sparseness import gini
from core.quality.perturbation import auc, curves
from core.quality.pointing_game import pointing_game
from core.quality.relevance_mass import relevance_mass
from core.quality.ranks import rank_correlation


class PixelModel(nn.Module):
    """Two classes; the logit of class 0 is 10 x the first pixel's red value (a model that looks at one pixel)."""

    def forward(self, x):
        a = 10 * x[:, 0, 0, 0]
        return torch.stack([a, torch.zeros_like(a)], 1)


class ConstantModel(nn.Module):
    def forward(self, x):
        return torch.tensor([[2.0, 0.0]]).expand(len(x), 2)


def _inputs(model, maps, images=None, masks=None):
    images = images if images is not None else torch.ones(len(maps), 3, 8, 8)
    return QualityInputs(model, images, np.zeros(len(maps), dtype=int), maps, "saliency", {}, masks)


def test_every_metric_declares_what_the_pages_need():
    for name in list_metrics():
        m = get_metric(name)
        assert m.name == name and m.title and m.description and m.paper
        assert m.category in ("faithfulness", "localisation", "stability", "sanity", "complexity")
        assert isinstance(m.higher_is_better, bool)


def test_a_map_equal_to_the_mask_scores_one_on_relevance_mass_and_hits_the_pointing_game():
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[:, 2:5, 3:6] = True
    maps = masks.astype(float)
    np.testing.assert_allclose(relevance_mass(maps, masks), [1.0, 1.0])
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 1.0])
    # the map's complement: nothing inside; a negative-only map has no positive mass at all
    np.testing.assert_allclose(relevance_mass(1 - maps, masks), [0.0, 0.0])
    assert np.isnan(relevance_mass(-maps, masks)).all()


def test_a_random_map_hits_the_pointing_game_at_the_masks_area_rate():
    rng = np.random.default_rng(0)
    masks = np.zeros((4000, 10, 10), dtype=bool)
    masks[:, :, :3] = True  # 30% of the image
    hits = pointing_game(rng.random((4000, 10, 10)), masks)
    assert abs(np.mean(hits) - 0.3) < 0.03
    assert abs(np.nanmean(relevance_mass(rng.random((4000, 10, 10)), masks)) - 0.3) < 0.01


def test_a_constant_model_gives_flat_deletion_and_insertion_curves():
    maps = np.random.default_rng(0).random((3, 8, 8))
    inp = _inputs(ConstantModel(), maps, torch.rand(3, 3, 8, 8))
    for insert in (False, True):
        y = curves(inp, insert, steps=10, how="zero")
        p = 1 / (1 + np.exp(-2.0))
        np.testing.assert_allclose(y, p, rtol=1e-6)
        np.testing.assert_allclose(auc(y), p, rtol=1e-6)


def test_deletion_rewards_the_map_that_names_the_pixel_the_model_uses():
    right = np.zeros((1, 8, 8))
    right[0, 0, 0] = 1.0  # the pixel the model reads
    wrong = np.arange(64.0).reshape(1, 8, 8)  # ranks the model's pixel last
    y_right = curves(_inputs(PixelModel(), right), insert=False, steps=4, how="zero")
    y_wrong = curves(_inputs(PixelModel(), wrong), insert=False, steps=4, how="zero")
    p1, p0 = 1 / (1 + np.exp(-10.0)), 0.5  # the pixel present / replaced by black
    np.testing.assert_allclose(y_right[0], [p1, p0, p0, p0, p0], rtol=1e-6)  # gone at the first step
    np.testing.assert_allclose(y_wrong[0], [p1, p1, p1, p1, p0], rtol=1e-6)  # only at the very end
    assert auc(y_right)[0] < auc(y_wrong)[0]
    # insertion from black: the right map restores the probability at once
    y_ins = curves(_inputs(PixelModel(), right), insert=True, steps=4, how="zero")
    np.testing.assert_allclose(y_ins[0], [p0, p1, p1, p1, p1], rtol=1e-6)


def test_gini_by_hand():
    one = np.zeros((1, 4, 4))
    one[0, 1, 2] = 5.0
    assert gini(one)[0] == pytest.approx(15 / 16)
    assert gini(np.ones((1, 4, 4)))[0] == pytest.approx(0.0)
    assert gini(np.array([[[1.0, 2.0], [3.0, 4.0]]]))[0] == pytest.approx(0.25)  # (-3*1 - 1*2 + 1*3 + 3*4) / (4*10)
    assert np.isnan(gini(np.zeros((1, 2, 2))))[0]


def test_rank_correlation_of_identical_reversed_and_constant_maps():
    a = np.arange(16.0).reshape(1, 4, 4)
    assert rank_correlation(a, a)[0] == pytest.approx(1.0)
    assert rank_correlation(a, -a)[0] == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(a, np.zeros_like(a))[0])


@pytest.fixture(scope="module")
def shapes_sample(shapes_model_dir):
    from core import load_dataset, load_model

    model, card = load_model(shapes_model_dir, device="cpu")
    return model, load_dataset("shapes", "test", size=card.input_size)


def test_randomisation_changes_saliency_maps_of_a_trained_cnn(shapes_sample, tmp_path):
    model, ds = shapes_sample
    r = evaluate(model, ds, ["saliency"], ["randomisation"], n=6, seed=0, cache_dir=tmp_path)
    cell = r.cell("saliency", "randomisation")
    rho = cell.curves["rank_correlation"]  # (images, layers), top layer first
    assert rho.shape == (6, len(cell.curves["layers"])) and cell.curves["layers"][0] == "net.head"
    assert np.nanmean(rho[:, -1]) < 0.5 and "saliency" not in r.sanity_failures()
    assert np.all(np.isfinite(cell.curves["ssim"]))


def test_report_table_ranking_cache_and_skips(shapes_sample, tmp_path, monkeypatch):
    model, ds = shapes_sample
    metrics = ["deletion", "pointing_game", "sparseness", "run_agreement", "marker_mass"]
    r = evaluate(model, ds, ["grad_cam", "saliency"], metrics, n=8, seed=1, cache_dir=tmp_path, weights="w")
    table = {(row["method"], row["metric"]): row for row in r.table()}
    assert table[("grad_cam", "run_agreement")]["skipped"].endswith("deterministic: its runs always agree")
    assert "shapes_spurious" in table[("saliency", "marker_mass")]["skipped"]
    pg = table[("grad_cam", "pointing_game")]
    assert 0 <= pg["mean"] <= 1 and pg["n"] == 8 and 0 < pg["random_baseline"] < 0.5 and pg["ci95"] >= 0
    ranked = r.ranking()
    assert {m for m, _, _ in ranked} == {"grad_cam", "saliency"} and "mean rank" in ranked[0][2]
    assert len(r.rows) == 2 * 3 * 8  # the three metrics that apply, per image
    # a second evaluation reads every cell from the cache: nothing is explained again
    import core.explainers

    monkeypatch.setattr(core.explainers, "explain_batch", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = evaluate(model, ds, ["grad_cam", "saliency"], metrics, n=8, seed=1, cache_dir=tmp_path, weights="w")
    np.testing.assert_array_equal(again.cell("grad_cam", "deletion").values, r.cell("grad_cam", "deletion").values)


def test_stochastic_methods_agree_more_with_more_samples(shapes_sample):
    from core.quality.run_agreement import agreement_curve, run_agreement

    model, ds = shapes_sample
    x = ds.batch(np.arange(3))
    targets = model(x).argmax(1).numpy()
    inp = QualityInputs(model, x, targets, np.zeros((3, 32, 32)), "lime", {"seed": 0, "num_samples": 100})
    curve = agreement_curve(inp, "num_samples", [50, 400], runs=2)
    assert curve["y"][1] > curve["y"][0]
    assert np.all(run_agreement(inp, runs=2) <= 1.0)


def test_shapes_spurious_marker_agrees_in_train_and_is_random_in_test(tmp_path):
    from core.datasets import shapes

    train = shapes.load_spurious("train", tmp_path, 32)
    test = shapes.load_spurious("test", tmp_path, 32)
    agree_train = np.mean(train.extras["marker_class"] == train.labels)
    agree_test = np.mean(test.extras["marker_class"] == test.labels)
    assert abs(agree_train - 0.95) < 0.02 and abs(agree_test - 0.25) < 0.05
    m = train.extras["marker_masks"]
    assert m.shape == (4000, 32, 32) and m[:, :6, :6].any() and not m[:, 16:, 16:].any()
    assert not (train.masks & m).any()  # object masks exclude the marker
    # the marker's pixels carry the marker's colour
    i = 0
    colour = shapes.MARKER_COLOURS[train.extras["marker_class"][i]]
    np.testing.assert_allclose(train.images[i][m[i]][0] / 255, colour, atol=0.01)


def test_a_model_trained_on_shapes_spurious_loses_accuracy_on_test(tmp_path):
    """The shortcut: val (marker agrees 95%) scores far above test (marker random)."""
    from core.modelling.training import TrainConfig, train

    _, card, _ = train(TrainConfig(dataset="shapes_spurious", epochs=2, size=32, model_id="hans"), None, tmp_path)
    val_acc = card.training["history"][card.training["best_epoch"] - 1]["val_accuracy"]
    assert val_acc - card.metrics["accuracy"] > 0.15, (val_acc, card.metrics["accuracy"])


def test_quality_page_computes_ranks_exports_and_explain_shows_the_numbers(shapes_model_dir, tmp_path, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    from tests.helpers import APP

    d = tmp_path / "models"
    shutil.copytree(shapes_model_dir, d / "shapes-good")
    monkeypatch.setenv("XAI_MODELS_DIR", str(d))
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page("pages/quality.py").run()
    assert not at.exception and not at.error
    at.number_input(key="q.n").set_value(4).run()
    at.multiselect(key="q.methods").set_value(["grad_cam", "saliency"]).run()
    at.multiselect(key="q.metrics").set_value(["deletion", "pointing_game", "randomisation", "marker_mass"]).run()
    at.selectbox(key="q.replacement").set_value("mean").run()
    at.button(key="q.compute").click().run()
    from tests.helpers import rerun_until

    rerun_until(at, lambda a: bool(a.dataframe) or bool(a.error))  # a job on the server: the page follows it
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert set(table.index) == {"Grad-CAM", "Saliency"} and "Deletion AUC" in table.columns
    assert (table["Relevance mass on the spurious marker"] == "n/a").all()
    assert any("mean rank" in m.value or "on every one of" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 4
    for chart in at.get("plotly_chart"):  # methods named by their titles, never by registry ids
        for trace in json.loads(chart.proto.spec)["data"]:
            names = [*(trace.get("x") or []), trace.get("name")] if trace.get("type") == "bar" else [trace.get("name")]
            assert not {n for n in names if isinstance(n, str)} & set(core.list_methods()), names
    cells = [json.loads(p.read_text()) for p in (d / "shapes-good" / "quality").glob("*.json")]  # kept with the model
    assert {c["extras"]["replacement"] for c in cells if c["metric"] == "deletion"} == {"mean"}
    from core.quality import run_agreement as stability

    monkeypatch.setattr(stability, "LIME_SAMPLE_SIZES", (20, 60))
    at.button(key="q.lime").click().run()
    assert not at.exception and any("LIME run-to-run" in str(c.proto.spec) for c in at.get("plotly_chart"))
    # a cancelled run says what to do; Compute goes on from the cells kept with the model
    at.number_input(key="q.n").set_value(30).run()
    at.button(key="q.compute").click().run()
    rerun_until(at, lambda a: any(b.key == "q.cancel" for b in a.button))
    other = AppTest.from_file(APP, default_timeout=300).run()  # another tab (or a reload) sees it, and can cancel it
    other.switch_page("pages/quality.py").run()
    assert other.number_input(key="q.n").value == 30 and other.button(key="q.compute").disabled
    other.button(key="q.cancel").click().run()
    rerun_until(at, lambda a: any("Cancelled" in i.value for i in a.info))
    assert not at.dataframe
    at.number_input(key="q.n").set_value(4).run()
    at.button(key="q.compute").click().run()
    rerun_until(at, lambda a: bool(a.dataframe) or bool(a.error))
    assert not at.exception and at.dataframe
    at.switch_page("pages/explain.py").run()
    assert any(c.value.startswith("Quality: ") and "Deletion AUC" in c.value and "(n=4)" in c.value for c in at.caption)


def test_cli_quality_writes_table_and_values(shapes_model_dir, tmp_path, capsys):
    import csv

    from core.faces.cli import main

    assert main(["quality", "--model", str(shapes_model_dir), "--methods", "grad_cam,saliency", "--metrics",
                 "deletion,sparseness", "--n", "5", "--out", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "grad_cam" in out and "deletion lower is better" in out
    rows = list(csv.DictReader(open(tmp_path / "q" / "values.csv")))
    assert len(rows) == 2 * 2 * 5 and {r["metric"] for r in rows} == {"deletion", "sparseness"}
    table = list(csv.DictReader(open(tmp_path / "q" / "table.csv")))
    assert len(table) == 4 and all(float(r["mean"]) == float(r["mean"]) for r in table)
    assert main(["quality", "--model", str(shapes_model_dir), "--metrics", "nope", "--out", str(tmp_path / "x")]) == 2


def test_cli_metric_flags_are_built_from_the_declared_options(shapes_model_dir, tmp_path, capsys):
    """``--replacement`` exists because deletion and insertion declare it (its choices are the Param's), and
    ``--metric-param METRIC.NAME=VALUE`` reaches any option; both are checked like every other parameter."""
    import json

    from core.faces.cli import build_parser, main

    quality = next(a for a in build_parser()._subparsers._group_actions[0].choices["quality"]._actions
                   if a.dest == "metric_option_replacement")
    declared = next(p for p in get_metric("deletion").params if p.name == "replacement")
    assert tuple(quality.choices) == declared.choices and declared.help in quality.help
    base = ["quality", "--model", str(shapes_model_dir), "--methods", "saliency", "--n", "3"]
    assert main([*base, "--metrics", "deletion,insertion", "--replacement", "zero", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--metrics", "deletion", "--metric-param", "deletion.replacement=mean",
                 "--out", str(tmp_path / "b")]) == 0
    cells = [json.loads(p.read_text()) for p in (shapes_model_dir / "quality").glob("*.json")]
    found = {(c["metric"], c["extras"].get("replacement")) for c in cells if c["method"] == "saliency"}
    assert {("deletion", "zero"), ("insertion", "zero"), ("deletion", "mean")} <= found
    capsys.readouterr()
    assert main([*base, "--metrics", "deletion", "--metric-param", "deletion.replacement=noise",
                 "--out", str(tmp_path / "c")]) == 2
    assert "'replacement' must be one of blur, mean, zero" in capsys.readouterr().err
    assert main([*base, "--metrics", "deletion", "--metric-param", "sparseness.x=1", "--out", str(tmp_path / "d")]) == 2


@pytest.mark.parametrize("metric", list_metrics())
def test_every_declared_curve_is_in_the_metrics_cells(metric, shapes_sample):
    """The charts draw what a metric declares (``Metric.curves``): each declared curve's keys are in its cells, with
    one row of y per image and one x per column."""
    model, ds = shapes_sample
    cls = get_metric(metric)
    method = "lime" if cls.needs_stochastic else "grad_cam"
    params = {"lime": {"num_samples": 20}} if method == "lime" else None
    cell = evaluate(model, ds, [method], [metric], n=2, params=params).cell(method, metric)
    if cell.skipped:
        assert not cls.curves or cls.needs_masks or cls.needs_marker
        return
    for spec in cls.curves:
        y = np.asarray(cell.curves[spec.y])
        assert y.shape == (2, len(cell.curves[spec.x])), (metric, spec)
    if cls.curves:
        from core.present.charts import quality_curve_figures

        assert len(quality_curve_figures(type("R", (), {"cells": [cell]})())) == len(cls.curves)


def test_metrics_agree_with_quantus_on_the_same_maps(shapes_sample):
    """The reference library: Gini sparseness, pointing game and relevance mass equal Quantus's on one batch."""
    import quantus

    from core import explain_batch

    model, ds = shapes_sample
    idx = np.arange(12)
    x, masks = ds.batch(idx), ds.masks[idx]
    y = model(x).argmax(1).numpy()
    maps = np.stack([e.attribution for e in explain_batch(model, x, "grad_cam", targets=y.tolist())])
    kw = dict(model=model, x_batch=x.numpy(), y_batch=y, a_batch=maps[:, None], device="cpu")
    sp = quantus.Sparseness(normalise=False, disable_warnings=True)(**kw)
    np.testing.assert_allclose(gini(maps), sp, atol=1e-5)
    s = masks[:, None].astype(float)
    pg = quantus.PointingGame(normalise=False, disable_warnings=True)(**kw, s_batch=s)
    np.testing.assert_array_equal(pointing_game(maps, masks), np.asarray(pg, dtype=float))
    rm = quantus.RelevanceMassAccuracy(normalise=False, disable_warnings=True)(**kw, s_batch=s)  # non-negative CAMs
    np.testing.assert_allclose(relevance_mass(maps, masks), rm, atol=1e-6)


def test_the_benchmarks_method_and_metric_names_exist():
    from benchmarks.bench import QUALITY_METHODS, QUALITY_METRICS, QUALITY_PARAMS
    from core.explainers import get_method

    for m in (*QUALITY_METHODS, *QUALITY_PARAMS):
        get_method(m)
    for m in QUALITY_METRICS:
        get_metric(m)


def test_deletion_replacement_is_an_option_checked_and_part_of_the_cache_key(shapes_sample, tmp_path):
    from core.errors import ParameterError

    model, ds = shapes_sample
    run = lambda how: evaluate(model, ds, ["saliency"], ["deletion"], n=4, cache_dir=tmp_path,  # noqa: E731
                               metric_params={"deletion": {"replacement": how}}).cell("saliency", "deletion")
    zero, mean = run("zero"), run("mean")
    assert zero.extras["replacement"] == "zero" and mean.extras["replacement"] == "mean"
    assert not np.allclose(zero.values, mean.values) and len(list(tmp_path.glob("*.json"))) == 2
    # an option left at its default is the same cell as the default given (the CLI without --replacement, the page)
    blur = run("blur")
    default = evaluate(model, ds, ["saliency"], ["deletion"], n=4, cache_dir=tmp_path).cell("saliency", "deletion")
    assert len(list(tmp_path.glob("*.json"))) == 3 and np.array_equal(default.values, blur.values)
    with pytest.raises(ParameterError, match="'replacement' must be one of blur, mean, zero"):
        run("noise")
    with pytest.raises(ParameterError, match="Deletion AUC has no parameter 'steps'; it takes: replacement"):
        evaluate(model, ds, ["saliency"], ["deletion"], n=4, metric_params={"deletion": {"steps": 3}})
    with pytest.raises(ParameterError, match="has no parameter 'replacement'; it takes: none"):
        evaluate(model, ds, ["saliency"], ["sparseness"], n=4, metric_params={"sparseness": {"replacement": "zero"}})


def test_bench_lime_agreement_section(shapes_model_dir):
    from benchmarks.bench import lime_agreement

    out = lime_agreement(str(shapes_model_dir), n=2, sizes=(20, 40), runs=2)
    assert "| samples | 20 | 40 |" in out and "mean Spearman ρ between runs" in out
