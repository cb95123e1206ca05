"""``python -m core import-model`` end to end: the seed case imported, listed and explained from the command line with
maps equal to the reference libraries'; a model whose classes are a dataset's in another order evaluated there with
the mapping shown; the check's warning on a wrong card; refusals as one error line, exit 2, nothing saved."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from core import load_dataset, load_model
from core.datasets.images import open_image, preprocess_for
from core.faces.cli import main
from tests import model_files as mf


def pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_the_seed_case_from_the_command_line(tmp_path, capsys, isolated_dirs):
    user = mf.torchvision_model("resnet18", 9)
    path = mf.save_state_dict(user, tmp_path / "best_pathmnist_resnet18.pth")
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(mf.PATH_CLASSES) + "\n")
    assert main(["import-model", str(path), "--classes-file", str(names), "--input-size", "224", "--id", "seed"]) == 0
    out = capsys.readouterr().out
    assert "arch: resnet18  (detected from the tensors' names and shapes)" in out
    assert "classes match dataset pathmnist" in out and "saved" in out and "not offered: Attention rollout" in out
    assert main(["list"]) == 0
    assert "imported state_dict from best_pathmnist_resnet18.pth, not evaluated" in capsys.readouterr().out

    photo = tmp_path / "tissue.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)).save(photo)
    run = tmp_path / "out"
    assert main(["explain", "--model", "seed", "--image", str(photo), "--methods", "grad_cam,integrated_gradients",
                 "--param", "integrated_gradients.n_steps=32", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    _, card = load_model(isolated_dirs["models"] / "seed")
    x = preprocess_for(open_image(photo), card)[0][None]
    inp = mf.user_input(x, card.mean, card.std)
    target = int(user(inp).argmax())
    assert summary["prediction"] == target and summary["methods"]["grad_cam"]["target"] == target
    with GradCAM(model=user, target_layers=[user.layer4]) as cam:
        want_cam = cam(input_tensor=inp, targets=[ClassifierOutputTarget(target)])[0]
    want_ig = IntegratedGradients(user).attribute(inp, baselines=mf.user_input(torch.zeros_like(x), card.mean, card.std),
                                                  target=target, n_steps=32, method="gausslegendre")
    assert pearson(np.load(run / "grad_cam.npy"), want_cam) >= 0.99
    assert pearson(np.load(run / "integrated_gradients.npy"), want_ig.sum(dim=1)[0].detach().numpy()) >= 0.99


@pytest.fixture(scope="module")
def reordered(shapes_model_dir, tmp_path_factory):
    """The trained shapes model as a user's file whose outputs are in another class order (its head's rows
    permuted), with its class names in that order, and the original model's test accuracy."""
    model, card = load_model(shapes_model_dir, device="cpu")
    order = [2, 0, 3, 1]
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    state["head.3.weight"], state["head.3.bias"] = state["head.3.weight"][order], state["head.3.bias"][order]
    path = tmp_path_factory.mktemp("reordered") / "shapes_mine.pt"
    torch.save(state, path)
    return path, [card.classes[i] for i in order], card


def test_classes_in_another_order_are_mapped_by_name_and_measured_like_the_original(reordered, capsys, tmp_path):
    path, names, original = reordered
    assert main(["--models-dir", str(tmp_path), "import-model", str(path), "--classes", ",".join(n.upper() for n in names),
                 "--input-size", str(original.input_size), "--mean", ",".join(map(str, original.mean)),
                 "--std", ",".join(map(str, original.std)), "--id", "mine"]) == 0
    out = capsys.readouterr()
    assert "classes match dataset shapes: circle → CIRCLE" in out.out and "checked on 64 images" in out.out
    assert "WARNING" not in out.err
    from core.modelling.evaluation import load_or_compute

    ev, card = load_or_compute(tmp_path / "mine")
    assert ev.metrics["accuracy"] == pytest.approx(original.metrics["accuracy"], abs=1e-9)
    assert "circle (dataset #0) → CIRCLE (model #1)" in ev.metrics["class_mapping"]
    assert card.metrics["accuracy"] == ev.metrics["accuracy"]  # the card carries what was measured here
    saved = json.loads((tmp_path / "mine" / "card.json").read_text())
    assert saved["metrics"]["dataset"] == "shapes"


def test_evaluate_on_a_labelled_folder(reordered, tmp_path, capsys, isolated_dirs):
    path, names, original = reordered
    folder = tmp_path / "my_images"
    ds = load_dataset("shapes", "test", size=original.input_size)
    for i in range(40):  # class folders named as the model's classes, in another case
        d = folder / f"{original.classes[ds.labels[i]].title()}-X"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.image(i)).save(d / f"{i}.png")
    assert main(["import-model", str(path), "--classes", ",".join(f"{n}-x" for n in names), "--id", "folder-model",
                 "--input-size", str(original.input_size), "--mean", ",".join(map(str, original.mean)),
                 "--std", ",".join(map(str, original.std))]) == 0
    assert "classes match no dataset here" in capsys.readouterr().out
    assert main(["evaluate", "--model", "folder-model"]) == 2
    assert "--dataset folder --data-dir FOLDER" in capsys.readouterr().err
    assert main(["evaluate", "--model", "folder-model", "--dataset", "folder", "--data-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "folder-model on folder" in out and "class order mapped" in out and "accuracy" in out


def test_the_check_warns_of_a_wrong_mean_and_std_and_strict_saves_nothing(reordered, tmp_path, capsys):
    path, names, original = reordered
    args = ["--models-dir", str(tmp_path), "import-model", str(path), "--classes", ",".join(names), "--input-size",
            str(original.input_size), "--mean", "0.9,0.9,0.9", "--std", "0.02,0.02,0.02", "--id", "wrong"]
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert "WARNING" in err and "mean / std" in err and "nothing was saved" in err
    assert not (tmp_path / "wrong").exists()
    assert main([*args, "--dry-run"]) == 0 and not (tmp_path / "wrong").exists()


def test_refusals_are_one_line_and_exit_2(tmp_path, capsys):
    whole = mf.save_pickled_model(mf.torchvision_model("small_cnn", 3), tmp_path / "whole.pt")
    assert main(["--models-dir", str(tmp_path / "m"), "import-model", str(whole)]) == 2
    err = capsys.readouterr().err
    assert "\nerror: whole.pt holds a pickled whole model" in err and "Traceback" not in err
    sd = mf.save_state_dict(mf.torchvision_model("small_cnn", 3), tmp_path / "s.pt")
    assert main(["--models-dir", str(tmp_path / "m"), "import-model", str(sd), "--classes", "a,b"]) == 2
    assert "3 outputs but 2 class names" in capsys.readouterr().err
    assert main(["import-model", str(sd), "--classes", "a,b,c", "--classes-file", str(sd)]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
