"""The engine's memory estimate (:mod:`core.explainers.memory`) against the measured peak: each case in a fresh
process, its resident memory sampled every 2 ms during one call after a small warm-up call.

    python -m benchmarks --methods none --memory-estimate
"""
from __future__ import annotations

import json
import subprocess
import sys

from core import config

#: (label, model: "demo" or a torchvision architecture with random weights, size, method, params, images)
CASES = [
    ("demo", 64, "gradient_shap", {"n_samples": 512}, 1),
    ("demo", 64, "smoothgrad", {"n_samples": 256, "batch_size": 256}, 1),
    ("demo", 64, "integrated_gradients", {"n_steps": 512, "internal_batch_size": 512}, 1),
    ("demo", 64, "saliency", {}, 64),
    ("demo", 64, "occlusion", {"batch_size": 1024, "window": 4, "stride": 2}, 1),
    ("resnet50", 224, "gradient_shap", {"n_samples": 16}, 1),
    ("resnet50", 224, "saliency", {}, 8),
]

_CASE = """
import json, sys, threading, time, torch
from core import explain_batch, get_method, load_model
from core.explainers import memory, resolve_params
model_name, size, method, params, n = json.loads(sys.argv[1])
if model_name == "demo":
    model, _ = load_model(sys.argv[2])
else:
    import torchvision
    model = getattr(torchvision.models, model_name)().eval()
x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
small = {k: (2 if k in ("n_samples", "batch_size", "internal_batch_size") else v) for k, v in params.items()}
explain_batch(model, x[:1], method, **small)

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

before, peak, done = rss(), [0], threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)

t = threading.Thread(target=sample)
t.start()
explain_batch(model, x, method, **params)
done.set()
t.join()
cls = get_method(method)
full = resolve_params(method, model, **params)
shape = tuple(x.shape[1:])
chunk = memory.fitting_chunk(cls, full, model, shape, min(n, cls.chunk_for(full, shape)) if cls.batched else 1)
each = memory.per_model_image(cls, model, shape)
print(json.dumps({"added": peak[0] - before, "estimate": cls.peak_images(full, shape, chunk) * each,
                  "per_image": each, "budget": memory.budget_bytes()}))
"""


def measure(model: str, size: int, method: str, params: dict, n: int, demo: str) -> dict:
    """One case in a fresh process: ``{"added", "estimate", "per_image", "budget"}`` in bytes."""
    out = subprocess.run([sys.executable, "-c", _CASE, json.dumps([model, size, method, params, n]), demo],
                         capture_output=True, text=True, timeout=600, cwd=config.ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(model_path: str | None = None) -> str:
    demo = model_path or str(config.models_dir() / config.DEMO_MODEL_ID)
    lines = ["| model | method, settings | images | estimate (MiB) | measured peak added (MiB) | measured / estimate |",
             "|---|---|---:|---:|---:|---:|"]
    budget = None
    for model, size, method, params, n in CASES:
        print(f"bench: memory {model} {method} {params}", file=sys.stderr, flush=True)
        try:
            r = measure(model, size, method, params, n, demo)
        except RuntimeError as exc:
            lines.append(f"| {model} | {method} {params} | {n} | failed: {exc} | | |")
            continue
        budget = r["budget"]
        lines.append(f"| {model} ({size} px) | {method} {json.dumps(params)} | {n} | {r['estimate'] / 2**20:.0f} | "
                     f"{r['added'] / 2**20:.0f} | {r['added'] / r['estimate']:.2f} |")
    return (f"**Memory estimate vs measured peak** (budget on this machine {budget / 2**30:.1f} GiB)\n\n"
            + "\n".join(lines))
