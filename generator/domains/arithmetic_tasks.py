"""The arithmetic domain's two teacher steps: write a word problem, answer a problem.

- `StoryTask` (stage "story"): for the problems drafted as stories, the teacher writes a word problem
  for the drafted expression, with the expression that solves it and the answer it states. Parsing only
  reads the three lines; whether they agree is the verifier's call (`arithmetic.ArithmeticVerifier`),
  so a wrong story is dropped with its reason rather than lost silently.
- `AnswerArithmetic` (stage "answer"): the teacher solves the problem and ends with `Answer: ...`.
  Its answer is only checked, never kept: the kept output is the computed solution.

Both run in Ray workers, so they are plain picklable classes; everything a prompt needs rides on the
item (`record.facts`). Each request carries a sampling seed derived from the run seed, the step and the
item id, so a rerun sends the same requests and the request cache answers them.
"""

from __future__ import annotations

import re

from generator.domains.exact_math import QUOTIENT_REMAINDER
from generator.records import Instance, Record
from generator.seeding import derive_seed
from generator.tasks.base import collapse_ws, request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse

VALUE_LINE = "Answer: <number>"
QUOTIENT_REMAINDER_LINE = "Answer: <quotient> R <remainder>"

_LABEL = re.compile(r"^[\s>*#_`]*(problem|expression|answer)[\s*_`]*:[\s*_`]*(.*)$", re.IGNORECASE)


def parse_story(text: str) -> tuple[str, str, str] | None:
    """(problem, expression, stated answer) from a story reply, or None when a line is missing.

    The problem may run over several lines (they are joined); an expression written as
    `12 + 5 = 17` keeps its left side, since the answer has a line of its own.
    """
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = _LABEL.match(line)
        if match and match[1].lower() not in found:
            current = match[1].lower()
            found[current] = [match[2]]
        elif match:  # a second block: the first one is the answer
            break
        elif current == "problem" and line.strip():
            found["problem"].append(line)
    if set(found) != {"problem", "expression", "answer"}:
        return None
    problem = collapse_ws(" ".join(found["problem"]))
    expression = " ".join(found["expression"]).split("=")[0].strip(" `*$.")
    answer = " ".join(found["answer"]).strip(" `*$")
    if not (problem and expression and answer):
        return None
    return problem, expression, answer


def _seeded(params: SamplingParams, run_seed: int, step: str, item: Record) -> SamplingParams:
    return params.model_copy(update={"seed": derive_seed(run_seed, "arithmetic", step, item.id)})


def _facts(item: Record) -> dict:
    return item.facts or {}


class StoryTask:
    stage = "story"

    def __init__(self, params: SamplingParams, api: str, run_seed: int) -> None:
        self.params, self.api, self.run_seed = params, api, run_seed

    def prompt(self, row: Record) -> TeacherRequest:
        facts = _facts(row)
        examples = "".join(
            f"Example:\nProblem: {ex['problem']}\nExpression: {ex['expression']}\nAnswer: {ex['answer']}\n\n"
            for ex in facts.get("story_examples", [])
        )
        text = template("arithmetic_story").format(examples=examples, expression=facts["expression"])
        return request_for(self.api, text, _seeded(self.params, self.run_seed, "story", row))

    def parse(self, row: Record, response: TeacherResponse) -> list[Record] | None:
        if not response.ok or response.truncated:
            return None
        story = parse_story(response.text)
        if story is None:
            return None
        problem, expression, stated = story
        facts = {**_facts(row), "story_expression": expression, "stated_answer": stated}
        return [row.model_copy(update={"instruction": problem, "facts": facts}, deep=True)]


class AnswerArithmetic:
    stage = "answer"

    def __init__(self, params: SamplingParams, api: str, run_seed: int) -> None:
        self.params, self.api, self.run_seed = params, api, run_seed

    def prompt(self, row: Record) -> TeacherRequest:
        form = _facts(row).get("answer_form")
        line = QUOTIENT_REMAINDER_LINE if form == QUOTIENT_REMAINDER else VALUE_LINE
        text = template("arithmetic_answer").format(answer_line=line, problem=row.instruction)
        return request_for(self.api, text, _seeded(self.params, self.run_seed, "answer", row))

    def parse(self, row: Record, response: TeacherResponse) -> list[Record] | None:
        answer = response.text.strip()
        if not response.ok or response.truncated or not answer:
            return None
        given = row.instances[0].input if row.instances else ""
        return [row.model_copy(update={"instances": [Instance(input=given, output=answer)]}, deep=True)]
