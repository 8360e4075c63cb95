"""Answer an evolved instruction: it is sent as it is (WizardLM answers each evolution with a second
call); a completion endpoint gets it inside an Alpaca-style frame instead (`templates/answer*.txt`).
"""

from __future__ import annotations

from pydantic import BaseModel

from generator.records import Record
from generator.tasks.base import request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse


def answer_request(instruction: str, params: SamplingParams, api: str) -> TeacherRequest:
    """The instruction as a chat turn, or in the Alpaca frame for a completion endpoint."""
    name = "answer" if api == "chat" else "answer_completion"
    return request_for(api, template(name).format(instruction=instruction), params)


class AnswerRow(BaseModel):
    record: Record
    seed: int | None = None


class AnswerTask:
    stage = "answer"

    def __init__(self, params: SamplingParams, api: str = "chat") -> None:
        self.params, self.api = params, api

    def prompt(self, row: AnswerRow) -> TeacherRequest:
        return answer_request(
            row.record.instruction, self.params.model_copy(update={"seed": row.seed}), self.api
        )

    def parse(self, row: AnswerRow, response: TeacherResponse) -> str | None:
        if response.truncated:  # the answer stops mid-way: not a usable output
            return None
        return response.text.strip() or None
