"""Read seed tasks, failing early and precisely on bad input.

Three shapes are accepted, detected per row:
- the Self-Instruct schema (`id, name, instruction, instances[{input, output}], is_classification`),
  which also reads the published `seed_tasks.jsonl` unchanged, with optional domain fields (`domain`;
  `tests` for code tasks, `references` for medical ones); any other field is an error;
- Alpaca-style rows (`instruction, input, output`), as a JSON list or JSONL;
Every problem is reported as `file:line: what is wrong` before any teacher call is made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from generator.records import Instance, SeedTask

SELF_INSTRUCT_KEYS = {"id", "name", "instruction", "instances", "is_classification"}
ALPACA_KEYS = {"instruction", "input", "output"}


class SeedFileError(ValueError):
    """A seed file that cannot be used; the message is `file:line: what is wrong`."""


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{where}: {err['msg'].lower()}")
    return "; ".join(parts)


def _row_to_task(row: Any, where: str, index: int) -> SeedTask:
    if not isinstance(row, dict):
        raise SeedFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    keys = set(row)
    try:
        if "instances" in keys or "is_classification" in keys or "id" in keys:
            missing = SELF_INSTRUCT_KEYS - keys
            if missing:
                raise SeedFileError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
            return SeedTask.model_validate(row)
        if "output" in keys or "input" in keys:
            missing = ALPACA_KEYS - keys
            if missing:
                raise SeedFileError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
            extra = keys - ALPACA_KEYS
            if extra:
                raise SeedFileError(f"{where}: unexpected field(s) {', '.join(sorted(extra))}")
            for key in ALPACA_KEYS:
                if not isinstance(row[key], str):
                    raise SeedFileError(f"{where}: {key}: expected a string, got {type(row[key]).__name__}")
            if not row["instruction"].strip():
                raise SeedFileError(f"{where}: instruction: empty")
            return SeedTask(
                id=f"alpaca_{index}",
                name=f"alpaca_{index}",
                instruction=row["instruction"],
                instances=[Instance(input=row["input"], output=row["output"])],
                is_classification=False,
            )
        raise SeedFileError(
            f"{where}: not a seed task: expected Self-Instruct fields "
            f"({', '.join(sorted(SELF_INSTRUCT_KEYS))}) or Alpaca fields (instruction, input, output)"
        )
    except ValidationError as exc:
        raise SeedFileError(f"{where}: {_describe(exc)}") from None


def _rows(path: Path, text: str) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) pairs from a JSON list or a JSONL file."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SeedFileError(f"{path}:{exc.lineno}: bad JSON: {exc.msg}") from None
        if not isinstance(data, list):
            raise SeedFileError(f"{path}:1: expected a JSON list of rows")
        # A JSON list has no line per row; report the row's 1-based index instead.
        return [(i + 1, row) for i, row in enumerate(data)]
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise SeedFileError(f"{path}:{lineno}: bad JSON: {exc.msg} (column {exc.colno})") from None
    return rows


def load_seeds(path: str | Path | None) -> list[SeedTask]:
    """Parse and validate a seed file. Raises SeedFileError with `file:line: problem`.

    None (a run with no seed file: the magpie profile) has no seeds."""
    if path is None:
        return []
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SeedFileError(f"{path}:0: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw[: exc.start].count(b"\n") + 1
        raise SeedFileError(
            f"{path}:{lineno}: not UTF-8 (byte {raw[exc.start]:#x} at offset {exc.start})"
        ) from None
    rows = _rows(path, text)
    if not rows:
        raise SeedFileError(f"{path}:1: empty file: no seed tasks")
    tasks: list[SeedTask] = []
    seen: dict[str, int] = {}
    for index, (lineno, row) in enumerate(rows):
        where = f"{path}:{lineno}"
        task = _row_to_task(row, where, index)
        if task.id in seen:
            raise SeedFileError(f"{where}: duplicate id {task.id!r} (first on line {seen[task.id]})")
        seen[task.id] = lineno
        tasks.append(task)
    return tasks
