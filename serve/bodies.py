"""Request and response bodies. A request body uses `RunConfig`'s own names and types, so a setting
means the same in a YAML run file, on the command line and in a request; the fields that touch the
machine (serve/settings.py: SERVER_FIELDS) are not part of it, and a body that sets one is a 422
naming it.

`seeds` is the name of a file in the server's seed folder (not a path); `seed_tasks` gives the tasks
inline, in the Self-Instruct seed schema.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from annotated_types import Le
from pydantic import BaseModel, ConfigDict, Field, create_model

from generator.config import RunConfig
from generator.records import AlpacaRow, SeedTask
from serve.settings import SERVER_FIELDS

# The most a request may ask of the shared teacher, per setting (the server's own run file is not bounded).
BOUNDS: dict[str, int] = {
    "prompts_per_round": 256,
    "rounds_in_flight": 64,
    "evolve_rounds": 10,
    "seeds_in_prompt": 64,
    "machine_in_prompt": 64,
    "tasks_per_request": 64,
    "max_instances": 20,
    "max_failed_rounds": 100,
    "sandbox_timeout": 60,  # seconds of the server's CPU one sandboxed program may take
}
SEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CLIENT_FIELDS = [name for name in RunConfig.model_fields if name not in SERVER_FIELDS | {"seeds"}]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seeds: str | None = Field(
        None,
        description="a seed file in the server's seed folder, by name (e.g. 175.jsonl; the default)",
        examples=["175.jsonl"],
    )
    seed_tasks: list[SeedTask] | None = Field(
        None, description="seed tasks given inline, in the Self-Instruct schema (instead of `seeds`)"
    )

    def run_fields(self) -> dict[str, Any]:
        """The RunConfig settings the body gives; unset or null ones keep the server's defaults."""
        return {name: value for name in CLIENT_FIELDS if (value := getattr(self, name)) is not None}


def _client_field(name: str) -> tuple[Any, Any]:
    """RunConfig's field as an optional body field: its type, constraints and description, plus the
    server's bound on it (null: the server's default). RunConfig validates the whole config again."""
    info = RunConfig.model_fields[name]
    constraints = [*info.metadata, *([Le(BOUNDS[name])] if name in BOUNDS else [])]
    annotation: Any = info.annotation
    if constraints:
        annotation = Annotated.__class_getitem__((annotation, *constraints))  # type: ignore[attr-defined]
    return (annotation | None, Field(None, description=info.description))


# POST /v1/jobs and POST /v1/generate take the same body.
JobRequest: type[_Body] = create_model(  # type: ignore[call-overload]
    "JobRequest",
    __base__=_Body,
    __doc__="A run's settings: RunConfig's fields that a client may set, plus `seeds` or `seed_tasks`.",
    **{name: _client_field(name) for name in CLIENT_FIELDS},
)


class ErrorBody(BaseModel):
    """Every 4xx (and the 5xx that should never happen) answers with this."""

    error: str = Field(description="what is wrong, in one line")
    detail: list[dict[str, Any]] | None = Field(None, description="per-field errors of a 422")


class JobProgress(BaseModel):
    stage: str | None = None
    round: int | None = None
    kept: int = 0
    target: int | None = None
    done: int = 0
    total: int | None = None
    unit: str | None = None
    rows: int = Field(0, description="dataset rows so far (the items stream has this many)")


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class JobInfo(BaseModel):
    id: str
    kind: Literal["job", "generate"]
    state: JobState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = Field(None, description="why the job failed, or was interrupted")
    progress: JobProgress
    stats: dict[str, Any] | None = Field(None, description="the run's stats.json so far")
    request: dict[str, Any] = Field(description="the settings the job was asked with")


class JobList(BaseModel):
    jobs: list[JobInfo]
    next_offset: int | None = Field(None, description="pass as ?offset= for the next page")


class GenerateResponse(BaseModel):
    job_id: str
    rows: list[AlpacaRow]
    stats: dict[str, Any]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    teacher: dict[str, str] | None = None
    reason: str | None = None
