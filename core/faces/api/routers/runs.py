"""``/runs``: whole-split runs as jobs (:func:`core.runs.explain_split` on the shared job runner). A run is stored
under the runs folder (``XAI_RUNS_DIR``) in a folder named by its id, so it is still readable after a restart."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from core import config, errors
from core.faces.api.limits import GUARDED
from core.faces.api.services import Services, model_card, services

router = APIRouter(tags=["runs"], dependencies=GUARDED)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,80}$")


class RunRequest(BaseModel):
    model: str = Field(description="model id (GET /models)")
    dataset: str | None = Field(None, description="default: the model card's dataset")
    split: Literal["train", "val", "test"] = "test"
    methods: list[str] = Field(min_length=1, max_length=32, description="method names (GET /methods)")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description='{"method": {"name": value}}')
    seed: int = Field(0, ge=0, le=2**31 - 1, description="stochastic methods explain image ID with seed + ID")
    targets: Literal["predicted", "label"] = "predicted"
    limit: int | None = Field(None, ge=1, description="only the first N images")
    sample: int | None = Field(None, ge=1, description="a seeded random sample of N images (needed for slow methods "
                                                        "over many images)")
    batch_size: int = Field(32, ge=1, le=512)
    engine: Literal["local", "ray"] = "local"


class RunInfo(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    done: int = Field(description="images explained so far")
    total: int
    seconds_left: float | None
    message: str = ""
    error: str | None = None
    estimate: dict[str, Any] | None = Field(None, description="the cost estimate made before the run started")
    manifest_url: str | None = Field(None, description="where the finished run's manifest is")


def _folder(run_id: str) -> Path:
    if not _ID.match(run_id):
        raise errors.UnknownNameError(f"Unknown run {run_id!r}")
    return config.runs_dir() / run_id


def _info(svc: Services, run_id: str) -> RunInfo:
    folder = _folder(run_id)
    jobs = [j for j in svc.jobs.find(kind="run") if j.id == run_id]
    done = (folder / "manifest.json").is_file()
    if jobs:
        j = jobs[0]
        return RunInfo(id=j.id, state=j.state, done=j.done, total=j.total, seconds_left=j.seconds_left,
                       message=j.message, error=j.error, estimate=j.meta.get("estimate"),
                       manifest_url=f"/runs/{j.id}/manifest" if j.state == "done" and done else None)
    if done:
        from core.runs import read_manifest

        n = read_manifest(folder)["images"]["count"]
        return RunInfo(id=run_id, state="done", done=n, total=n, seconds_left=None,
                       manifest_url=f"/runs/{run_id}/manifest")
    if (folder / "run.json").is_file():
        return RunInfo(id=run_id, state="interrupted", done=0, total=0, seconds_left=None,
                       error="the server stopped before this run finished: submit it again to start a new one")
    raise errors.UnknownNameError(f"Unknown run {run_id!r}; GET /runs lists them")


@router.post("/runs", response_model=RunInfo, status_code=202)
async def start_run(req: RunRequest, svc: Services = Depends(services)) -> RunInfo:
    """Start a whole-split run. The plan is checked first (names, parameters, the dataset's files, and slow methods
    over many images without ``sample``: 422 with the estimate); then the run is a job: poll ``GET /runs/{id}``."""
    from core.runs import plan_run
    from core.runs.split import explain_split

    path, _ = model_card(req.model)
    _, estimate = await svc.run(lambda: plan_run(path, req.dataset, req.split, req.methods, params=req.params,
                                                seed=req.seed, targets=req.targets, limit=req.limit,
                                                sample=req.sample),
                               deadline=time.monotonic() + svc.limits.sync_seconds)
    estimate = {k: v for k, v in estimate.items() if k != "skipped_files"}

    submitted = threading.Event()  # the run's folder is named by its job id, known once submit() returns

    def work(progress, cancel):
        submitted.wait()
        manifest = explain_split(path, req.dataset, req.split, req.methods, config.runs_dir() / job.id,
                                 params=req.params, seed=req.seed, targets=req.targets, engine=req.engine,
                                 batch_size=req.batch_size, limit=req.limit, sample=req.sample, progress=progress,
                                 cancel=cancel)
        return {"rows": manifest["rows"], "failures": len(manifest["failures"])}

    job = svc.jobs.submit(work, kind="run", label=f"{req.model}: {', '.join(req.methods)}",
                          meta={"model": req.model, "estimate": estimate})
    submitted.set()
    return _info(svc, job.id)


@router.get("/runs", response_model=list[RunInfo])
def list_runs(svc: Services = Depends(services)) -> list[RunInfo]:
    """Runs of this server's jobs and runs stored in the runs folder, newest first."""
    ids = [j.id for j in svc.jobs.find(kind="run")]
    root = config.runs_dir()
    if root.is_dir():
        stored = sorted((p for p in root.iterdir() if p.is_dir() and _ID.match(p.name)),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        ids += [p.name for p in stored if p.name not in ids]
    out = []
    for i in ids:
        try:
            out.append(_info(svc, i))
        except errors.XaiError:
            continue  # a folder that is not a run
    return out


@router.get("/runs/{run_id}", response_model=RunInfo)
def get_run(run_id: str, svc: Services = Depends(services)) -> RunInfo:
    return _info(svc, run_id)


@router.delete("/runs/{run_id}", response_model=RunInfo)
def cancel_run(run_id: str, svc: Services = Depends(services)) -> RunInfo:
    """Cancel a running run (the parts already written are kept); a finished run is left as it is."""
    if any(j.id == run_id for j in svc.jobs.find(kind="run")):
        svc.jobs.cancel(run_id)
    return _info(svc, run_id)


@router.get("/runs/{run_id}/manifest", response_model=dict[str, Any])
def run_manifest(run_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    """The finished run's manifest (every part with its rows and SHA-256, the failures, the plan); 409 while it runs.
    Folders are named relative to the runs folder (the server's own paths are not shown)."""
    from core.runs import read_manifest

    folder = _folder(run_id)
    _info(svc, run_id)  # 404 for an unknown id
    manifest = read_manifest(folder)
    manifest["model"] = {k: v for k, v in manifest["model"].items() if k != "path"}
    manifest["dataset"] = {k: v for k, v in manifest["dataset"].items() if k != "root"}
    return manifest
