"""An imported ResNet-50 against the built-in one, in the same run: the same torchvision weights, once as this
project's own model and once imported from a user's ``torch.save(model.state_dict())`` file, each explained with the
same methods on the same 224 px images, interleaved (A, B, A, B ...) so that a machine's drift falls on both.

    python -m benchmarks --methods none --imported        # writes benchmarks/results/imported.csv

The imported model must explain as fast as the built-in one (its wrapper adds one normalisation and nothing else),
and give the same maps.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import env, write_rows
from core import explain_batch, load_model

RESULTS = Path(__file__).resolve().parent / "results" / "imported.csv"
#: method -> (parameters, images per call)
METHODS = {"grad_cam": ({}, 4), "saliency": ({}, 4), "integrated_gradients": ({"n_steps": 16}, 2)}


def _models(tmp: Path):
    import torchvision

    from core.importers import import_model
    from core.modelling.architectures import build_model
    from core.modelling.cards import ModelCard
    from core.modelling.checkpoints import save_model
    from core.modelling.pretrained import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    user = torchvision.models.resnet50(num_classes=1000).eval()
    state = user.state_dict()
    builtin = build_model("resnet50", 1000, 3, IMAGENET_MEAN, IMAGENET_STD)
    builtin.net.load_state_dict(state)
    card = ModelCard(id="bench-builtin-resnet50", dataset="imported", arch="resnet50",
                     classes=[f"c{i}" for i in range(1000)], input_size=224, channels=3, mean=IMAGENET_MEAN,
                     std=IMAGENET_STD, target_layer="net.layer4")
    save_model(builtin, card, tmp / "models")
    torch.save(state, tmp / "resnet50_user.pth")
    import_model(tmp / "resnet50_user.pth", tmp / "models", classes=[f"c{i}" for i in range(1000)], input_size=224,
                 model_id="bench-imported-resnet50")
    return load_model(tmp / "models" / "bench-builtin-resnet50")[0], load_model(tmp / "models" / "bench-imported-resnet50")[0]


def measure(repeats: int = 5) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="xai-bench-imported-") as tmp:
        builtin, imported = _models(Path(tmp))
        x = torch.rand((4, 3, 224, 224), generator=torch.Generator().manual_seed(0))
        rows = []
        for method, (params, n) in METHODS.items():
            a = explain_batch(builtin, x[:n], method, **params)  # warm-up, and the maps to compare
            b = explain_batch(imported, x[:n], method, **params)
            same = all(np.array_equal(p.attribution, q.attribution) for p, q in zip(a, b))
            times: dict[str, list[float]] = {"builtin": [], "imported": []}
            for _ in range(repeats):
                for name, model in (("builtin", builtin), ("imported", imported)):
                    t0 = time.perf_counter()
                    explain_batch(model, x[:n], method, **params)
                    times[name].append((time.perf_counter() - t0) / n)
            ratios = [i / b for i, b in zip(times["imported"], times["builtin"])]
            rows.append({"method": method, "params": str(params or ""), "images": n, "repeats": repeats,
                         "builtin_s_per_image": round(statistics.median(times["builtin"]), 4),
                         "imported_s_per_image": round(statistics.median(times["imported"]), 4),
                         "ratio_imported_over_builtin": round(statistics.median(ratios), 3),
                         "same_maps": same, "machine": env()})
    return rows


def write(rows: list[dict], path: Path = RESULTS) -> Path:
    return write_rows(rows, path)


def table(rows: list[dict]) -> str:
    """The Markdown table of a results file's rows."""
    out = [f"**Imported vs built-in ResNet-50 at 224 px** ({rows[0]['machine']}; median of {rows[0]['repeats']} "
           "interleaved runs, seconds per image)", "",
           "| method | images | built-in | imported | imported / built-in | same maps |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['method']} {r['params']} | {r['images']} | {float(r['builtin_s_per_image']):.3f} | "
                   f"{float(r['imported_s_per_image']):.3f} | {float(r['ratio_imported_over_builtin']):.2f} | "
                   f"{r['same_maps']} |")
    return "\n".join(out)


def report() -> str:
    rows = measure()
    path = write(rows)
    return table(rows) + f"\n\n(written to {path.relative_to(Path(__file__).resolve().parents[1])})"
