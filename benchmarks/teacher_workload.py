"""The teacher benchmark's workload: the pipeline's proposal prompts, and how each mode's output is scored.

Every part runs the same prompts (`workload`) and hands back a `result`; the driver scores the texts
with `kept_instructions`, the same code for every mode.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds" / "175.jsonl"


def workload(n: int, max_tokens: int) -> tuple[Any, list[Any], list[Any]]:
    """(task, rows, requests): n proposal prompts exactly as the pipeline's first round builds them."""
    from generator.profiles import SELF_INSTRUCT
    from generator.records import as_example, seed_to_record
    from generator.seeds import load_seeds
    from generator.tasks.propose import ProposeRow, SelfInstructPropose

    seeds = [as_example(seed_to_record(s)) for s in load_seeds(SEEDS)]
    params = SELF_INSTRUCT.propose.model_copy(update={"max_tokens": max_tokens})
    task = SelfInstructPropose(params, "completion")
    rows = [
        ProposeRow(round=0, index=i, examples=random.Random(i).sample(seeds, 8), seed=1000 + i)
        for i in range(n)
    ]
    return task, rows, [task.prompt(r) for r in rows]


def kept_instructions(task: Any, rows: list[Any], texts: list[str], finish: list[str]) -> int:
    """Parse, heuristic filters, ROUGE-L dedup against seeds and earlier kept: the pipeline's rules."""
    from filters.base import build_filters
    from filters.rouge import RougeLIndex
    from generator.profiles import SELF_INSTRUCT
    from generator.seeds import load_seeds
    from generator.teachers.base import TeacherResponse

    heuristics = build_filters(SELF_INSTRUCT.instruction_filters or [])
    index = RougeLIndex(threshold=0.7)
    for s in load_seeds(SEEDS):
        index.add(s.instruction)
    kept = 0
    for row, text, reason in zip(rows, texts, finish, strict=True):
        for record in task.parse(row, TeacherResponse(text=text, finish_reason=reason)):
            if all(f.apply(record)[0] for f in heuristics) and index.offer(record.instruction) is None:
                kept += 1
    return kept


def result(name: str, texts: list[str], finish: list[str], tokens: int, seconds: float, **extra: Any) -> dict:
    return {"mode": name, "tokens": tokens, "seconds": round(seconds, 2), "tok_s": round(tokens / seconds, 1),
            "texts": texts, "finish": finish, **extra}  # fmt: skip
