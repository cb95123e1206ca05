"""Whole-split runs on the local engine: the stored format, the map rule (method, parameters, seed, image id),
resume after a kill, recorded failures, the cost estimate and the refusal of slow methods."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core import explain_batch, load_dataset, load_model
from core.errors import AttributionError, ParameterError, RunError
from core.faces.cli import main
from core.runs import explain_split, load_table, maps_of, plan_run, read_manifest, select_ids
from core.runs import compute as run_compute
from tests.helpers import ROOT

METHODS = ["grad_cam", "saliency", "smoothgrad"]
PARAMS = {"smoothgrad": {"n_samples": 3}}


def assert_close(a, b, atol=1e-4, what=""):
    """Equal within float rounding, as the engine's batch-vs-single test judges it: relative to each map's scale.
    Another batch size runs other convolution kernels; where two max-pool inputs are within rounding of each other
    the gradient can take the other path, so a few pixels of a gradient map may differ by more (``atol``)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.maximum(np.abs(b).max(axis=(-2, -1), keepdims=True), 1e-12)
    np.testing.assert_allclose(a / scale, b / scale, atol=atol, err_msg=what)


def run(model_dir, out, **kw):
    methods = kw.pop("methods", METHODS)
    kw = {"limit": 40, "part_size": 16, "params": {m: p for m, p in PARAMS.items() if m in methods}, **kw}
    return explain_split(model_dir, None, "test", methods, out, **kw)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return out, run(tiny_model_dir, out)


def test_manifest_parts_and_rows(reference, tiny_model_dir):
    out, manifest = reference
    model, card = load_model(tiny_model_dir)
    assert manifest["schema_version"] == 1
    assert manifest["model"]["weights_sha256"] == card.weights_sha256
    assert manifest["dataset"]["name"] == "shapes" and manifest["dataset"]["split"] == "test"
    assert manifest["images"]["count"] == 40 and manifest["rows"] == 40 * len(METHODS)
    assert [p["images"] for p in manifest["parts"]] == [16, 16, 8]
    assert manifest["methods"]["smoothgrad"]["n_samples"] == 3 and manifest["methods"]["smoothgrad"]["seed"] == 0
    assert manifest["engine"]["name"] == "local" and manifest["failures"] == []
    assert {"torch", "captum", "pyarrow", "xai-dashboard"} <= set(manifest["libraries"])
    import hashlib

    for p in manifest["parts"]:
        data = (out / p["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["sha256"] and pq.read_metadata(out / p["file"]).num_rows == p["rows"]
    # pandas reads the parts as the README shows; every row is one image x method with its map's shape
    df = pd.read_parquet(out / "parts")
    assert len(df) == 120 and set(df.method) == set(METHODS)
    row = df[(df.method == "grad_cam") & (df.image_id == 7)].iloc[0]
    ds = load_dataset("shapes", split="test")
    x, y = ds[7]
    assert row.label == y and row["map"].reshape(row.height, row.width).shape == (64, 64)
    proba = __import__("core").predict_proba(model, x.unsqueeze(0))[0]
    assert row.prediction == proba.argmax() == row.target
    assert row.probability == pytest.approx(proba[row.target], abs=1e-5)


def test_maps_equal_the_engine_per_image_with_the_seed_rule(reference, tiny_model_dir):
    """A stored map is explain_batch's map for that image, and a stochastic method used seed + image id."""
    out, _ = reference
    model, _ = load_model(tiny_model_dir)
    ds = load_dataset("shapes", split="test")
    for method in METHODS:
        t = load_table(out, method)
        maps = maps_of(t)
        assert list(np.asarray(t.column("image_id"))) == list(range(40))
        for i in (0, 17, 39):
            p = dict(PARAMS.get(method, {}))
            if method == "smoothgrad":
                p["seed"] = i  # the run's seed 0 + image id
            expected = explain_batch(model, ds.batch([i]), method, **p)[0].attribution
            assert_close(maps[i], expected)


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_batch_size_changes_maps_only_within_rounding(reference, tiny_model_dir, tmp_path, batch_size):
    out, _ = reference
    run(tiny_model_dir, tmp_path / "b", batch_size=batch_size, limit=16)  # the reference's first part
    for method in METHODS:
        a, b = maps_of(load_table(tmp_path / "b", method)), maps_of(load_table(out, method))[:16]
        assert_close(a, b, atol=1e-2, what=method)
        assert np.mean(np.abs(a - b) > 1e-4 * np.abs(b).max()) < 0.01, method  # and only at a few pixels


def test_sample_and_limit_choose_ids_reproducibly():
    ids, how = select_ids(1000, sample=50, seed=3)
    again, _ = select_ids(1000, sample=50, seed=3)
    assert len(ids) == 50 and list(ids) == sorted(set(ids)) and np.array_equal(ids, again)
    assert not np.array_equal(ids, select_ids(1000, sample=50, seed=4)[0]) and how["rule"] == "sample"
    assert list(select_ids(1000, limit=5)[0]) == [0, 1, 2, 3, 4]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ParameterError):
            select_ids(10, limit=bad)


def test_sampled_stochastic_maps_follow_the_seed_rule(tiny_model_dir, tmp_path):
    """Sparse ids (a sample): each image still gets seed + its id, so a map does not depend on its neighbours."""
    m = run(tiny_model_dir, tmp_path / "s", methods=["smoothgrad"], limit=None, sample=6, seed=5)
    ids = select_ids(1000, sample=6, seed=5)[0]
    assert m["images"]["selection"]["rule"] == "sample"
    model, _ = load_model(tiny_model_dir)
    ds = load_dataset("shapes", split="test")
    t = load_table(tmp_path / "s", "smoothgrad")
    assert list(np.asarray(t.column("image_id"))) == list(ids)
    expected = explain_batch(model, ds.batch([ids[2]]), "smoothgrad", n_samples=3, seed=5 + int(ids[2]))[0].attribution
    assert_close(maps_of(t)[2], expected)


def test_slow_methods_are_refused_over_the_limit_with_the_estimate(tiny_model_dir, tmp_path):
    with pytest.raises(RunError, match=r"lime is too slow.*1,000 images.*about .*--sample") as err:
        explain_split(tiny_model_dir, None, "test", ["grad_cam", "lime"], tmp_path / "x")
    assert "model images per image" in str(err.value)
    assert not (tmp_path / "x").exists()  # refused before anything is written
    plan, estimate = plan_run(tiny_model_dir, None, "test", ["grad_cam", "lime"], sample=10)
    assert len(plan.ids) == 10 and estimate["methods"]["lime"]["slow"] and not estimate["methods"]["grad_cam"]["slow"]
    assert estimate["methods"]["lime"]["seconds"] > estimate["methods"]["grad_cam"]["seconds"] > 0
    # adaptive LIME is estimated at the samples its stopping rule expects, not at its maximum
    lime = estimate["methods"]["lime"]
    assert lime["expected_model_images_per_image"] == 1500 and lime["model_images_per_image"] == 2000
    assert estimate["seconds"] >= sum(m["seconds"] for m in estimate["methods"].values())  # and the run's predictions


@pytest.fixture
def fails_on_image_5(monkeypatch):
    """Saliency fails on test image 5 (a NaN map, say) whenever that image is in the call."""
    import torch

    import core.explainers as explainers

    original, bad = explainers.explain_batch, load_dataset("shapes", split="test").batch([5])[0]

    def explain_batch(model, x, method, targets=None, **kw):
        if method == "saliency" and any(torch.equal(img, bad) for img in x):
            raise AttributionError("Saliency produced 3 non-finite values (NaN/inf)")
        return original(model, x, method, targets, **kw)

    monkeypatch.setattr(explainers, "explain_batch", explain_batch)  # the worker imports it at call time


def test_a_failing_image_is_a_recorded_failure_not_a_failed_run(tiny_model_dir, tmp_path, fails_on_image_5):
    m = run(tiny_model_dir, tmp_path / "f", methods=["grad_cam", "saliency"], limit=20)
    assert m["failures"] == [{"id": 5, "method": "saliency", "message": "Saliency produced 3 non-finite values (NaN/inf)"}]
    df = pd.read_parquet(tmp_path / "f" / "parts")
    bad = df[(df.image_id == 5) & (df.method == "saliency")].iloc[0]
    assert bad["map"] is None and "non-finite" in bad.error
    assert df.error.isna().sum() == 39  # every other image x method has its map (its batch was retried image by image)
    ok = df[(df.image_id == 4) & (df.method == "saliency")].iloc[0]
    assert ok["map"] is not None and np.isfinite(ok["map"]).all()


def test_another_run_in_the_folder_is_refused_and_restart_replaces_it(reference, tiny_model_dir, tmp_path):
    out = tmp_path / "r"
    run(tiny_model_dir, out, limit=16)
    with pytest.raises(RunError, match="holds another run.*--restart"):
        run(tiny_model_dir, out, limit=16, methods=["grad_cam"])
    m = run(tiny_model_dir, out, limit=16, methods=["grad_cam"], resume=False)
    assert set(m["methods"]) == {"grad_cam"} and len(list((out / "parts").iterdir())) == 1


def test_a_finished_run_resumes_to_the_same_manifest_without_work(reference, tiny_model_dir, monkeypatch):
    out, manifest = reference
    monkeypatch.setattr(run_compute.PartWorker, "part", lambda *a, **k: pytest.fail("nothing should be recomputed"))
    assert run(tiny_model_dir, out) == manifest


def test_kill_9_then_the_same_command_finishes_only_what_is_missing(reference, tiny_model_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "core", "explain-split", "--model", str(tiny_model_dir), "--methods",
           ",".join(METHODS), "--param", "smoothgrad.n_samples=3", "--limit", "40", "--part-size", "16",
           "--batch-size", "4", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(out.glob("parts/part-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("parts/part-*.parquet")}
    assert 1 <= len(kept) < 3, f"the kill came too late to test resume: {kept} ({proc.stderr.read()[-500:]!r})"
    assert not (out / "manifest.json").exists()  # never a manifest naming a missing part
    with pytest.raises(RunError, match="still running or was interrupted"):
        read_manifest(out)
    assert main(cmd[3:]) == 0
    for name, mtime in kept.items():
        assert (out / "parts" / name).stat().st_mtime_ns == mtime  # the parts on disk were kept, not redone
    manifest = read_manifest(out)
    assert manifest["rows"] == 120 and not list(out.glob("parts/.*.tmp"))
    ref, _ = reference
    for method in METHODS:
        assert_close(maps_of(load_table(out, method)), maps_of(load_table(ref, method)))


def test_cli_prints_the_estimate_and_refuses_bad_input(tiny_model_dir, tmp_path, capsys):
    assert main(["explain-split", "--model", str(tiny_model_dir), "--methods", "grad_cam", "--limit", "8",
                 "--out", str(tmp_path / "c")]) == 0
    err = capsys.readouterr()
    assert "8 images x 1 method(s): about" in err.err and "wrote" in err.out
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["images"]["count"] == 8
    for bad, words in ((["--methods", "nope"], "nope"), (["--methods", "lime"], "--sample"),
                       (["--methods", "grad_cam", "--limit", "0"], "limit must be"),
                       (["--methods", "grad_cam", "--param", "saliency.x=1"], "saliency")):
        assert main(["explain-split", "--model", str(tiny_model_dir), *bad, "--out", str(tmp_path / "d")]) == 2
        assert words in capsys.readouterr().err
