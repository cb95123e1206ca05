"""What the routes share, kept on ``app.state`` for the app's lifetime: the loaded models, the compute threads, the
job runner (:mod:`core.jobs`), the limits, and the reading of an image from an upload or a dataset reference."""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from fastapi import Request, UploadFile

from core import config, errors
from core.faces.api.http_errors import SyncTimeout
from core.faces.api.limits import Limits
from core.jobs import JobRunner


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


class Services:
    """The app's shared state. Model work runs on a few fixed compute threads, not on the request threads: as many
    at once as there are cores (more only adds memory), and the C allocator's per-thread arenas stay as few as these
    threads, so the server's memory levels off under load instead of growing with every new request thread
    (measured: ``python -m benchmarks --methods none --api``)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.models = Models()
        self.jobs = JobRunner(workers=2, name="xai-job")  # a long whole-split run leaves a thread for other jobs
        self.compute = ThreadPoolExecutor(max_workers=limits.compute_slots, thread_name_prefix="xai-compute")

    def computed(self, fn: Callable[[], Any], deadline: float) -> Any:
        """``fn()`` on a compute thread, waited for until ``deadline`` (a synchronous call's time limit)."""
        future = self.compute.submit(fn)
        try:
            return future.result(timeout=None if deadline == float("inf") else max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if future.cancel():  # still queued behind others: never started
                raise SyncTimeout(f"the server was busy for the {self.limits.sync_seconds:g} s limit of a synchronous "
                                  "call; retry later, or send async=true to run it as a job") from None
            return future.result()  # running: its cancel token stops it at the next check

    def shutdown(self) -> None:
        self.jobs.shutdown()  # running jobs are cancelled at their next check
        self.compute.shutdown(wait=False, cancel_futures=True)

    def read_image(self, image: UploadFile | None, card, dataset: str | None, split: str, index: int | None):
        """The model input (C, H, W), the display array, a JSON reference to the image, and its label."""
        from core.datasets.images import preprocess_for, read_upload
        from core.modelling.cards import check_dataset_fits

        if image is not None:
            data = image.file.read(self.limits.max_upload + 1)
            img = read_upload(data, self.limits.max_upload, self.limits.max_pixels)
            x, display = preprocess_for(img, card)
            return x, display, {"upload": image.filename, "sha256": hashlib.sha256(data).hexdigest()}, None
        if index is None:
            raise errors.ParameterError("send an image (multipart field 'image') or a dataset reference "
                                        "(fields 'index', and optionally 'dataset' and 'split')")
        name = dataset or card.dataset
        ds = cached_dataset(name, split, card.input_size, card=card if name == card.dataset else None)
        check_dataset_fits(card, ds.info.name, ds.classes, ds.images.shape[-1])
        if not 0 <= index < len(ds):
            raise errors.ParameterError(f"index must be in [0, {len(ds) - 1}] for {ds.info.name} {split}, got {index}")
        x, label = ds[index]
        return x, ds.image(index), {"dataset": ds.info.name, "split": split, "index": index}, int(label)


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


def cached_dataset(name: str, split: str, size: int | None, card: Any = None):
    """A loaded split, read where the app reads it (:func:`core.modelling.data_roots.locate`), kept for the next
    requests (the last 8). The folder is looked for only when the split is not loaded yet: locating reads the
    settings file and may scan folders and model cards, which a request that hits the cache need not do."""
    from core.datasets import load_dataset
    from core.modelling.data_roots import locate

    key = (name, split, size, str(config.data_dir()), None if card is None else (card.id, card.weights_sha256))
    with _datasets_lock:
        if key in _datasets:
            return _datasets[key]
    ds = load_dataset(name, split=split, size=size, root=locate(name, card=card)[0])
    with _datasets_lock:
        _datasets[key] = ds
        while len(_datasets) > 8:
            _datasets.popitem(last=False)
    return ds


def jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
