"""The fast inference path: the forward-only model passes of the perturbation methods, same maths, less time.

LIME, Occlusion, SHAP Partition and the quality metrics' deletion and insertion curves push hundreds to
thousands of perturbed copies of an image through the model, forward only. They all call
:func:`forward_logits`, which on a CPU runs a float32 model through ONNX Runtime. The model is exported once per
process with ``torch.onnx``, and the export is checked against the torch model on a probe batch before it is
used (see :class:`FastPath`).

What was measured (``python -m benchmarks --methods none --inference-passes``; README, *LIME at demo speed*), on
2 AVX2 cores, ResNet-50 at 224 px:

- **ONNX Runtime, float32**: 68 ms per image against torch eager's 120 ms at batch 8, and 222 ms at the batch of
  128 LIME used. Its logits differ from torch's by float rounding (about 1e-5 of 40), because the convolutions sum
  in another order. Kept.
- **Batch size from timed passes**: torch on 2 cores is slowest at large batches (its per-image time grows from
  batch 8 to 64). ONNX Runtime's per-image outputs do not depend on the batch: checked bitwise on the probe, for
  every model. So the first passes of a model time a few batch sizes on the real work, and the fastest is kept for
  that process. That choice can never change a value; where the check fails, the caller's batch size is kept.
- **Not adopted**:
  - ``torch.compile``: 28 to 55 s to compile ResNet-50 on 2 cores, then 92 ms per image;
  - channels-last torch: 108 ms, and converting the shared model would write shared state;
  - bfloat16 autocast: 639 ms, about 6x *slower* on CPUs without bf16 instructions, and a different model.

Reduced precision is not offered: on these CPUs it is slower, and on a GPU a model pass is already fast. On CUDA,
for models that are not float32, with ``XAI_FAST_INFERENCE=0``, or when the export or its check fails, the path is
plain torch in the caller's batches. The reason is in :func:`describe` and the explanation's extras.
"""
from __future__ import annotations

import io
import itertools
import logging
import os
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from core.modelling.prediction import model_device

log = logging.getLogger(__name__)

#: batch sizes the first passes of a model try (per-image seconds measured on the real work); the first chunk is a
#: warm-up and is not scored
CANDIDATES = (16, 4, 8, 16, 32, 64)
#: logits of the export may differ from torch's by at most this, relative to their largest magnitude
TOLERANCE = 1e-4


@dataclass
class FastPath:
    """How one model's forward passes run at one input shape in this process."""

    backend: str  #: "onnxruntime" or "torch"
    why: str  #: why this backend (shown where the explanation says how it was computed)
    session: object | None = None
    batch_free: bool = False  #: the backend's per-image outputs do not depend on the batch (checked bitwise)
    fingerprint: int = 0  #: the parameters' version counters when exported: a model trained since is re-exported
    batch_size: int | None = None  #: chosen from timed passes (``None``: still measuring)
    timings: dict[int, float] = field(default_factory=dict)
    pending: list[int] = field(default_factory=lambda: list(CANDIDATES))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_batch(self, default: int) -> int:
        if not self.batch_free:
            return default
        with self.lock:
            if self.batch_size is not None:
                return self.batch_size
            return self.pending[0] if self.pending else default

    def record(self, size: int, images: int, seconds: float) -> None:
        """One timed chunk (``size`` asked for, ``images`` in it) while measuring; after the last candidate the
        fastest per image is kept."""
        with self.lock:
            if self.batch_size is not None or not self.pending or self.pending[0] != size:
                return
            first = len(self.pending) == len(CANDIDATES)
            self.pending.pop(0)
            if not first:  # the first chunk pays the session's warm-up
                self.timings[size] = min(self.timings.get(size, np.inf), seconds / images)
            if not self.pending:
                self.batch_size = min(self.timings, key=self.timings.get)


_paths: weakref.WeakKeyDictionary[nn.Module, dict[tuple, FastPath]] = weakref.WeakKeyDictionary()
_paths_lock = threading.Lock()


def _fingerprint(model: nn.Module) -> int:
    # every in-place write to a parameter or buffer (an optimiser step, load_state_dict) bumps its version counter
    return sum(t._version for t in itertools.chain(model.parameters(), model.buffers()))


def _plain(why: str) -> FastPath:
    return FastPath("torch", why)


def _export(model: nn.Module, shape: tuple[int, ...], threads: int) -> FastPath:
    if os.environ.get("XAI_FAST_INFERENCE", "1") == "0":
        return _plain("XAI_FAST_INFERENCE=0")
    if model_device(model).type != "cpu":
        return _plain(f"the model is on {model_device(model)} (ONNX Runtime runs on the CPU here)")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return _plain("the model is not float32")
    if model.training:
        return _plain("the model is in training mode")
    try:
        import onnxruntime as ort
    except ImportError:
        return _plain("onnxruntime is not installed")
    probe = torch.rand((3, *shape), generator=torch.Generator().manual_seed(0))
    try:
        buf = io.BytesIO()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(model, probe[:1], buf, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
        branch = _value_branch(caught)
        if branch:
            return _plain(f"the model's forward turns a tensor into a Python value ({branch}): a trace would fix "
                          "one branch")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
        with torch.inference_mode():
            want = model(probe).numpy()
        got = session.run(None, {"x": probe.numpy()})[0]
    except Exception as e:  # noqa: BLE001 - any export failure means: stay on torch, and say why
        log.info("fast inference path: export failed (%s: %s); using torch", type(e).__name__, e)
        return _plain(f"the ONNX export failed ({type(e).__name__})")
    scale = max(1.0, float(np.abs(want).max()))
    if got.shape != want.shape or not np.all(np.abs(got - want) <= TOLERANCE * scale):
        return _plain("the ONNX export disagreed with the torch model on a probe")
    singles = np.concatenate([session.run(None, {"x": probe[i:i + 1].numpy()})[0] for i in range(len(probe))])
    return FastPath("onnxruntime", "float32 ONNX Runtime (checked against torch on a probe batch)", session,
                    batch_free=bool(np.array_equal(singles, got)), fingerprint=_fingerprint(model))


def _value_branch(caught: list[warnings.WarningMessage]) -> str | None:
    """Where the model's own code turned a tensor into a Python value while being traced (a branch or a count that
    may depend on the input's values, which the export would freeze), or ``None``. torch's and torchvision's own
    shape checks (ViT's ``torch._assert``, attention's argument checks) warn too, and are allowed: the input
    shape is fixed per exported path."""
    libraries = [Path(torch.__file__).parent]
    try:
        import torchvision

        libraries.append(Path(torchvision.__file__).parent)
    except ImportError:  # pragma: no cover - torchvision is a requirement
        pass
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning):
            where = Path(w.filename).resolve()
            if not any(where.is_relative_to(lib.resolve()) for lib in libraries):
                return f"{where.name}:{w.lineno}"
    return None


def path_for(model: nn.Module, shape: tuple[int, ...]) -> FastPath:
    """The fast path of ``model`` at input shape (C, H, W): exported on first use, again after its weights change."""
    threads = torch.get_num_threads()
    key = (tuple(shape), threads)
    with _paths_lock:
        paths = _paths.setdefault(model, {})
        path = paths.get(key)
        if path is not None and (path.backend == "torch" or path.fingerprint == _fingerprint(model)):
            return path
        path = _export(model, tuple(shape), threads)
        paths[key] = path
        return path


def describe(model: nn.Module, shape: tuple[int, ...]) -> dict[str, object]:
    """How the forward passes of ``model`` at ``shape`` run: backend, why, chosen batch size (JSON-able)."""
    p = path_for(model, shape)
    return {"backend": p.backend, "why": p.why, "batch_size": p.batch_size}


def forward_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = 64,
                   progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Logits (N, K) of float images ``x`` (N, C, H, W) on the model's device, forward only, through the fast path.

    ``batch_size`` is the caller's chunk size. The ONNX Runtime path may choose its own from timed passes; its
    outputs do not depend on the batch. ``progress(n)`` is called after each chunk with its image count. Returns
    the logits on ``x``'s device.
    """
    if model.training:
        model.eval()
    path = path_for(model, tuple(x.shape[1:]))
    out = []
    i = 0
    if path.backend == "onnxruntime":
        arr = x.detach().cpu().numpy().astype(np.float32, copy=False)
        while i < len(arr):
            size = path.next_batch(batch_size)
            chunk = np.ascontiguousarray(arr[i:i + size])
            start = time.perf_counter()
            out.append(torch.from_numpy(path.session.run(None, {"x": chunk})[0]))
            path.record(size, len(chunk), time.perf_counter() - start)
            i += len(chunk)
            if progress:
                progress(len(chunk))
        return torch.cat(out).to(x.device) if out else torch.zeros((0, 0))
    with torch.inference_mode():
        while i < len(x):
            chunk = x[i:i + batch_size]
            out.append(model(chunk))
            i += len(chunk)
            if progress:
                progress(len(chunk))
    return torch.cat(out) if out else torch.zeros((0, 0))


def forward_probabilities(model: nn.Module, x: torch.Tensor, *, batch_size: int = 64,
                          progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Softmax of :func:`forward_logits`."""
    return torch.softmax(forward_logits(model, x, batch_size=batch_size, progress=progress), dim=1)
