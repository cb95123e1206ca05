"""Benchmark: seconds per image for every attribution method, beside the model calls it cannot avoid,
and the batched engine beside the libraries' own batched calls.

    python -m benchmarks                      # demo model, every method
    python -m benchmarks --resnet224          # also a ResNet-18 at 224 px (random weights: speed only)
    python -m benchmarks --methods none --batch --lime --shap-jit --memory     # the engine's sections

For each method the benchmark counts the images the method really pushes through the model (with
and without autograd), then times that same number of images in plain batches of 64: the cost of
the model calls alone. ``overhead`` = method time / that cost: how much the method adds on top of the
forward/backward passes it needs (1.0 = nothing).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from benchmarks.common import env as _env
from benchmarks.common import median_seconds as _median_seconds
from benchmarks.common import rss_mib
from core import config
from core.modelling.architectures import build_model
from core.modelling.checkpoints import load_model
from core.datasets import load_dataset, shapes
from core.explainers import explain, explain_batch, get_method, list_methods, resolve_params
from core.datasets.images import to_tensor
from core.modelling.prediction import logits

#: Settings for the 224 px run where the defaults would take minutes per image on 2 CPU cores.
SETTINGS_224: dict[str, dict[str, Any]] = {"occlusion": {"window": 32, "stride": 16}}


_COUNTS: dict[str, list[int]] = {}


class CountingModel(nn.Module):
    """Wraps a model and counts the images passed through it, split by whether autograd was on.

    The counts live outside the module (under ``key``), so the private replicas that hooked methods run on
    (deep copies) count into the same place as the model itself.
    """

    def __init__(self, inner: nn.Module, key: str) -> None:
        super().__init__()
        self.inner = inner
        self.normalize = getattr(inner, "normalize", None)  # the training mean, for the "mean" baseline
        self.target_layer = f"inner.{inner.target_layer}"
        self.key = key
        _COUNTS[key] = [0, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _COUNTS[self.key][int(torch.is_grad_enabled())] += int(x.shape[0])
        return self.inner(x)

    @property
    def forward_images(self) -> int:
        return _COUNTS[self.key][0]

    @property
    def grad_images(self) -> int:
        return _COUNTS[self.key][1]

    def reset(self) -> None:
        _COUNTS[self.key] = [0, 0]


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
    counted = CountingModel(model, f"bench-{id(model)}").eval()
    rows = []
    for name in methods:
        kw = (settings or {}).get(name, {})
        if get_method(name).needs_layer:
            kw = {"layer": f"inner.{model.target_layer}", **kw}
        print(f"bench: {name} {kw or ''} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        explain(counted, images[0], name, background=background, **kw)  # warm-up
        secs, fwd, grad = [], [], []
        for img in images:
            target = int(logits(model, img[None].to(device)).argmax())  # given, so only the method's own passes count
            counted.reset()
            e = explain(counted, img, name, target, background=background, **kw)
            secs.append(e.seconds)
            fwd.append(counted.forward_images - 1)  # the engine's one-image target check is not part of the method
            grad.append(counted.grad_images)
        model_cost = statistics.median(fwd) * costs["forward"] + statistics.median(grad) * costs["grad"]
        t = statistics.median(secs)
        shown = {k: v for k, v in kw.items() if k != "layer"}
        rows.append({"method": name, "title": get_method(name).title, "settings": shown, "seconds": t,
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


# --- the batched engine beside the libraries' own batched calls -------------------------------------------

#: methods of the batch section and their settings (ResNet-18 at 224 px: fewer IG steps, to keep the run short)
BATCH_METHODS = ("grad_cam", "integrated_gradients", "saliency")
BATCH_SETTINGS_224: dict[str, dict[str, Any]] = {"integrated_gradients": {"n_steps": 16}}


def library_batched_call(model: nn.Module, x: torch.Tensor, method: str, params: dict[str, Any]) -> Callable[[], object]:
    """The same work done straight with the library, as its user writes it: targets from one forward pass
    (pytorch-grad-cam finds them itself), then one batched attribution call with the same settings."""
    from captum.attr import IntegratedGradients, Saliency
    from pytorch_grad_cam import GradCAM

    from core.modelling.architectures import get_layer
    from core.explainers.integrated_gradients import IntegratedGradients as OurIG

    if method == "grad_cam":
        from core.modelling.architectures import tokens_to_grid, traits_of

        layer = get_layer(model, params["layer"])
        reshape = {"reshape_transform": tokens_to_grid} if "tokens" in traits_of(model) else {}

        def call():
            with GradCAM(model=model, target_layers=[layer], **reshape) as cam:
                return cam(input_tensor=x, targets=None)
    elif method == "saliency":
        def call():
            return Saliency(model).attribute(x.clone().requires_grad_(True), target=logits(model, x).argmax(1), abs=True)
    elif method == "integrated_gradients":
        ibs = max(len(x), OurIG.points_per_pass(params["internal_batch_size"], tuple(x.shape[1:])))

        def call():
            return IntegratedGradients(model).attribute(
                x, baselines=torch.zeros_like(x), target=logits(model, x).argmax(1), n_steps=params["n_steps"],
                method=params["integration"], internal_batch_size=ibs, return_convergence_delta=True)
    else:
        raise ValueError(f"no library reference call for {method}")
    return call


def _timed(fn: Callable[[], object], repeats: int) -> float:
    return _median_seconds(fn, repeats) if repeats > 1 else _once(fn)


def _once(fn: Callable[[], object]) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def batch_rows(model: nn.Module, x: torch.Tensor, settings: dict[str, dict[str, Any]] | None = None,
               repeats: int = 3) -> list[dict]:
    """Seconds per image: N single engine calls, one engine call on N images, the library's call on N images."""
    model.eval()
    rows = []
    for name in BATCH_METHODS:
        kw = (settings or {}).get(name, {})
        params = resolve_params(name, model, **kw)
        print(f"bench batch: {name} {kw or ''} N={len(x)} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        n = len(x)
        single = _timed(lambda: [explain(model, img, name, **kw) for img in x], max(1, repeats - 2)) / n
        engine = _timed(lambda: explain_batch(model, x, name, **kw), repeats) / n
        library = _timed(library_batched_call(model, x, name, params), repeats) / n
        rows.append({"title": get_method(name).title, "settings": kw, "n": n, "single": single, "engine": engine,
                     "library": library})
    return rows


def batch_table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| method | N | engine, N single calls (s / image) | engine, one call of N (s / image) | "
             "library's own call of N (s / image) | engine / library | speed-up over single calls |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        lines.append(f"| {r['title']}{f' ({settings})' if settings else ''} | {r['n']} | {r['single']:.4f} | "
                     f"{r['engine']:.4f} | {r['library']:.4f} | {r['engine'] / r['library']:.2f}x | "
                     f"{r['single'] / r['engine']:.1f}x |")
    return "\n".join(lines)


def split_throughput(model: nn.Module, x: torch.Tensor, chunk: int = 32) -> str:
    """Grad-CAM over a whole split: engine (one call), engine image by image, library in chunks of ``chunk``."""
    from pytorch_grad_cam import GradCAM

    from core.modelling.architectures import get_layer

    print(f"bench: Grad-CAM over {len(x)} images ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
    explain_batch(model, x[:chunk], "grad_cam")  # warm-up
    t0 = time.perf_counter()
    explain_batch(model, x, "grad_cam")
    engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    for img in x:
        explain(model, img, "grad_cam")
    single = time.perf_counter() - t0
    layer = get_layer(model, model.target_layer)
    t0 = time.perf_counter()
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for i in range(0, len(x), chunk):
            cam(input_tensor=x[i : i + chunk], targets=None)
    library = time.perf_counter() - t0
    n = len(x)
    return (f"| Grad-CAM over {n} test images | {n / engine:.0f} images/s (one `explain_batch` call, {engine:.2f} s) | "
            f"{n / single:.0f} images/s (one by one, {single:.2f} s) | {n / library:.0f} images/s (pytorch-grad-cam "
            f"in chunks of {chunk}, {library:.2f} s) |")


class TimedModel(nn.Module):
    """Accumulates the wall time spent inside the wrapped model's forward passes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seconds, self.images = inner, 0.0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.inner(x)
        self.seconds += time.perf_counter() - t0
        self.images += int(x.shape[0])
        return out


def plain_calls(model: nn.Module, image: torch.Tensor, n: int, batch: int) -> Callable[[], None]:
    """``n`` copies of ``image`` (C, H, W) through the model in plain batches of ``batch``: the floor under any
    method that evaluates ``n`` perturbed images (LIME)."""
    xb = image[None].expand(batch, *image.shape).contiguous()

    def call() -> None:
        with torch.inference_mode():
            for i in range(0, n, batch):
                model(xb[: min(batch, n - i)])

    return call


def lime_breakdown(model: nn.Module, image: torch.Tensor, label: str, num_samples: int = 1000, repeats: int = 3) -> str:
    """Where LIME's time goes: inside the model, and in the lime package around it (sampling, masks, fit)."""
    print(f"bench: LIME breakdown, {label} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
    timed = TimedModel(model).eval()
    batch = resolve_params("lime", model)["batch_size"]
    explain(timed, image, "lime", num_samples=num_samples)  # warm-up
    totals, inside = [], []
    for _ in range(repeats):
        timed.seconds = 0.0
        e = explain(timed, image, "lime", num_samples=num_samples)
        totals.append(e.seconds)
        inside.append(timed.seconds)
    total, in_model = statistics.median(totals), statistics.median(inside)
    alone = _median_seconds(plain_calls(model, image, num_samples, batch), repeats)
    return (f"| {label} | {total:.3f} | {in_model:.3f} ({in_model / total:.0%}) | {total - in_model:.3f} "
            f"({(total - in_model) / total:.0%}) | {alone:.3f} | {total / alone:.2f}x |")


SHAP_CHILD = """
import sys, time, torch
from core.modelling.architectures import build_model
from core.explainers import explain
from core.explainers.shap_partition import warm_up
if sys.argv[1] == "warm":
    t0 = time.perf_counter(); warm_up(); print("warm", time.perf_counter() - t0)
torch.manual_seed(0)
m = build_model("small_cnn", 4, 3, [0.5] * 3, [0.25] * 3).eval()
x = torch.rand(3, 64, 64)
for k in ("first", "second"):
    t0 = time.perf_counter(); explain(m, x, "shap_partition"); print(k, time.perf_counter() - t0)
"""


def _child(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         cwd=config.ROOT).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if len(line.split()) == 2)}


def shap_first_call() -> str:
    """SHAP Partition's first call in a fresh process, without and with the start-up warm-up."""
    print(f"bench: SHAP Partition first call ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
    cold, warm = _child(SHAP_CHILD, "cold"), _child(SHAP_CHILD, "warm")
    return (f"| fresh process, no warm-up | {cold['first']:.2f} | {cold['second']:.2f} |\n"
            f"| after `warm_up()` (the app runs it in a background thread at start; it took {warm['warm']:.2f} s) | "
            f"{warm['first']:.2f} | {warm['second']:.2f} |")


MEMORY_CHILD = """
import os, sys, threading, time, torch
from core.modelling.architectures import build_model
from core.explainers import explain
from core.explainers.integrated_gradients import IntegratedGradients as OurIG
torch.manual_seed(0)
m = build_model("resnet50", 1000, 3, [0.5] * 3, [0.25] * 3).eval()
x = torch.rand(3, 224, 224)
page = os.sysconf("SC_PAGE_SIZE")
def rss():  # resident set size now, GiB (ru_maxrss would include the import-time peak of the CUDA build)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2**30
peak, done = [rss()], threading.Event()
def sample():
    while not done.is_set():
        peak.append(rss()); time.sleep(0.005)
print("before", peak[0])
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
if sys.argv[1] == "engine":
    explain(m, x, "integrated_gradients", n_steps=200, target=1)
else:
    from captum.attr import IntegratedGradients
    ibs = OurIG.points_per_pass(0, (3, 224, 224))
    IntegratedGradients(m).attribute(x[None], baselines=torch.zeros(1, 3, 224, 224), target=1, n_steps=200,
                                     internal_batch_size=ibs, return_convergence_delta=True)
print("seconds", time.perf_counter() - t0)
done.set()
print("peak", max(peak))
"""


def ig_memory() -> str:
    """Peak memory (resident set, sampled every 5 ms, GiB) of Integrated Gradients, 200 steps, ResNet-50 at 224 px,
    each in a fresh process: before the call, the peak during it, and so what the call itself added."""
    rows = []
    for who, label in (("engine", "engine (`explain`, internal batching auto)"),
                       ("captum", "captum's `IntegratedGradients` with the same `internal_batch_size`")):
        print(f"bench: IG memory, {who} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        r = _child(MEMORY_CHILD, who)
        rows.append(f"| {label} | {r['before']:.2f} | {r['peak']:.2f} | {r['peak'] - r['before']:.2f} | {r['seconds']:.1f} |")
    return "\n".join(rows)


def ui_click_to_maps(port: int = 8765) -> str:
    """Seconds from opening (or changing) the default Explain page to its maps on screen, in headless Chromium
    against ``streamlit run`` on localhost: cold (a fresh server), warm (a reload: cached maps), and a new
    image on the warm server (maps computed)."""
    import shutil
    import urllib.request

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return "| (no Chromium on this machine: `apt-get install chromium`) | | | |"
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(config.ROOT / "streamlit_app.py"),
                             "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=config.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        maps = ("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 4 && "
                "document.querySelector(\"[data-testid='stApp']\").dataset.testScriptState === 'notRunning'")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            times = {}
            for label in ("cold", "warm"):
                t0 = time.perf_counter()
                page.goto(f"{url}/explain", timeout=120_000)
                page.wait_for_function(maps, timeout=180_000)
                times[label] = time.perf_counter() - t0
            t0 = time.perf_counter()
            page.locator(".st-key-image_index button").last.click()  # the "+" step: the next, uncomputed image
            page.wait_for_timeout(200)
            page.wait_for_function(maps, timeout=180_000)
            times["new image"] = time.perf_counter() - t0
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return (f"| default Explain page (Grad-CAM, IG, Saliency on the demo model) | {times['cold']:.1f} | "
            f"{times['warm']:.1f} | {times['new image']:.1f} |")


def ood_rates(model_path: str, folders: Sequence[str]) -> str:
    """How often the model's OOD warning fires: on its own val and test splits, and on folders of other images
    (real photographs, X-rays), each image preprocessed as an upload is."""
    from core.modelling.evaluation import load_or_compute
    from core.datasets.images import open_image, preprocess
    from core.modelling.trust import ood_check

    model, card = load_model(model_path, device="cpu")
    ev, _ = load_or_compute(model_path, model)
    o = ev.metrics.get("ood") or {}
    rows = [f"| {card.id} | own validation split (calibration) | {o.get('val_flag_rate', float('nan')):.1%} |",
            f"| {card.id} | own test split ({ev.metrics['n']} images) | {o.get('test_flag_rate', float('nan')):.1%} |"]
    for folder in folders:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            rows.append(f"| {card.id} | {folder}: no images found | n/a |")
            continue
        x = torch.stack([preprocess(open_image(f), card.input_size, card.channels)[0] for f in files])
        flagged = [r.flagged for r in ood_check(model, model_path, x)]
        rows.append(f"| {card.id} | {Path(folder).name} ({len(files)} images) | {np.mean(flagged):.1%} |")
    return "| model | images | flagged as out of distribution |\n|---|---|---:|\n" + "\n".join(rows)


#: the benchmark's methods: the fast ones of every gradient / CAM family (LIME, Occlusion and Score-CAM times ten
#: re-runs for max-sensitivity and randomisation over 200 images would take an hour here; the Quality page and
#: `core quality` run them on smaller samples)
QUALITY_METHODS = ("grad_cam", "grad_cam_plusplus", "saliency", "integrated_gradients", "input_x_gradient",
                   "guided_backprop", "deeplift")
QUALITY_PARAMS = {"integrated_gradients": {"n_steps": 16}, "lime": {"num_samples": 500}}
QUALITY_METRICS = ("deletion", "insertion", "road", "pointing_game", "relevance_mass", "marker_mass", "max_sensitivity",
                   "randomisation", "sparseness")


def quality_table(model_path: str, n: int, methods: Sequence[str] = QUALITY_METHODS,
                  metrics: Sequence[str] = QUALITY_METRICS) -> str:
    """The method x metric table over ``n`` test images (seed 0), seconds per image per metric, and Quantus's time
    for the same metrics on the same maps where Quantus computes them."""
    from core.quality import evaluate, get_metric

    model, card = load_model(model_path, device="cpu")
    ds = load_dataset(card.dataset, "test", size=card.input_size)
    t0 = time.perf_counter()
    report = evaluate(model, ds, methods, metrics, n=n, seed=0, params=QUALITY_PARAMS)
    total = time.perf_counter() - t0
    shown = [m for m in metrics if not all(c.skipped for c in report.cells if c.metric == m)]
    head = "| method | " + " | ".join(f"{get_metric(m).title} {'↑' if get_metric(m).higher_is_better else '↓'}"
                                      for m in shown) + " |"
    lines = [f"**{card.id}** on {card.dataset} test, n = {len(report.indices)} (seed 0), each method explaining the "
             f"predicted class, default parameters but IG with 16 steps; mean ± 95% CI; {_env()}", "", head,
             "|---|" + "---:|" * len(shown)]
    for method in methods:
        cells = [report.cell(method, m) for m in shown]
        lines.append(f"| {get_method(method).title} | " + " | ".join(
            "n/a" if c.skipped else f"{c.mean:.3f} ± {c.ci95:.3f}" for c in cells) + " |")
    base = {}
    for m in shown:
        found = [np.nanmean(c.extras["random_baseline"]) for c in report.cells if c.metric == m and "random_baseline" in c.extras]
        base[m] = float(np.mean(found)) if found else float("nan")
    lines.append("| *random map* | " + " | ".join(f"*{base[m]:.3f}*" if base[m] == base[m] else "" for m in shown) + " |")
    lines += ["", "Ranking: " + "; ".join(f"{k}. {get_method(m).title} ({why})" for k, (m, _, why)
                                          in enumerate(report.ranking(), 1))]
    failed = report.sanity_failures()
    lines.append("Fails the randomisation sanity check: " + (", ".join(get_method(m).title for m in failed) or "none"))
    per = {m: sum(c.seconds for c in report.cells if c.metric == m) / (len(report.indices) * len(methods)) for m in shown}
    lines += ["", f"Whole table: **{total / 60:.1f} min** ({len(methods)} methods x {len(shown)} metrics, maps "
              f"included: {sum(report.map_seconds.values()):.0f} s of maps).", "",
              "| metric | seconds per image per method (mean over methods) |", "|---|---:|"]
    lines += [f"| {get_metric(m).title} | {per[m]:.4f} |" for m in shown]
    lines += ["", quantus_comparison(model, ds)]
    return "\n".join(lines)


def lime_agreement(model_path: str, n: int = 8, sizes: Sequence[int] = (100, 250, 500, 1000, 2000), runs: int = 3) -> str:
    """LIME's run-to-run agreement (mean pairwise Spearman rho of its maps over ``runs`` seeds) against its number of
    samples, on the first ``n`` test images."""
    from core.modelling.prediction import predict_proba
    from core.quality.base import QualityInputs
    from core.quality.run_agreement import agreement_curve

    model, card = load_model(model_path, device="cpu")
    ds = load_dataset(card.dataset, "test", size=card.input_size)
    x = ds.batch(np.arange(min(n, len(ds))))
    inp = QualityInputs(model, x, predict_proba(model, x).argmax(axis=1), np.zeros((len(x), *x.shape[2:])), "lime",
                        {"seed": 0})
    t0 = time.perf_counter()
    curve = agreement_curve(inp, "num_samples", list(sizes), runs=runs)
    return (f"LIME run-to-run agreement, {card.id}, {len(x)} test images, {runs} seeds each "
            f"({time.perf_counter() - t0:.0f} s):\n\n| samples | " + " | ".join(map(str, curve["x"])) + " |\n|---|"
            + "---:|" * len(curve["x"]) + "\n| mean Spearman ρ between runs | "
            + " | ".join(f"{y:.2f}" for y in curve["y"]) + " |")


def quantus_comparison(model: nn.Module, ds, n: int = 64) -> str:
    """Ours vs Quantus on the same Grad-CAM maps of ``n`` images: seconds and the largest difference."""
    import quantus

    from core.quality.base import QualityInputs
    from core.quality.sparseness import gini
    from core.quality.perturbation import curves
    from core.quality.pointing_game import pointing_game
    from core.quality.relevance_mass import relevance_mass

    x = ds.batch(np.arange(min(n, len(ds))))
    y = logits(model, x).argmax(1).numpy()
    maps = np.stack([e.attribution for e in explain_batch(model, x, "grad_cam", targets=y.tolist())])
    masks = ds.masks[: len(x)]
    kw = dict(model=model, x_batch=x.numpy(), y_batch=y, a_batch=maps[:, None], device="cpu")
    s = masks[:, None].astype(float)
    hw = maps.shape[1] * maps.shape[2]
    rows = []

    def both(name, ours, theirs, compare=True):
        t = time.perf_counter(); a = np.asarray(ours(), dtype=float); t_ours = time.perf_counter() - t  # noqa: E702
        t = time.perf_counter(); b = np.asarray(theirs(), dtype=float); t_q = time.perf_counter() - t  # noqa: E702
        diff = f"{np.nanmax(np.abs(a - b)):.1e}" if compare else "(different step sets)"
        rows.append(f"| {name} | {t_ours:.3f} | {t_q:.3f} | {t_q / max(t_ours, 1e-9):.1f}x | {diff} |")

    both("Sparseness (Gini)", lambda: gini(maps), lambda: quantus.Sparseness(normalise=False, disable_warnings=True)(**kw))
    both("Pointing game", lambda: pointing_game(maps, masks),
         lambda: quantus.PointingGame(normalise=False, disable_warnings=True)(**kw, s_batch=s))
    both("Relevance mass", lambda: relevance_mass(maps, masks),
         lambda: quantus.RelevanceMassAccuracy(normalise=False, disable_warnings=True)(**kw, s_batch=s))
    steps = 16
    both(f"Deletion / PixelFlipping, {steps} steps, black", lambda: curves(
        QualityInputs(model, x, y, maps, "grad_cam", {}), insert=False, steps=steps, how="zero")[:, 1:],
        lambda: quantus.PixelFlipping(features_in_step=hw // steps, normalise=False,
                                      perturb_baseline="black", disable_warnings=True)(**kw, softmax=True),
        compare=False)
    return (f"Ours vs Quantus 0.6.0 on the same {len(x)} Grad-CAM maps (seconds for the whole batch):\n\n"
            "| metric | ours (s) | Quantus (s) | Quantus / ours | largest difference |\n|---|---:|---:|---:|---:|\n"
            + "\n".join(rows))


#: the photo workflow's benchmark: per architecture, the methods timed and their settings
IMAGENET_BENCH: dict[str, dict[str, dict[str, Any]]] = {
    "resnet50": {"grad_cam": {}, "integrated_gradients": {"n_steps": 64}, "lime": {"num_samples": 1000}},
    "vit_b_16": {"grad_cam": {}, "attention_rollout": {}, "integrated_gradients": {"n_steps": 64}},
}


def imagenet_table(photo: torch.Tensor | None = None) -> str:
    """The ImageNet photo workflow's speed: ResNet-50 and ViT-B/16 at 224 px (random weights of the right shapes:
    speed only; timing does not depend on the values), one photo, each method beside the library's own call with
    the same settings (LIME: beside its 1,000 model images in plain batches, the floor any LIME has)."""
    from core.explainers import hidden_methods

    if photo is None:
        photo = to_tensor(shapes.generate(1, 11, 224)[0][0])
    lines = ["| model | method | ours (s) | library's own call (s) | ours / library |", "|---|---|---:|---:|---:|"]
    notes = []
    for arch, methods in IMAGENET_BENCH.items():
        torch.manual_seed(0)
        model = build_model(arch, 1000, 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).to(config.pick_device()).eval()
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
        x = photo[None].to(config.pick_device())
        target = int(logits(model, x).argmax())
        for name, kw in methods.items():
            print(f"bench: {arch} {name} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
            cheap = {**kw, **({"num_samples": 64} if name == "lime" else {"n_steps": 4} if "n_steps" in kw else {})}
            explain(model, x[0], name, target, **cheap)  # warm-up (a cheap call: the timed one is long enough)
            t0 = time.perf_counter()
            explain(model, x[0], name, target, **kw)
            ours = time.perf_counter() - t0
            ref = _library_call(model, x, name, target, kw)
            if ref is not None:
                if name != "lime":
                    ref()  # warm-up
                t0 = time.perf_counter()
                ref()
                lib = time.perf_counter() - t0
            else:
                lib = float("nan")
            shown = ", ".join(f"{k}={v}" for k, v in kw.items())
            ratio = f"{ours / lib:.2f}x" if lib == lib else "—"
            lines.append(f"| {arch} | {get_method(name).title}{f' ({shown})' if shown else ''} | {ours:.2f} | "
                         f"{lib:.2f} | {ratio} |")
            print("bench: " + lines[-1], file=sys.stderr, flush=True)
        hidden = hidden_methods(model)
        notes.append(f"{arch} hides: " + ("; ".join(f"{get_method(m).title} ({why})" for m, why in hidden.items())
                                           or "nothing"))
    return (f"**ImageNet models at 224 px**, one photo, one timed run after a warm-up; {_env()}\n\n"
            + "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes))


def _library_call(model: nn.Module, x: torch.Tensor, method: str, target: int, kw: dict[str, Any]):
    """The library's own call with the same settings, as its user writes it (None where it has none)."""
    params = resolve_params(method, model, **kw)
    if method in ("grad_cam", "integrated_gradients"):
        return library_batched_call(model, x, method, params)
    if method == "lime":
        return plain_calls(model, x[0], params["num_samples"], params["batch_size"])
    return None


API_ROUNDS: list[tuple[str, int, int]] = [  # (mix, concurrent clients, requests), in this order
    ("predict", 8, 400), ("predict", 32, 400), ("mix", 8, 120), ("mix", 32, 120), ("mix", 32, 120), ("mix", 32, 120),
    ("predict", 8, 400)]


def api_load(model_id: str, rounds: Sequence[tuple[str, int, int]] = API_ROUNDS, max_seconds: float = 120.0) -> str:
    """The REST API under load: a real uvicorn server (``python -m core serve``) on a free localhost port and an
    async HTTP client (httpx2) with N concurrent clients, each round bounded in requests and seconds. ``predict``:
    POST /predict with a PNG upload; ``mix``: predict, explain Grad-CAM and explain IG (default 64 steps) in turn.
    Reports throughput, latency percentiles, errors and the server's resident memory before and after."""
    import asyncio
    import io
    import socket

    import httpx2
    from PIL import Image

    _, card = load_model(model_id)
    ds = load_dataset(card.dataset, split="test", size=card.input_size)
    uploads = []
    for i in range(16):
        buf = io.BytesIO()
        Image.fromarray(ds.image(i)).save(buf, format="PNG")
        uploads.append(buf.getvalue())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in __import__("os").environ.items() if k != "XAI_API_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    lines = ["| round | clients | requests | seconds | requests / s | p50 (ms) | p95 (ms) | p99 (ms) | errors | "
             "server RSS before → after (MiB) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx2.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx2.HTTPError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the API server did not start")
                time.sleep(0.3)

        def request(kind: str, k: int):
            png = uploads[k % len(uploads)]
            files = {"image": ("x.png", png, "image/png")}
            if kind == "predict" or k % 3 == 0:
                return "/predict", {"model": model_id}, files
            method = "grad_cam" if k % 3 == 1 else "integrated_gradients"
            return "/explain", {"model": model_id, "methods": method}, files

        async def one_round(kind: str, clients: int, total: int) -> tuple[list[float], int, float]:
            latencies: list[float] = []
            errors = 0
            issued = 0
            stop_at = time.perf_counter() + max_seconds
            async with httpx2.AsyncClient(base_url=base, timeout=120, limits=httpx2.Limits(max_connections=clients)) as c:
                async def worker() -> None:
                    nonlocal issued, errors
                    while issued < total and time.perf_counter() < stop_at:
                        k = issued
                        issued += 1
                        url, data, files = request(kind, k)
                        t0 = time.perf_counter()
                        try:
                            r = await c.post(url, data=data, files=files)
                            ok = r.status_code == 200
                        except httpx2.HTTPError:
                            ok = False
                        latencies.append(time.perf_counter() - t0)
                        errors += not ok

                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(clients)))
                return latencies, errors, time.perf_counter() - t0

        asyncio.run(one_round("predict", 4, 40))  # warm-up: models loaded, first calls done
        for kind, clients, total in rounds:
            print(f"bench: API {kind} x{clients} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
            before = rss_mib(proc.pid)
            lat, errors, secs = asyncio.run(one_round(kind, clients, total))
            after = rss_mib(proc.pid)
            ms = np.percentile(np.array(lat) * 1000, [50, 95, 99])
            label = "POST /predict" if kind == "predict" else "mix: /predict, /explain Grad-CAM, /explain IG"
            lines.append(f"| {label} | {clients} | {len(lat)} | {secs:.1f} | {len(lat) / secs:.1f} | {ms[0]:.0f} | "
                         f"{ms[1]:.0f} | {ms[2]:.0f} | {errors} | {before:.0f} → {after:.0f} |")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return (f"**REST API under load**: {card.id} ({card.arch}, {card.input_size} px), PNG uploads, one uvicorn "
            f"process on localhost, async client in the same machine; {_env()}\n\n" + "\n".join(lines))


def run(model_path: str, n_images: int = 5, methods: Sequence[str] | None = None, resnet224: bool = False,
        n_images_224: int = 1, batch: bool = False, lime: bool = False, shap_jit: bool = False,
        memory: bool = False, n_batch: int = 64, n_batch_224: int = 16, ui: bool = False,
        ood_folders: Sequence[str] = (), quality: int = 0, lime_runs: bool = False, imagenet: bool = False,
        api: bool = False) -> str:
    methods = list_methods() if methods is None else list(methods)
    model, card = load_model(model_path)
    ds = load_dataset(card.dataset, split="test", size=card.input_size)
    images = [ds[i][0] for i in range(min(n_images, len(ds)))]
    out = []
    title = f"**{card.id}** ({card.arch}, {card.input_size} px, {card.channels} ch)"
    net = imgs224 = None
    if resnet224 or lime:
        torch.manual_seed(0)
        net = build_model("resnet18", 10, 3, [0.5] * 3, [0.25] * 3).to(config.pick_device()).eval()
        imgs224 = torch.stack([to_tensor(a) for a in shapes.generate(max(n_images_224, n_batch_224), 7, 224)[0]])
    if methods:
        background = load_dataset(card.dataset, split="train", size=card.input_size).sample(256)
        out.append(table(bench_model(model, images, methods, background=background),
                         f"{title}, median of {len(images)} test images, default settings; {_env()}"))
        if resnet224:
            sample = list(imgs224[:n_images_224])
            out.append(table(bench_model(net, sample, methods, SETTINGS_224, background=imgs224),
                             f"**ResNet-18 at 224 px** (random weights: speed only), median of {len(sample)} image(s), "
                             f"default settings except where shown; {_env()}"))
    if batch:
        x = ds.batch(np.arange(min(n_batch, len(ds))))
        out.append(batch_table(batch_rows(model, x), f"**Batched engine**, {title}, {len(x)} test images, median of 3 "
                                                     f"runs after a warm-up; {_env()}"))
        if resnet224:
            out.append(batch_table(batch_rows(net, imgs224[:n_batch_224], BATCH_SETTINGS_224, repeats=1),
                                   f"**Batched engine, ResNet-18 at 224 px** (random weights), {n_batch_224} images, "
                                   f"one run after a warm-up; {_env()}"))
        out.append("| whole split | engine, batched | engine, one by one | library |\n|---|---:|---:|---:|\n"
                   + split_throughput(model, ds.batch(np.arange(len(ds)))))
    if lime:
        head = ("| LIME, 1,000 samples | total (s) | inside the model (s) | lime package around it (s) | "
                "1,000 images in plain batches of 128 (s) | LIME / plain model calls |\n|---|---:|---:|---:|---:|---:|")
        out.append(head + "\n" + lime_breakdown(model, images[0], f"{card.id}, {card.input_size} px") + "\n"
                   + lime_breakdown(net, imgs224[0], "ResNet-18, 224 px", repeats=1))
    if shap_jit:
        out.append("| SHAP Partition (500 evaluations, small CNN, 64 px) | first call (s) | second call (s) |\n"
                   "|---|---:|---:|\n" + shap_first_call())
    if ui:
        out.append("| click to maps, headless Chromium | cold: fresh server, first visit (s) | warm: reload (s) | "
                   "warm server, next image (s) |\n|---|---:|---:|---:|\n" + ui_click_to_maps())
    if ood_folders:
        out.append(ood_rates(model_path, ood_folders))
    if quality:
        out.append(quality_table(model_path, quality))
    if lime_runs:
        out.append(lime_agreement(model_path))
    if api:
        out.append(api_load(card.id))
    if imagenet:
        photos = sorted((config.ROOT.parent / "shared" / "data" / "samples" / "dogs_vs_wolves").rglob("*.jpg"))
        photo = None
        if photos:
            from core.datasets.images import open_image, preprocess

            photo = preprocess(open_image(photos[0]), 224, 3, 256)[0]
        out.append(imagenet_table(photo))
    if memory:
        out.append("| Integrated Gradients, 200 steps, ResNet-50, 224 px | resident before (GiB) | peak (GiB) | "
                   "added by the call (GiB) | seconds |\n|---|---:|---:|---:|---:|\n" + ig_memory())
    return "\n\n".join(out)


def main(args) -> int:
    methods = (None if args.methods in (None, "all") else [] if args.methods == "none"
               else [m.strip() for m in args.methods.split(",")])
    print(run(args.model or str(config.models_dir() / config.DEMO_MODEL_ID), args.images, methods, args.resnet224,
              batch=args.batch, lime=args.lime, shap_jit=args.shap_jit, memory=args.memory, ui=args.ui,
              ood_folders=args.ood or (), quality=args.quality, lime_runs=args.lime_agreement, imagenet=args.imagenet,
              api=args.api))
    if getattr(args, "lime_default", False):
        from benchmarks.lime_adaptive import resnet_default

        print("\n" + resnet_default(args.photos))
    if getattr(args, "api_hostile", False):
        from benchmarks.api_hostile import run as hostile

        print("\n" + hostile(Path(args.model).name if args.model else config.DEMO_MODEL_ID))
    if getattr(args, "foreign_hooks", False):
        from benchmarks.foreign_hooks import report as hooks_report

        print("\n" + hooks_report(args.model or str(config.models_dir() / config.DEMO_MODEL_ID)))
    if getattr(args, "imported", False):
        from benchmarks.imported import report as imported_report

        print("\n" + imported_report())
    if getattr(args, "memory_estimate", False):
        from benchmarks.memory_estimate import report as memory_report

        print("\n" + memory_report(args.model))
    if getattr(args, "estimates", False):
        from benchmarks.estimates import report as estimates_report

        print("\n" + estimates_report(args.model))
    if getattr(args, "inference_passes", False):
        from benchmarks.lime_adaptive import passes_report

        print("\n" + passes_report(args.model))
    if getattr(args, "lime_adaptive", False):
        from benchmarks.lime_adaptive import report as lime_report

        print("\n" + lime_report(args.photos, args.model))
    if getattr(args, "runs", False):
        from benchmarks.runs import bench_runs, report

        print("\n" + report(bench_runs(args.model or str(config.models_dir() / config.DEMO_MODEL_ID))))
    return 0
