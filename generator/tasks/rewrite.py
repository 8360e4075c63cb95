"""The Evol-Instruct rewrite: its ops, how one is drawn, and the task that rewrites an instruction.

`EvolveTask` (Xu et al. 2023, WizardLM): one operation per evolution. In depth, the teacher rewrites
the prompt harder by one method (add constraints, deepen, concretize, increase reasoning steps) or
complicates its input with data (a table, JSON, XML, SQL or code); in breadth, it writes a new, rarer
prompt in the same domain. The `code` profile uses WizardCoder's five methods in one template. The
evolved item is then answered by `generator/tasks/answer.py`.

Prompt wording is in `templates/evolve_*.txt`; the method sentences are in
`templates/evolve_methods.txt`, one `op: sentence` per line.
"""

from __future__ import annotations

import random
import re
from functools import cache

from pydantic import BaseModel

from generator.records import Record
from generator.tasks.base import request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse

GENERAL_OPS = ("add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth")
CODE_OPS = (
    "code_constraints",
    "code_rarer_requirement",
    "code_more_steps",
    "code_erroneous_reference",
    "code_complexity",
)
OPS: dict[str, tuple[str, ...]] = {"general": GENERAL_OPS, "code": CODE_OPS}

# What `complicate_input` asks the teacher to add; one is drawn per evolution.
DATA_FORMATS = ("a Markdown table", "JSON", "XML", "SQL statements", "Python code")


@cache
def methods() -> dict[str, str]:
    """op -> the method sentence put into the depth and code templates."""
    out = {}
    for line in template("evolve_methods").splitlines():
        op, sep, sentence = line.partition(":")
        if sep and sentence.strip():
            out[op.strip()] = sentence.strip()
    return out


def template_for(op: str) -> str:
    if op == "breadth":
        return "evolve_breadth"
    if op == "complicate_input":
        return "evolve_complicate_input"
    return "evolve_code" if op.startswith("code_") else "evolve_depth"


def draw_op(rng: random.Random, weights: dict[str, float], profile: str) -> str:
    """One op by weight. Iterating the profile's fixed op order keeps the draw independent of dict order."""
    ops = [op for op in OPS[profile] if weights.get(op, 0.0) > 0]
    return rng.choices(ops, weights=[weights[op] for op in ops])[0]


def prompt_text(record: Record) -> str:
    """What gets evolved: the instruction, with the first instance's input folded in (as WizardLM did).

    An evolved instruction is then self-contained, so its answer needs no separate input.
    """
    first_input = record.instances[0].input.strip() if record.instances else ""
    return f"{record.instruction.strip()}\n{first_input}" if first_input else record.instruction.strip()


class EvolveRow(BaseModel):
    """One evolution: which item, by which op, in which round, and the draws that shape the prompt."""

    parent: Record
    op: str
    round: int
    data_format: str | None = None  # complicate_input only
    seed: int | None = None  # sampling seed sent with the request


# Labels the teacher may echo around its answer; what follows the last one is the new instruction.
_ECHOED_MARKER = re.compile(r"#\s*(?:rewritten|new)\s+prompt\s*#\s*:?", re.IGNORECASE)
_LEADING_LABEL = re.compile(
    r"^(?:here\s+is\s+|here's\s+)?(?:the\s+|a\s+|my\s+)?(?:rewritten|new|revised|harder)\s+"
    r"(?:prompt|task|version|instruction)\s*:\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "“": "”", "'": "'"}


def parse_evolved(text: str) -> str | None:
    """The new instruction from a rewriter's response, or None if there is none.

    Whitespace inside is kept: a complicated input may be a table or code whose lines matter.
    """
    text = _ECHOED_MARKER.split(text)[-1].strip()
    text = _LEADING_LABEL.sub("", text, count=1).strip()
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text[0] not in text[1:-1]:
        text = text[1:-1].strip()  # one pair of quotes around the whole prompt
    return text or None


class EvolveTask:
    stage = "evolve"

    def __init__(self, params: SamplingParams, api: str = "chat") -> None:
        self.params, self.api = params, api

    def prompt(self, row: EvolveRow) -> TeacherRequest:
        name = template_for(row.op)
        fields = {"prompt": prompt_text(row.parent)}
        if row.op == "complicate_input":
            fields["data_format"] = row.data_format or DATA_FORMATS[0]
        elif row.op != "breadth":
            fields["method"] = methods()[row.op]
        text = template(name).format(**fields)
        return request_for(self.api, text, self.params.model_copy(update={"seed": row.seed}))

    def parse(self, row: EvolveRow, response: TeacherResponse) -> Record | None:
        if response.truncated:  # a rewrite cut off by max_tokens is not a whole instruction
            return None
        instruction = parse_evolved(response.text)
        if instruction is None:
            return None
        parent = row.parent
        return Record(
            id=f"e{row.round}-{parent.id}",
            instruction=instruction,
            origin=f"evol:{row.op}",
            round=row.round,
            parent_ids=[parent.id],
            root_id=parent.root_id or parent.id,
            op=row.op,
            parent_instruction=prompt_text(parent),
            data_format=row.data_format,
        )
