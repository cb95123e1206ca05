"""What the benchmark modules share."""
from __future__ import annotations

import platform

import torch

from core import config


def env() -> str:
    """The machine a table was measured on, in one line."""
    return (f"torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} threads, "
            f"{platform.machine()}, device {config.pick_device()}")
