"""LIME at demo speed: adaptive vs fixed-count LIME on photos, whether the stability number predicts real
run-to-run agreement, and the seconds per model pass in each inference setting.

    python -m benchmarks --methods none --lime-adaptive [--photos 10]

*Run-to-run agreement*: the Spearman correlation of the superpixel weights of two runs with different seeds on the
same image (the segmentation does not depend on the seed). *Reference*: today's fixed-count LIME with 1,000 samples.
"""
from __future__ import annotations

import copy
import statistics
import sys
import time
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn

from core import config
from core.explainers import explain
from core.modelling.architectures import build_model
from core.modelling.checkpoints import load_model
from core.modelling.inference import describe, forward_logits
from core.datasets import load_dataset

PHOTOS = config.ROOT.parent / "shared" / "data" / "samples"


def _say(msg: str) -> None:
    print(f"bench: {msg} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)


def resnet50() -> nn.Module:
    """ResNet-50 with random weights of the right shapes (the ImageNet file cannot be fetched here); the last layer
    is drawn with a small spread so the class probabilities are not all equal."""
    torch.manual_seed(0)
    model = build_model("resnet50", 1000, 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
    return model


def photos(n: int, size: int = 224) -> list[torch.Tensor]:
    from core.datasets.images import open_image, preprocess

    files = sorted(PHOTOS.rglob("*.jpg"))[:n]
    return [preprocess(open_image(f), size, 3, round(size * 256 / 224))[0] for f in files]


def weights(e) -> np.ndarray:
    """The superpixel weights of a LIME explanation, by superpixel id."""
    w = dict((int(s), v) for s, v in e.extras["superpixel_weights"])
    return np.array([w[s] for s in sorted(w)])


def rho(a, b) -> float:
    return float(stats.spearmanr(weights(a), weights(b)).statistic)


def topk_overlap(a, b, k: int) -> float:
    wa, wb = weights(a), weights(b)
    ta = {(int(i), wa[i] >= 0) for i in np.argsort(-np.abs(wa), kind="stable")[:k]}
    tb = {(int(i), wb[i] >= 0) for i in np.argsort(-np.abs(wb), kind="stable")[:k]}
    return len(ta & tb) / k


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def speed_rows(model: nn.Module, images: Sequence[torch.Tensor], fixed: int = 1000,
               targets: Sequence[float | None] = (None,), max_samples: int = 2000) -> tuple[list[dict], list[float]]:
    """Per image: fixed-count LIME (seeds 0 and 1), then adaptive LIME (seeds 0 and 1) at each target; ``None`` is
    the agreement fixed-count LIME reached (the median over the images of its measured run-to-run ρ). Returns the
    rows and the targets used."""
    rows = []
    for i, x in enumerate(images):
        explain(model, x, "lime", num_samples=32, seed=9)  # warm-up: export, batch-size measurement
        f0, tf0 = _timed(lambda: explain(model, x, "lime", num_samples=fixed, seed=0))
        f1, tf1 = _timed(lambda: explain(model, x, "lime", num_samples=fixed, seed=1))
        rows.append({"image": i, "superpixels": f0.extras["n_superpixels"], "fixed_s": (tf0 + tf1) / 2,
                     "fixed_rho": rho(f0, f1), "fixed_topk": topk_overlap(f0, f1, f0.extras["top_k"]),
                     "fixed_pred": (f0.extras["stability"] + f1.extras["stability"]) / 2})
        _say(f"image {i}: fixed {rows[-1]}")
    used = [round(statistics.median(r["fixed_rho"] for r in rows), 2) if t is None else t for t in targets]
    for i, x in enumerate(images):
        for t in used:
            a0, ta0 = _timed(lambda: explain(model, x, "lime", seed=0, stability_target=t, max_samples=max_samples))
            a1, ta1 = _timed(lambda: explain(model, x, "lime", seed=1, stability_target=t, max_samples=max_samples))
            rows[i][t] = {"s": (ta0 + ta1) / 2, "samples": (a0.extras["samples"] + a1.extras["samples"]) / 2,
                          "rho": rho(a0, a1), "topk": topk_overlap(a0, a1, a0.extras["top_k"]),
                          "pred": (a0.extras["stability"] + a1.extras["stability"]) / 2,
                          "stable": sum(e.extras["stopped"] == "stable" for e in (a0, a1))}
            _say(f"image {i}: adaptive at {t}: {rows[i][t]}")
    return rows, used


def speed_table(rows: list[dict], used: Sequence[float], label: str, fixed: int = 1000) -> str:
    head = (f"| {label} | superpixels | LIME-{fixed} (s) | its run-to-run ρ (predicted) | its top-5 agreement | "
            + " | ".join(f"adaptive, target {t:.2f}: s | samples | run-to-run ρ (predicted) | top-5 agreement | "
                         "runs stopped stable" for t in used)
            + " |\n|---|" + "---:|" * (4 + 5 * len(used)))
    lines = [head]

    def cells(r):
        out = [f"{r['superpixels']:.0f}", f"{r['fixed_s']:.2f}", f"{r['fixed_rho']:.2f} ({r['fixed_pred']:.2f})",
               f"{r['fixed_topk']:.2f}"]
        for t in used:
            a = r[t]
            out += [f"{a['s']:.2f}", f"{a['samples']:.0f}", f"{a['rho']:.2f} ({a['pred']:.2f})", f"{a['topk']:.2f}",
                    f"{a['stable']:.0f} of 2" if isinstance(a["stable"], int) else f"{a['stable']:.1f} of 2"]
        return out

    for r in rows:
        lines.append(f"| image {r['image']} | " + " | ".join(cells(r)) + " |")
    med = {k: statistics.median(r[k] for r in rows) for k in ("superpixels", "fixed_s", "fixed_rho", "fixed_pred",
                                                               "fixed_topk")}
    for t in used:
        med[t] = {k: statistics.median(r[t][k] for r in rows) for k in ("s", "samples", "rho", "pred", "topk")}
        med[t]["stable"] = sum(r[t]["stable"] for r in rows) / len(rows)
    bold = {1} | {4 + 5 * j for j in range(len(used))}  # the seconds
    lines.append("| **median** (stopped stable: mean) | "
                 + " | ".join(f"**{c}**" if n in bold else c for n, c in enumerate(cells(med))) + " |")
    return "\n".join(lines)


def calibration(model: nn.Module, images: Sequence[torch.Tensor], sizes: Sequence[int] = (100, 300, 1000),
                seeds: int = 3) -> str:
    """Predicted (the stability number) vs measured run-to-run agreement, by sample count."""
    lines = ["| samples | predicted ρ (mean) | measured ρ between runs (mean) | predicted top-5 agreement | "
             "measured top-5 agreement |", "|---:|---:|---:|---:|---:|"]
    for n in sizes:
        pred, meas, pk, mk = [], [], [], []
        for x in images:
            runs = [explain(model, x, "lime", num_samples=n, seed=s) for s in range(seeds)]
            pred += [r.extras["stability"] for r in runs]
            pk += [r.extras["topk_agreement"] for r in runs]
            for i in range(seeds):
                for j in range(i + 1, seeds):
                    meas.append(rho(runs[i], runs[j]))
                    mk.append(topk_overlap(runs[i], runs[j], runs[i].extras["top_k"]))
        lines.append(f"| {n} | {np.mean(pred):.3f} | {np.mean(meas):.3f} | {np.mean(pk):.3f} | {np.mean(mk):.3f} |")
        _say(lines[-1])
    return "\n".join(lines)


def pass_settings(model: nn.Module, shape: tuple[int, ...], n: int, bf16: bool = True, compiled: bool = False) -> str:
    """Seconds per image of ``n`` forward passes in each inference setting (one warm-up chunk each; bfloat16 on a
    quarter of them, it is slow on CPUs without bf16 instructions)."""
    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(0))
    rows = []

    def plain(m, batch, fmt=None, autocast=False):
        count = max(batch, n // 4) if autocast else n

        def go():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                for i in range(0, count, batch):
                    c = x[i:i + batch]
                    m(c.contiguous(memory_format=fmt) if fmt else c)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            m(x[:batch].contiguous(memory_format=fmt) if fmt else x[:batch])
        return _timed(go)[1] / count

    rows.append(("torch, batches of 128 (LIME's path until now)", plain(model, 128)))
    if compiled:
        c = torch.compile(copy.deepcopy(model).to(memory_format=torch.channels_last))
        t0 = time.perf_counter()
        with torch.inference_mode():
            c(x[:8].contiguous(memory_format=torch.channels_last))
        build = time.perf_counter() - t0
        rows.append((f"torch.compile, channels-last, batches of 8 (compiling took {build:.0f} s, not counted)",
                     plain(c, 8, torch.channels_last)))
    rows.append(("torch, batches of 8", plain(model, 8)))
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    rows.append(("torch, channels-last, batches of 8", plain(cl, 8, torch.channels_last)))
    if bf16:
        rows.append(("torch, bfloat16 autocast, channels-last, batches of 8 (another model)",
                     plain(cl, 8, torch.channels_last, autocast=True)))
    for _ in range(10):  # the export, then the batch-size measurement (real passes at each candidate size)
        forward_logits(model, x[:64])
        if describe(model, shape)["batch_size"] is not None:
            break
    path = describe(model, shape)
    rows.append((f"fast path: {path['backend']}, batches of {path['batch_size']} (measured)",
                 _timed(lambda: forward_logits(model, x))[1] / n))
    base = rows[0][1]
    return "\n".join(f"| {name} | {s * 1000:.1f} | {base / s:.2f}x |" for name, s in rows)


def report(n_photos: int = 10, model_path: str | None = None) -> str:
    t_start = time.perf_counter()
    out = []
    demo, card = load_model(model_path or str(config.models_dir() / config.DEMO_MODEL_ID), device="cpu")
    ds = load_dataset(card.dataset, "test", size=card.input_size)
    demo_images = [ds.batch([i])[0] for i in range(10)]
    net = resnet50()
    photo_x = photos(n_photos)
    _say("passes")
    out.append("| inference setting | ms per image | speed-up over torch, batches of 128 |\n|---|---:|---:|\n"
               f"| **ResNet-50, 224 px** | | |\n{pass_settings(net, (3, 224, 224), 64)}\n"
               f"| **{card.id}, {card.input_size} px** | | |\n"
               f"{pass_settings(demo, tuple(demo_images[0].shape), 1024, bf16=False)}")
    _say("calibration on the demo model")
    out.append(f"Stability calibration, {card.id}, {len(demo_images)} test images, 3 seeds:\n\n"
               + calibration(demo, demo_images))
    _say("demo model speed")
    rows, used = speed_rows(demo, demo_images, targets=(None, 0.9))
    out.append(speed_table(rows, used, f"{card.id}, 64 px"))
    _say("ResNet-50 speed")
    rows, used = speed_rows(net, photo_x)
    out.append(speed_table(rows, used, "ResNet-50 (random weights), 224 px"))
    return "\n\n".join(out) + f"\n\n({time.perf_counter() - t_start:.0f} s in all)"


def passes_report(model_path: str | None = None) -> str:
    """Only the inference settings, ``torch.compile`` included (about a minute to compile ResNet-50 on 2 cores)."""
    demo, card = load_model(model_path or str(config.models_dir() / config.DEMO_MODEL_ID), device="cpu")
    return ("| inference setting | ms per image | speed-up over torch, batches of 128 |\n|---|---:|---:|\n"
            f"| **ResNet-50, 224 px** | | |\n{pass_settings(resnet50(), (3, 224, 224), 64, compiled=True)}\n"
            f"| **{card.id}, {card.input_size} px** | | |\n"
            f"{pass_settings(demo, (card.channels, card.input_size, card.input_size), 1024, bf16=False, compiled=True)}")


def resnet_default(n_photos: int = 10) -> str:
    """ResNet-50 (random weights) at 224 px, each photo explained once with LIME's defaults (adaptive, target 0.9,
    at most 2,000 samples): samples, seconds, and the stability it reports."""
    net = resnet50()
    lines = ["| photo | superpixels | samples | seconds | ρ predicted | top-5 predicted | stopped |",
             "|---|---:|---:|---:|---:|---:|---|"]
    rows = []
    for i, x in enumerate(photos(n_photos)):
        explain(net, x, "lime", num_samples=32, seed=9)  # warm-up: export, batch-size measurement
        e, s = _timed(lambda: explain(net, x, "lime", seed=0))
        rows.append((e.extras["n_superpixels"], e.extras["samples"], s, e.extras["stability"],
                     e.extras["topk_agreement"], e.extras["stopped"]))
        lines.append(f"| {i} | {rows[-1][0]} | {rows[-1][1]} | {s:.1f} | {rows[-1][3]:.3f} | {rows[-1][4]:.2f} | "
                     f"{rows[-1][5]} |")
        _say(lines[-1])
    med = [statistics.median(r[k] for r in rows) for k in range(5)]
    lines.append(f"| **median** | {med[0]:.0f} | {med[1]:.0f} | **{med[2]:.1f}** | {med[3]:.3f} | {med[4]:.2f} | "
                 f"{sum(r[5] == 'stable' for r in rows)} of {len(rows)} stable |")
    # the reference on this machine: fixed-count LIME-1000 as it ran before the fast path (torch, batches of 128)
    import os

    os.environ["XAI_FAST_INFERENCE"] = "0"
    try:
        before = copy.deepcopy(net)  # a model the fast path has not seen
        x = photos(1)[0]
        explain(before, x, "lime", num_samples=32, seed=9)
        e, s = _timed(lambda: explain(before, x, "lime", num_samples=1000, seed=0))
    finally:
        del os.environ["XAI_FAST_INFERENCE"]
    lines.append(f"| photo 0, LIME-1000 on plain torch (before) | {e.extras['n_superpixels']} | 1000 | {s:.1f} | "
                 f"{e.extras['stability']:.3f} | {e.extras['topk_agreement']:.2f} | fixed |")
    _say(lines[-1])
    return "\n".join(lines)
