"""The job store: jobs, their owners, requests, states and progress in SQLite (WAL).

The job's full RunConfig is kept with it, so a restarted server resumes it as it was asked. A job's
rows are not here: they live in its run folder (`<data-dir>/jobs/<id>/run`), committed round
by round like any CLI run's, so a job resumes the way a CLI run does. This file only says which jobs
exist, whose they are, and where each stands. Owners are stored as a hash of their key, never the key.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from serve.bodies import JobInfo, JobProgress, JobState

ACTIVE: tuple[JobState, ...] = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    progress TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
"""


class JobStore:
    """One connection behind a lock: writes are tiny and rare (a job's state, a round's progress)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at each checkpoint
            self._db.executescript(_SCHEMA)
            self._upgrade()

    def _upgrade(self) -> None:
        """Bring a store made by an earlier version up to this schema (columns added since)."""
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "config" not in columns:  # its jobs cannot be resumed (no config): they fail with that reason
            self._db.execute("ALTER TABLE jobs ADD COLUMN config TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- writes --------------------------------------------------------------------------------------
    def create(self, job_id: str, owner: str, kind: str, request: dict[str, Any], config: str) -> None:
        """A queued job: the body it was asked with, and the RunConfig (JSON) it runs with."""
        self._exec(
            "INSERT INTO jobs (id, owner, kind, state, request, config, created_at)"
            " VALUES (?, ?, ?, 'queued', ?, ?, ?)",
            (job_id, owner, kind, json.dumps(request), config, time.time()),
        )

    def set_state(self, job_id: str, state: JobState, error: str | None = None) -> None:
        now = time.time()
        if state == "running":
            self._exec(
                "UPDATE jobs SET state = ?, started_at = COALESCE(started_at, ?), error = NULL WHERE id = ?",
                (state, now, job_id),
            )
        elif state in ACTIVE:
            self._exec("UPDATE jobs SET state = ?, error = ? WHERE id = ?", (state, error, job_id))
        else:
            self._exec(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (state, error, now, job_id),
            )

    def set_progress(self, job_id: str, progress: JobProgress) -> None:
        self._exec("UPDATE jobs SET progress = ? WHERE id = ?", (progress.model_dump_json(), job_id))

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, job_id: str) -> sqlite3.Row | None:
        rows = self._exec("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def owned(self, job_id: str, owner: str) -> sqlite3.Row | None:
        """The job if `owner` made it: another owner's job does not exist for this caller."""
        row = self.get(job_id)
        return row if row is not None and row["owner"] == owner else None

    def page(self, owner: str, limit: int, offset: int) -> list[sqlite3.Row]:
        return self._exec(
            "SELECT * FROM jobs WHERE owner = ? ORDER BY seq DESC LIMIT ? OFFSET ?", (owner, limit, offset)
        )

    def active(self) -> list[sqlite3.Row]:
        """Jobs left queued or running (by a server that stopped or died), oldest first."""
        return self._exec("SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq")

    def count_active(self, owner: str) -> int:
        rows = self._exec(
            "SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND state IN ('queued', 'running')", (owner,)
        )
        return int(rows[0]["n"])

    def count_by_state(self) -> dict[str, int]:
        return {
            r["state"]: r["n"] for r in self._exec("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        }


def job_info(row: sqlite3.Row, stats: dict[str, Any] | None) -> JobInfo:
    return JobInfo(
        id=row["id"],
        kind=row["kind"],
        state=row["state"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        progress=JobProgress.model_validate_json(row["progress"] or "{}"),
        stats=stats,
        request=json.loads(row["request"]),
    )
