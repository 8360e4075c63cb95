"""Jobs: start a long run, list a key's jobs, read one, cancel one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from serve.bodies import JobInfo, JobList, JobRequest
from serve.routes import Services, errors


def jobs_router(s: Services) -> APIRouter:
    router = APIRouter(tags=["jobs"])

    @router.post(
        "/v1/jobs", response_model=JobInfo, status_code=202, responses=errors(400, 401, 413, 422, 429)
    )
    def create_job(body: JobRequest, response: Response, owner: str = Depends(s.auth)) -> JobInfo:  # type: ignore[valid-type]
        """Start a long run; answers at once with the job (its id, and `Location`)."""
        job_id = s.submit(body, owner, "job", s.settings.max_target)
        response.headers["Location"] = f"/v1/jobs/{job_id}"
        return s.info(s.owned(job_id, owner))

    @router.get("/v1/jobs", response_model=JobList, responses=errors(401, 422))
    def list_jobs(
        owner: str = Depends(s.auth),
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> JobList:
        """The caller's jobs, newest first."""
        rows = s.store.page(owner, limit + 1, offset)
        page = [s.info(r) for r in rows[:limit]]
        return JobList(jobs=page, next_offset=offset + limit if len(rows) > limit else None)

    @router.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=errors(401, 404))
    def get_job(job_id: str, owner: str = Depends(s.auth)) -> JobInfo:
        """A job's state, progress and stats so far."""
        return s.info(s.owned(job_id, owner))

    @router.delete("/v1/jobs/{job_id}", response_model=JobInfo, responses=errors(401, 404))
    def cancel_job(job_id: str, owner: str = Depends(s.auth)) -> JobInfo:
        """Cancel: a running job stops after its round in flight commits; its rows stay readable."""
        s.owned(job_id, owner)
        s.executor.cancel(job_id)
        return s.info(s.owned(job_id, owner))

    return router
