"""Read rows from a JSON array or JSONL file, with `file:line` in every error.

Used by the dedup CLI (datasets) and by decontamination (evaluation prompts). A JSON array is parsed
element by element so a bad row can still be pointed at by line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad input, with `path:line: what is wrong` as its message."""


class _Lines:
    """Line numbers of positions in a text, counted incrementally (positions only move forward)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def read_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for each row of a JSON array or JSONL file.

    A file whose first non-blank character is `[` is a JSON array (Alpaca's `alpaca_data.json`);
    anything else is JSONL, one value per non-blank line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "[":
        yield from _array_rows(path, text, start)
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: bad JSON: {exc.msg} (column {exc.colno})") from None


def _array_rows(path: Path, text: str, start: int) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    lines = _Lines(text)

    def next_token(pos: int) -> int:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            raise InputError(f"{path}:{lines.at(pos)}: bad JSON: the array is not closed")
        return pos

    pos = next_token(start + 1)
    if text[pos] != "]":
        while True:
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{exc.lineno}: bad JSON: {exc.msg} (column {exc.colno})") from None
            yield lines.at(pos), value
            pos = next_token(end)
            if text[pos] == "]":
                break
            if text[pos] != ",":
                raise InputError(f"{path}:{lines.at(pos)}: bad JSON: expected ',' or ']'")
            pos = next_token(pos + 1)
    if text[pos + 1 :].strip():
        raise InputError(f"{path}:{lines.at(pos)}: bad JSON: extra data after the array")


def text_field(row: Any, field: str, where: str) -> str:
    """`row[field]` as a string, or an InputError naming `where` (path:line) and what is wrong."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object with a {field!r} field, got {type(row).__name__}")
    if field not in row:
        raise InputError(f"{where}: missing field {field!r}")
    value = row[field]
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} is {type(value).__name__}, not a string")
    return value
