"""Experiment tracking with MLflow: every training run (UI or CLI) is logged, and tracking never fails a run.

The store is ``MLFLOW_TRACKING_URI`` when set, else a SQLite database in the project
(``<repo>/mlruns/mlflow.db``, artifacts in ``<repo>/mlruns/artifacts``), which MLflow's own UI opens with::

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db

One MLflow experiment per dataset. Every call of :class:`Tracker` catches its own errors: the first one turns
tracking off for the run and is reported once as a warning (the training goes on).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from core import config

log = logging.getLogger(__name__)
EXPERIMENT_PREFIX = "xai-dashboard/"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{config.ROOT / 'mlruns' / 'mlflow.db'}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store (MLflow's default would be ``./mlruns`` under whatever the current folder
    is); a server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def _client():
    import mlflow
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its "creating tables" INFO lines are not for users
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return mlflow, MlflowClient(tracking_uri=uri), uri


def _experiment_id(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = _artifact_root(uri)
    return client.create_experiment(name, artifact_location=f"{root}/{name.replace('/', '_')}" if root else None)


class Tracker:
    """One MLflow run. ``warn`` receives the message of the first tracking error (then tracking stops)."""

    def __init__(self, warn: Callable[[str], None] | None = None) -> None:
        self.warn = warn or (lambda m: log.warning(m))
        self.client = None
        self.run_id: str | None = None
        self.uri = tracking_uri()
        self.error: str | None = None

    def _safe(self, what: str, fn: Callable[[], Any]) -> Any:
        if self.error is not None:
            return None
        try:
            return fn()
        except Exception as exc:  # tracking must never fail a training: report once and carry on untracked
            self.error = f"experiment tracking stopped ({what}: {type(exc).__name__}: {exc}); the training goes on"
            log.warning(self.error)
            self.warn(self.error)
            return None

    def start(self, dataset: str, run_name: str, params: dict[str, Any]) -> None:
        def go():
            _, self.client, _ = _client()
            eid = _experiment_id(self.client, EXPERIMENT_PREFIX + dataset, self.uri)
            run = self.client.create_run(eid, run_name=run_name, tags={"dataset": dataset, "model_id": run_name})
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            flat = [Param(k, (json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v))[:6000])
                    for k, v in params.items()]
            self.client.log_batch(self.run_id, params=flat)

        self._safe("start", go)

    def metrics(self, values: dict[str, float], step: int | None = None) -> None:
        def go():
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            ms = [Metric(k, float(v), now, step or 0) for k, v in values.items() if v is not None and v == v]
            self.client.log_batch(self.run_id, metrics=ms)

        if self.run_id:
            self._safe("metrics", go)

    def artifact_text(self, text: str, name: str) -> None:
        if self.run_id:
            self._safe("artifact", lambda: self.client.log_text(self.run_id, text, name))

    def artifact_figure(self, figure, name: str) -> None:
        if self.run_id:
            self._safe("figure", lambda: self.client.log_figure(self.run_id, figure, name))

    def finish(self, status: str = "FINISHED", tags: dict[str, str] | None = None) -> None:
        def go():
            for k, v in (tags or {}).items():
                self.client.set_tag(self.run_id, k, v)
            self.client.set_terminated(self.run_id, status=status)

        if self.run_id:
            self._safe("finish", go)


def past_runs(dataset: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Past training runs (newest first) with their parameters, final metrics and status, for the Train page.
    Raises whatever MLflow raises when the store cannot be read (the page shows it as a message)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return []  # nothing tracked yet; do not create a database just to read it
    _, client, _ = _client()
    exps = [e for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX)]
    if dataset is not None:
        exps = [e for e in exps if e.name == EXPERIMENT_PREFIX + dataset]
    if not exps:
        return []
    runs = client.search_runs([e.experiment_id for e in exps], order_by=["attributes.start_time DESC"], max_results=limit)
    out = []
    for r in runs:
        out.append({"run_id": r.info.run_id, "model_id": r.data.tags.get("model_id", r.info.run_name),
                    "dataset": r.data.tags.get("dataset"), "status": r.info.status,
                    "start_time": r.info.start_time, "params": dict(r.data.params), "metrics": dict(r.data.metrics)})
    return out
