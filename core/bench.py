"""Benchmark: seconds per image for every attribution method, beside the model calls it cannot avoid.

    python -m core bench                      # demo model, every method
    python -m core bench --resnet224          # also a ResNet-18 at 224 px (random weights: speed only)

For each method the benchmark counts the images the method really pushes through the model (with
and without autograd), then times that same number of images in plain batches of 64: the cost of
the model calls alone. ``overhead`` = method time / that cost: how much the method adds on top of the
forward/backward passes it needs (1.0 = nothing).
"""
from __future__ import annotations

import platform
import sys
import statistics
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import config
from .architectures import build_model
from .checkpoints import load_model
from .datasets import load_dataset, shapes
from .explainers import explain, get_method, list_methods
from .images import to_tensor

#: Settings for the 224 px run where the defaults would take minutes per image on 2 CPU cores.
SETTINGS_224: dict[str, dict[str, Any]] = {"occlusion": {"window": 32, "stride": 16}}


class CallCounter:
    """Counts images passed through a model, split by whether autograd was on."""

    def __init__(self, model: nn.Module) -> None:
        self.forward = self.grad = 0
        self._h = model.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple) -> None:
        first = args[0]
        while isinstance(first, (tuple, list)):  # captum's DeepLIFT passes the inputs as a nested tuple
            first = first[0]
        n = int(first.shape[0])
        if torch.is_grad_enabled():
            self.grad += n
        else:
            self.forward += n

    def remove(self) -> None:
        self._h.remove()


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_image_costs(model: nn.Module, x: torch.Tensor, batch: int = 64) -> dict[str, float]:
    """Seconds per image for a plain forward pass, and for forward + input gradient, in batches of ``batch``."""
    xb = x.expand(batch, *x.shape[1:]).contiguous()

    def forward() -> None:
        with torch.inference_mode():
            model(xb)

    def backward() -> None:
        xi = xb.clone().requires_grad_(True)
        torch.autograd.grad(model(xi)[:, 0].sum(), xi)

    return {"forward": _median_seconds(forward, 3) / batch, "grad": _median_seconds(backward, 3) / batch}


def bench_model(model: nn.Module, images: Sequence[torch.Tensor], methods: Sequence[str],
                settings: dict[str, dict[str, Any]] | None = None, background: torch.Tensor | None = None) -> list[dict]:
    model.eval()
    device = next(model.parameters()).device
    costs = per_image_costs(model, images[0].unsqueeze(0).to(device))
    rows = []
    for name in methods:
        kw = (settings or {}).get(name, {})
        print(f"bench: {name} {kw or ''} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        explain(model, images[0], name, background=background, **kw)  # warm-up
        secs, fwd, grad = [], [], []
        for img in images:
            counter = CallCounter(model)
            try:
                e = explain(model, img, name, background=background, **kw)
            finally:
                counter.remove()
            secs.append(e.seconds)
            fwd.append(counter.forward - 1)  # explain()'s own prediction pass is not part of the method
            grad.append(counter.grad)
        model_cost = statistics.median(fwd) * costs["forward"] + statistics.median(grad) * costs["grad"]
        t = statistics.median(secs)
        rows.append({"method": name, "title": get_method(name).title, "settings": kw, "seconds": t,
                     "forward_images": statistics.median(fwd), "grad_images": statistics.median(grad),
                     "model_seconds": model_cost, "overhead": t / model_cost if model_cost > 0 else float("nan")})
    return rows


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| method | s / image | model images (fwd / grad) | model calls alone (s) | overhead |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        lines.append(f"| {r['title']}{f' ({settings})' if settings else ''} | {r['seconds']:.4f} | "
                     f"{r['forward_images']:.0f} / {r['grad_images']:.0f} | {r['model_seconds']:.4f} | {r['overhead']:.1f}x |")
    return "\n".join(lines)


def _env() -> str:
    return (f"torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} threads, "
            f"{platform.machine()}, device {config.pick_device()}")


def run(model_path: str, n_images: int = 5, methods: Sequence[str] | None = None, resnet224: bool = False,
        n_images_224: int = 1) -> str:
    methods = list(methods or list_methods())
    model, card = load_model(model_path)
    ds = load_dataset(card.dataset, split="test", size=card.input_size)
    images = [ds[i][0] for i in range(min(n_images, len(ds)))]
    background = load_dataset(card.dataset, split="train", size=card.input_size).sample(256)
    out = [table(bench_model(model, images, methods, background=background),
                 f"**{card.id}** ({card.arch}, {card.input_size} px, {card.channels} ch), median of {len(images)} "
                 f"test images, default settings; {_env()}")]
    if resnet224:
        torch.manual_seed(0)
        net = build_model("resnet18", 10, 3, [0.5] * 3, [0.25] * 3).to(config.pick_device()).eval()
        imgs = [to_tensor(a) for a in shapes.generate(n_images_224, 7, 224)[0]]
        out.append(table(bench_model(net, imgs, methods, SETTINGS_224, background=torch.stack(imgs)),
                         f"**ResNet-18 at 224 px** (random weights: speed only), median of {len(imgs)} image(s), "
                         f"default settings except where shown; {_env()}"))
    return "\n\n".join(out)


def main(args) -> int:
    methods = None if args.methods in (None, "all") else [m.strip() for m in args.methods.split(",")]
    print(run(args.model or str(config.models_dir() / config.DEMO_MODEL_ID), args.images, methods, args.resnet224))
    return 0
