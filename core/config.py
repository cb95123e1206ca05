"""Project paths and compute device, resolved at call time so tests and users can override them.

Environment variables:
    XAI_MODELS_DIR  where trained models live (default: ``<repo>/models``)
    XAI_DATA_DIR    where dataset files and caches live (default: ``<repo>/data``)
    XAI_RUNS_DIR    where whole-split runs started from the app or the API are stored (default: ``<repo>/runs``)
    XAI_JOBS_DIR    where the API keeps its jobs' states and results (default: ``<repo>/jobs``)
    XAI_DEVICE      force a torch device (``cpu``, ``cuda``, ``cuda:1``); default: CUDA when present
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

#: Model id of the demo model that ``make run`` trains on first start.
DEMO_MODEL_ID = "shapes-small_cnn"


def models_dir() -> Path:
    return Path(os.environ.get("XAI_MODELS_DIR", ROOT / "models"))


def data_dir() -> Path:
    return Path(os.environ.get("XAI_DATA_DIR", ROOT / "data"))


def runs_dir() -> Path:
    return Path(os.environ.get("XAI_RUNS_DIR", ROOT / "runs"))


def jobs_dir() -> Path:
    return Path(os.environ.get("XAI_JOBS_DIR", ROOT / "jobs"))


def pick_device() -> torch.device:
    """CUDA when present (or ``XAI_DEVICE``), else CPU."""
    forced = os.environ.get("XAI_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
