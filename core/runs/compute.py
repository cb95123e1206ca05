"""The one computation of a part, shared by every engine: :class:`PartWorker`.

A worker is built from a plan alone (the model from its folder, the weights' SHA-256 checked; the dataset from its
name and folder), so the local engine builds one in the process and each Ray actor builds its own: no model is
ever pickled. ``worker.part(ids)`` explains the images ``ids`` with every method of the plan, in batches of
``batch_size``, and returns the part's Parquet bytes.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from core.cancel import CancelToken
from core.errors import Cancelled, DatasetError, RunError, XaiError
from core.runs import store
from core.runs.plan import RunPlan


def contiguous(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Positions ``[a, b)`` of the runs of consecutive ids (a stochastic method's batch needs consecutive seeds)."""
    out, a = [], 0
    for k in range(1, len(ids) + 1):
        if k == len(ids) or ids[k] != ids[k - 1] + 1:
            out.append((a, k))
            a = k
    return out


class PartWorker:
    """Everything one process needs to compute parts of a plan: the model, the dataset and a background sample."""

    def __init__(self, plan: dict[str, Any] | RunPlan, *, batch_size: int = 32, threads: int | None = None) -> None:
        from core.datasets import load_dataset
        from core.explainers import get_method
        from core.modelling.cards import fit_dataset
        from core.modelling.checkpoints import load_model

        if threads:
            torch.set_num_threads(int(threads))  # a Ray actor starts with one thread: give it its CPUs
        self.plan = plan if isinstance(plan, RunPlan) else RunPlan.from_dict(plan)
        self.batch_size = int(batch_size)
        self.model, card = load_model(self.plan.model_path)  # checks the weights against the card's SHA-256
        if card.weights_sha256 != self.plan.weights_sha256:
            raise RunError(f"the weights of {self.plan.model_path} changed since the run was planned "
                           f"(SHA-256 {card.weights_sha256[:12]}…, planned {self.plan.weights_sha256[:12]}…)")
        p = self.plan
        # a model made elsewhere may name its classes in another order (mapped by name) or take colour images
        self.dataset = fit_dataset(card, load_dataset(p.dataset, split=p.split, size=p.size, root=p.data_root))
        self.background = None
        if any(get_method(m).needs_background for m in p.methods):
            try:  # the same seeded sample on every engine; without a train split the method builds its own
                self.background = fit_dataset(card, load_dataset(p.dataset, split="train", size=p.size,
                                                                 root=p.data_root)).sample(256)
            except (DatasetError, ValueError):
                self.background = None

    def part(self, ids: Sequence[int], *, progress: Callable[[int], None] | None = None,
             cancel: CancelToken | None = None) -> bytes:
        """The Parquet bytes of the part holding ``ids``: one row per image x method, errors recorded per row."""
        from core.modelling.prediction import predict_proba

        ids = [int(i) for i in ids]
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), self.batch_size):
            if cancel is not None and cancel.cancelled:
                raise Cancelled("the run was cancelled; the parts already written are kept (run it again to resume)")
            batch = ids[start: start + self.batch_size]
            x = self.dataset.batch(np.asarray(batch))
            proba = predict_proba(self.model, x)
            pred = proba.argmax(axis=1)
            labels = self.dataset.labels[np.asarray(batch)]
            targets = pred if self.plan.targets == "predicted" else labels
            for method in self.plan.methods:
                results = self._explain(method, x, batch, [int(t) for t in targets], cancel)
                for k, (image_id, r) in enumerate(zip(batch, results)):
                    t = int(targets[k])
                    row = {"image_id": image_id, "label": int(labels[k]), "prediction": int(pred[k]), "target": t,
                           "probability": float(proba[k, t]), "method": method, "height": x.shape[-2],
                           "width": x.shape[-1]}
                    if isinstance(r, str):
                        rows.append({**row, "map": None, "seconds": None, "error": r})
                    else:
                        rows.append({**row, "map": r.attribution, "seconds": float(r.seconds), "error": None})
            if progress is not None:
                progress(min(start + self.batch_size, len(ids)))
        return store.parquet_bytes(store.table(rows))

    def _explain(self, method: str, x: torch.Tensor, ids: list[int], targets: list[int],
                 cancel: CancelToken | None) -> list[Any]:
        """One result per image: its Explanation, or the error message (one bad image never fails the batch)."""
        from core.explainers import explain_batch

        params = dict(self.plan.methods[method])
        seeded = "seed" in params
        out: list[Any] = []
        for a, b in (contiguous(ids) if seeded else [(0, len(ids))]):
            p = {**params, "seed": self.plan.image_seed(method, ids[a])} if seeded else params
            try:
                out.extend(explain_batch(self.model, x[a:b], method, targets[a:b], background=self.background,
                                         cancel=cancel, chunk_size=self.batch_size, **p))
            except Cancelled:
                raise
            except XaiError as exc:
                if b - a == 1:
                    out.append(str(exc))
                    continue
                for k in range(a, b):  # find the image(s) at fault; the others still get their maps
                    pk = {**params, "seed": self.plan.image_seed(method, ids[k])} if seeded else params
                    try:
                        out.extend(explain_batch(self.model, x[k: k + 1], method, targets[k: k + 1],
                                                 background=self.background, cancel=cancel, **pk))
                    except Cancelled:
                        raise
                    except XaiError as exc_k:
                        out.append(str(exc_k))
        return out
