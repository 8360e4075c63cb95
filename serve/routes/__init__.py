"""The service's routes, one router per resource: health (`health.py`), generation (`generation.py`:
seeds, resources, synchronous generation), jobs (`jobs.py`: start, list, read, cancel) and what a job
has made (`job_data.py`: rows, dataset, drops, report). `Services` is what they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.config import RunConfig
from serve.auth import ApiKeys
from serve.bodies import ErrorBody, JobInfo, JobRequest
from serve.executor import JobExecutor, OwnerBusy, QueueFull
from serve.jobs import JobStore, job_info
from serve.metrics import Metrics
from serve.requests import BadRequest, build_config
from serve.settings import ServerSettings

RETRY_AFTER_S = 10
WHAT = {
    400: "a body that is not JSON, or a malformed header (Last-Event-ID)",
    401: "no API key, or an unknown one",
    404: "no such job (or another key's job)",
    409: "the job has not finished",
    413: "the request body is too large",
    422: "a setting that is invalid, or that only the server may set",
    429: "too many jobs (this key's, or the queue's): retry after Retry-After seconds",
    502: "the job failed (its teacher answered nothing, ...); the reason is in `error`",
    503: "the server is shutting down, or cannot render reports",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route: every one a JSON `ErrorBody`."""
    return {code: {"model": ErrorBody, "description": WHAT[code]} for code in codes}


@dataclass
class Services:
    settings: ServerSettings
    base: RunConfig  # the server's run config: the defaults a body's settings are laid over
    executor: JobExecutor
    store: JobStore
    metrics: Metrics
    auth: ApiKeys

    def owned(self, job_id: str, owner: str) -> Any:
        """The job's row, or a 404 (another key's job is not found either)."""
        row = self.store.owned(job_id, owner)
        if row is None:
            raise BadRequest(404, f"no job {job_id!r}")
        return row

    def info(self, row: Any) -> JobInfo:
        return job_info(row, self.executor.live_stats(row["id"]))

    def submit(self, body: JobRequest, owner: str, kind: str, target_limit: int) -> str:  # type: ignore[valid-type]
        """Queue a job for `body`, or a 4xx saying why not."""
        settings, executor = self.settings, self.executor
        try:
            # the key's limits first: nothing is built or read for a key that may not start a job
            executor.check_room(owner, settings.max_jobs_per_key)
            config, seed_tasks = build_config(body, settings, self.base, target_limit)
            request = body.model_dump(mode="json", exclude_unset=True)
            return executor.submit(owner, kind, request, config, seed_tasks, settings.max_jobs_per_key)
        except OwnerBusy as exc:
            message = f"{exc}; wait for one to finish, or cancel one"
            raise BadRequest(429, message, headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except QueueFull as exc:
            raise BadRequest(
                429, f"the server is busy: {exc}", headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from None
