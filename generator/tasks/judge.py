"""Judge tasks: the teacher compares or rates items; the verdicts feed pure filters.

- `EqualityJudge`: the Evol-Instruct paper's first elimination rule. Are the evolved and the original
  prompt equal (same constraints and requirements, same depth and breadth)? The verdict is stored on
  the record (`equal_to_parent`), and the `evol_no_gain` filter reads it.
- `ScoreTask`: Deita-style scores on a fixed 1-6 scale: `complexity` of the instruction alone, and
  `quality` of the answer given the instruction. Scores are stored in `record.scores`.

Judges decode greedily, so a verdict is as repeatable as the teacher allows.
"""

from __future__ import annotations

import re
from typing import Literal

from generator.records import Record
from generator.tasks.base import request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse

SCALE = (1, 6)  # Deita's scorers rate on 1..6; one fixed scale keeps thresholds comparable across runs
ScoreKind = Literal["complexity", "quality"]

_NOT_EQUAL = re.compile(r"\bnot\s+(?:equal|the\s+same)\b|\bunequal\b|\bdifferent\b", re.IGNORECASE)
_EQUAL = re.compile(r"\bequal\b|\bsame\b", re.IGNORECASE)


def parse_equality(text: str) -> bool | None:
    """True for "Equal", False for "Not Equal"; None when the answer says neither."""
    if _NOT_EQUAL.search(text):
        return False
    if _EQUAL.search(text):
        return True
    return None


def parse_score(text: str) -> float | None:
    """The first whole number in the answer, if it is on the scale ("5", "Score: 5/6", "5.")."""
    match = re.search(r"\d+", text)
    if match is None:
        return None
    value = int(match.group())
    return float(value) if SCALE[0] <= value <= SCALE[1] else None


class EqualityJudge:
    stage = "judge"

    def __init__(self, params: SamplingParams, api: str = "chat") -> None:
        self.params, self.api = params, api

    def prompt(self, row: Record) -> TeacherRequest:
        first = row.parent_instruction or ""
        text = template("judge_equal").format(first=first, second=row.instruction)
        return request_for(self.api, text, self.params)

    def parse(self, row: Record, response: TeacherResponse) -> bool | None:
        return parse_equality(response.text)


class ScoreTask:
    def __init__(self, kind: ScoreKind, params: SamplingParams, api: str = "chat") -> None:
        self.kind, self.params, self.api = kind, params, api
        self.stage = f"score_{kind}"

    def prompt(self, row: Record) -> TeacherRequest:
        if self.kind == "complexity":
            text = template("judge_complexity").format(instruction=row.instruction)
        else:
            answer = row.instances[0].output if row.instances else ""
            text = template("judge_quality").format(instruction=row.instruction, response=answer)
        return request_for(self.api, text, self.params)

    def parse(self, row: Record, response: TeacherResponse) -> float | None:
        return parse_score(response.text)
