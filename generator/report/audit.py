"""The audit: a seeded sample of rows graded by the teacher as judge with the Self-Instruct paper's
three questions (its 200-item quality table):

1. Does the instruction describe a valid task?
2. Is the input appropriate for the instruction?
3. Is the output a correct and acceptable response to the instruction and input?

Each question is reported as the share of "yes" among the rows whose answer could be read, with the
sample size and the count of unreadable answers beside it, plus the share of rows where all three are
yes. The paper's raters were people; here the judge is a model, so the table measures what that judge
believes: a strong judge gives a useful estimate, the embedded 135M model gives noise (which is why the
report leaves the audit off unless asked).

`AuditTask` is an ordinary task (prompt/parse, template `report_audit.txt`); `run_audit` sends the
sample to the worker actors a block at a time, with a progress bar.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from generator.records import AlpacaRow
from generator.tasks.base import request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse
from generator.workers import run_on_workers

QUESTIONS = (
    ("valid_task", "Does the instruction describe a valid task?"),
    ("input_appropriate", "Is the input appropriate for the instruction?"),
    ("output_acceptable", "Is the output a correct and acceptable response to the instruction and input?"),
)
# Greedy, as the run's judges decode: a verdict as repeatable as the teacher allows. Room for three
# short lines and a model that restates the question.
AUDIT_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=48)

Verdict = tuple[bool | None, bool | None, bool | None]  # one answer per question; None: unreadable

_NUMBERED = re.compile(r"^\W*([123])\b(.*)$", re.M)
_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def parse_audit(text: str) -> Verdict:
    """The three yes/no answers: from lines numbered 1-3 ("2. yes", "3) No, it is wrong"), or failing
    that, from the first three yes/no words in order."""
    answers: list[bool | None] = [None, None, None]
    numbered = False
    for number, rest in _NUMBERED.findall(text):
        word = _YES_NO.search(rest)
        if word is not None and answers[int(number) - 1] is None:
            answers[int(number) - 1] = word.group(1).lower() == "yes"
            numbered = True
    if not numbered:
        words = [w.lower() == "yes" for w in _YES_NO.findall(text)][:3]
        answers[: len(words)] = words
    return answers[0], answers[1], answers[2]


class AuditTask:
    stage = "audit"

    def __init__(self, api: str = "chat", params: SamplingParams = AUDIT_SAMPLING) -> None:
        self.api, self.params = api, params

    def prompt(self, row: AlpacaRow) -> TeacherRequest:
        text = template("report_audit").format(
            instruction=row.instruction, input=row.input or "(empty)", output=row.output
        )
        return request_for(self.api, text, self.params)

    def parse(self, row: AlpacaRow, response: TeacherResponse) -> Verdict:
        return parse_audit(response.text)


def sample_rows(rows: Sequence[AlpacaRow], n: int, seed: int) -> list[int]:
    """The indices of `n` rows drawn without replacement by `seed`, in dataset order (all when fewer)."""
    if n >= len(rows):
        return list(range(len(rows)))
    return sorted(random.Random(seed).sample(range(len(rows)), n))


def summarize(verdicts: Sequence[Verdict | None]) -> dict[str, Any]:
    """The audit table: per question the yes count, how many answers were readable, and the share."""

    def share(yes: int, answered: int) -> float | None:
        return round(100 * yes / answered, 1) if answered else None

    questions = []
    for i, (key, text) in enumerate(QUESTIONS):
        answers = [v[i] for v in verdicts if v is not None and v[i] is not None]
        yes = sum(1 for a in answers if a)
        questions.append(
            {
                "key": key,
                "question": text,
                "yes": yes,
                "answered": len(answers),
                "percent": share(yes, len(answers)),
            }
        )
    complete = [v for v in verdicts if v is not None and None not in v]
    all_yes = sum(1 for v in complete if all(v))
    return {
        "sample": len(verdicts),
        "questions": questions,
        "all_valid": {"yes": all_yes, "answered": len(complete), "percent": share(all_yes, len(complete))},
        "unreadable": sum(1 for v in verdicts if v is None or None in v),
    }


def run_audit(
    workers: list[Any], rows: Sequence[AlpacaRow], n: int, seed: int, api: str = "chat", block: int = 16
) -> dict[str, Any]:
    """Grade a seeded sample of `n` rows with the teacher behind `workers`; the summary plus each
    graded row (its index in the dataset and the three answers)."""
    task = AuditTask(api)
    picked = sample_rows(rows, n, seed)
    verdicts: list[Verdict | None] = []
    with tqdm(total=len(picked), desc="audit", unit="row", delay=1.0, leave=False) as bar:
        for start in range(0, len(picked), block):
            chunk = [rows[i] for i in picked[start : start + block]]
            verdicts += [parsed for _, parsed in run_on_workers(workers, task, chunk)]
            bar.update(len(chunk))
    graded = [
        {"row": i, **{key: None if v is None else v[q] for q, (key, _) in enumerate(QUESTIONS)}}
        for i, v in zip(picked, verdicts, strict=True)
    ]
    return {"seed": seed, **summarize(verdicts), "rows": graded}
