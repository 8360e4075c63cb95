"""Magpie (Xu et al. 2024): seedless proposals. An aligned chat model completes its own chat template's
user turn, so it writes a user query with no seed task and no instruction to imitate.

- `MagpiePropose`: the pre-query text (`generator/chat_template.py`: the template rendered up to where
  the user's message starts) as a completion prompt, one query per request. Sampling follows Magpie
  (temperature 1, top_p 1, stop at the end of the user's turn or the first newline); each request's
  seed makes it a different draw. With personas the system prompt says who the user is.
- `MagpieAnswer`: the query answered as a chat turn (greedy, as Magpie answers), as the evolution's
  answers are; a completion endpoint gets it in the Alpaca frame instead.

The query is recorded with the system prompt it was written under (`facts["system"]`), so the
`query_repeats_system` filter can tell an echo of it from a question.
"""

from __future__ import annotations

from functools import lru_cache

from generator.chat_template import PreQuery, pre_query, system_text
from generator.records import Instance, Record, TaskRow
from generator.tasks.answer import answer_request
from generator.tasks.base import template
from generator.tasks.propose import ProposeRow, candidate
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse


@lru_cache(maxsize=1024)
def _pre_query(chat_template: str, system: str | None) -> PreQuery:
    return pre_query(chat_template, system)


def persona_system(persona: str) -> str:
    """The system prompt that makes the model write as `persona` (templates/magpie_persona.txt)."""
    return template("magpie_persona").format(persona=persona)


class MagpiePropose:
    stage = "propose"

    def __init__(self, chat_template: str, params: SamplingParams) -> None:
        self.chat_template, self.params = chat_template, params
        self.default_system = system_text(chat_template)  # what the template adds when given none
        _pre_query(chat_template, None)  # a template that cannot give a pre-query fails here, at once

    def prompt(self, row: ProposeRow) -> TeacherRequest:
        system = persona_system(row.persona) if row.persona else None
        pre = _pre_query(self.chat_template, system)
        stop = tuple(dict.fromkeys((*self.params.stop, *pre.stop)))
        return TeacherRequest.completion(
            pre.prefix, self.params.model_copy(update={"seed": row.seed, "stop": stop})
        )

    def parse(self, row: ProposeRow, response: TeacherResponse) -> list[Record]:
        if response.truncated:  # a query that ran to max_tokens never closed its turn
            return []
        # Kept even when empty: the query filters count what they drop and why.
        record = candidate(row, 0, response.text.strip(), "magpie")
        system = persona_system(row.persona) if row.persona else self.default_system
        record.facts = {"system": system} if system else None
        return [record]


class MagpieAnswer:
    stage = "answer"

    def __init__(self, params: SamplingParams, api: str = "chat") -> None:
        self.params, self.api = params, api

    def prompt(self, row: TaskRow) -> TeacherRequest:
        return answer_request(row.instruction, self.params, self.api)

    def parse(self, row: TaskRow, response: TeacherResponse) -> list[Instance]:
        text = response.text.strip()
        if response.truncated or not text:  # an answer that stops mid-way is not a usable output
            return []
        return [Instance(input="", output=text)]
