"""Answer an evolved instruction: it is sent as it is (WizardLM answers each evolution with a second
call); a completion endpoint gets it inside an Alpaca-style frame instead (`templates/answer*.txt`).
"""

from __future__ import annotations

from pydantic import BaseModel

from generator.records import Record
from generator.tasks.base import request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse


class AnswerRow(BaseModel):
    record: Record
    seed: int | None = None


class AnswerTask:
    stage = "answer"

    def __init__(self, params: SamplingParams, api: str = "chat") -> None:
        self.params, self.api = params, api

    def prompt(self, row: AnswerRow) -> TeacherRequest:
        name = "answer" if self.api == "chat" else "answer_completion"
        text = template(name).format(instruction=row.record.instruction)
        return request_for(self.api, text, self.params.model_copy(update={"seed": row.seed}))

    def parse(self, row: AnswerRow, response: TeacherResponse) -> str | None:
        if response.truncated:  # the answer stops mid-way: not a usable output
            return None
        return response.text.strip() or None
