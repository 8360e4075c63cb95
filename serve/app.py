"""The FastAPI app: its parts, errors as JSON, the body limit and metrics, and a bounded shutdown. The
routes are in serve/routes/ (one router per resource); jobs run in serve/executor.py.

create_app(settings)              # the teacher the settings name (the embedded vLLM one by default)
create_app(settings, teacher=F)   # F builds the teacher inside each worker (tests, benchmarks)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from generator.workers import TeacherFactory
from serve.auth import ApiKeys
from serve.bodies import ErrorBody
from serve.executor import JobExecutor
from serve.jobs import JobStore
from serve.metrics import Metrics
from serve.middleware import BodyLimitAndMetrics
from serve.requests import BadRequest, validation_error_body
from serve.routes import Services
from serve.routes.generation import generation_router
from serve.routes.health import health_router
from serve.routes.job_data import job_data_router
from serve.routes.jobs import jobs_router
from serve.settings import ServerSettings

log = logging.getLogger("synth_instruct.serve")


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
        ceilings=settings.ceilings(),
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

    services = Services(settings, base, executor, store, metrics, auth)
    for router in (health_router, generation_router, jobs_router, job_data_router):
        app.include_router(router(services))
    return app


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)
