"""Per-stage teachers: a run names its teachers once and routes each stage of its work to one of them.

    teachers:
      small: {teacher: openai, base_url: http://127.0.0.1:8001/v1, model: small}
      big:   {teacher: openai, base_url: http://127.0.0.1:8002/v1, model: big}
    route: {propose: small, classify: small, instances: big, evolve: big, answer: big, judge: big}

A cheap, fast model can propose and classify while a strong one writes the answers and a third judges.
The run's own teacher (`--teacher`, `--model`, ...) is named `default`: a role left out of `route` uses
it, so one teacher for everything needs no new setting. `--answer-model M` and `--judge-model M` are
the common case: the run's own backend and endpoint with another model for the answers or the judging.

Routing happens in the workers (generator/workers.py): every task names its stage, `role_of` maps it
to one of ROLES, and the worker sends the request to that role's teacher, through that teacher's own
in-flight window. Each teacher has its own request-cache keys (they hold its backend and model), its
own retries and limits, and its own prices; stats.json adds tokens, cost, failures and latency up per
teacher and per stage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT = "default"  # the run's own teacher

# The roles a route may name. A domain's or a report's tasks have stages of their own; `role_of` says
# which role each of them plays.
ROLES: tuple[str, ...] = ("propose", "classify", "instances", "evolve", "answer", "judge")
_ROLE_OF_STAGE = {
    "story": "propose",  # the arithmetic domain's word problems
    "solve": "answer",  # the code domain's solution and tests
    "audit": "judge",  # the report's three-question audit
    "eval_judge": "judge",  # the pairwise judge of a fine-tune's evaluation
}


def role_of(stage: str) -> str | None:
    """The role a task's stage plays (None: no role, so the run's own teacher answers it)."""
    if stage in ROLES:
        return stage
    if stage.startswith("score_"):  # Deita-style complexity and quality scores of an evolution
        return "judge"
    return _ROLE_OF_STAGE.get(stage)


def teacher_for(route: dict[str, str], stage: str) -> str:
    """The name of the teacher that answers `stage`'s requests."""
    role = role_of(stage)
    return route.get(role, DEFAULT) if role is not None else DEFAULT


class TeacherSpec(BaseModel):
    """One named teacher of a run. Left out, a setting is the run's own (`--api-key-env`, timeouts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: Literal["vllm", "openai"] = Field("openai", description="backend")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint")
    model: str | None = Field(None, description="model name (openai) or HF folder / hub id (vllm)")
    api: Literal["completion", "chat"] | None = Field(
        None,
        description="chat: the endpoint has no completions route, so completion prompts go to it as one "
        "user message (None: it speaks both)",
    )
    api_key_env: str | None = None
    max_in_flight: int | None = Field(None, ge=1, description="this teacher's requests in flight at once")
    request_timeout: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    replicas: int = Field(1, ge=1, description="vLLM engines of this model")
    tensor_parallel: int = Field(1, ge=1, description="GPUs per vLLM engine")
    price_prompt_per_1m: float = Field(0.0, ge=0)
    price_completion_per_1m: float = Field(0.0, ge=0)

    def data_view(self) -> dict[str, object]:
        """What changes the data a teacher makes (resume compares only this): not limits or prices."""
        return self.model_dump(
            mode="json", include={"teacher", "base_url", "model", "api", "replicas", "tensor_parallel"}
        )


def check_route(route: dict[str, str], names: list[str]) -> None:
    """Raise ValueError naming an unknown role or teacher (a typo must not silently use `default`)."""
    for role, name in route.items():
        if role not in ROLES:
            raise ValueError(f"route: unknown stage {role!r}; the stages a route names: {', '.join(ROLES)}")
        if name != DEFAULT and name not in names:
            known = ", ".join([DEFAULT, *names])
            raise ValueError(f"route.{role}: unknown teacher {name!r}; the run's teachers: {known}")
