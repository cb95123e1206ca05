"""What the routes share, kept on ``app.state`` for the app's lifetime: the loaded models, the compute threads, the
job runner (:mod:`core.jobs`), the limits, and the reading of an image from an upload or a dataset reference."""
from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from fastapi import Request, UploadFile

from core import config, errors
from core.faces.api.http_errors import ServerBusy, SyncTimeout
from core.faces.api.limits import Limits
from core.jobs import JobRunner, JobStore


class Models:
    """Loaded models, shared by every request (a model is only read; methods that change one use replicas)."""

    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
        self.size = size

    def get(self, model_id: str):
        from core.modelling.checkpoints import load_model, resolve_model_path

        path, card = model_card(model_id)
        key = (str(resolve_model_path(path)), card.weights_sha256)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        loaded = load_model(path)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > self.size:
                self._loaded.popitem(last=False)
        return loaded


class Lane:
    """A few fixed threads for one kind of work, and a bound on how much of it may wait: beyond ``max_waiting``
    queued calls, :meth:`submit` raises :class:`ServerBusy` (503 with ``Retry-After``)."""

    def __init__(self, threads: int, max_waiting: int, name: str) -> None:
        self.threads, self.max_waiting, self.name = threads, max_waiting, name
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._in = 0  # calls queued or running

    def submit(self, fn: Callable[[], Any], bounded: bool = True):
        """``fn`` on a lane thread; ``bounded=False`` for a job's call (jobs are bounded by their own workers and
        queue: an accepted job waits for a thread instead of failing as busy)."""
        with self._lock:
            if bounded and self._in >= self.threads + self.max_waiting:
                raise ServerBusy(f"the server is busy ({self._in} {self.name} calls queued or running); retry in a "
                                 "few seconds, or send async=true to run it as a job", retry_after=5)
            self._in += 1
        future = self.pool.submit(fn)
        future.add_done_callback(self._release)
        return future

    def _release(self, _future) -> None:
        with self._lock:
            self._in -= 1


class Services:
    """The app's shared state. Work runs on fixed threads, never on the event loop or the request threads: model
    computations on ``compute`` (as many at once as there are cores: more only adds memory, and the C allocator's
    per-thread arenas stay as few as these threads), and loading a model and decoding an upload on ``decode`` (a
    large image costs hundreds of MiB while it is decoded: so few at once, and a job submitted while the compute
    threads are busy is still checked at once). Handlers await these futures, so ``/health`` and job polls answer
    at once whatever the load (measured: ``python -m benchmarks --api-hostile``)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.models = Models()
        store = JobStore(limits.jobs_dir, max_bytes=limits.jobs_max_bytes, max_age=limits.jobs_max_age)
        # a long whole-split run leaves a worker for other jobs
        self.jobs = JobRunner(workers=2, name="xai-job", max_queued=limits.max_queued_jobs,
                              max_age=limits.jobs_max_age, store=store)
        self.compute = Lane(limits.compute_slots, limits.max_waiting, "xai-compute")
        self.decode = Lane(limits.decode_slots, limits.max_waiting, "xai-decode")

    def _timed_out(self, future) -> None:
        if future.cancel():  # still queued behind others: never started
            raise SyncTimeout(f"the server was busy for the {self.limits.sync_seconds:g} s limit of a synchronous "
                              "call; retry later, or send async=true to run it as a job") from None

    def computed(self, fn: Callable[[], Any], deadline: float) -> Any:
        """``fn()`` on a compute thread, waited for until ``deadline`` (from a job's thread: it waits its turn however
        many synchronous calls wait)."""
        future = self.compute.submit(fn, bounded=False)
        try:
            return future.result(timeout=None if deadline == float("inf") else max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            self._timed_out(future)
            return future.result()  # running: its cancel token stops it at the next check

    async def run(self, fn: Callable[[], Any], deadline: float, lane: Lane | None = None) -> Any:
        """``fn()`` on a ``lane`` thread (compute by default), awaited until ``deadline`` (from a handler: no thread
        waits for it)."""
        future = (lane or self.compute).submit(fn)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                          max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            self._timed_out(future)
            return await asyncio.wrap_future(future)  # running: its cancel token stops it at the next check

    def shutdown(self) -> None:
        self.jobs.shutdown()  # running jobs are cancelled at their next check
        for lane in (self.compute, self.decode):
            lane.pool.shutdown(wait=False, cancel_futures=True)

    async def upload(self, image: UploadFile | None) -> tuple[bytes, str] | None:
        """The uploaded file's bytes (at most the upload limit plus one, so a larger file is refused) and name."""
        if image is None:
            return None
        return await image.read(self.limits.max_upload + 1), image.filename or "upload"

    def read_image(self, upload: tuple[bytes, str] | None, card, dataset: str | None, split: str,
                   index: int | None):
        """The model input (C, H, W), the display array, a JSON reference to the image, and its label. Runs on a
        ``decode`` thread."""
        from core.datasets.images import preprocess_for, read_upload
        if upload is not None:
            data, name = upload
            try:
                x, display = preprocess_for(read_upload(data, self.limits.max_upload, self.limits.max_pixels), card)
            finally:
                release_memory()  # the decoded image is freed by now
            return x, display, {"upload": name, "sha256": hashlib.sha256(data).hexdigest()}, None
        if index is None:
            raise errors.ParameterError("send an image (multipart field 'image') or a dataset reference "
                                        "(fields 'index', and optionally 'dataset' and 'split')")
        name = dataset or card.dataset
        # as the model sees it: a model made elsewhere may name the dataset's classes in another order
        ds = cached_dataset(name, split, card.input_size, card=card if name == card.dataset else None, fit=card)
        if not 0 <= index < len(ds):
            raise errors.ParameterError(f"index must be in [0, {len(ds) - 1}] for {ds.info.name} {split}, got {index}")
        x, label = ds[index]
        return x, ds.image(index), {"dataset": ds.info.name, "split": split, "index": index}, int(label)


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; nothing elsewhere). A decoded photo's
    buffers are freed in pieces that glibc would otherwise keep for the thread that used them."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 (musl and others have none)
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()


def services(request: Request) -> Services:
    """The dependency routes take to reach the shared state."""
    return request.app.state.services


def model_path(model_id: str) -> Path:
    """The folder of a model id: a name, never a path (nothing outside the models folder is ever read)."""
    from core.modelling.cards import validate_model_id

    try:
        validate_model_id(model_id)
    except errors.CheckpointError as exc:
        raise errors.ParameterError(str(exc)) from None
    return config.models_dir() / model_id


def model_card(model_id: str):
    """``(folder, card)`` of a model id; an id with no model is an :class:`UnknownNameError` (404)."""
    from core.modelling.checkpoints import read_card

    path = model_path(model_id)
    try:
        return path, read_card(path)
    except errors.CheckpointError as exc:
        if not path.exists():
            raise errors.UnknownNameError(f"Unknown model {model_id!r}; GET /models lists them") from exc
        raise


_datasets_lock = threading.Lock()
_datasets: OrderedDict[tuple, Any] = OrderedDict()


def cached_dataset(name: str, split: str, size: int | None, card: Any = None, fit: Any = None):
    """A loaded split, read where the app reads it (:func:`core.modelling.data_roots.locate`), kept for the next
    requests (the last 8); with ``fit`` (a model card), as that model sees it (:func:`core.modelling.cards.fit_dataset`:
    classes mapped by name, grey images repeated for a colour model). The folder is looked for only when the split is
    not loaded yet: locating reads the settings file and may scan folders and model cards, which a request that hits
    the cache need not do."""
    from core.datasets import load_dataset
    from core.modelling.cards import fit_dataset
    from core.modelling.data_roots import locate

    key = (name, split, size, str(config.data_dir()), None if card is None else (card.id, card.weights_sha256),
           None if fit is None else (tuple(fit.classes), fit.channels))
    with _datasets_lock:
        if key in _datasets:
            return _datasets[key]
    ds = load_dataset(name, split=split, size=size, root=locate(name, card=card)[0])
    if fit is not None:
        ds = fit_dataset(fit, ds)
    with _datasets_lock:
        _datasets[key] = ds
        while len(_datasets) > 8:
            _datasets.popitem(last=False)
    return ds


def jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
