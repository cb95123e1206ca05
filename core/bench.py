"""Benchmark: seconds per image for every attribution method, beside the cost of plain model calls.

    python -m core bench --model models/shapes-small_cnn --images 20

Prints a Markdown table (the one in the README). Timings are wall-clock medians over ``--images``
test images after one warm-up call, on the device :func:`core.config.pick_device` picks.
"""
from __future__ import annotations

import platform
import statistics
import time
from typing import Callable, Sequence

import torch

from . import config
from .checkpoints import load_model
from .datasets import load_dataset
from .explainers import explain, get_method, list_methods


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_call_costs(model: torch.nn.Module, x: torch.Tensor, repeats: int = 20) -> dict[str, float]:
    """Seconds for one forward pass, and one forward + input-gradient pass, of a single image."""
    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def backward() -> None:
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xi)[0, 0], xi)

    return {"forward": _median_seconds(forward, repeats), "forward_backward": _median_seconds(backward, repeats)}


def run(model_path: str, n_images: int = 20, methods: Sequence[str] | None = None) -> str:
    model, card = load_model(model_path)
    device = next(model.parameters()).device
    ds = load_dataset(card.dataset, split="test", size=card.input_size)
    images = [ds[i][0] for i in range(min(n_images, len(ds)))]
    costs = model_call_costs(model, images[0].unsqueeze(0).to(device))
    lines = [
        f"Model `{card.id}` ({card.arch}, {card.input_size} px, {card.channels} ch) on {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"median of {len(images)} test images.",
        "",
        f"One forward pass: {costs['forward'] * 1e3:.2f} ms; forward + input gradient: {costs['forward_backward'] * 1e3:.2f} ms.",
        "",
        "| method | seconds / image (median) | min | max |",
        "|---|---:|---:|---:|",
    ]
    for name in methods or list_methods():
        explain(model, images[0], name)  # warm-up
        secs = []
        for img in images:
            secs.append(explain(model, img, name).seconds)
        lines.append(f"| {get_method(name).title} (`{name}`, defaults) | {statistics.median(secs):.4f} | {min(secs):.4f} | {max(secs):.4f} |")
    return "\n".join(lines)


def main(args) -> int:
    methods = None if args.methods in (None, "all") else [m.strip() for m in args.methods.split(",")]
    print(run(args.model or str(config.models_dir() / config.DEMO_MODEL_ID), args.images, methods))
    return 0
