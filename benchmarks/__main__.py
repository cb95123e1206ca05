"""``python -m benchmarks [flags]``: the benchmark's command (see :mod:`benchmarks.bench` and the README)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from benchmarks.bench import main as run_bench


def build_parser() -> argparse.ArgumentParser:
    b = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="Time every attribution method on a trained model, and the sections below")
    b.add_argument("--model", default=None, help="model folder (default: the demo model)")
    b.add_argument("--images", type=int, default=5)
    b.add_argument("--resnet224", action="store_true", help="also time a ResNet-18 at 224 px")
    b.add_argument("--methods", default="all", help="comma-separated, 'all', or 'none' (only the sections below)")
    b.add_argument("--batch", action="store_true", help="batched engine vs single calls vs the libraries; whole split")
    b.add_argument("--lime", action="store_true", help="where LIME's time goes")
    b.add_argument("--shap-jit", action="store_true", help="SHAP Partition's first call, with and without warm-up")
    b.add_argument("--api", action="store_true",
                   help="the REST API under load: /predict and a predict/explain mix at 8 and 32 concurrent clients")
    b.add_argument("--imagenet", action="store_true",
                   help="the photo workflow: ResNet-50 (Grad-CAM, IG 64, LIME 1,000) and ViT-B/16 at 224 px")
    b.add_argument("--memory", action="store_true", help="peak memory of IG (200 steps) on ResNet-50 at 224 px")
    b.add_argument("--quality", type=int, default=0, metavar="N",
                   help="explanation-quality table over N test images, seconds per metric, Quantus beside it")
    b.add_argument("--lime-agreement", action="store_true",
                   help="LIME's run-to-run agreement against its number of samples")
    b.add_argument("--ood", action="append", metavar="FOLDER",
                   help="OOD warning rates on the model's splits and on the images under FOLDER (repeatable)")
    b.add_argument("--ui", action="store_true", help="seconds from opening the Explain page to its maps (Chromium)")
    b.add_argument("--runs", action="store_true",
                   help="whole-split runs: local engine vs Ray (1 and 2 workers) vs plain batched passes; map bytes; "
                        "clustering 2,000 maps")
    b.add_argument("--lime-adaptive", action="store_true",
                   help="adaptive vs fixed-count LIME on photos (ResNet-50) and the demo model; stability calibration; "
                        "seconds per model pass in each inference setting")
    b.add_argument("--photos", type=int, default=10, help="photos for --lime-adaptive")
    b.add_argument("--lime-default", action="store_true",
                   help="ResNet-50 at 224 px on the photos, LIME with its defaults (adaptive), one run each")
    b.add_argument("--inference-passes", action="store_true",
                   help="only the seconds per model pass in each inference setting, torch.compile included")
    b.add_argument("--api-hostile", action="store_true",
                   help="the API under hostile load: /health under compute load, 16 large uploads, 300 jobs")
    b.add_argument("--foreign-hooks", action="store_true",
                   help="Grad-CAM on a model carrying pytorch-grad-cam's hooks, beside the library's own call")
    b.add_argument("--imported", action="store_true",
                   help="an imported ResNet-50 against the built-in one, same weights and images, interleaved; writes "
                        "benchmarks/results/imported.csv")
    b.add_argument("--memory-estimate", action="store_true",
                   help="the engine's memory estimate against the measured peak, per method at high settings")
    b.add_argument("--estimates", action="store_true",
                   help="every time estimate (training, the Explain sidebar, Quality, a whole-split run, Compare) "
                        "against the measured time, on the demo model; writes benchmarks/results/estimates.csv")
    return b


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(build_parser().parse_args(argv)) or 0


if __name__ == "__main__":
    sys.exit(main())
