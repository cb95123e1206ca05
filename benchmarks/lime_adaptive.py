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
from pathlib import Path
from typing import Any, Sequence

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
               adaptive: dict[str, Any] | None = None) -> list[dict]:
    """Per image: fixed-count LIME (seeds 0 and 1) and adaptive LIME (seeds 0 and 1); seconds, samples, agreement."""
    adaptive = adaptive or {}
    rows = []
    for i, x in enumerate(images):
        explain(model, x, "lime", num_samples=32, seed=9)  # warm-up: export, batch-size measurement
        f0, tf0 = _timed(lambda: explain(model, x, "lime", num_samples=fixed, seed=0))
        f1, tf1 = _timed(lambda: explain(model, x, "lime", num_samples=fixed, seed=1))
        a0, ta0 = _timed(lambda: explain(model, x, "lime", seed=0, **adaptive))
        a1, ta1 = _timed(lambda: explain(model, x, "lime", seed=1, **adaptive))
        k = a0.extras["top_k"]
        rows.append({"image": i, "superpixels": a0.extras["n_superpixels"],
                     "fixed_s": (tf0 + tf1) / 2, "fixed_rho": rho(f0, f1), "fixed_topk": topk_overlap(f0, f1, k),
                     "fixed_pred": (f0.extras["stability"] + f1.extras["stability"]) / 2,
                     "adaptive_s": (ta0 + ta1) / 2,
                     "adaptive_samples": (a0.extras["samples"] + a1.extras["samples"]) / 2,
                     "adaptive_rho": rho(a0, a1), "adaptive_topk": topk_overlap(a0, a1, k),
                     "adaptive_pred": (a0.extras["stability"] + a1.extras["stability"]) / 2,
                     "stopped": f"{a0.extras['stopped']}/{a1.extras['stopped']}"})
        _say(f"image {i}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in rows[-1].items()))
    return rows


def speed_table(rows: list[dict], label: str, fixed: int = 1000) -> str:
    head = (f"| {label} | superpixels | LIME-{fixed} (s) | its run-to-run ρ (predicted) | its top-5 agreement | "
            "adaptive (s) | samples used | its run-to-run ρ (predicted) | its top-5 agreement | stopped |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| image {r['image']} | {r['superpixels']} | {r['fixed_s']:.2f} | {r['fixed_rho']:.2f} "
                     f"({r['fixed_pred']:.2f}) | {r['fixed_topk']:.1f} | {r['adaptive_s']:.2f} | "
                     f"{r['adaptive_samples']:.0f} | {r['adaptive_rho']:.2f} ({r['adaptive_pred']:.2f}) | "
                     f"{r['adaptive_topk']:.1f} | {r['stopped']} |")
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], (int, float))}
    lines.append(f"| **median** | {med['superpixels']:.0f} | **{med['fixed_s']:.2f}** | {med['fixed_rho']:.2f} "
                 f"({med['fixed_pred']:.2f}) | {med['fixed_topk']:.1f} | **{med['adaptive_s']:.2f}** | "
                 f"{med['adaptive_samples']:.0f} | {med['adaptive_rho']:.2f} ({med['adaptive_pred']:.2f}) | "
                 f"{med['adaptive_topk']:.1f} | |")
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


def pass_settings(model: nn.Module, shape: tuple[int, ...], n: int, bf16: bool = True) -> str:
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
    out.append(speed_table(speed_rows(demo, demo_images), f"{card.id}, 64 px"))
    _say("ResNet-50 speed")
    out.append(speed_table(speed_rows(net, photo_x), "ResNet-50 (random weights), 224 px"))
    return "\n\n".join(out) + f"\n\n({time.perf_counter() - t_start:.0f} s in all)"
