"""``/jobs/{id}``: a job's progress and result, and cancel (the shared runner, :mod:`core.jobs`)."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from core.faces.api.limits import GUARDED
from core.faces.api.schemas import Error, JobInfo
from core.faces.api.services import Services, services
from core.jobs import Job

router = APIRouter(tags=["explain"], dependencies=GUARDED)


def job_info(job: Job) -> JobInfo:
    return JobInfo(id=job.id, state=job.state, done=job.done, total=job.total, seconds_left=job.seconds_left,
                   result=job.result, error=job.error)


@router.get("/jobs/{job_id}", response_model=JobInfo, responses={404: {"model": Error}})
def job(job_id: str, svc: Services = Depends(services)) -> JobInfo:
    return job_info(svc.jobs.get(job_id))


@router.delete("/jobs/{job_id}", response_model=JobInfo, responses={404: {"model": Error}})
def cancel_job(job_id: str, svc: Services = Depends(services)) -> JobInfo:
    return job_info(svc.jobs.cancel(job_id))
