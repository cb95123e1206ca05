import json

import numpy as np
import pytest

from core import explain, load_dataset, load_model
from core.faces.cli import main


def test_explain_writes_maps_overlays_and_summary(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["explain", "--model", str(tiny_model_dir), "--split", "test", "--index", "7", "--methods",
               "grad_cam,integrated_gradients,saliency", "--out", str(out), "--param", "integrated_gradients.n_steps=16"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    model, card = load_model(tiny_model_dir)
    x, y = load_dataset("shapes", split="test")[7]
    assert summary["label"] == y and summary["label_name"] == card.classes[y]
    assert set(summary["probabilities"]) == set(card.classes)
    assert sum(summary["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert summary["prediction_name"] == max(summary["probabilities"], key=summary["probabilities"].get)
    for m in ("grad_cam", "integrated_gradients", "saliency"):
        assert (out / f"{m}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        info = summary["methods"][m]
        assert info["target"] == summary["prediction"] and info["seconds"] > 0
        # the saved signed map is what the library computes for the same settings
        expected = explain(model, x, m, **info["params"]).attribution
        np.testing.assert_allclose(np.load(out / f"{m}.npy"), expected, rtol=1e-5, atol=1e-7)
    assert summary["methods"]["integrated_gradients"]["params"]["n_steps"] == 16
    assert "convergence_delta" in summary["methods"]["integrated_gradients"]["extras"]


def test_explain_target_and_errors(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["explain", "--model", str(tiny_model_dir), "--index", "0", "--methods", "saliency", "--target", "2",
                 "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["methods"]["saliency"]["target"] == 2
    capsys.readouterr()
    assert main(["explain", "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "card.json is missing" in capsys.readouterr().err
    assert main(["explain", "--model", str(tiny_model_dir), "--methods", "nope", "--out", str(out)]) == 2
    assert "Unknown method 'nope'" in capsys.readouterr().err
    assert main(["explain", "--model", str(tiny_model_dir), "--index", "99999", "--out", str(out)]) == 2
    assert main(["explain", "--model", str(tiny_model_dir), "--methods", "saliency", "--param", "grad_cam.layer=x",
                 "--out", str(out)]) == 2


def test_train_command(tmp_path, capsys):
    rc = main(["--models-dir", str(tmp_path), "train", "--dataset", "shapes", "--arch", "small_cnn", "--epochs", "1",
               "--max-train", "128", "--size", "32", "--model-id", "cli"])
    assert rc == 0
    out = capsys.readouterr().out
    _, card = load_model(tmp_path / "cli")
    assert f"accuracy {card.metrics['accuracy']:.4f} (chance 0.2500)" in out and "best epoch on val: 1 of 1" in out
    assert card.training["epochs"] == 1 and card.input_size == 32
    assert main(["--models-dir", str(tmp_path), "train", "--arch", "nope"]) == 2


def test_explain_many_indices_in_batched_calls(tiny_model_dir, tmp_path, capsys):
    from core import explain_batch

    out = tmp_path / "many"
    rc = main(["explain", "--model", str(tiny_model_dir), "--indices", "0-2,5", "--methods", "grad_cam,lime",
               "--param", "lime.num_samples=50", "--param", "lime.seed=3", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [im["index"] for im in summary["images"]] == [0, 1, 2, 5]
    model, card = load_model(tiny_model_dir)
    ds = load_dataset("shapes", split="test")
    x = ds.batch(np.array([0, 1, 2, 5]))
    for m, kw in (("grad_cam", {}), ("lime", {"num_samples": 50, "seed": 3})):
        expected = explain_batch(model, x, m, **kw)
        for k, (i, e) in enumerate(zip([0, 1, 2, 5], expected)):
            np.testing.assert_allclose(np.load(out / str(i) / f"{m}.npy"), e.attribution, rtol=1e-5, atol=1e-7)
            info = summary["images"][k]["methods"][m]
            assert info["target"] == summary["images"][k]["prediction"] == e.target
    # image i's LIME ran with seed 3 + its position in the batch, recorded for reproduction
    assert [im["methods"]["lime"]["params"]["seed"] for im in summary["images"]] == [3, 4, 5, 6]
    capsys.readouterr()
    for bad, msg in (("0-x", "numbers and ranges"), ("5-2", "backwards"), ("0-99999", "must be in")):
        assert main(["explain", "--model", str(tiny_model_dir), "--indices", bad, "--out", str(out)]) == 2
        assert msg in capsys.readouterr().err


def test_explain_one_image_says_how_stable_lime_is(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "one"
    rc = main(["explain", "--model", str(tiny_model_dir), "--indices", "3", "--methods", "lime", "--param",
               "lime.max_samples=100", "--param", "lime.round_size=50", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    extras = summary.get("images", [summary])[0]["methods"]["lime"]["extras"]
    assert extras["mode"] == "adaptive" and extras["samples"] <= 100
    assert f"{extras['samples']:,} samples (adaptive" in printed and "another run would agree" in printed


def test_explain_refuses_a_dataset_the_model_was_not_trained_on(tiny_model_dir, tmp_path, capsys):
    """`explain --model <shapes model> --dataset pneumoniamnist` once ran X-rays through the shapes model and
    named the true class "circle"."""
    from tests.helpers import write_npz

    write_npz(tmp_path / "pneumoniamnist_64.npz", 64, rgb=False)
    rc = main(["explain", "--model", str(tiny_model_dir), "--dataset", "pneumoniamnist", "--data-dir", str(tmp_path),
               "--index", "0", "--methods", "saliency", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "was trained on shapes" in err and "1-channel images (the model takes 3)" in err
    assert "classes normal, pneumonia" in err
    assert not (tmp_path / "o" / "saliency.npy").exists()


def test_explain_says_why_not_to_trust_the_predictions(tiny_model_dir, tmp_path, capsys):
    """Model flags and each image's OOD verdict reach the terminal and summary.json (the tiny model is near chance)."""
    from core.modelling.trust import model_warnings

    _, card = load_model(tiny_model_dir)
    expected = model_warnings(card)
    assert expected, "the one-epoch test model was expected to be near chance"
    assert main(["explain", "--model", str(tiny_model_dir), "--indices", "0-3", "--methods", "saliency",
                 "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert f"WARNING: {expected[0]}" in err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["model_warnings"] == expected
    assert all(set(e["ood"]) == {"score", "threshold", "flagged"} for e in summary["images"])


def test_list_names_methods_parameters_and_metrics_options_from_their_declarations(tiny_model_dir, capsys):
    from core.quality import get_metric, list_metrics

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    for m in list_metrics():
        for p in get_metric(m).params:
            assert f"{p.name}={p.default} ({'|'.join(p.choices)})" in lines[m], lines[m]
    assert "n_steps=64" in lines["integrated_gradients"]


def test_a_model_trained_from_a_folder_elsewhere_is_explained_from_any_working_folder(tmp_path, capsys, monkeypatch):
    """Trained from a folder given relative to the working folder: the card records the folder itself, so the CLI
    (like the app) reads it from anywhere with no --data-dir; once the folder is gone the error names --data-dir."""
    import shutil

    from tests.helpers import make_tree

    models, work, elsewhere = tmp_path / "models", tmp_path / "work", tmp_path / "other"
    make_tree(work / "pets", split_layout=True)
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    assert main(["--models-dir", str(models), "train", "--dataset", "folder", "--data-dir", "pets", "--arch",
                 "small_cnn", "--epochs", "1", "--size", "32", "--model-id", "pets"]) == 0
    _, card = load_model(models / "pets")
    assert card.dataset_options["path"] == str((work / "pets").resolve())
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["--models-dir", str(models), "explain", "--model", str(models / "pets"), "--split", "test",
                 "--index", "0", "--methods", "grad_cam", "--out", str(elsewhere / "out")]) == 0, capsys.readouterr().err
    shutil.rmtree(work / "pets")
    assert main(["--models-dir", str(models), "explain", "--model", str(models / "pets"), "--split", "test",
                 "--index", "0", "--methods", "grad_cam", "--out", str(elsewhere / "out2")]) == 2
    assert "--data-dir FOLDER" in capsys.readouterr().err


def test_the_terminal_says_what_a_training_does_after_its_last_step(capsys):
    """`make run`'s demo training: a bar during the steps, then a line for the evaluation and one for the save
    (the bar sat at 100 % for a minute with nothing said)."""
    import math

    from core.faces.cli import _tqdm_progress
    from core.modelling.training import TrainProgress

    update = _tqdm_progress("training the demo model")
    update(TrainProgress(0, 2, 0, 1, math.nan, "loading data"))
    for step in range(1, 5):
        update(TrainProgress(1 + (step > 2), 2, step, 4, 0.5, f"epoch {1 + (step > 2)}/2"))
    update(TrainProgress(2, 2, 4, 4, math.nan, "evaluating on the test split (1,000 images: metrics, calibration, "
                                               "out-of-distribution statistics)"))
    update(TrainProgress(2, 2, 4, 4, math.nan, "saving the model"))
    err = capsys.readouterr().err
    lines = [l for l in err.replace("\r", "\n").splitlines() if l.strip()]
    assert lines[0] == "training the demo model: loading data…"
    assert any("4/4" in l for l in lines)  # the bar reached its end
    assert lines[-2] == ("training the demo model: evaluating on the test split (1,000 images: metrics, calibration, "
                         "out-of-distribution statistics)…")
    assert lines[-1] == "training the demo model: saving the model…"
