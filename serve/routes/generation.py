"""Generation: what a body may name (seed files, resources) and a small synchronous run."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from serve.bodies import GenerateResponse, JobRequest, Resources
from serve.requests import BadRequest
from serve.routes import Services, errors


def generation_router(s: Services) -> APIRouter:
    router = APIRouter(tags=["generation"])
    settings, executor = s.settings, s.executor

    @router.get("/v1/seeds", response_model=list[str], responses=errors(401))
    def seeds(owner: str = Depends(s.auth)) -> list[str]:
        """The seed files a body may name in `seeds`."""
        return sorted(
            p.name for p in settings.seeds_dir.iterdir() if p.is_file() and p.suffix in {".jsonl", ".json"}
        )

    @router.get("/v1/resources", response_model=Resources, responses=errors(401))
    def resources(owner: str = Depends(s.auth)) -> Resources:
        """What a body may name on this server: eval sets (a `decontaminate` filter's `eval_file`),
        embedding models (a `semantic` filter's `model`) and reference corpora (`references`)."""
        return Resources(**settings.resources.listing())

    @router.post(
        "/v1/generate",
        response_model=GenerateResponse,
        responses=errors(400, 401, 413, 422, 429, 502, 503),
    )
    async def generate(body: JobRequest, owner: str = Depends(s.auth)) -> GenerateResponse:  # type: ignore[valid-type]
        """Grow a small dataset and answer with its rows (`target` up to the server's limit, 50 by default)."""
        job_id = await run_in_threadpool(s.submit, body, owner, "generate", settings.generate_max_target)
        await executor.ended(job_id)  # no thread waits: a stalled teacher cannot starve other routes
        row = await run_in_threadpool(s.store.get, job_id)
        assert row is not None
        if row["state"] == "failed":
            raise BadRequest(502, f"the generation failed: {row['error']}")
        if row["state"] != "succeeded":
            raise BadRequest(503, f"the generation was {row['state']} (the server is shutting down)")
        rows = await run_in_threadpool(executor.rows, job_id)
        stats = await run_in_threadpool(executor.live_stats, job_id)
        return GenerateResponse(job_id=job_id, rows=rows.snapshot(), stats=stats or {})

    return router
