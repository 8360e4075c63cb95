"""The run folder: one owner, append-only JSONL per stage, atomically replaced JSON, and resume.

Layout of `out/<run>/`:
    instructions.jsonl, dropped.jsonl   the bootstrap's accepted instructions (with full provenance)
                                        and dropped items, append-only
    evolved.jsonl, evolve_dropped.jsonl the same two for the evolution stage (--evolve-rounds)
    state.json          the commit point: per stage, its last committed round and counters
    alpaca.json         the dataset: a list of {instruction, input, output} (written at the end)
    stats.json          per-stage counts, per-filter drops, tokens, time, cost (every round + end)
    config.json         the resolved run config
    .lock               held (flock) by the run that owns the folder; names its pid

A round's lines are appended and fsynced *before* state.json names that round as done. After a crash
(even `kill -9`), resume drops any line of a stage's files from a round that state.json does not name
as done, so no accepted item is lost or written twice, and the interrupted round is simply redone.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from generator.candidates import Candidate
from generator.errors import RunFolderBusy
from generator.records import Dropped, Record
from generator.state import RunState

STATE, ALPACA, STATS, CONFIG, LOCK = "state.json", "alpaca.json", "stats.json", "config.json", ".lock"


@dataclass(frozen=True)
class StageFiles:
    """The append-only files a stage writes its rounds to (`candidates`: its judged stream, if it
    records one; see `generator/candidates.py`)."""

    records: str
    dropped: str
    candidates: str | None = None


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
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def file(self, name: str) -> Path:
        return self.path / name

    # -- one owner --------------------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the folder for this run, or raise `RunFolderBusy` naming the holder's pid.

        An flock belongs to the open file: the kernel releases it when the holder exits, even by
        `kill -9`, so a dead run leaves no stale lock. Two runs in one process conflict too.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusy(
                f"{self.path} is in use by another run (pid {holder}); wait for it to finish, "
                "or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor releases the flock
            self._lock_fd = None

    # -- appending ------------------------------------------------------------------------------------
    def append(self, name: str, lines: list[str]) -> None:
        if not lines:
            return
        with open(self.file(name), "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    def append_round(
        self,
        files: StageFiles,
        records: list[Record],
        dropped: list[Dropped],
        candidates: list[Candidate] | None = None,
    ) -> None:
        self.append(files.records, [r.model_dump_json() for r in records])
        self.append(files.dropped, [d.model_dump_json() for d in dropped])
        if files.candidates is not None:
            self.append(files.candidates, [c.model_dump_json() for c in candidates or []])

    # -- the commit point -----------------------------------------------------------------------------
    def commit(self, state: RunState) -> None:
        write_json_atomic(self.file(STATE), state.model_dump(mode="json"))

    def load_state(self) -> RunState | None:
        path = self.file(STATE)
        if not path.exists():
            return None
        try:
            return RunState.model_validate(read_json(path))
        except (ValidationError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{path}: not a state file of this version ({exc.__class__.__name__}); "
                "use another --out, or remove the folder to start over"
            ) from None

    # -- resume ---------------------------------------------------------------------------------------
    def committed_records(self, files: StageFiles, last_round: int) -> list[Record]:
        """The stage's records of rounds up to `last_round` (read only)."""
        return [Record.model_validate(row) for row in self._committed(files.records, last_round)]

    def recover(self, files: StageFiles, last_round: int) -> list[Record]:
        """Cut the stage's two files back to `last_round`; return its committed records."""
        records = self.committed_records(files, last_round)
        self._rewrite(files.records, [r.model_dump_json() for r in records])
        for name in (files.dropped, files.candidates):
            if name is not None:
                rows = [json.dumps(row, ensure_ascii=False) for row in self._committed(name, last_round)]
                self._rewrite(name, rows)
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

    def reset_stage(self, files: StageFiles) -> None:
        """Start a stage afresh: its files present and empty (even if a round keeps or drops nothing)."""
        for name in (files.records, files.dropped, files.candidates):
            if name is not None:
                self._rewrite(name, [])

    def reset(self) -> None:
        """Start the whole run afresh: remove what an uncommitted earlier attempt left."""
        for name in (STATE, ALPACA, STATS):
            self.file(name).unlink(missing_ok=True)
