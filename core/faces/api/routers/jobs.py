"""``/jobs/{id}``: a job's progress and result, and cancel (the shared runner, :mod:`core.jobs`)."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from core.faces.api.limits import GUARDED
from core.faces.api.schemas import JobInfo
from core.faces.api.services import Services, services
from core.jobs import Job

router = APIRouter(tags=["explain"], dependencies=GUARDED)


def job_info(svc: Services, job: Job) -> JobInfo:
    """A job as the API shows it; a finished job's result is read from the job store (it is not kept in memory)."""
    return JobInfo(id=job.id, state=job.state, done=job.done, total=job.total, seconds_left=job.seconds_left,
                   result=svc.jobs.result(job) if job.state == "done" else None, error=job.error)


@router.get("/jobs/{job_id}", response_model=JobInfo)
def job(job_id: str, svc: Services = Depends(services)) -> JobInfo:
    """A job's progress, and its result once done; after a restart, ``interrupted`` for a job that was still
    queued or running (submit it again)."""
    return job_info(svc, svc.jobs.get(job_id))


@router.delete("/jobs/{job_id}", response_model=JobInfo)
def cancel_job(job_id: str, svc: Services = Depends(services)) -> JobInfo:
    return job_info(svc, svc.jobs.cancel(job_id))
