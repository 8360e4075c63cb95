"""Request and response bodies. A request body uses `RunConfig`'s own names and types, so a setting
means the same in a YAML run file, on the command line and in a request; the fields that touch the
machine (serve/settings.py: SERVER_FIELDS) are not part of it, and a body that sets one is a 422
naming it.

`seeds` is the name of a file in the server's seed folder (not a path); `seed_tasks` gives the tasks
inline, in the Self-Instruct seed schema. Whatever names something on the server (a filter's eval set
or embedding model, the reference corpus) is a name from GET /v1/resources, never a path.

A body is checked strictly (no "5" or true for a number) and in bounded time: every list, string and
number a client may send has a ceiling here (`LIMITS`), checked before any filter is built or any
regular expression compiled.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from annotated_types import Le, MaxLen
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, field_validator

from filters.base import FilterSpec
from generator.config import RunConfig
from generator.records import AlpacaRow, SeedTask
from generator.teachers.base import SamplingParams
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
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # a resource's, a filter's or a label's name
CLIENT_FIELDS = [name for name in RunConfig.model_fields if name not in SERVER_FIELDS | {"seeds"}]

# The size of what a body may hold, field by field (docs/serve-security.md lists them): validation stays cheap.
LIMITS: dict[str, int] = {
    "filters_per_list": 32,  # specs in instruction_filters, dedup, instance_filters, evolve_filters
    "params_per_filter": 16,
    "param_string_chars": 200,  # one string in a filter's params (a blacklist word, a prefix)
    "param_list_items": 200,  # one list in a filter's params (blacklist words: at most 200)
    "param_int": 10_000,  # the largest integer in a filter's params (num_perm, top_k, chunk: less)
    "max_tokens": 4096,  # per teacher request, in every sampling setting
    "stop_sequences": 8,
    "stop_chars": 64,
    "evolve_ops": 32,
}
# integer parameters whose cost grows with them: a lower ceiling than `param_int`
PARAM_INT_LIMITS: dict[str, int] = {"num_perm": 1024, "chunk": 1024, "top_k": 100, "batch_size": 256}
# filter parameters only the server sets: where a model runs
SERVER_PARAMS = frozenset({"device"})


def _check_param(value: Any, key: str, depth: int = 0) -> None:
    """Bounded sizes (strings, lists, numbers, nesting) in one filter parameter's value."""
    if depth > 2:
        raise ValueError(f"{key}: nested too deep")
    if isinstance(value, str) and len(value) > LIMITS["param_string_chars"]:
        raise ValueError(f"{key}: a string of at most {LIMITS['param_string_chars']} characters")
    if isinstance(value, int) and not isinstance(value, bool):
        ceiling = PARAM_INT_LIMITS.get(key, LIMITS["param_int"])
        if not -ceiling <= value <= ceiling:
            raise ValueError(f"{key}: at most {ceiling} in a request, got {value}")
    if isinstance(value, list):
        if len(value) > LIMITS["param_list_items"]:
            raise ValueError(f"{key}: at most {LIMITS['param_list_items']} items")
        for item in value:
            _check_param(item, key, depth + 1)
    if isinstance(value, dict):
        raise ValueError(f"{key}: a filter parameter is a string, a number, a boolean or a list")


class BodyFilterSpec(FilterSpec):
    """A filter spec in a request: a registered filter by name, a bounded label, bounded parameters.
    The filter's own parameter types are checked strictly later (serve/requests.py)."""

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    label: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None
    params: Annotated[dict[str, Any], MaxLen(LIMITS["params_per_filter"])] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _bounded(cls, params: dict[str, Any]) -> dict[str, Any]:
        for key, value in params.items():
            if not re.fullmatch(r"[a-z_]{1,32}", key):
                raise ValueError(f"{key[:40]!r} is not a parameter name")
            if key in SERVER_PARAMS:
                raise ValueError(f"{key}: a server setting (the server decides where models run)")
            _check_param(value, key)
        return params


class BodySamplingParams(SamplingParams):
    """Sampling settings in a request, within what the shared teacher may be asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(512, ge=1, le=LIMITS["max_tokens"])
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    stop: Annotated[
        tuple[Annotated[str, StringConstraints(max_length=LIMITS["stop_chars"])], ...],
        MaxLen(LIMITS["stop_sequences"]),
        Field(strict=False),  # a JSON list, read as a tuple
    ] = ()
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    repetition_penalty: float | None = Field(None, gt=0, le=2)


FilterList = Annotated[list[BodyFilterSpec], MaxLen(LIMITS["filters_per_list"])]
# RunConfig's field types a body replaces with its bounded ones
BODY_TYPES: dict[str, Any] = {
    "instruction_filters": FilterList,
    "dedup": FilterList,
    "instance_filters": FilterList,
    "evolve_filters": FilterList,
    "score_filter": BodyFilterSpec,
    "evolve_ops": Annotated[dict[str, float], MaxLen(LIMITS["evolve_ops"])],
    "references": Annotated[str, StringConstraints(pattern=NAME_PATTERN)],
    **{name: BodySamplingParams for name in RunConfig.model_fields if name.endswith("_params")},
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no "5" or true for a number

    seeds: str | None = Field(
        None,
        description="a seed file in the server's seed folder, by name (e.g. 175.jsonl; the default)",
        examples=["175.jsonl"],
    )
    seed_tasks: list[SeedTask] | None = Field(
        None, description="seed tasks given inline, in the Self-Instruct schema (instead of `seeds`)"
    )

    def run_fields(self) -> dict[str, Any]:
        """The RunConfig settings the body gives, as plain data; unset or null ones keep the server's
        defaults."""
        given = {name for name in CLIENT_FIELDS if getattr(self, name) is not None}
        return self.model_dump(mode="json", include=given)


def _client_field(name: str) -> tuple[Any, Any]:
    """RunConfig's field as an optional body field: its type, constraints and description, plus the
    server's bound on it (null: the server's default). RunConfig validates the whole config again."""
    info = RunConfig.model_fields[name]
    if name in BODY_TYPES:
        description = info.description
        if name == "references":
            description = "the reference corpus medical-domain jobs cite, by name (GET /v1/resources)"
        return (BODY_TYPES[name] | None, Field(None, description=description))
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


class Resources(BaseModel):
    """What a request body may name on this server, by kind (never a path)."""

    eval_sets: list[str] = Field(description="for a decontaminate filter's `eval_file`")
    embedding_models: list[str] = Field(description="for a semantic filter's `model`")
    references: list[str] = Field(description="for `references` (the medical domain's corpus)")
