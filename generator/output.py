"""The run folder: append-only JSONL, atomically replaced JSON, and resume.

Layout of `out/<run>/`:
    instructions.jsonl  every instruction the pool accepted, with full provenance (append-only)
    dropped.jsonl       every dropped item with its filter and reason (append-only)
    state.json          the last completed round and the counters (atomic replace, the commit point)
    alpaca.json         the dataset: a list of {instruction, input, output} (written at the end)
    stats.json          per-stage counts, per-filter drops, tokens, time, cost (every round + end)
    config.json         the resolved run config
    evolved.jsonl, evolve_dropped.jsonl, evolve_state.json
                        the same three for the evolution stage, when a run evolves (--evolve-rounds)

A round's lines are appended and fsynced *before* state.json names that round as done. After a crash
(even `kill -9`), resume drops any line from a round that state.json does not name as done, so no
accepted item is lost or written twice, and the interrupted round is simply redone.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from generator.records import Dropped, Record

INSTRUCTIONS, DROPPED, STATE, ALPACA, STATS, CONFIG = (
    "instructions.jsonl",
    "dropped.jsonl",
    "state.json",
    "alpaca.json",
    "stats.json",
    "config.json",
)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


class RunFolder:
    # The files a stage appends to and commits with. The evolution stage keeps its own three beside
    # the bootstrap's (see `generator/evolution.py`), so each stage resumes without cutting the other's.
    records_file, dropped_file, state_file = INSTRUCTIONS, DROPPED, STATE

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        for name in (self.records_file, self.dropped_file):
            self.file(name).touch()  # present from the start, even while (or if) nothing lands in them

    def file(self, name: str) -> Path:
        return self.path / name

    # -- appending ------------------------------------------------------------------------------------
    def append(self, name: str, lines: list[str]) -> None:
        if not lines:
            return
        with open(self.file(name), "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    def append_records(self, records: list[Record]) -> None:
        self.append(self.records_file, [r.model_dump_json() for r in records])

    def append_dropped(self, dropped: list[Dropped]) -> None:
        self.append(self.dropped_file, [d.model_dump_json() for d in dropped])

    # -- the commit point -----------------------------------------------------------------------------
    def commit_round(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.file(self.state_file), state)

    # -- resume ---------------------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any] | None:
        path = self.file(self.state_file)
        return read_json(path) if path.exists() else None

    def recover(self, last_round: int) -> list[Record]:
        """Cut both JSONL files back to the last committed round; return the accepted records."""
        records = [Record.model_validate(row) for row in self._committed(self.records_file, last_round)]
        self._rewrite(self.records_file, [r.model_dump_json() for r in records])
        dropped = [
            json.dumps(row, ensure_ascii=False) for row in self._committed(self.dropped_file, last_round)
        ]
        self._rewrite(self.dropped_file, dropped)
        return records

    def _committed(self, name: str, last_round: int) -> list[dict[str, Any]]:
        path = self.file(name)
        if not path.exists():
            return []
        rows = []
        for line in path.read_text("utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash: its round was never committed
                continue
            if row.get("round", 0) <= last_round:
                rows.append(row)
        return rows

    def _rewrite(self, name: str, lines: list[str]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.file(name))

    def reset(self) -> None:
        """Start afresh: remove the files of an uncommitted earlier attempt."""
        for name in (self.state_file, ALPACA, STATS):
            self.file(name).unlink(missing_ok=True)
        for name in (self.records_file, self.dropped_file):
            self._rewrite(name, [])
