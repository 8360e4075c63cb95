"""Health: liveness, readiness (the teacher is loaded) and Prometheus metrics. No key needed."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serve.bodies import Health, Ready
from serve.routes import Services


def health_router(s: Services) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """Liveness: answers while the teacher is loading, busy or down."""
        return Health(status="ok")

    @router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
    async def readyz(response: Response) -> Ready:
        """Readiness: the teacher is loaded (with the embedded teacher, its vLLM engine is up)."""
        if s.executor.ready.is_set() and s.executor.identity is not None:
            backend, model = s.executor.identity
            return Ready(ready=True, teacher={"backend": backend, "model": model})
        response.status_code = 503
        return Ready(ready=False, reason=s.executor.teacher_error or "the teacher is loading")

    @router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def prometheus() -> Response:
        """Prometheus metrics: HTTP by route, jobs by state, queue, teacher, items by filter (label
        values are the server's own names only: this route takes no key)."""
        return Response(generate_latest(s.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
