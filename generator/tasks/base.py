"""The task interface (the curator pattern): `prompt(row) -> request`, `parse(row, response) -> items`.

A task is pure: it builds a request from a row and turns a response back into items. It never calls
the teacher itself, so the loop decides batching, caching and concurrency, and a unit test can check
the exact prompt and the parser with plain strings. Prompt wording lives in `templates/*.txt` beside
this file, one file per task and profile, so a reader can see every prompt the system sends.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Generic, Protocol, TypeVar

from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse

RowT = TypeVar("RowT", contravariant=True)
OutT = TypeVar("OutT", covariant=True)


class Task(Protocol, Generic[RowT, OutT]):
    """`stage` names the task in provenance, stats and logs."""

    stage: str

    def prompt(self, row: RowT) -> TeacherRequest: ...

    def parse(self, row: RowT, response: TeacherResponse) -> OutT: ...


@cache
def template(name: str) -> str:
    """The text of `templates/<name>.txt` (packaged with the code)."""
    text = resources.files("generator.tasks").joinpath("templates", f"{name}.txt").read_text("utf-8")
    return text.rstrip("\n")  # the file's final newline is not part of the prompt


def collapse_ws(text: str) -> str:
    """Collapse runs of whitespace to one space and strip (how Self-Instruct normalises items)."""
    return " ".join(text.split())


def request_for(api: str, text: str, params: SamplingParams) -> TeacherRequest:
    """The prompt text as a completion request, or as one user message for chat-only endpoints."""
    return (
        TeacherRequest.completion(text, params) if api == "completion" else TeacherRequest.chat(text, params)
    )
