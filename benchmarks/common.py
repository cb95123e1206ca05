"""What the benchmark modules share."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from core import config


def env() -> str:
    """The machine a table was measured on, in one line."""
    return (f"torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} threads, "
            f"{platform.machine()}, device {config.pick_device()}")


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process, in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
