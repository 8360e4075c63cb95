"""The server's bounds on one job, whatever its body asked for.

A body can ask for work that never ends: a filter that drops everything (every round gets answers,
so the failed-rounds guard never fires), or a target no teacher reaches. Every job therefore runs
under four ceilings the server decides: committed rounds, teacher requests, wall time, and rounds in a
row that add no row. The first one reached sets the job's `stop` (its round in flight commits, its
rows stay readable) and says which it was; the job then ends `failed` with that reason.

Counts start when this process starts running the job (a job resumed after a restart gets them anew;
its requests are counted from its stats.json, so those include what it asked before).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from generator.stages.base import Progress


@dataclass(frozen=True)
class Ceilings:
    """The server's bounds (serve/settings.py: `--max-job-rounds` ...), the same for every job."""

    max_rounds: int
    max_requests: int
    max_seconds: float
    max_idle_rounds: int


class JobCeilings:
    """One job's counts against the server's `Ceilings`."""

    def __init__(self, stop: threading.Event, limits: Ceilings) -> None:
        self.stop = stop
        self.max_rounds, self.max_requests = limits.max_rounds, limits.max_requests
        self.max_seconds, self.max_idle_rounds = limits.max_seconds, limits.max_idle_rounds
        self.rounds = 0
        self.idle_rounds = 0
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._clock: threading.Timer | None = None

    def __enter__(self) -> JobCeilings:
        self._clock = threading.Timer(
            self.max_seconds,
            self._reach,
            [f"it ran for {self.max_seconds:g} s, this server's limit per job (--max-job-seconds)"],
        )
        self._clock.daemon = True
        self._clock.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._clock is not None:
            self._clock.cancel()

    def after_round(self, p: Progress) -> None:
        """Called after each committed round (on the job's thread)."""
        self.rounds += 1
        self.idle_rounds = 0 if p.rows else self.idle_rounds + 1
        requests = int((p.stats.get("teacher") or {}).get("requests", 0))
        if self.rounds >= self.max_rounds:
            self._reach(f"it ran {self.rounds} rounds, this server's limit per job (--max-job-rounds)")
        elif requests >= self.max_requests:
            self._reach(
                f"it sent {requests} teacher requests, this server's limit per job (--max-job-requests)"
            )
        elif self.idle_rounds >= self.max_idle_rounds:
            self._reach(
                f"its last {self.idle_rounds} rounds added no row (--max-idle-rounds): its filters "
                "drop everything this teacher writes, or the target cannot be reached"
            )

    def _reach(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = f"stopped: {reason}"
        self.stop.set()
