"""A teacher that answers from a Python function: for unit tests and the pipeline benchmark.

It goes through the same interface as the real backends, so everything downstream of the teacher
(parsing, filters, the pool, the writer) is exercised unchanged. It is never a default in a real run.
"""

from __future__ import annotations

from collections.abc import Callable

from generator.teachers.base import TeacherRequest, TeacherResponse

Script = Callable[[TeacherRequest], "str | TeacherResponse"]


class ScriptedTeacher:
    backend = "scripted"

    def __init__(self, script: Script, model: str = "scripted") -> None:
        self.script = script
        self.model = model
        self.calls = 0

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        out = []
        for request in requests:
            self.calls += 1
            answer = self.script(request)
            if isinstance(answer, str):
                answer = TeacherResponse(
                    text=answer,
                    prompt_tokens=len(request.text().split()),
                    completion_tokens=len(answer.split()),
                )
            out.append(answer.model_copy(update={"request_key": request.cache_key(self.backend, self.model)}))
        return out

    async def close(self) -> None:
        return None
