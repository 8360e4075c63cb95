"""The rows a job has added to its dataset so far, for the item streams.

A job's dataset only grows while it runs (each committed round appends its rows, `Progress.rows`),
so row N means the same row to every reader at any time: `?after=N` and SSE's `Last-Event-ID: N`
resume a stream with no gap and no repeat. A log starts from the run folder's committed dataset (a job
resumed after a restart, or a finished one read later) and the job thread appends to it; readers on
the event loop wait on an asyncio event that the job thread sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class RowLog:
    def __init__(self, rows: list[dict[str, Any]] | None = None, finished: bool = False) -> None:
        self._rows: list[dict[str, Any]] = list(rows or [])
        self._finished = finished
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows)

    @property
    def finished(self) -> bool:
        return self._finished

    def extend(self, rows: list[dict[str, Any]]) -> None:
        """Called by the job thread after a round commits."""
        with self._lock:
            self._rows.extend(rows)
        self._wake()

    def finish(self) -> None:
        """No more rows will come (the job ended, whatever its state)."""
        self._finished = True
        self._wake()

    def reopen(self) -> None:
        """A finished job runs again (resumed after a restart)."""
        self._finished = False

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def after(self, start: int, timeout: float = 15.0) -> tuple[list[dict[str, Any]], bool]:
        """Rows from index `start` on, waiting up to `timeout` for some; and whether the log is finished."""
        event = asyncio.Event()
        with self._lock:
            rows = self._rows[start:]
            if rows or self._finished:
                return rows, self._finished
            self._waiters.append((asyncio.get_running_loop(), event))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        with self._lock:
            return self._rows[start:], self._finished
