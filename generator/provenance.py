"""Where a teacher response came from, as every record it shaped keeps it (`Record.provenance`)."""

from __future__ import annotations

from collections.abc import Mapping

from generator.records import Provenance
from generator.teachers.base import TeacherResponse
from generator.teachers.routing import DEFAULT

Identities = Mapping[str, tuple[str, str]]  # teacher name -> (backend, model)


def provenance(stage: str, identities: Identities, r: TeacherResponse) -> Provenance:
    """`identities`: each teacher's (backend, model) by name; the response names its teacher."""
    identity = identities.get(r.teacher) or identities[DEFAULT]
    return Provenance(
        stage=stage,
        backend=identity[0],
        model=identity[1],
        request_key=r.request_key,
        finish_reason=r.finish_reason,
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.completion_tokens,
        latency_s=round(r.latency_s, 4),
        cached=r.cached,
    )


def describe(identities: Identities, route: Mapping[str, str]) -> str:
    """The teachers for a log line: `openai/small (propose, classify), openai/big (answer)`."""
    if len(identities) == 1:
        return "/".join(identities[DEFAULT])
    parts = []
    for name, (backend, model) in identities.items():
        roles = [role for role, to in route.items() if to == name]
        parts.append(f"{backend}/{model} ({', '.join(roles) if name != DEFAULT else 'the rest'})")
    return ", ".join(parts)
