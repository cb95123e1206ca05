"""Benchmarks: kept outside the importable library, as timm keeps ``benchmark.py`` beside its package.
Run ``python -m benchmarks --help``."""
