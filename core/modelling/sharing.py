"""Many users, one model: a shared model is only read; methods that change a model get a private replica.

Design (the README's "Many users, one model" section has the measurements):

* A model cached for every browser session is **never written to** while it is shared. Plain
  predictions and methods that only run the model forward and backward (Saliency, IG, Occlusion, LIME,
  SHAP Partition, ...) use it concurrently, without any lock: PyTorch's forward and autograd are
  thread-safe on a module nobody modifies, and an eval-mode model has no state that a forward pass writes.
* Methods that declare a model effect (hooks, swapped modules, writes to ``.grad`` or mode flags: the
  CAM family, Guided Backprop, DeepLIFT, ...) check out a **private replica** from a small per-model pool
  (:func:`replica`). Their hooks then never see another session's forward passes, and they never wait for
  another session's long job; only when every replica is busy does a caller wait for one.
* Replicas are deep copies, so their results equal the shared model's bit for bit. A replica whose source
  model's parameters changed since it was made (in-place training, ``load_state_dict``) is discarded.
* A replica starts **without the source's hooks**. A model that already carries hooks of another library (a
  notebook user's live pytorch-grad-cam object) keeps them, and every call runs on a replica (:func:`use`), so
  those hooks never see the engine's passes and the user's stored activations are never overwritten.

The alternative, exclusive use of the shared model (a readers-writer lock), would make a Grad-CAM wait for
a whole LIME run on the same model: exactly the latency this design removes.
"""
from __future__ import annotations

import contextlib
import copy
import os
import threading
import weakref
from typing import Iterator

import torch
from torch import nn

#: replicas per model at most (``XAI_REPLICAS``); a caller waits only when all of them are in use
MAX_REPLICAS = int(os.environ.get("XAI_REPLICAS", "4"))

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")


def hook_count(model: nn.Module) -> int:
    """Number of forward/backward hooks registered on any module of ``model``."""
    return sum(len(getattr(m, attr, None) or {}) for m in model.modules() for attr in _HOOK_DICTS)


def _fingerprint(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place (autograd's version counter)."""
    return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))


class _Pool:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.idle: list[nn.Module] = []
        self.made = 0
        self.fingerprint: tuple | None = None


_pools: "weakref.WeakKeyDictionary[nn.Module, _Pool]" = weakref.WeakKeyDictionary()
_pools_guard = threading.Lock()


def _pool(model: nn.Module) -> _Pool:
    with _pools_guard:
        pool = _pools.get(model)
        if pool is None:
            pool = _pools[model] = _Pool()
        return pool


def _clean(replica: nn.Module) -> bool:
    """Put a used replica back as it was made; ``False`` if it cannot be trusted again (hooks left)."""
    replica.eval()
    for p in replica.parameters():
        p.grad = None
    return hook_count(replica) == 0


def _copy_without_hooks(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose modules have no hooks: each hook dictionary is copied as an empty one (the
    memo tells ``deepcopy`` what to use instead), so the hooks' owners (another library's objects, with their
    stored activations) are not copied either."""
    memo: dict[int, object] = {}
    for m in model.modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(m, attr, None)
            if hooks:
                memo[id(hooks)] = type(hooks)()
    with torch.no_grad():
        return copy.deepcopy(model, memo).eval()


@contextlib.contextmanager
def replica(model: nn.Module) -> Iterator[nn.Module]:
    """A private copy of ``model`` for one call (eval mode, no hooks, no gradients), returned to the pool after."""
    pool = _pool(model)
    fp = _fingerprint(model)
    with pool.cond:
        if pool.fingerprint != fp:  # the source model changed: its old replicas are stale
            pool.idle.clear()
            pool.made = 0
            pool.fingerprint = fp
        while not pool.idle and pool.made >= MAX_REPLICAS:
            pool.cond.wait()
        r = pool.idle.pop() if pool.idle else None
        if r is None:
            pool.made += 1
    if r is None:
        try:
            r = _copy_without_hooks(model)
        except BaseException:
            with pool.cond:
                pool.made -= 1
                pool.cond.notify()
            raise
    try:
        yield r
    finally:
        reusable = _clean(r)
        with pool.cond:
            if reusable and pool.fingerprint == fp:
                pool.idle.append(r)
            elif pool.fingerprint == fp:
                pool.made -= 1  # dropped (hooks survived a failing library): a fresh copy replaces it
            pool.cond.notify()


def replicas_made(model: nn.Module) -> int:
    """How many replicas of ``model`` exist (for tests and the benchmark)."""
    return _pool(model).made


@contextlib.contextmanager
def use(model: nn.Module, private: bool) -> Iterator[nn.Module]:
    """The model to run a call on: a private replica when the call changes a model or the model carries someone
    else's hooks (they must not see these passes), else ``model`` itself."""
    if private or hook_count(model):
        with replica(model) as r:
            yield r
    else:
        yield model
