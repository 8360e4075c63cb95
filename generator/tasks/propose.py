"""Proposal tasks: show the teacher a mix of tasks, read back new ones.

- `SelfInstructPropose` (Wang et al. 2022): a numbered list of 8 in-context instructions ending in
  "9."; the teacher continues the list. Truncated responses are dropped whole, as in the original.
- `AlpacaPropose` (Taori et al. 2023): 3 seed tasks with input and output, and the teacher writes up to
  20 more in the same `N. Instruction / N. Input / N. Output` layout, separated by `###`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generator.records import Example, Instance, Record
from generator.tasks.base import collapse_ws, request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse


@dataclass(frozen=True, slots=True)
class ProposeRow:
    """One proposal request: which round and slot it is, and the in-context examples."""

    round: int
    index: int
    examples: list[Example]
    seed: int | None = None  # sampling seed sent with the request (reproducible servers honour it)
    persona: str | None = None  # who the new tasks are for (--personas), None: no one in particular


def candidate(row: ProposeRow, n: int, instruction: str, origin: str) -> Record:
    """The `n`th task a proposal response holds, with its lineage (examples shown, persona)."""
    return Record(
        id=f"r{row.round}-p{row.index}-{n}",
        instruction=instruction,
        origin=origin,
        round=row.round,
        parent_ids=[e.id for e in row.examples],
        persona=row.persona,
    )


def with_persona(text: str, persona: str | None) -> str:
    """The proposal prompt, written for `persona` (Persona Hub): one line before it. Without a persona
    the prompt is left exactly as it was, so its requests (and their cache keys) do not change."""
    return text if persona is None else template("propose_persona").format(persona=persona) + "\n\n" + text


class SelfInstructPropose:
    stage = "propose"

    def __init__(self, params: SamplingParams, api: str = "completion", tasks_per_request: int = 15) -> None:
        # the list's length is bounded by the stop sequences (`16.`), so `tasks_per_request` is unused
        self.params, self.api = params, api

    def prompt(self, row: ProposeRow) -> TeacherRequest:
        # Self-Instruct collapses whitespace and strips a trailing ":" from each in-context instruction.
        lines = [
            f"{i}. {collapse_ws(e.instruction).rstrip(':')}" for i, e in enumerate(row.examples, start=1)
        ]
        lines.append(f"{len(row.examples) + 1}.")
        params = self.params.model_copy(update={"seed": row.seed})
        text = template("propose_self_instruct").format(tasks="\n".join(lines))
        return request_for(self.api, with_persona(text, row.persona), params)

    def parse(self, row: ProposeRow, response: TeacherResponse) -> list[Record]:
        if response.truncated:  # the original drops a whole response that hit max_tokens
            return []
        # The response continues after "9."; later items start with "\n10. ", "\n11. " ...
        pieces = re.split(r"\n\d+\s?\. ", response.text)
        out = []
        for n, piece in enumerate(pieces):
            text = collapse_ws(piece)
            if text:
                out.append(candidate(row, n, text[0].upper() + text[1:], "self-instruct"))
        return out


class AlpacaPropose:
    stage = "propose"

    def __init__(self, params: SamplingParams, api: str = "completion", tasks_per_request: int = 20) -> None:
        self.params, self.n, self.api = params, tasks_per_request, api

    def prompt(self, row: ProposeRow) -> TeacherRequest:
        blocks = []
        for i, e in enumerate(row.examples, start=1):
            blocks.append(
                f"###\n{i}. Instruction: {collapse_ws(e.instruction)}\n"
                f"{i}. Input:\n{e.input.strip() or '<noinput>'}\n{i}. Output:\n{(e.output or '').strip()}"
            )
        blocks.append(f"###\n{len(row.examples) + 1}. Instruction:")
        text = template("propose_alpaca").format(n=self.n, examples="\n".join(blocks))
        text = with_persona(text, row.persona)
        return request_for(self.api, text, self.params.model_copy(update={"seed": row.seed}))

    def parse(self, row: ProposeRow, response: TeacherResponse) -> list[Record]:
        first = len(row.examples) + 1
        chunks = f"{first}. Instruction:{response.text}".split("###")
        if response.truncated:  # the last chunk was cut off mid-task
            chunks = chunks[:-1]
        out = []
        for offset, chunk in enumerate(chunks):
            idx = first + offset
            parts = re.split(rf"{idx}\.\s+(Instruction|Input|Output):", chunk)
            if len(parts) != 7:  # not exactly Instruction, Input, Output in order: unusable
                continue
            instruction = collapse_ws(parts[2])
            task_input = parts[4].strip()
            task_input = "" if "<noinput>" in task_input.lower() else task_input
            if not instruction:
                continue
            record = candidate(row, offset, instruction, "alpaca")
            record.instances = [Instance(input=task_input, output=parts[6].strip())]
            out.append(record)
        return out


ProposeTask = SelfInstructPropose | AlpacaPropose

# A profile names how it asks for new tasks (`Profile.proposal`); each way is one class above.
PROPOSERS: dict[str, type[SelfInstructPropose] | type[AlpacaPropose]] = {
    "numbered-list": SelfInstructPropose,
    "task-blocks": AlpacaPropose,
}


def make_proposer(kind: str, params: SamplingParams, tasks_per_request: int, api: str) -> ProposeTask:
    """The proposal task a profile names (`Profile.proposal`)."""
    return PROPOSERS[kind](params, api=api, tasks_per_request=tasks_per_request)
