"""A SQLite request cache that wraps any teacher.

The key hashes backend, model, prompt or messages and sampling params (seed included); parsing is not
in the key, so a changed parser re-reads cached responses for free. Only successful responses are
stored: a failure must be retried on the next run, not replayed.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from generator.teachers.base import Teacher, TeacherRequest, TeacherResponse

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class RequestCache:
    """Key -> response JSON in one SQLite file; safe for several processes (WAL, busy timeout)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = _open(path)

    def get_many(self, keys: list[str]) -> dict[str, TeacherResponse]:
        found: dict[str, TeacherResponse] = {}
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(
                f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk
            ):
                found[key] = TeacherResponse.model_validate_json(blob)
        return found

    def put_many(self, items: list[tuple[str, str, str, TeacherResponse]]) -> None:
        rows = [(key, backend, model, r.model_dump_json(), time.time()) for key, backend, model, r in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _open(path: Path, patience_s: float = 60.0) -> sqlite3.Connection:
    """Connect, switch to WAL and create the table, retrying while another process does the same.

    Several workers open a fresh cache file at once. Switching to WAL needs an exclusive lock, and
    SQLite answers "database is locked" at once, without waiting on the busy timeout, when two
    connections race for it (its deadlock guard). So the whole setup is retried with jittered sleeps.
    """
    deadline = time.monotonic() + patience_s
    while True:
        db = sqlite3.connect(path, timeout=patience_s, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(SCHEMA)
            return db
        except sqlite3.OperationalError as error:
            db.close()
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.1))


class CachedTeacher:
    """Serve repeated requests from the cache; send only the misses to the wrapped teacher."""

    def __init__(self, inner: Teacher, path: Path) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.cache = RequestCache(path)

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        keys = [r.cache_key(self.backend, self.model) for r in requests]
        hits = self.cache.get_many(list(dict.fromkeys(keys)))
        misses = [i for i, k in enumerate(keys) if k not in hits]
        fresh = await self.inner.generate([requests[i] for i in misses]) if misses else []
        self.cache.put_many(
            [(keys[i], self.backend, self.model, r) for i, r in zip(misses, fresh, strict=True) if r.ok]
        )
        fresh_at = dict(zip(misses, fresh, strict=True))
        return [
            fresh_at[i].model_copy(update={"request_key": k})
            if i in fresh_at
            else hits[k].model_copy(update={"cached": True, "request_key": k, "latency_s": 0.0})
            for i, k in enumerate(keys)
        ]

    async def close(self) -> None:
        self.cache.close()
        await self.inner.close()
