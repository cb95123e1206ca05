"""Seeds for stochastic methods: one seed per image, and seeded calls that leave the caller's RNGs as found.

A batch call with ``seed=s`` explains image ``i`` with seed ``s + i`` (modulo 2**31), so image ``i`` of a
batch gets exactly the map that ``explain(image_i, seed=s + i)`` gives, and a one-image batch is the
old single-image call.
"""
from __future__ import annotations

import contextlib
import random
import threading
from typing import Iterator

import numpy as np
import torch

SEED_MODULUS = 2**31

#: Methods that draw from the *global* generators (torch's default generator, ``np.random``, ``random``)
#: hold this lock while seeded, so two threads never interleave their draws.
rng_lock = threading.Lock()


def image_seeds(seed: int | None, n: int) -> tuple[int, ...]:
    """The seed of each of ``n`` images of a call seeded with ``seed`` (``()`` for an unseeded call)."""
    if seed is None:
        return ()
    return tuple((int(seed) + i) % SEED_MODULUS for i in range(n))


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed torch (CPU and every CUDA device), numpy and random for one call, under :data:`rng_lock`;
    the caller's generator states are restored afterwards, CUDA's included. ``None``: no-op."""
    if seed is None:
        yield
        return
    with rng_lock, torch.random.fork_rng(devices=_cuda_devices()):
        np_state, py_state = np.random.get_state(), random.getstate()
        torch.manual_seed(seed)  # seeds every CUDA device too; fork_rng restores them
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
