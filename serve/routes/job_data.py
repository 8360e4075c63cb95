"""What a job has made: its rows as a stream, its dataset, its drops and its report.

Every route here reads a job's run folder (its files by the run folder's own names) through the
executor (serve/executor.py) and the store; a
finished job's rows are read without building its filters again (`RunConfig.stored`), so a file
that moved since it ran cannot turn a read into a 500.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from generator.run_folder import ALPACA, STATS
from generator.stages.bootstrap import DROPPED
from generator.stages.evolution import EVOLVE_DROPPED
from serve.requests import BadRequest
from serve.routes import Services, errors

NDJSON = "application/x-ndjson"
PARTIAL_HEADER = "X-Dataset-Partial"  # "true" on the rows of a job that did not succeed
EVENT_ID = re.compile(r"[0-9]{1,12}")  # Last-Event-ID: ASCII digits only, and a bounded number of them
ENDED = ("succeeded", "failed", "cancelled", "interrupted")


def last_event(value: str | None) -> int:
    """A Last-Event-ID header as a row count: ASCII digits, at most 12, else a 400 (not a 500)."""
    if value is None or not value.strip():
        return 0
    if not EVENT_ID.fullmatch(value.strip()):
        raise BadRequest(400, "Last-Event-ID: expected the id of a row event (ASCII digits, at most 12)")
    return int(value.strip())


def job_data_router(s: Services) -> APIRouter:
    router = APIRouter(tags=["jobs"])
    report_lock = threading.Lock()
    reports: dict[str, tuple[int, str]] = {}  # job id -> (stats.json's mtime when rendered, the page)

    @router.get(
        "/v1/jobs/{job_id}/items",
        responses={
            200: {
                "content": {NDJSON: {}, "text/event-stream": {}},
                "description": "one Alpaca row per line (NDJSON), or per `row` event (SSE, `id` = rows "
                "sent so far), until the job ends (SSE then sends an `end` event with its state)",
            },
            **errors(400, 401, 404),
        },
        response_class=StreamingResponse,
    )
    async def items(
        job_id: str,
        owner: str = Depends(s.auth),
        accept: Annotated[str | None, Header()] = None,
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[int, Query(ge=0, le=10**9, description="skip the first `after` rows")] = 0,
    ) -> Response:
        """The accepted rows, streamed while the job runs; `?after=N` (or `Last-Event-ID: N`) resumes."""
        s.owned(job_id, owner)
        sse = "text/event-stream" in (accept or "")
        if sse:
            after = max(after, last_event(last_event_id))
        rows = await run_in_threadpool(s.executor.rows, job_id)

        async def stream() -> AsyncIterator[Any]:
            sent = after
            while True:
                new, finished = await rows.after(sent)
                for row in new:
                    sent += 1
                    yield (
                        {"id": str(sent), "event": "row", "data": json.dumps(row)}
                        if sse
                        else json.dumps(row) + "\n"
                    )
                if finished and not new:
                    break
            if sse:
                state = s.store.get(job_id)
                yield {
                    "event": "end",
                    "data": json.dumps({"state": state["state"] if state else None, "rows": sent}),
                }

        if sse:
            return EventSourceResponse(stream(), ping=10)
        return StreamingResponse(stream(), media_type=NDJSON)

    @router.get(
        "/v1/jobs/{job_id}/dataset",
        responses={
            200: {
                "content": {"application/json": {}},
                "description": f"alpaca.json; for a job that ended without succeeding (failed, cancelled, "
                f"interrupted), the rows it committed, with `{PARTIAL_HEADER}: true`",
                "headers": {PARTIAL_HEADER: {"schema": {"type": "string", "enum": ["true", "false"]}}},
            },
            **errors(401, 404, 409),
        },
        response_class=FileResponse,
    )
    def job_dataset(job_id: str, owner: str = Depends(s.auth)) -> Response:
        """The dataset of a job that ended (`alpaca.json`: a list of instruction, input, output); a job
        that did not succeed gives the rows it has, marked partial."""
        row = s.owned(job_id, owner)
        if row["state"] not in ENDED:
            raise BadRequest(
                409,
                f"job {job_id} is {row['state']}: the dataset is written when it ends (stream /items meanwhile)",
            )
        path = s.executor.folder(job_id) / "run" / ALPACA
        if row["state"] == "succeeded" and path.exists():
            return FileResponse(path, media_type="application/json", headers={PARTIAL_HEADER: "false"})
        rows = s.executor.rows(job_id).snapshot()  # what it committed before it ended
        return JSONResponse(rows, headers={PARTIAL_HEADER: "true"})

    @router.get(
        "/v1/jobs/{job_id}/dropped",
        responses={
            200: {"content": {NDJSON: {}}, "description": "one drop per line, with its filter and reason"},
            **errors(401, 404),
        },
        response_class=StreamingResponse,
    )
    def dropped(job_id: str, owner: str = Depends(s.auth)) -> StreamingResponse:
        """Every item the job's filters dropped, with the filter, the reason and the stage."""
        s.owned(job_id, owner)
        run_dir = s.executor.folder(job_id) / "run"
        files = [run_dir / DROPPED, run_dir / EVOLVE_DROPPED]

        def lines() -> Any:
            for path in files:
                if path.exists():
                    with path.open("rb") as f:
                        for line in f:
                            if line.endswith(b"\n"):  # a line cut short by a crash is not committed
                                yield line

        return StreamingResponse(lines(), media_type=NDJSON)

    @router.get(
        "/v1/jobs/{job_id}/report",
        responses={
            200: {
                "content": {"text/html": {"schema": {"type": "string"}}},
                "description": "the report page (figures embedded)",
            },
            **errors(401, 404, 409, 503),
        },
        # errors stay JSON like every other route's (a response class would document them as HTML)
    )
    def job_report(job_id: str, owner: str = Depends(s.auth)) -> HTMLResponse:
        """The job's report (`python -m generator.report`): metrics and figures of what it has kept so
        far, rendered afresh on every request, so a running job's page grows with it. Files are named,
        never shown by their paths on the server."""
        from generator.report import ReportExtraMissing, render_run
        from generator.report.render import HTML

        row = s.owned(job_id, owner)
        run_dir = s.executor.folder(job_id) / "run"
        stats = run_dir / STATS
        if not stats.exists():
            raise BadRequest(409, f"job {job_id} is {row['state']}: its report exists once a round commits")
        try:
            with report_lock:  # one render at a time: each is CPU work, and they write the same files
                # rendered again only when the job has committed something since the last page
                version = stats.stat().st_mtime_ns
                if reports.get(job_id, (None, ""))[0] != version:
                    render_run(run_dir, public=True)
                    reports.pop(job_id, None)
                    reports[job_id] = (version, (run_dir / HTML).read_text("utf-8"))
                    while len(reports) > 16:  # the pages last asked for (a page is hundreds of KB)
                        reports.pop(next(iter(reports)))
                page = reports[job_id][1]
        except ReportExtraMissing as exc:
            raise BadRequest(503, f"this server cannot render reports: {exc}") from None
        return HTMLResponse(page)

    return router
