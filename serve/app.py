"""The FastAPI app: routes, errors as JSON, auth, limits and metrics. Jobs run in serve/executor.py.

create_app(settings)              # the teacher the settings name (the embedded vLLM one by default)
create_app(settings, teacher=F)   # F builds the teacher inside each worker (tests, benchmarks)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from generator.workers import TeacherFactory
from serve.auth import ApiKeys
from serve.bodies import (
    ErrorBody,
    GenerateResponse,
    Health,
    JobInfo,
    JobList,
    JobRequest,
    Ready,
    Resources,
)
from serve.executor import JobExecutor, OwnerBusy, QueueFull
from serve.job_routes import Services, jobs_router
from serve.jobs import JobStore, job_info
from serve.metrics import Metrics
from serve.middleware import BodyLimitAndMetrics
from serve.requests import BadRequest, build_config, validation_error_body
from serve.settings import ServerSettings

log = logging.getLogger("synth_instruct.serve")

RETRY_AFTER_S = 10


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "the body is not valid JSON",
        401: "no API key, or an unknown one",
        404: "no such job (or another key's job)",
        409: "the job has not finished",
        413: "the request body is too large",
        422: "a setting that is invalid, or that only the server may set",
        429: "too many jobs (this key's, or the queue's): retry after Retry-After seconds",
        502: "the job failed (its teacher answered nothing, ...); the reason is in `error`",
        503: "the server is shutting down",
    }
    return {code: {"model": ErrorBody, "description": what[code]} for code in codes}


def exit_after(seconds: float) -> None:
    """A shutdown that cannot finish (a job stuck in a teacher call or a file read) still ends: the
    process exits after `seconds`, and the jobs it ran resume on the next start, as after kill -9."""

    def exit_now() -> None:
        log.error(
            "shutdown still waiting after %.0f s: exiting now; running jobs resume on the next start", seconds
        )
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()


def create_app(settings: ServerSettings, teacher: TeacherFactory | None = None) -> FastAPI:
    settings.jobs_dir().mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.db_path())
    metrics = Metrics(store.count_by_state)
    base = settings.base_config()
    executor = JobExecutor(
        store,
        settings.jobs_dir(),
        base,
        metrics,
        concurrency=settings.concurrency,
        max_queued=settings.max_queued,
        teacher=teacher,
        ceilings={
            "max_rounds": settings.max_job_rounds,
            "max_requests": settings.max_job_requests,
            "max_seconds": settings.max_job_seconds,
            "max_idle_rounds": settings.max_idle_rounds,
        },
    )
    auth = ApiKeys(settings.api_keys, settings.auth)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor.start(settings.on_restart)
        log.info(
            "synth-instruct service: %s jobs folder, auth %s",
            settings.jobs_dir(),
            "on" if settings.auth else "off",
        )
        yield
        exit_after(settings.shutdown_timeout + 15)  # the jobs' wait, then Ray's and the teacher's stop
        executor.close(settings.shutdown_timeout)
        store.close()

    app = FastAPI(
        title="synth-instruct",
        version="0.1.0",
        description="Grow instruction-tuning data on demand: small synchronous requests, or long jobs "
        "whose rows stream as NDJSON or server-sent events while they run. A request body uses the "
        "run config's names (see `JobRequest`); the server decides the teacher, paths and cache.",
        lifespan=lifespan,
    )
    app.state.executor, app.state.store, app.state.settings = executor, store, settings
    app.add_middleware(BodyLimitAndMetrics, max_body_bytes=settings.max_body_bytes, metrics=metrics)

    # -- errors: always JSON, always saying what is wrong ----------------------------------------------
    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse(
            ErrorBody(error=exc.message, detail=exc.detail).model_dump(), exc.status, exc.headers
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        body = ErrorBody(error=str(exc.detail)).model_dump()
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(allowed_methods(app, request))
        return JSONResponse(body, exc.status_code, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):  # not JSON at all: 400, as documented
            return JSONResponse(ErrorBody(error="the body is not valid JSON").model_dump(), 400)
        return JSONResponse(validation_error_body(exc.errors()).model_dump(), 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            ErrorBody(error=f"internal error ({type(exc).__name__}); see the server log").model_dump(), 500
        )

    def owned(job_id: str, owner: str) -> Any:
        row = store.owned(job_id, owner)
        if row is None:
            raise BadRequest(404, f"no job {job_id!r}")
        return row

    def info(row: Any) -> JobInfo:
        return job_info(row, executor.live_stats(row["id"]))

    def submit(body: JobRequest, owner: str, kind: str, target_limit: int) -> str:
        try:
            # the key's limits first: nothing is built or read for a key that may not start a job
            executor.check_room(owner, settings.max_jobs_per_key)
            config, seed_tasks = build_config(body, settings, base, target_limit)
            request = body.model_dump(mode="json", exclude_unset=True)
            return executor.submit(owner, kind, request, config, seed_tasks, settings.max_jobs_per_key)
        except OwnerBusy as exc:
            message = f"{exc}; wait for one to finish, or cancel one"
            raise BadRequest(429, message, headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except QueueFull as exc:
            raise BadRequest(
                429, f"the server is busy: {exc}", headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from None

    # -- health --------------------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness: answers while the teacher is loading, busy or down."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, responses={503: {"model": Ready}}, tags=["health"])
    async def readyz(response: Response) -> Ready:
        """Readiness: the teacher is loaded (with the embedded teacher, its vLLM engine is up)."""
        if executor.ready.is_set() and executor.identity is not None:
            backend, model = executor.identity
            return Ready(ready=True, teacher={"backend": backend, "model": model})
        response.status_code = 503
        return Ready(ready=False, reason=executor.teacher_error or "the teacher is loading")

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["health"],
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def prometheus() -> Response:
        """Prometheus metrics: HTTP by route, jobs by state, queue, teacher, items by filter."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- generation ----------------------------------------------------------------------------------
    @app.get("/v1/seeds", response_model=list[str], responses=_errors(401), tags=["generation"])
    def seeds(owner: str = Depends(auth)) -> list[str]:
        """The seed files a body may name in `seeds`."""
        return sorted(
            p.name for p in settings.seeds_dir.iterdir() if p.is_file() and p.suffix in {".jsonl", ".json"}
        )

    @app.get(
        "/v1/resources",
        response_model=Resources,
        responses=_errors(401),
        tags=["generation"],
    )
    def resources(owner: str = Depends(auth)) -> Resources:
        """What a body may name on this server: eval sets (a `decontaminate` filter's `eval_file`),
        embedding models (a `semantic` filter's `model`) and reference corpora (`references`)."""
        return Resources(**settings.resources.listing())

    @app.post(
        "/v1/generate",
        response_model=GenerateResponse,
        responses=_errors(400, 401, 413, 422, 429, 502, 503),
        tags=["generation"],
    )
    async def generate(body: JobRequest, owner: str = Depends(auth)) -> GenerateResponse:  # type: ignore[valid-type]
        """Grow a small dataset and answer with its rows (`target` up to the server's limit, 50 by default)."""
        job_id = await run_in_threadpool(submit, body, owner, "generate", settings.generate_max_target)
        await executor.ended(job_id)  # no thread waits: a stalled teacher cannot starve other routes
        row = await run_in_threadpool(store.get, job_id)
        assert row is not None
        if row["state"] == "failed":
            raise BadRequest(502, f"the generation failed: {row['error']}")
        if row["state"] != "succeeded":
            raise BadRequest(503, f"the generation was {row['state']} (the server is shutting down)")
        rows = await run_in_threadpool(executor.rows, job_id)
        stats = await run_in_threadpool(executor.live_stats, job_id)
        return GenerateResponse(job_id=job_id, rows=rows.snapshot(), stats=stats or {})

    @app.post(
        "/v1/jobs",
        response_model=JobInfo,
        status_code=202,
        responses=_errors(400, 401, 413, 422, 429),
        tags=["jobs"],
    )
    def create_job(body: JobRequest, response: Response, owner: str = Depends(auth)) -> JobInfo:  # type: ignore[valid-type]
        """Start a long run; answers at once with the job (its id, and `Location`)."""
        job_id = submit(body, owner, "job", settings.max_target)
        response.headers["Location"] = f"/v1/jobs/{job_id}"
        return info(owned(job_id, owner))

    @app.get("/v1/jobs", response_model=JobList, responses=_errors(401, 422), tags=["jobs"])
    def list_jobs(
        owner: str = Depends(auth),
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> JobList:
        """The caller's jobs, newest first."""
        rows = store.page(owner, limit + 1, offset)
        page = [info(r) for r in rows[:limit]]
        return JobList(jobs=page, next_offset=offset + limit if len(rows) > limit else None)

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=_errors(401, 404), tags=["jobs"])
    def get_job(job_id: str, owner: str = Depends(auth)) -> JobInfo:
        """A job's state, progress and stats so far."""
        return info(owned(job_id, owner))

    @app.delete("/v1/jobs/{job_id}", response_model=JobInfo, responses=_errors(401, 404), tags=["jobs"])
    def cancel_job(job_id: str, owner: str = Depends(auth)) -> JobInfo:
        """Cancel: a running job stops after its round in flight commits; its rows stay readable."""
        owned(job_id, owner)
        executor.cancel(job_id)
        return info(owned(job_id, owner))

    app.include_router(jobs_router(Services(executor, store, auth, owned)))
    return app


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)
