"""What the benchmark modules share."""
from __future__ import annotations

import csv
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

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


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn``, after one warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def write_rows(rows: list[dict], path: Path) -> Path:
    """A benchmark's rows as a CSV file (its columns: the first row's keys), the folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
