"""The in-flight window a worker puts its teacher requests through: a priority semaphore with AIMD.

Why a window at all: by Little's law a teacher answers `in flight / latency` requests per second, so
the number in flight is the throughput knob. Why an adaptive one: a hosted API enforces a rate limit
and answers 429 when it is passed. A fixed window is either too small (it wastes the limit) or too
large (it hammers the API, and every 429 costs a retry and a backoff). So the window starts at the
ceiling (`limit`, the user's --max-in-flight share), halves on 429s (multiplicative decrease) and grows
back by one per window's worth of successes (additive increase), as TCP does with its congestion
window. It grows only while latency holds: a server whose answers slow down as we add requests is
queueing them, so more in flight would only wait longer, not go faster.

Waiters are served lowest `priority` first, ties in arrival order, so a worker can let the requests
of an older round (or a stage closer to the end) through ahead of newer ones.

Usage, one call per answer::

    async with window.slot(priority):
        response = await teacher.generate([request])
    if response.rate_limited:
        window.rate_limited(response.rate_limited)
    elif response.ok:
        window.succeeded(response.latency_s)

Pure asyncio; nothing is bound to a loop until a caller waits, so a Window may be made outside one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

REPORT_KEYS = ("limit", "current", "lowest", "decreases", "increases", "rate_limited")


class Window:
    def __init__(self, limit: int, *, adaptive: bool = True, floor: int = 1) -> None:
        if limit < 1 or floor < 1:
            raise ValueError("limit and floor must be >= 1")
        self.limit = limit  # the ceiling, and where the window starts
        self.floor = min(floor, limit)
        self.adaptive = adaptive
        self.current = limit  # at most this many callers inside at once
        self.lowest = limit
        self.decreases = self.increases = self.rate_limits = 0
        self.inside = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap: (priority, arrival, ...)
        self._arrivals = itertools.count()
        self._hold = 0  # answers still to come to requests sent before the last decrease
        self._successes = 0  # successes since the last change of `current` ...
        self._latency_sum = 0.0  # ... and the sum of their latencies
        self._best_latency = math.inf  # the lowest mean latency of a window's worth of successes

    # -- the slots ------------------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, priority: int = 0) -> AsyncIterator[None]:
        """Wait for a free slot (lowest `priority` first, then first come), hold it for the block."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self.inside < self.current and not self._waiters:
            self.inside += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._arrivals), future)
        heapq.heappush(self._waiters, entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the slot was handed to us just as we were cancelled: pass it on
            else:
                future.cancel()  # left in the heap, where `_wake` skips it
            raise

    def _release(self) -> None:
        self.inside -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to the first waiters; a slot goes straight to its waiter (no stealing)."""
        while self._waiters and self.inside < self.current:
            _, _, future = heapq.heappop(self._waiters)
            if future.cancelled():  # its waiter was cancelled
                continue
            self.inside += 1
            future.set_result(None)

    # -- AIMD -----------------------------------------------------------------------------------------

    def rate_limited(self, count: int = 1) -> None:
        """An answer that met `count` 429s: halve the window, once per burst.

        The other requests in flight when the window is cut were sent under the old window: their
        answers say nothing about the new one, so the next `old window - 1` answers neither cut it
        again (their 429s are the same burst) nor count towards growing it.
        """
        self.rate_limits += count
        if self._hold > 0:
            self._hold -= 1
            return
        if not self.adaptive:
            return
        before, self.current = self.current, max(self.floor, self.current // 2)
        self._hold = before - 1
        self._successes, self._latency_sum = 0, 0.0
        if self.current < before:
            self.decreases += 1
            self.lowest = min(self.lowest, self.current)

    def succeeded(self, latency_s: float) -> None:
        """An answer without 429s: after a window's worth of them in a row, grow by one, up to the
        ceiling, unless their mean latency is above twice the lowest such mean seen.

        The mean of a window's worth, not single latencies: an LLM's answers vary in length, so one
        answer's latency says little; the mean of many says whether the server has started queueing.
        """
        if self._hold > 0:  # an answer to a request sent before the last cut
            self._hold -= 1
            return
        if not self.adaptive:
            return
        self._successes += 1
        self._latency_sum += latency_s
        if self._successes < self.current:
            return
        mean = self._latency_sum / self._successes
        self._successes, self._latency_sum = 0, 0.0
        self._best_latency = min(self._best_latency, mean)
        if self.current < self.limit and mean <= 2 * self._best_latency:
            self.current += 1
            self.increases += 1
            self._wake()

    def report(self) -> dict[str, int]:
        """The window's story for stats.json."""
        return {
            "limit": self.limit,
            "current": self.current,
            "lowest": self.lowest,
            "decreases": self.decreases,
            "increases": self.increases,
            "rate_limited": self.rate_limits,
        }


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, int]:
    """Several workers' reports as one: every figure summed (the run's total window, 429s, ...)."""
    return {key: sum(int(r.get(key, 0)) for r in reports) for key in REPORT_KEYS}
