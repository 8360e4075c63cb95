"""Where a teacher response came from, as every record it shaped keeps it (`Record.provenance`)."""

from __future__ import annotations

from generator.records import Provenance
from generator.teachers.base import TeacherResponse


def provenance(stage: str, identity: tuple[str, str], r: TeacherResponse) -> Provenance:
    """`identity` is the teacher's (backend, model)."""
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
