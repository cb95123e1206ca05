"""The two engines that compute a run's missing parts: ``local`` (this process; the default and the reference) and
``ray`` (Ray Data's ``map_batches`` over a pool of actors, on a local cluster or an existing one).

Both compute each part with :class:`~core.runs.compute.PartWorker` from the same plan and the same ids, and hand its
Parquet bytes to ``publish`` in this process, which writes it: a part is written by one process, atomically, and
the workers need no shared filesystem for the results. Ray runs each actor's torch on the CPUs Ray gives it
(``torch.set_num_threads``), and the actors rebuild the model from its folder (weights digest checked): no model is
pickled.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from core import config
from core.cancel import CancelToken
from core.errors import Cancelled, RunError
from core.runs.compute import PartWorker
from core.runs.plan import RunPlan

#: ``publish(part_index, parquet_bytes)``
Publish = Callable[[int, bytes], None]
#: ``progress(images_done_in_this_invocation)``
Progress = Callable[[int], None]


def run_local(plan: RunPlan, todo: list[int], publish: Publish, *, batch_size: int, progress: Progress,
              cancel: CancelToken | None = None) -> dict[str, Any]:
    worker = PartWorker(plan, batch_size=batch_size)
    parts, done = plan.parts(), 0
    for k in todo:
        data = worker.part(parts[k], progress=lambda n, base=done: progress(base + n), cancel=cancel)
        publish(k, data)
        done += len(parts[k])
    import torch

    return {"name": "local", "workers": 1, "threads": torch.get_num_threads()}


def ray_env() -> dict[str, Any]:
    """The runtime environment of our Ray jobs: the project importable, and the same folders as the driver (a real
    cluster needs the project and the model and data folders at the same paths on every node: see the README)."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(config.ROOT), os.environ.get("PYTHONPATH")])),
           "XAI_MODELS_DIR": str(config.models_dir()), "XAI_DATA_DIR": str(config.data_dir())}
    if os.environ.get("XAI_DEVICE"):
        env["XAI_DEVICE"] = os.environ["XAI_DEVICE"]
    return {"env_vars": env}


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``address``, or start a local one sized to this machine; ``False`` when this process
    is already connected (the caller then leaves the cluster running)."""
    try:
        import ray
    except ImportError:
        raise RunError("the ray engine needs Ray: pip install 'ray[data]' (it is in requirements.txt)") from None
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"runtime_env": ray_env(), "log_to_driver": False, "configure_logging": False}
    if address:
        _reachable(address)
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        hint = " (is `ray start --head` running there, and is the address host:port of its GCS, e.g. 10.0.0.5:6379?)" \
            if address else ""
        raise RunError(f"cannot connect to {where}: {exc}{hint}") from None
    return True


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A plain ``host:port`` that nothing answers on fails here in seconds (``ray.init`` would retry for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...": left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RunError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc} (is `ray start --head` "
                       "running there, and is the address host:port of its GCS, e.g. 10.0.0.5:6379?)") from None


class _PartActor:
    """One Ray actor: builds its :class:`PartWorker` once, then computes one part per batch row."""

    def __init__(self, plan: dict[str, Any], batch_size: int, threads: int) -> None:
        self.worker = PartWorker(plan, batch_size=batch_size, threads=threads)
        self.parts = self.worker.plan.parts()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = [int(k) for k in batch["part"]]
        data = [self.worker.part(self.parts[k]) for k in keys]
        return {"part": np.asarray(keys, dtype=np.int64), "data": np.asarray(data, dtype=object)}


def run_ray(plan: RunPlan, todo: list[int], publish: Publish, *, batch_size: int, progress: Progress,
            cancel: CancelToken | None = None, address: str | None = None, workers: int | None = None) -> dict[str, Any]:
    import ray

    started = start_ray(address)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = max(1, min(int(workers or cpus), len(todo) or 1))
        threads = max(1, cpus // n)
        parts = plan.parts()
        ds = ray.data.from_items([{"part": k} for k in todo], override_num_blocks=max(1, len(todo)))
        ds = ds.map_batches(_PartActor, fn_constructor_kwargs={"plan": plan.to_dict(), "batch_size": batch_size,
                                                               "threads": threads},
                            batch_size=1, compute=ray.data.ActorPoolStrategy(size=n), num_cpus=threads,
                            batch_format="numpy")  # Ray Data restarts a lost actor and retries its part
        done = 0
        for row in ds.iter_rows():
            if cancel is not None and cancel.cancelled:
                raise Cancelled("the run was cancelled; the parts already written are kept (run it again to resume)")
            k = int(row["part"])
            publish(k, bytes(row["data"]))
            done += len(parts[k])
            progress(done)
        where = address or "local cluster"
        return {"name": "ray", "workers": n, "threads": threads, "address": where, "cluster_cpus": cpus,
                "ray": ray.__version__}
    finally:
        if started:
            ray.shutdown()
