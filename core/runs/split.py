"""Explain every image of a split: :func:`explain_split` (the CLI's ``explain-split``, the API's ``/runs`` and the
Dataset page all call it).

>>> from core.runs import explain_split
>>> manifest = explain_split("models/shapes-small_cnn", "shapes", "test", ["grad_cam", "integrated_gradients"],
...                          "out/run", limit=500)
>>> import pandas as pd; pd.read_parquet("out/run").head()

A map depends on (method, parameters, seed, image id) only: both engines cut the ids into the same parts and the
same batches, so the engine and its workers never change a map, and the batch size changes it only within float
rounding (as :func:`core.explainers.explain_batch` guarantees). An interrupted run (Ctrl-C, a kill, a lost worker)
is continued by the same call: the parts on disk are kept, the missing ones computed, and the manifest, written last
and atomically, never names a part that is not there.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from core import config
from core.cancel import CancelToken
from core.errors import ParameterError, RunError
from core.eta import UnitClock
from core.runs import store
from core.runs.plan import (PART_SIZE, SCHEMA_VERSION, SEED_RULE, SLOW_COST, RunPlan, check_slow, format_seconds,
                            select_ids)
from core.version import library_versions, project_version

ENGINES = ("local", "ray")
TARGETS = ("predicted", "label")
#: ``progress(done, total, message)`` in images
RunProgress = Callable[..., None]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def plan_run(model: str | os.PathLike, dataset: str | None, split: str, methods: Sequence[str], *,
             params: dict[str, dict[str, Any]] | None = None, seed: int = 0, targets: str = "predicted",
             limit: int | None = None, sample: int | None = None, data_dir: str | os.PathLike | None = None,
             part_size: int = PART_SIZE, batch_size: int = 32) -> tuple[RunPlan, dict[str, Any]]:
    """The plan of a run and its cost estimate, before anything is computed.

    The estimate is each method's measured rate on this model (:class:`core.explainers.timing.Estimator`: its own
    probe calls, or the rate of the path its passes take) times the images and the model images each is expected
    to take (adaptive LIME's expected samples, not its maximum), in the run's batches of ``batch_size``, plus the
    run's own prediction pass per batch. Slow methods over many images are refused here
    (:func:`core.runs.plan.check_slow`), with the estimate in the message.
    """
    from core.datasets import load_dataset
    from core.explainers import get_method, list_methods
    from core.explainers.engine import resolve_params
    from core.explainers.timing import Estimator
    from core.modelling.cards import fit_dataset
    from core.modelling.checkpoints import load_model, resolve_model_path
    from core.modelling.data_roots import locate

    if targets not in TARGETS:
        raise ParameterError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
    if not isinstance(part_size, int) or part_size < 1:
        raise ParameterError(f"part_size must be at least 1, got {part_size!r}")
    names = [m.strip() for m in methods if m and m.strip()]
    if not names:
        raise ParameterError("name at least one method")
    path = resolve_model_path(model)
    net, card = load_model(path)
    if names == ["all"]:
        names = list_methods(net)
    names = list(dict.fromkeys(names))  # a method named twice is computed once
    params = params or {}
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ParameterError(f"parameters given for {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} "
                             f"not among the methods {', '.join(names)}")
    name = dataset or card.dataset
    root = locate(name, given=data_dir, card=card if name == card.dataset else None)[0]
    ds = fit_dataset(card, load_dataset(name, split=split, size=card.input_size, root=root))
    resolved: dict[str, dict[str, Any]] = {}
    for m in names:
        p = dict(params.get(m, {}))
        if any(q.name == "seed" for q in get_method(m).params):
            p.setdefault("seed", seed)
        resolved[m] = resolve_params(m, net, **p)
    ids, selection = select_ids(len(ds), limit=limit, sample=sample, seed=seed)
    if len(ids) == 0:
        raise RunError(f"split {split!r} of {name} has no images")
    plan = RunPlan(model_path=str(path.resolve()), model_id=card.id, weights_sha256=card.weights_sha256,
                   dataset=name, split=split, size=card.input_size,
                   data_root=str(Path(root).resolve()) if root else str(config.data_dir().resolve()),
                   ids=tuple(int(i) for i in ids), selection=selection, methods=resolved, seed=int(seed),
                   targets=targets, part_size=part_size, classes=tuple(card.classes))
    shape = tuple(ds.batch([0]).shape[1:])
    est = Estimator(net, shape)
    forward = est.of("forward")
    per_method = {}
    for m in names:
        cost = int(get_method(m).cost(resolved[m], net, shape))
        seconds = est.seconds(m, images=len(ids), chunk=batch_size, **resolved[m])
        per_method[m] = {"model_images_per_image": cost,
                         "expected_model_images_per_image": get_method(m).expected_cost(resolved[m], net, shape),
                         "seconds_per_image": seconds / len(ids), "seconds": seconds, "slow": cost >= SLOW_COST}
    estimate = {"images": len(ids), "forward_seconds_per_image": forward, "methods": per_method,
                "seconds": sum(v["seconds"] for v in per_method.values()) + len(ids) * forward,
                "skipped_files": list(ds.extras.get("skipped", []))}
    check_slow(resolved, {m: v["model_images_per_image"] for m, v in per_method.items()},
               {m: v["seconds_per_image"] for m, v in per_method.items()}, len(ids), selection["rule"] == "sample")
    return plan, estimate


def describe_estimate(estimate: dict[str, Any]) -> str:
    """One line for a person: images, methods and the estimated time on this machine."""
    per = ", ".join(f"{m} ~{format_seconds(v['seconds'])}" for m, v in estimate["methods"].items())
    return (f"{estimate['images']:,} images x {len(estimate['methods'])} method(s): about "
            f"{format_seconds(estimate['seconds'])} on this machine's local engine ({per})")


def explain_split(model: str | os.PathLike, dataset: str | None, split: str, methods: Sequence[str],
                  out: str | os.PathLike, *, params: dict[str, dict[str, Any]] | None = None, seed: int = 0,
                  targets: str = "predicted", engine: str = "local", address: str | None = None,
                  workers: int | None = None, batch_size: int = 32, limit: int | None = None,
                  sample: int | None = None, resume: bool = True, data_dir: str | os.PathLike | None = None,
                  part_size: int = PART_SIZE, progress: RunProgress | None = None, cancel: CancelToken | None = None,
                  announce: Callable[[RunPlan, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Explain every image of ``split`` (or the first ``limit``, or a seeded ``sample``) with ``methods``; store one
    row per image x method in ``out`` and return the manifest.

    Args:
        model: a model folder or id (the run records its weights' SHA-256; Ray actors load it from there).
        dataset: ``None``: the model card's dataset.
        methods: method names, or ``["all"]`` (every method that applies to the model).
        params: ``{method: {name: value}}``; the rest take their defaults.
        seed: stochastic methods explain image ``id`` with ``seed + id`` (a method's own ``seed`` parameter
            replaces the run's); also the seed of ``sample``.
        targets: ``"predicted"`` (the model's class per image) or ``"label"`` (the true class).
        engine: ``"local"`` (this process) or ``"ray"`` (``address``: an existing cluster, else a local one);
            ``workers``: Ray actors (default: one per CPU of the cluster).
        batch_size: images per model call inside a part.
        resume: continue the run already in ``out`` (only missing parts are computed); ``False`` replaces it.
        progress: ``progress(done, total, message)`` in images, with the rate in the message.
        announce: called with the plan and the cost estimate before anything is computed.

    Raises:
        RunError: a slow method over too many images without ``sample``; ``out`` holds another run; Ray unreachable.
        ParameterError, UnknownNameError, CheckpointError, DatasetError: as for one image. Cancelled: ``cancel``.
    """
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be at least 1, got {batch_size!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ParameterError(f"workers must be at least 1, got {workers!r}")
    plan, estimate = plan_run(model, dataset, split, methods, params=params, seed=seed, targets=targets, limit=limit,
                              sample=sample, data_dir=data_dir, part_size=part_size, batch_size=batch_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old = store.read_plan(out)
    if old is not None and not resume:
        store.clear(out)
        old = None
    if old is not None and RunPlan.from_dict(old["plan"]).digest != plan.digest:
        theirs = old["plan"]
        raise RunError(f"{out} holds another run ({theirs.get('model_id')} on {theirs.get('dataset')}/"
                       f"{theirs.get('split')}, methods {', '.join(theirs.get('methods', {}))}, "
                       f"{len(theirs.get('ids', []))} images): choose another output folder, or start over "
                       "(--restart, resume=False) to replace it")
    started = old["started"] if old else _now()
    if old is None:
        store.write_plan(out, {"schema_version": SCHEMA_VERSION, "started": started, "plan": plan.to_dict()})
    if announce is not None:
        announce(plan, estimate)
    parts = plan.parts()
    entries: dict[int, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []
    for k, ids in enumerate(parts):  # each part on disk is read once: its entry and its failures
        data = store.existing_part(out, store.part_name(ids), rows=len(ids) * len(plan.methods))
        if data is not None:
            entries[k] = store.entry(store.part_name(ids), data)
            failures += store.failures_of(data)
    todo = [k for k in range(len(parts)) if k not in entries]
    total, already = len(plan.ids), sum(len(parts[k]) for k in entries)

    t0 = time.monotonic()
    clock = UnitClock()  # the rate from the first batch done on: it carries the worker's start (model, data, warm-up)

    def report(done_now: int) -> None:
        if progress is None:
            return
        per_image = clock.rate(done_now)
        rate = 1.0 / per_image if per_image else done_now / max(1e-9, time.monotonic() - t0)
        left = clock.left(done_now, total - already) if per_image else None
        progress(already + done_now, total, f"{rate:.1f} images/s" + (f", about {format_seconds(left)} left"
                                                                       if left is not None else ""))

    def publish(k: int, data: bytes) -> None:
        entries[k] = store.write_part(out, store.part_name(parts[k]), data)
        failures.extend(store.failures_of(data))

    report(0)
    if todo:
        store.drop_manifest(out)
        if engine == "local":
            from core.runs.engines import run_local

            used = run_local(plan, todo, publish, batch_size=batch_size, progress=report, cancel=cancel)
        else:
            from core.runs.engines import run_ray

            used = run_ray(plan, todo, publish, batch_size=batch_size, progress=report, cancel=cancel,
                           address=address, workers=workers)
    else:
        existing = out / store.MANIFEST_FILE
        if existing.exists():
            return store.read_manifest(out)
        used = {"name": engine, "workers": 0, "note": "every part was already on disk"}
    failures.sort(key=lambda f: (f["id"], f["method"]))
    skipped = [{"id": None, "method": None, "file": f, "message": why} for f, why in estimate["skipped_files"]]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "model": {"id": plan.model_id, "path": plan.model_path, "weights_sha256": plan.weights_sha256},
        "dataset": {"name": plan.dataset, "split": plan.split, "size": plan.size, "root": plan.data_root,
                    "classes": list(plan.classes)},
        "images": {"count": len(plan.ids), "ids_sha256": plan.ids_sha256, "selection": plan.selection},
        "methods": plan.methods, "seed": plan.seed, "seed_rule": SEED_RULE, "targets": plan.targets,
        "plan_sha256": plan.digest, "part_size": plan.part_size, "batch_size": batch_size,
        "libraries": {"xai-dashboard": project_version(), **library_versions(("pyarrow",))},
        "engine": used, "started": started, "finished": _now(), "estimate": {k: v for k, v in estimate.items()
                                                                            if k != "skipped_files"},
        "rows": sum(e["rows"] for e in entries.values()),
        "parts": [{**entries[k], "first_id": parts[k][0], "last_id": parts[k][-1], "images": len(parts[k])}
                  for k in range(len(parts))],
        "failures": skipped + failures,
    }
    store.write_manifest(out, manifest)
    return manifest
